// Faults under load: the coordinator is SIGKILLed during a deploy, or the
// ZooKeeper server is restarted during one, while callers send load. Callers
// are zkroll-loadgen (discovery client in watch mode, open loop, 200
// requests/s, no retries) against two zkroll-demo-service instances managed by
// a real agent.
//
// Expected outcome: no request fails. The instance left the registry (pause)
// before the fault, and the agent only returns it once its session-bound
// flag is gone and it passes its check, so callers never pick an instance
// that is down. While ZooKeeper is away, callers keep their last list. The test
// prints the requests sent and failed and the recovery time.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "tests/faults/fault_fixture.h"
#include "tests/support/files.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

enum class KillAt { kDuringCommand, kDuringHealth, kZooKeeperRestart };

long long JsonCount(const std::string& json, const std::string& key) {
  std::smatch m;
  if (std::regex_search(json, m, std::regex("\"" + key + "\": ([0-9]+)"))) {
    return std::stoll(m[1]);
  }
  return -1;
}

size_t LineCount(const std::string& path) {
  const std::string s = ReadFile(path);
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

class UnderLoadTest : public FaultTest,
                      public ::testing::WithParamInterface<KillAt> {
 protected:
  ChildProcess* StartDemo(int port, const std::string& version) {
    children_.push_back(std::make_unique<ChildProcess>());
    ChildProcess* p = children_.back().get();
    Status s = p->Start(
        {ZKROLL_DEMO_SERVICE_BIN, "--port", std::to_string(port), "--version",
         version},
        dir_.File("demo-" + std::to_string(port) + "-" + version + ".log"));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return p;
  }
};

TEST_P(UnderLoadTest, NoFailedRequests) {
  const bool health = GetParam() == KillAt::kDuringHealth;
  const bool zk_restart = GetParam() == KillAt::kZooKeeperRestart;
  const std::string fault =
      zk_restart ? std::string("ZooKeeper restart during COMMAND under load")
                 : std::string("coordinator SIGKILL under load ") +
                       (health ? "DuringHealth" : "DuringCommand");
  const int a = PickFreePort(), b = PickFreePort();
  ASSERT_NE(a, b);
  ChildProcess* demo_a = StartDemo(a, "v1");
  StartDemo(b, "v1");
  StartAgent("host-l", {Instance(a), Instance(b)});
  for (int port : {a, b}) {
    ASSERT_TRUE(WaitFor([&] { return Registered(port); }, milliseconds(20000)))
        << AgentLogs();
  }

  const std::string stop = dir_.File("stop-load");
  const std::string summary = dir_.File("summary.json");
  const std::string timeline = dir_.File("timeline.csv");
  children_.push_back(std::make_unique<ChildProcess>());
  ChildProcess* load = children_.back().get();
  ASSERT_TRUE(load->Start({ZKROLL_LOADGEN_BIN,
                           "--zk",
                           connect_string(),
                           "--service",
                           svc_,
                           "--mode",
                           "watch",
                           "--rate",
                           "200",
                           "--duration",
                           "5m",
                           "--timeout",
                           "1s",
                           "--stop-file",
                           stop,
                           "--summary-json",
                           summary,
                           "--timeline",
                           timeline,
                           "--quiet"},
                          dir_.File("loadgen.log"))
                  .ok());
  // Load is flowing once the timeline has rows for both instances.
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string t = ReadFile(timeline);
        return t.find("127.0.0.1:" + std::to_string(a)) != std::string::npos &&
               t.find("127.0.0.1:" + std::to_string(b)) != std::string::npos;
      },
      milliseconds(20000)))
      << load->Output();

  Handshake* hs = NewHandshake("cmd");
  std::vector<std::string> extra = {"--session-timeout", "2s"};
  std::vector<std::string> command;
  std::vector<std::string> moment;
  if (health) {
    extra.insert(extra.end(),
                 {"--health-attempts", "1000", "--health-interval", "100ms"});
    command = {"/bin/kill", "-TERM", std::to_string(demo_a->pid())};
    moment = {"\"step\":\"health\"", "\"verdict\":\"started\""};
  } else {
    extra.insert(extra.end(), {"--exec-timeout", "5m"});
    command = {"/bin/sh", "-c", hs->Snippet()};
    moment = {"\"step\":\"command\"", "\"verdict\":\"started\""};
  }
  std::vector<std::string> args = {"--output", "json"};
  auto deploy = Deploy(a, extra, command);
  args.insert(args.end(), deploy.begin(), deploy.end());
  ChildProcess* z = StartZkroll(args);
  ASSERT_TRUE(WaitForLine(z, moment)) << z->Output();
  ASSERT_TRUE(Paused(a));

  if (zk_restart) {
    // The single server is SIGKILLed and restarted (same port and data)
    // while COMMAND runs; the deploy itself must go on and succeed.
    const auto stopped = FaultClock::now();
    server()->Stop();
    ASSERT_TRUE(WaitForAgentsToNoticeOutage());
    ASSERT_TRUE(server()->Start().ok());
    Report(fault, "server back (outage)", MillisSince(stopped));
    ASSERT_TRUE(Release(hs));
    ASSERT_EQ(z->Wait(milliseconds(60000)), 0) << z->Output();
    Report(fault, "deploy succeeded", MillisSince(stopped));
  }
  const auto killed = FaultClock::now();
  if (!zk_restart) z->Signal(SIGKILL);
  if (!zk_restart) {
    ASSERT_EQ(z->Wait(milliseconds(10000)), 128 + SIGKILL);
  }
  ASSERT_TRUE(WaitFor([&] { return !Paused(a); }, milliseconds(20000)));
  if (!zk_restart) Report(fault, "pause flag gone", MillisSince(killed));
  if (health) {
    ASSERT_TRUE(demo_a->Wait(milliseconds(20000)).has_value());
    EXPECT_FALSE(Registered(a)) << "registered while down";
    StartDemo(a, "v2");
  }
  ASSERT_TRUE(WaitFor([&] { return Registered(a); }, milliseconds(20000)))
      << AgentLogs();
  if (!zk_restart) {
    Report(fault, "instance registered again", MillisSince(killed));
  }

  // Keep the load on for a few more timeline rows with the instance back.
  const size_t rows = LineCount(timeline);
  ASSERT_TRUE(WaitFor([&] { return LineCount(timeline) >= rows + 4; },
                      milliseconds(20000)));
  std::ofstream(stop).put('\n');
  ASSERT_EQ(load->Wait(milliseconds(30000)), 0) << load->Output();
  const std::string json = ReadFile(summary);
  const long long sent = JsonCount(json, "sent");
  const long long failed = JsonCount(json, "failed");
  ASSERT_GT(sent, 0) << json;
  EXPECT_EQ(failed, 0) << json;
  if (health) {
    EXPECT_NE(ReadFile(timeline).find(",v2"), std::string::npos)
        << "no request reached the restarted instance";
  }
  std::cout << "[fault] " << fault << ": " << sent << " requests sent, "
            << failed << " failed\n";
}

INSTANTIATE_TEST_SUITE_P(Steps, UnderLoadTest,
                         ::testing::Values(KillAt::kDuringCommand,
                                           KillAt::kDuringHealth,
                                           KillAt::kZooKeeperRestart),
                         [](const auto& info) {
                           switch (info.param) {
                             case KillAt::kDuringCommand:
                               return "DuringCommand";
                             case KillAt::kDuringHealth:
                               return "DuringHealth";
                             default:
                               return "ZooKeeperRestart";
                           }
                         });

}  // namespace
}  // namespace zkroll::testing
