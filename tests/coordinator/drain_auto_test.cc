// `zkroll deploy --drain auto` with real processes: a ZooKeeper server, a
// zkroll-agent (which observes the instance's traffic while the
// coordinator's DrainRequest exists), zkroll-demo-service instances (keep-alive
// HTTP), and zkroll-loadgen callers that use the discovery client (watching,
// polling every second, reading without acknowledging) or a fixed list (a stale
// cache). Everything is observed from outside: the coordinator's JSON
// events, its journal and ZooKeeper. No fixed sleeps: every wait is for a
// condition with a deadline.
//
// Drains that must end early get a 30 s cap, so that only evidence can end
// them well before it on a loaded machine; drains that must run to the cap
// get a short one.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "common/paths.h"
#include "common/payload.h"
#include "tests/coordinator/coordinator_fixture.h"
#include "tests/demo/demo_fixture.h"
#include "tests/support/files.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

// The coordinator's "drain" JSON event (one per instance), or "". Printed,
// so the test log shows why each drain ended.
std::string DrainEvent(const std::string& output) {
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"event\":\"drain\"") != std::string::npos) {
      std::cout << "drain event: " << line << std::endl;
      return line;
    }
  }
  return "";
}

class DrainAutoTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    CoordinatorTest::SetUp();
    // Two instances, so that callers always have one while the other is
    // paused: every failed request is then a defect.
    service_ = std::make_unique<DemoService>(PickFreePort(), "v1");
    other_ = std::make_unique<DemoService>(PickFreePort(), "v1");
    ASSERT_TRUE(service_->Start());
    ASSERT_TRUE(other_->Start());
    port_ = service_->port();
    agent_ = StartAgent("host-a", {svc_ + "@" + Addr(port_),
                                   svc_ + "@" + Addr(other_->port())});
    ASSERT_TRUE(
        WaitFor([&] { return Registered(port_) && Registered(other_->port()); },
                milliseconds(20000)))
        << AgentLogs();
  }

  // Whether the agent built here observes traffic: it answers a drain
  // request (of the other instance, made by the test) with a report.
  bool AgentAnswersDrainRequests() {
    const std::string req =
        "/drain/" + svc_ + "/127.0.0.1_" + std::to_string(other_->port());
    const std::string report =
        "/traffic/" + svc_ + "/127.0.0.1_" + std::to_string(other_->port());
    if (!zk_->EnsurePathSync("/drain/" + svc_, OpenAcl()).ok()) return false;
    proto::DrainRequest r;
    r.set_deploy_id("probe");
    r.set_interval_ms(100);
    if (!zk_->CreateSync(req, ToJson(r), CreateMode::kEphemeral, OpenAcl())
             .ok()) {
      return false;
    }
    bool answered = WaitFor([&] { return Exists(report); }, milliseconds(5000));
    (void)zk_->DeleteSync(req);
    return answered &&
           WaitFor([&] { return !Exists(report); }, milliseconds(10000));
  }

  void TearDown() override {
    for (auto& c : callers_) {
      if (c->running()) c->Signal(SIGTERM);
    }
    for (auto& c : callers_) c->Wait(milliseconds(10000));
    CoordinatorTest::TearDown();
  }

  // A zkroll-loadgen caller of svc_ at a modest rate; `extra` picks its
  // kind (--mode poll, --no-acknowledge, --targets ...).
  ChildProcess* StartCaller(std::vector<std::string> extra) {
    std::vector<std::string> argv = {ZKROLL_LOADGEN_BIN,
                                     "--rate",
                                     "100",
                                     "--duration",
                                     "120s",
                                     "--timeout",
                                     "500ms",
                                     "--quiet",
                                     "--stop-file",
                                     dir_.File("stop-callers")};
    bool fixed = false;
    for (const auto& a : extra) fixed = fixed || a == "--targets";
    if (!fixed) {
      argv.insert(
          argv.end(),
          {"--zk", connect_string(), "--service", svc_, "--list-log",
           dir_.File("list-" + std::to_string(callers_.size() + 1) + ".csv")});
    } else {
      argv.insert(argv.end(), {"--service", svc_});
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.end(),
                {"--summary-json",
                 dir_.File("summary-" + std::to_string(callers_.size() + 1) +
                           ".json")});
    callers_.push_back(std::make_unique<ChildProcess>());
    ChildProcess* p = callers_.back().get();
    Status s = p->Start(
        argv, dir_.File("caller-" + std::to_string(callers_.size()) + ".log"));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return p;
  }

  // The caller nodes of svc_ whose pid is `pid`.
  bool CallerRegistered(pid_t pid) {
    const std::string dir = "/callers/" + svc_;
    for (const auto& name : Children(dir)) {
      auto data = Get(dir + "/" + name);
      if (!data) continue;
      auto r = ParsePayload<proto::CallerRecord>(data->data, name);
      if (r.ok() && r->pid() == pid && r->instances() > 0) return true;
    }
    return false;
  }

  // The deploy argv with --drain auto.
  std::vector<std::string> AutoDeploy(const std::string& cap,
                                      std::vector<std::string> extra = {}) {
    std::vector<std::string> opts = {
        "--drain",       "auto",  "--drain-wait", cap,
        "--drain-quiet", "300ms", "--output",     "json"};
    opts.insert(opts.end(), extra.begin(), extra.end());
    return Deploy(port_, opts, {"/bin/true"});
  }

  // Skips the test when the agent built here does not observe traffic:
  // every --drain auto drain then runs to its cap by design, which proves
  // nothing about evidence.
  bool AgentObserves(const std::string& output) {
    return output.find("did not answer the drain request") == std::string::npos;
  }

  std::string DrainPath() const {
    return "/drain/" + svc_ + "/127.0.0.1_" + std::to_string(port_);
  }
  std::string TrafficPath() const {
    return "/traffic/" + svc_ + "/127.0.0.1_" + std::to_string(port_);
  }

  // Stops every caller and returns how many of their requests failed
  // (from their summaries); -1 if a summary is missing.
  int64_t FailedRequests() {
    dir_.Write("stop-callers", "", 0644);
    int64_t failed = 0;
    for (size_t i = 0; i < callers_.size(); ++i) {
      if (!callers_[i]->Wait(milliseconds(20000))) return -1;
      std::string json =
          ReadFile(dir_.File("summary-" + std::to_string(i + 1) + ".json"));
      size_t at = json.find("\"failed\": ");
      if (at == std::string::npos) return -1;
      failed += std::stoll(json.substr(at + 10));
    }
    return failed;
  }

  std::unique_ptr<DemoService> service_;
  std::unique_ptr<DemoService> other_;
  int port_ = 0;
  ChildProcess* agent_ = nullptr;
  std::vector<std::unique_ptr<ChildProcess>> callers_;
};

