// Fault: the (single) ZooKeeper server is killed (SIGKILL) and restarted on
// the same port with the same data directory while `zkroll rollout` runs.
// Sessions survive a restart that is shorter than their timeout: the server
// reloads them from its data directory.
//
// Expected outcome: the rollout completes (exit 0, journal `succeeded` for
// both instances); every healthy instance is registered, no pause flag is
// left and the lock is free. The tests print the outage and the time from
// restart to the end of the rollout.
//
// Why exactly one outcome: the coordinator's session timeout T is 60s (the
// server's maximum) and so is its --connect-timeout (its retry window). The
// outage lasts as long as the server takes to restart, and its session
// survives it; its fence (coordinator/session_fence.h) would fall only 2T/3
// = 40s after the last answered request, its retries give up only after
// 60s. With the old 10s session timeout the fence's 6.7s could run out
// while a loaded machine restarted the server, so the run ended in 0 or 4
// depending on the machine's speed. (How a lost session aborts a deploy
// with exit 4 is tested deterministically by the coordinator kill and
// agent flow tests.)
#include <gtest/gtest.h>

#include "tests/faults/fault_fixture.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

enum class StopAt { kDuringDrain, kDuringCommand };

class ZkRestartTest : public FaultTest,
                      public ::testing::WithParamInterface<StopAt> {};

TEST_P(ZkRestartTest, Rollout) {
  const StopAt at = GetParam();
  const std::string fault = std::string("ZooKeeper restart during rollout ") +
                            (at == StopAt::kDuringDrain ? "drain" : "COMMAND");
  StartFleet(2);
  if (HasFatalFailure()) return;
  const std::vector<int> ports = Ports();
  Handshake* hs = NewHandshake("first");
  // The first instance's COMMAND blocks on the handshake when the server is
  // stopped during COMMAND; otherwise COMMAND just succeeds.
  const std::string command =
      at == StopAt::kDuringCommand
          ? "[ \"$ZKROLL_PORT\" != " + std::to_string(ports[0]) + " ] || { " +
                hs->Snippet() + "; }"
          : "true";
  ChildProcess* z = StartZkroll({"--output",
                                 "json",
                                 "--session-timeout",
                                 "60s",
                                 "--connect-timeout",
                                 "60s",
                                 "rollout",
                                 "--service",
                                 svc_,
                                 "--batch",
                                 "1",
                                 "--min-healthy",
                                 "1",
                                 "--drain-wait",
                                 at == StopAt::kDuringDrain ? "3s" : "0s",
                                 "--health-interval",
                                 "100ms",
                                 "--register-timeout",
                                 "30s",
                                 "--",
                                 "/bin/sh",
                                 "-c",
                                 command});
  if (at == StopAt::kDuringCommand) {
    ASSERT_TRUE(hs->WaitStarted(milliseconds(20000))) << z->Output();
  } else {
    ASSERT_TRUE(
        WaitForLine(z, {"\"step\":\"drain\"", "\"verdict\":\"started\""}))
        << z->Output();
  }

  const auto stopped = FaultClock::now();
  server()->Stop();
  ASSERT_TRUE(WaitForAgentsToNoticeOutage()) << AgentLogs();
  Status s = server()->Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  const auto restarted = FaultClock::now();
  Report(fault, "server back (outage)",
         std::chrono::duration_cast<milliseconds>(restarted - stopped).count());
  if (at == StopAt::kDuringCommand) {
    ASSERT_TRUE(Release(hs));
  }

  auto code = z->Wait(milliseconds(120000));
  ASSERT_TRUE(code.has_value()) << "rollout hung\n" << z->Output();
  Report(fault,
         "rollout exited " + std::to_string(*code) + " after the restart",
         MillisSince(restarted));
  const std::string out = z->Output();
  EXPECT_EQ(*code, 0) << out;
  EXPECT_TRUE(HasLine(z, {"\"event\":\"result\"", "\"exit_code\":0"}))
      << out;

  // The test's own session went through the restart too: read once it is
  // back, rather than hoping it reconnected before the rollout ended.
  std::optional<proto::DeployRecord> journal;
  ASSERT_TRUE(WaitFor(
      [&] {
        journal = LastJournal();
        return journal.has_value();
      },
      milliseconds(30000)))
      << "the journal cannot be read after the restart";
  EXPECT_EQ(journal->outcome(), "succeeded") << out;

  // Every healthy instance ends up registered, nothing stays paused.
  for (int port : ports) {
    ASSERT_TRUE(WaitFor([&] { return Registered(port); }, milliseconds(30000)))
        << port << " healthy but not registered\n"
        << AgentLogs();
    EXPECT_EQ(RegistrationCount(port), 1);
  }
  Report(fault, "every instance registered", MillisSince(restarted));
  EXPECT_TRUE(
      WaitFor([&] { return NoFlags() && LockFree(); }, milliseconds(20000)));
  ASSERT_EQ(journal->instances_size(), 2);
  for (const auto& i : journal->instances()) {
    EXPECT_EQ(i.outcome(), "succeeded");
  }
}

INSTANTIATE_TEST_SUITE_P(Steps, ZkRestartTest,
                         ::testing::Values(StopAt::kDuringDrain,
                                           StopAt::kDuringCommand),
                         [](const auto& info) {
                           return info.param == StopAt::kDuringDrain
                                      ? "DuringDrain"
                                      : "DuringCommand";
                         });

}  // namespace
}  // namespace zkroll::testing
