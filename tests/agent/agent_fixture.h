// Shared pieces of the agent's integration tests: a real ZooKeeper server,
// real zkroll-agent processes and tiny local services.
#ifndef ZKROLL_TESTS_AGENT_AGENT_FIXTURE_H_
#define ZKROLL_TESTS_AGENT_AGENT_FIXTURE_H_

#include <signal.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/paths.h"
#include "common/payload.h"
#include "common/registry.h"
#include "tests/support/process.h"
#include "tests/support/tiny_service_process.h"
#include "tests/support/zk_fixture.h"
#include "zkroll.pb.h"

namespace zkroll::testing {

class AgentTest : public ZooKeeperTest {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Starts zkroll-agent with `args` plus --zk (agent_zk_, or the test
  // server) and `env` added to the environment; output in log(i). With a
  // `wrapper` (e.g. setpriv and its flags, absolute path first) the agent is
  // started through it.
  ChildProcess* StartAgent(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env = {},
                           const std::vector<std::string>& wrapper = {});
  std::string AgentLog(size_t i) const;

  bool Registered(const std::string& service, int port);
  std::optional<NodeData> InstanceNode(const std::string& service, int port);
  std::string InstancePath(const std::string& service, int port) const;
  std::string FlagPath(const std::string& service, int port) const;
  // Creates a pause flag the way the coordinator does (guard bump, flag,
  // registration removed in one multi). Ephemeral flags belong to `who`.
  Status Pause(ZkSession* who, const std::string& service, int port,
               const std::string& payload, CreateMode mode);
  // The agent's published view of one instance, if any.
  std::optional<proto::AgentRecord::Instance> AgentView(
      const std::string& host, const std::string& service, int port);
  // Waits until the agent has published `n` more check results for the
  // instance than it had when called (proof that time passed in checks).
  bool WaitForChecks(const std::string& host, const std::string& service,
                     int port, int n, milliseconds deadline);

  // A service name unique to the running test, so that nodes left by the
  // sessions of earlier tests' killed agents can never collide.
  std::string svc_;
  std::string agent_zk_;  // --zk for the agents; empty: the test server
  std::unique_ptr<ZkSession> zk_;  // the test's own observer session
  TempDir dir_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
};

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_AGENT_AGENT_FIXTURE_H_