#define SKIP_UNLESS_AGENT_OBSERVES(output)                                    \
  if (!AgentObserves(output)) {                                               \
    GTEST_SKIP() << "the zkroll-agent built here does not publish traffic "   \
                    "reports (/traffic): the coordinator's drain cannot end " \
                    "on evidence. Output:\n"                                  \
                 << output;                                                   \
  }
#define SKIP_UNLESS_AGENT_ANSWERS()                                        \
  if (!AgentAnswersDrainRequests()) {                                      \
    GTEST_SKIP() << "the zkroll-agent built here does not answer a drain " \
                    "request with a traffic report within 5s (no traffic " \
                    "observation): this test needs it";                    \
  }

TEST_F(DrainAutoTest, WatchingAndPollingCallersEndTheDrainEarly) {
  SKIP_UNLESS_AGENT_ANSWERS();
  ChildProcess* watch = StartCaller({"--mode", "watch"});
  ChildProcess* poll = StartCaller({"--mode", "poll", "--poll-interval", "1s"});
  ASSERT_TRUE(WaitFor(
      [&] {
        return CallerRegistered(watch->pid()) && CallerRegistered(poll->pid());
      },
      milliseconds(20000)))
      << watch->Output() << poll->Output();
  RunResult r = Zkroll(AutoDeploy("30s"));
  SKIP_UNLESS_AGENT_OBSERVES(r.output);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string drain = DrainEvent(r.output);
  ASSERT_FALSE(drain.empty()) << r.output;
  EXPECT_NE(drain.find("\"ended\":\"evidence\""), std::string::npos) << drain;
  EXPECT_NE(drain.find("2/2 callers acknowledged"), std::string::npos) << drain;
  EXPECT_NE(drain.find("no traffic for"), std::string::npos) << drain;
  // The journal says the same, and nothing of the drain is left behind.
  auto journal = LastJournal();
  ASSERT_TRUE(journal.has_value());
  bool journalled = false;
  for (const auto& s : journal->instances(0).steps()) {
    if (s.name() == "drain") {
      journalled = s.detail().find("drained in") == 0;
      EXPECT_TRUE(journalled) << s.detail();
    }
  }
  EXPECT_TRUE(journalled);
  EXPECT_FALSE(Exists(DrainPath()));
  EXPECT_TRUE(
      WaitFor([&] { return !Exists(TrafficPath()); }, milliseconds(10000)))
      << "the agent kept observing after the request was deleted";
  EXPECT_EQ(FailedRequests(), 0) << watch->Output() << poll->Output();
}

