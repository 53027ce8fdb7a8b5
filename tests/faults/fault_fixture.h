// Shared pieces of the fault-injection tests (label `faults`): the
// coordinator's real-process fixture (a real ZooKeeper server, real `zkroll`
// and `zkroll-agent` processes, `zkroll-tiny-service` instances) plus the
// observations the fault tests need: JSON step lines in a coordinator's
// output, the agent's published view of an instance, and a stopwatch whose
// readings are printed as the measured recovery times.
//
// Nothing here waits for a fixed time: every wait is for a condition in
// ZooKeeper, in a process's output or on disk, with a deadline.
#ifndef ZKROLL_TESTS_FAULTS_FAULT_FIXTURE_H_
#define ZKROLL_TESTS_FAULTS_FAULT_FIXTURE_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/coordinator/coordinator_fixture.h"

namespace zkroll::testing {

using FaultClock = std::chrono::steady_clock;

inline long long MillisSince(FaultClock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(FaultClock::now() - t)
      .count();
}

class FaultTest : public CoordinatorTest {
 protected:
  void TearDown() override;

  std::string Instance(int port) const { return svc_ + "@" + Addr(port); }
  // Starts `n` tiny services on fresh ports and one agent (host `host`)
  // managing them, and waits until every one is registered and declared.
  void StartFleet(int n, const std::string& host = "host-a");
  std::vector<int> Ports() const;

  // True once `p`'s output has a line containing every one of `parts`
  // (for `--output json` step lines: {"\"step\":\"health\"",
  // "\"verdict\":\"started\""}).
  static bool HasLine(ChildProcess* p, const std::vector<std::string>& parts);
  bool WaitForLine(ChildProcess* p, const std::vector<std::string>& parts,
                   milliseconds deadline = milliseconds(30000));
  // Waits until an agent has logged that it lost its connection to
  // ZooKeeper: a stopped server is restarted once the agents have noticed
  // the outage, not after a fixed time.
  bool WaitForAgentsToNoticeOutage(milliseconds deadline = milliseconds(20000));

  // The agent's published view (/agents/<host>) of svc_@127.0.0.1:port.
  std::optional<proto::AgentRecord::Instance> AgentView(const std::string& host,
                                                        int port);
  // Waits until the agent has published `n` more distinct check results for
  // the instance than it had when called: proof that checks ran.
  bool WaitForChecks(const std::string& host, int port, int n,
                     milliseconds deadline);
  // Children of /services/<svc_> that name the instance (0 or 1 unless an
  // agent duplicated a registration).
  int RegistrationCount(int port);
  bool LockFree() {
    return Children(paths::LockDir(*ServiceName::Parse(svc_))).empty();
  }
  bool NoFlags() {
    return Children(paths::PauseDir(*ServiceName::Parse(svc_))).empty();
  }
  // A fast rollout of every declared instance; returns its result.
  RunResult FollowUpRollout();

  // Prints one measured time in a form docs/reliability.md quotes.
  static void Report(const std::string& fault, const std::string& what,
                     long long ms);

  std::vector<std::unique_ptr<TinyService>> services_;
  // A handshake whose COMMAND may outlive a killed coordinator: released at
  // tear-down unless Release()d here, so no orphan `read` stays behind.
  Handshake* NewHandshake(const std::string& name);
  bool Release(Handshake* h);

 private:
  struct OwnedHandshake {
    std::unique_ptr<Handshake> handshake;
    bool released = false;
  };
  std::vector<OwnedHandshake> handshakes_;
};

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_FAULTS_FAULT_FIXTURE_H_
