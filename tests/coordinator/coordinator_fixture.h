// Shared pieces of the coordinator's integration tests: a real ZooKeeper
// server (ZooKeeperTest), real `zkroll` and `zkroll-agent` processes and
// `zkroll-tiny-service` instances, all on loopback.
//
// Tests observe the coordinator only from outside, through ZooKeeper and
// through files its COMMAND writes. A COMMAND that must stay running while
// the test looks blocks on a FIFO (Handshake) that the test opens once it has
// asserted what it wanted: no test ever waits for a fixed time.
#ifndef ZKROLL_TESTS_COORDINATOR_COORDINATOR_FIXTURE_H_
#define ZKROLL_TESTS_COORDINATOR_COORDINATOR_FIXTURE_H_

#include <signal.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/names.h"
#include "common/paths.h"
#include "common/payload.h"
#include "tests/support/process.h"
#include "tests/support/tiny_service_process.h"
#include "tests/support/zk_fixture.h"
#include "zkroll.pb.h"

namespace zkroll::testing {

// A FIFO-based handshake with a COMMAND: the command's shell snippet
// (Snippet()) creates the "started" marker, holding the shell's pid, and
// then blocks reading the FIFO until the test calls Release(). A command
// never released (its coordinator was killed, or the test failed early)
// would block for ever: the destructor kills its process group.
class Handshake {
 public:
  explicit Handshake(const TempDir& dir, const std::string& name);
  ~Handshake();
  Handshake(const Handshake&) = delete;
  Handshake& operator=(const Handshake&) = delete;
  // Shell text: touch the marker, then block on the FIFO.
  std::string Snippet() const;
  bool Started() const;
  bool WaitStarted(milliseconds deadline) const;
  // Unblocks the command (opens the FIFO for writing and writes a line).
  bool Release();
  const std::string& marker() const { return marker_; }

 private:
  std::string marker_;
  std::string fifo_;
};

class CoordinatorTest : public ZooKeeperTest {
 protected:
  void SetUp() override;
  void TearDown() override;

  // --- the system under test ------------------------------------------
  // Runs zkroll to completion with `args` (plus --zk unless `with_zk` is
  // false); at most `timeout`.
  RunResult Zkroll(std::vector<std::string> args,
                   milliseconds timeout = milliseconds(60000),
                   bool with_zk = true);
  // The argv of a deploy of svc_@127.0.0.1:port with fast defaults (no
  // drain, checks 100ms apart); `extra` options replace the defaults of the
  // same name.
  std::vector<std::string> Deploy(int port, std::vector<std::string> extra,
                                  std::vector<std::string> command);
  // Starts zkroll in the background; output in its log file.
  ChildProcess* StartZkroll(std::vector<std::string> args);
  // Starts an agent managing `instances` ("svc@127.0.0.1:port") with fast
  // checks; its host id is `host`. `extra` options replace the defaults of
  // the same name.
  ChildProcess* StartAgent(const std::string& host,
                           const std::vector<std::string>& instances,
                           std::vector<std::string> extra = {});
  std::string AgentLogs() const;

  // --- observing ZooKeeper --------------------------------------------
  std::string Addr(int port) const {
    return "127.0.0.1:" + std::to_string(port);
  }
  std::string InstancePath(int port) const;
  std::string FlagPath(int port) const;
  bool Exists(const std::string& path);
  bool Registered(int port) { return Exists(InstancePath(port)); }
  bool Paused(int port) { return Exists(FlagPath(port)); }
  std::optional<NodeData> Get(const std::string& path);
  // The session owning the ephemeral node at `path`; 0 if it is missing or
  // persistent.
  int64_t EphemeralOwner(const std::string& path);
  // The session timeout the server granted session `id`, in milliseconds,
  // as the server itself reports it (its `cons` listing); nullopt if it
  // lists no connection of that session.
  std::optional<int> GrantedSessionTimeoutMs(int64_t id);
  // Whether /agents/<host> lists svc_@127.0.0.1:port (the agent publishes
  // its record shortly after its state changes).
  bool AgentDeclares(const std::string& host, int port);
  std::optional<proto::PauseFlag> Flag(int port);
  // The most recent journal of svc_ (with steps), if any.
  std::optional<proto::DeployRecord> LastJournal();
  // Children of a node (empty if missing).
  std::vector<std::string> Children(const std::string& path);

  // --- simulating an agent (coordinator-logic tests) --------------------
  // Publishes /agents/<host> declaring `ports` of svc_ (from `owner`).
  void Declare(ZkSession* owner, const std::string& host,
               const std::vector<int>& ports);
  // Registers svc_@127.0.0.1:port as an ephemeral of `owner`.
  void Register(ZkSession* owner, int port);

  // A service name unique to the running test, so nodes of earlier tests'
  // killed processes never collide.
  std::string svc_;
  std::unique_ptr<ZkSession> zk_;  // the test's observer session
  TempDir dir_;
  std::vector<std::unique_ptr<ChildProcess>> children_;
  std::vector<std::string> agent_logs_;
};

// The journal's steps of instance `instance` (0: the first) as
// "name:verdict", in order; empty if the record has no such instance.
std::vector<std::string> StepNames(const proto::DeployRecord& rec,
                                   int instance = 0);

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_COORDINATOR_COORDINATOR_FIXTURE_H_