TEST_F(DrainAutoTest, ACallerThatNeverAcknowledgesHoldsTheDrainToTheCap) {
  SKIP_UNLESS_AGENT_ANSWERS();
  ChildProcess* watch = StartCaller({"--mode", "watch"});
  ChildProcess* silent = StartCaller({"--mode", "watch", "--no-acknowledge"});
  ASSERT_TRUE(WaitFor([&] { return CallerRegistered(watch->pid()); },
                      milliseconds(20000)));
  // The silent reader must have talked to the instance before the pause:
  // it sends as soon as it has read the list, which it logs.
  const std::string list_log =
      dir_.File("list-" + std::to_string(callers_.size()) + ".csv");
  ASSERT_TRUE(WaitFor(
      [&] { return ReadFile(list_log).find(Addr(port_)) != std::string::npos; },
      milliseconds(20000)))
      << silent->Output();
  RunResult r = Zkroll(AutoDeploy("3s"));
  SKIP_UNLESS_AGENT_OBSERVES(r.output);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string drain = DrainEvent(r.output);
  EXPECT_NE(drain.find("\"ended\":\"cap\""), std::string::npos) << drain;
  EXPECT_NE(drain.find("pid " + std::to_string(silent->pid())),
            std::string::npos)
      << "the unknown caller is not named: " << drain;
  EXPECT_NE(drain.find("to no registered caller"), std::string::npos) << drain;
}

TEST_F(DrainAutoTest, ACallerWithAStaleCacheHoldsTheDrainToTheCap) {
  SKIP_UNLESS_AGENT_ANSWERS();
  ChildProcess* watch = StartCaller({"--mode", "watch"});
  ChildProcess* stale = StartCaller({"--targets", Addr(port_)});
  ASSERT_TRUE(WaitFor([&] { return CallerRegistered(watch->pid()); },
                      milliseconds(20000)));
  RunResult r = Zkroll(AutoDeploy("3s"));
  SKIP_UNLESS_AGENT_OBSERVES(r.output);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string drain = DrainEvent(r.output);
  EXPECT_NE(drain.find("\"ended\":\"cap\""), std::string::npos) << drain;
  EXPECT_NE(drain.find("pid " + std::to_string(stale->pid())),
            std::string::npos)
      << "the stale caller is not named: " << drain;
  EXPECT_NE(drain.find("traffic not quiet"), std::string::npos) << drain;
}

// A caller that stops answering (SIGSTOP) before the pause cannot
// acknowledge; when its session expires its node goes and it counts as
// gone, so the drain ends on evidence, before the cap.
TEST_F(DrainAutoTest, ACallerWhoseSessionExpiresCountsAsGone) {
  SKIP_UNLESS_AGENT_ANSWERS();
  ChildProcess* watch = StartCaller({"--mode", "watch"});
  ChildProcess* frozen = StartCaller({"--mode", "poll"});
  ASSERT_TRUE(WaitFor(
      [&] {
        return CallerRegistered(watch->pid()) &&
               CallerRegistered(frozen->pid());
      },
      milliseconds(20000)));
  frozen->Signal(SIGSTOP);
  RunResult r = Zkroll(AutoDeploy("40s"));
  frozen->Signal(SIGCONT);
  SKIP_UNLESS_AGENT_OBSERVES(r.output);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string drain = DrainEvent(r.output);
  EXPECT_NE(drain.find("\"ended\":\"evidence\""), std::string::npos) << drain;
  EXPECT_NE(drain.find("1/1 callers acknowledged"), std::string::npos) << drain;
  EXPECT_NE(drain.find("1 gone"), std::string::npos) << drain;
}

// The agent dies mid-drain: its report vanishes, the drain runs to the cap
// and says why; nothing of the deploy is left in ZooKeeper.
TEST_F(DrainAutoTest, TheAgentDyingMidDrainRunsTheDrainToTheCap) {
  SKIP_UNLESS_AGENT_ANSWERS();
  ChildProcess* watch = StartCaller({"--mode", "watch"});
  ASSERT_TRUE(WaitFor([&] { return CallerRegistered(watch->pid()); },
                      milliseconds(20000)));
  // --drain-min holds the drain open until the agent is gone.
  std::vector<std::string> args =
      AutoDeploy("8s", {"--drain-min", "6s", "--register-timeout", "1s"});
  ChildProcess* z = StartZkroll(args);
  ASSERT_TRUE(WaitFor([&] { return Paused(port_) && Exists(TrafficPath()); },
                      milliseconds(20000)))
      << z->Output();
  agent_->Signal(SIGKILL);
  agent_->Wait(milliseconds(10000));
  auto code = z->Wait(milliseconds(60000));
  ASSERT_TRUE(code.has_value()) << z->Output();
  const std::string drain = DrainEvent(z->Output());
  EXPECT_NE(drain.find("\"ended\":\"cap\""), std::string::npos) << drain;
  EXPECT_NE(drain.find("report vanished"), std::string::npos) << drain;
  // The deploy then fails (no agent re-registers the instance), but leaves
  // neither its flag nor its drain request.
  EXPECT_EQ(*code, 1) << z->Output();
  EXPECT_FALSE(Paused(port_));
  EXPECT_FALSE(Exists(DrainPath()));
}

// The coordinator is killed mid-drain: its flag and its request go with its
// session, and the agent stops observing (its report goes too).
TEST_F(DrainAutoTest, KillingTheCoordinatorMidDrainEndsTheObservation) {
  SKIP_UNLESS_AGENT_ANSWERS();
  ChildProcess* z = StartZkroll(AutoDeploy("30s", {"--drain-min", "25s"}));
  ASSERT_TRUE(WaitFor(
      [&] {
        return Paused(port_) && Exists(DrainPath()) && Exists(TrafficPath());
      },
      milliseconds(20000)))
      << z->Output() << AgentLogs();
  z->Signal(SIGKILL);
  z->Wait(milliseconds(10000));
  EXPECT_TRUE(WaitFor([&] { return !Paused(port_) && !Exists(DrainPath()); },
                      milliseconds(20000)));
  EXPECT_TRUE(
      WaitFor([&] { return !Exists(TrafficPath()); }, milliseconds(20000)))
      << "the agent kept observing after the request vanished\n"
      << AgentLogs();
  // And the agent puts the instance back.
  EXPECT_TRUE(WaitFor([&] { return Registered(port_); }, milliseconds(20000)));
}

// Hostile caller nodes are skipped with a log line; they cannot
// acknowledge, so they hold the drain to the cap and are named.
TEST_F(DrainAutoTest, HostileCallerPayloadsAreSkippedAndNamed) {
  const std::string dir = "/callers/" + svc_;
  ASSERT_TRUE(zk_->EnsurePathSync(dir, OpenAcl()).ok());
  auto put = [&](const std::string& name, const std::string& data) {
    auto c = zk_->CreateSync(dir + "/" + name, data, CreateMode::kPersistent,
                             OpenAcl());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
  };
  put("big-1-1", std::string(100 * 1024, 'x'));
  put("types-1-1", R"({"pid": "not a number", "list_pzxid": [1]})");
  put("other-1-1",
      R"({"service": "someone-else", "caller_id": "other-1-1", "list_pzxid": 99999999})");
  RunResult r = Zkroll(AutoDeploy("2s"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string drain = DrainEvent(r.output);
  EXPECT_NE(drain.find("\"ended\":\"cap\""), std::string::npos) << drain;
  for (const char* name : {"big-1-1", "types-1-1", "other-1-1"}) {
    EXPECT_NE(drain.find(std::string(name) + " (no valid record"),
              std::string::npos)
        << name << ": " << drain;
    EXPECT_NE(r.output.find(std::string("skipping caller node '") + name),
              std::string::npos)
        << name << " was not logged";
  }
  EXPECT_NE(drain.find("someone-else"), std::string::npos) << drain;
}

// --drain fixed (the default) keeps today's wait and says so.
TEST_F(DrainAutoTest, FixedDrainSaysItWaited) {
  RunResult r = Zkroll(Deploy(
      port_, {"--drain-wait", "300ms", "--output", "json"}, {"/bin/true"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string drain = DrainEvent(r.output);
  EXPECT_NE(drain.find("\"ended\":\"fixed\""), std::string::npos) << drain;
  EXPECT_NE(drain.find("waited the fixed 0.30 s"), std::string::npos) << drain;
  EXPECT_FALSE(Exists(DrainPath()));
}

}  // namespace
}  // namespace zkroll::testing
