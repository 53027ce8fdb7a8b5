// A rollout that protects itself, with real processes: a ZooKeeper server,
// one zkroll-agent checking zkroll-demo-service instances over HTTP, and the
// zkroll coordinator. The upgrade and revert commands are a small shell
// script that replaces an instance's demo service by another version (the
// old process is stopped and waited for, the new one started detached) and
// appends "<port> <version>" to a log, so the test sees which instance ran
// which version, in which order. Nothing waits for a fixed time: every wait
// is for a condition with a deadline, and the durations the coordinator is
// given (--min-healthy-time, --canary-soak, --progress-deadline) are what is
// under test.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "tests/coordinator/coordinator_fixture.h"
#include "tests/coordinator/event_check.h"
#include "tests/support/files.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

class RolloutSafetyTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    CoordinatorTest::SetUp();
    // $1: the version; the rest: extra flags of the demo service. The old
    // process gets SIGTERM and is waited for (tail --pid blocks until it
    // exits), so the port is free for the new one.
    script_ = dir_.Write(
        "switch-version.sh",
        "#!/bin/sh\n"
        "set -e\n"
        "d='" + dir_.path() + "'\n"
        "pidf=\"$d/pid-$ZKROLL_PORT\"\n"
        "if [ -f \"$pidf\" ]; then\n"
        "  old=$(cat \"$pidf\")\n"
        "  kill \"$old\" 2>/dev/null || true\n"
        "  tail --pid=\"$old\" -f /dev/null\n"
        "fi\n"
        "v=$1; shift\n"
        "echo \"$ZKROLL_PORT $v\" >> \"$d/versions\"\n"
        "setsid '" ZKROLL_DEMO_SERVICE_BIN "' --port \"$ZKROLL_PORT\" "
        "--version \"$v\" --drain-timeout 1s --drain-idle-grace 100ms \"$@\" "
        "> \"$d/out-$ZKROLL_PORT-$v\" 2>&1 < /dev/null &\n"
        "echo $! > \"$pidf\"\n",
        0755);
  }

  void TearDown() override {
    for (int port : ports_) {
      const std::string pid = ReadFile(dir_.File("pid-" + std::to_string(port)));
      if (!pid.empty()) ::kill(std::stoi(pid), SIGKILL);
    }
    CoordinatorTest::TearDown();
  }

  std::string Instance(int port) const { return svc_ + "@" + Addr(port); }

  // Starts `n` demo services at v1 through the script (so the script can
  // replace them) and one agent checking them with GET /healthz, and waits
  // until every one is registered. Ports are sorted: the rollout's order.
  void StartFleet(int n) {
    std::vector<std::string> instances;
    for (int i = 0; i < n; ++i) ports_.push_back(PickFreePort());
    std::sort(ports_.begin(), ports_.end());
    for (int port : ports_) {
      RunResult r = RunCommand({"/bin/sh", script_, "v1"}, milliseconds(20000),
                               {{"ZKROLL_PORT", std::to_string(port)}});
      ASSERT_EQ(r.exit_code, 0) << r.output;
      instances.push_back(Instance(port));
    }
    // A check timeout far above the demo service's answer time: on a
    // starved machine a healthy version answered after the fixture's 200 ms
    // and the agent rightly deregistered it, failing --min-healthy-time for
    // a version that was never sick. A crashed version is still seen at the
    // next check (connection refused needs no timeout).
    StartAgent("host-a", instances,
               {"--check", "http:/healthz", "--timeout", "2s"});
    for (int port : ports_) {
      ASSERT_TRUE(WaitFor(
          [&] { return Registered(port) && AgentDeclares("host-a", port); },
          milliseconds(20000)))
          << "agent never registered " << port << "\n"
          << AgentLogs();
    }
    // The fleet's own start is not part of what the rollouts did.
    std::remove(dir_.File("versions").c_str());
  }

  // A rollout of the fleet with fast deploy steps; `extra` first, then
  // `-- COMMAND`.
  RunResult Rollout(std::vector<std::string> extra,
                    std::vector<std::string> command,
                    milliseconds timeout = milliseconds(120000)) {
    std::vector<std::string> args = {"rollout",          "--service",
                                     svc_,               "--min-healthy",
                                     "0",                "--drain-wait",
                                     "0s",               "--check",
                                     "http:/healthz",    "--health-interval",
                                     "100ms",            "--health-attempts",
                                     "100",              "--health-timeout",
                                     "500ms",            "--register-timeout",
                                     "20s",              "--session-timeout",
                                     "4s"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("--");
    args.insert(args.end(), command.begin(), command.end());
    return Zkroll(args, timeout);
  }

  std::vector<std::string> Upgrade(std::vector<std::string> demo_flags = {}) {
    std::vector<std::string> c = {"/bin/sh", script_, "v2"};
    c.insert(c.end(), demo_flags.begin(), demo_flags.end());
    return c;
  }
  std::string RevertFlag() const { return "/bin/sh " + script_ + " v1"; }

  // "<port> <version>" lines in the order the script ran.
  std::vector<std::string> Versions() {
    return Lines(ReadFile(dir_.File("versions")));
  }
  std::string V(int port, const std::string& version) const {
    return std::to_string(port) + " " + version;
  }

  const proto::DeployRecord::InstanceProgress* Progress(
      const proto::DeployRecord& rec, int port) {
    const std::string node = "127.0.0.1_" + std::to_string(port);
    for (const auto& i : rec.instances()) {
      if (i.instance() == node) return &i;
    }
    return nullptr;
  }
  std::vector<std::string> Steps(const proto::DeployRecord& rec, int port) {
    std::vector<std::string> out;
    if (auto* p = Progress(rec, port)) {
      for (const auto& s : p->steps()) out.push_back(s.name() + ":" + s.verdict());
    }
    return out;
  }

  // Every instance registered again, by the agent, at `version`.
  void ExpectFleetServes(const std::string& version) {
    for (int port : ports_) {
      EXPECT_TRUE(WaitFor([&] { return Registered(port); }, milliseconds(20000)))
          << port << " not registered\n"
          << AgentLogs();
      const std::string pid =
          ReadFile(dir_.File("pid-" + std::to_string(port)));
      const std::string out = ReadFile(dir_.File(
          "out-" + std::to_string(port) + "-" + version));
      EXPECT_FALSE(pid.empty());
      EXPECT_TRUE(::kill(std::stoi(pid), 0) == 0)
          << port << ": its " << version << " process is not running";
    }
  }

  std::string script_;
  std::vector<int> ports_;
};

// An instance whose new version passes its first checks and crashes soon
// after (--crash-after: the agent's checks are its requests) fails
// --min-healthy-time: the rollout stops there, the next instance never runs
// COMMAND, and the journal, the events and the message say why.
TEST_F(RolloutSafetyTest, MinHealthyTimeFailsAnInstanceThatCrashesAfterPassing) {
  StartFleet(2);
  RunResult r = Rollout({"--output", "json", "--min-healthy-time", "60s"},
                        Upgrade({"--crash-after", "40"}));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(CheckEventLines(r.output), ::testing::IsEmpty());
  EXPECT_NE(r.output.find("left service within --min-healthy-time 1m"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("\"step\":\"healthy-time\",\"verdict\":\"failed\""),
            std::string::npos)
      << r.output;
  EXPECT_THAT(Versions(), ::testing::ElementsAre(V(ports_[0], "v2")));
  auto rec = LastJournal();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->outcome(), "failed");
  EXPECT_EQ(rec->parameters().at("min-healthy-time"), "60s");
  EXPECT_THAT(Steps(*rec, ports_[0]),
              ::testing::IsSupersetOf({"command:ok", "registered:ok",
                                       "healthy-time:failed"}));
  EXPECT_EQ(Progress(*rec, ports_[0])->outcome(), "failed");
  EXPECT_EQ(Progress(*rec, ports_[1])->outcome(), "pending");
}

// The same without a crash: the instances hold for --min-healthy-time and
// the rollout succeeds, each one journalled healthy-time ok.
TEST_F(RolloutSafetyTest, MinHealthyTimeHoldsForAHealthyVersion) {
  StartFleet(2);
  RunResult r = Rollout({"--min-healthy-time", "1s"}, Upgrade());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(Versions(), ::testing::ElementsAre(V(ports_[0], "v2"),
                                                 V(ports_[1], "v2")));
  auto rec = LastJournal();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->outcome(), "succeeded");
  for (int port : ports_) {
    EXPECT_THAT(Steps(*rec, port), ::testing::Contains("healthy-time:ok"));
  }
}

// The canary check fails: the rest of the fleet never runs COMMAND, and
// --auto-revert brings the canary back (exit 5, outcome "reverted"). The
// check saw the canaries in ZKROLL_CANARIES.
TEST_F(RolloutSafetyTest, FailedCanaryCheckStopsTheFleetAndReverts) {
  StartFleet(3);
  const std::string seen = dir_.File("canaries");
  const std::string check = "/bin/sh -c 'echo \"$ZKROLL_CANARIES\" > " + seen +
                            "; exit 1'";
  RunResult r = Rollout({"--canary", "1", "--canary-soak", "500ms",
                         "--canary-check", check, "--auto-revert",
                         RevertFlag()},
                        Upgrade());
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_EQ(ReadFile(seen), Addr(ports_[0]) + "\n");
  EXPECT_THAT(Versions(), ::testing::ElementsAre(V(ports_[0], "v2"),
                                                 V(ports_[0], "v1")));
  auto rec = LastJournal();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->outcome(), "reverted");
  EXPECT_THAT(Steps(*rec, ports_[0]),
              ::testing::IsSupersetOf({"command:ok", "canary-soak:ok",
                                       "canary-check:failed",
                                       "revert-pause:ok", "revert-command:ok",
                                       "revert-registered:ok"}));
  EXPECT_EQ(Progress(*rec, ports_[0])->outcome(), "reverted");
  EXPECT_EQ(Progress(*rec, ports_[1])->outcome(), "pending");
  EXPECT_EQ(Progress(*rec, ports_[2])->outcome(), "pending");
  ExpectFleetServes("v1");

  // status and history show the revert.
  RunResult h = Zkroll({"history", "--service", svc_});
  EXPECT_EQ(h.exit_code, 0) << h.output;
  EXPECT_NE(h.output.find("reverted"), std::string::npos) << h.output;
  RunResult st = Zkroll({"status", "--service", svc_});
  EXPECT_NE(st.output.find("reverted"), std::string::npos) << st.output;
}

// --canary-promote manual: after the canaries passed the run stops with
// exit 0, outcome "awaiting-promotion" (the detail says how to go on), the
// lock is released and the rest never ran COMMAND.
TEST_F(RolloutSafetyTest, ManualPromotionStopsAfterTheCanaries) {
  StartFleet(3);
  RunResult r = Rollout({"--canary", "1", "--canary-soak", "300ms",
                         "--canary-promote", "manual"},
                        Upgrade());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(Versions(), ::testing::ElementsAre(V(ports_[0], "v2")));
  auto rec = LastJournal();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->outcome(), "awaiting-promotion");
  EXPECT_NE(rec->detail().find("zkroll promote --service " + svc_ +
                               " --deploy " + rec->deploy_id()),
            std::string::npos)
      << rec->detail();
  EXPECT_EQ(rec->parameters().at("canary-promote"), "manual");
  EXPECT_EQ(rec->parameters().at("canary"), "1");
  EXPECT_EQ(Progress(*rec, ports_[0])->outcome(), "succeeded");
  EXPECT_EQ(Progress(*rec, ports_[1])->outcome(), "pending");
  EXPECT_TRUE(Children(std::string(paths::kLocksRoot) + "/" + svc_).empty());
  RunResult h = Zkroll({"history", "--service", svc_});
  EXPECT_NE(h.output.find("awaiting-promotion"), std::string::npos)
      << h.output;
}

// A later instance fails: --auto-revert reverts every instance whose
// COMMAND ran, the failed one included, newest first, batch by batch.
TEST_F(RolloutSafetyTest, AutoRevertRestoresTouchedInstancesNewestFirst) {
  StartFleet(3);
  const std::string fail_third =
      "if [ \"$ZKROLL_PORT\" = " + std::to_string(ports_[2]) +
      " ]; then echo broken; exit 1; fi; exec /bin/sh " + script_ + " v2";
  RunResult r = Rollout({"--output", "json", "--auto-revert", RevertFlag()},
                        {"/bin/sh", "-c", fail_third});
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_THAT(CheckEventLines(r.output), ::testing::IsEmpty());
  EXPECT_THAT(Versions(),
              ::testing::ElementsAre(V(ports_[0], "v2"), V(ports_[1], "v2"),
                                     V(ports_[2], "v1"), V(ports_[1], "v1"),
                                     V(ports_[0], "v1")));
  EXPECT_NE(r.output.find("\"outcome\":\"reverted\""), std::string::npos);
  auto rec = LastJournal();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->outcome(), "reverted");
  for (int port : ports_) {
    EXPECT_EQ(Progress(*rec, port)->outcome(), "reverted") << port;
    EXPECT_THAT(Steps(*rec, port), ::testing::Contains("revert-resume:ok"));
  }
  ExpectFleetServes("v1");
}

// A revert that fails leaves the instance on the new version: exit 6, and
// the message names it.
TEST_F(RolloutSafetyTest, FailingRevertIsIncomplete) {
  StartFleet(2);
  const std::string fail_second =
      "if [ \"$ZKROLL_PORT\" = " + std::to_string(ports_[1]) +
      " ]; then exit 1; fi; exec /bin/sh " + script_ + " v2";
  const std::string revert_fails_first =
      "/bin/sh -c 'if [ \"$ZKROLL_PORT\" = " + std::to_string(ports_[0]) +
      " ]; then exit 7; fi; exec /bin/sh " + script_ + " v1'";
  RunResult r = Rollout({"--auto-revert", revert_fails_first},
                        {"/bin/sh", "-c", fail_second});
  EXPECT_EQ(r.exit_code, 6) << r.output;
  EXPECT_NE(r.output.find("not reverted: " + Addr(ports_[0])),
            std::string::npos)
      << r.output;
  auto rec = LastJournal();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->outcome(), "revert-incomplete");
  EXPECT_EQ(Progress(*rec, ports_[0])->outcome(), "revert-failed");
  EXPECT_EQ(Progress(*rec, ports_[1])->outcome(), "reverted");
  EXPECT_THAT(Steps(*rec, ports_[0]), ::testing::Contains("revert-command:failed"));
}

// A COMMAND that hangs: --progress-deadline stops it (its process group is
// killed, the instance resumed), the rollout fails and is reverted.
TEST_F(RolloutSafetyTest, ProgressDeadlineStopsAHangingCommand) {
  StartFleet(2);
  const std::string pidfile = dir_.File("hung");
  const std::string hang = "echo $$ > " + pidfile + "; exec tail -f /dev/null";
  RunResult r = Rollout({"--progress-deadline", "3s", "--auto-revert",
                         RevertFlag(), "--exec-timeout", "10m"},
                        {"/bin/sh", "-c", hang});
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_NE(r.output.find("no instance completed within --progress-deadline 3s"),
            std::string::npos)
      << r.output;
  const std::string pid = ReadFile(pidfile);
  ASSERT_FALSE(pid.empty());
  EXPECT_NE(::kill(std::stoi(pid), 0), 0) << "the hung COMMAND still runs";
  EXPECT_THAT(Versions(), ::testing::ElementsAre(V(ports_[0], "v1")));
  auto rec = LastJournal();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->outcome(), "reverted");
  EXPECT_THAT(Steps(*rec, ports_[0]),
              ::testing::IsSupersetOf({"command:aborted", "resume:ok",
                                       "revert-command:ok"}));
  EXPECT_EQ(Progress(*rec, ports_[1])->outcome(), "pending");
  ExpectFleetServes("v1");
}

// Bad input: exit 2, a message naming the value, nothing written.
TEST_F(RolloutSafetyTest, BadInputTouchesNothing) {
  StartFleet(2);
  const std::string locks = std::string(paths::kLocksRoot) + "/" + svc_;
  const std::string deploys = std::string(paths::kDeploysRoot) + "/" + svc_;
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--canary", "3"}, "--canary 3 is more than the 2 instance(s)"},
      {{"--canary", "3", "--instances", Addr(ports_[0])},
       "--canary 3 is more than the 1 instance(s)"},
      {{"--canary-soak", "10s"}, "--canary-soak '10s' needs --canary"},
      {{"--canary-check", "/bin/true"}, "--canary-check '/bin/true' needs"},
      {{"--canary-promote", "manual"}, "--canary-promote manual needs --canary"},
      {{"--canary", "1", "--canary-promote", "later"},
       "--canary-promote must be auto or manual, not 'later'"},
      {{"--min-healthy-time", "2m", "--progress-deadline", "1m"},
       "--min-healthy-time '2m' is longer than --progress-deadline '1m'"},
      {{"--min-healthy-time", "5x"}, "5x"},
      {{"--progress-deadline=-1s"}, "-1s"},
      {{"--canary=-1"}, "--canary must be between 0 and 100000, not -1"},
      {{"--auto-revert", "/nonexistent/revert"}, "/nonexistent/revert"},
  };
  for (const auto& c : cases) {
    RunResult r = Rollout(c.flags, Upgrade());
    EXPECT_EQ(r.exit_code, 2) << ::testing::PrintToString(c.flags) << "\n"
                              << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos)
        << ::testing::PrintToString(c.flags) << "\n"
        << r.output;
  }
  EXPECT_TRUE(Children(locks).empty());
  EXPECT_TRUE(Children(deploys).empty());
  EXPECT_TRUE(Versions().empty());

  // The dry-run refuses the same and shows the canary batch otherwise.
  RunResult d = Rollout({"--dry-run", "--canary", "3"}, Upgrade());
  EXPECT_EQ(d.exit_code, 2) << d.output;
  d = Rollout({"--dry-run", "--canary", "1", "--canary-soak", "30s",
               "--canary-promote", "manual"},
              Upgrade());
  EXPECT_EQ(d.exit_code, 0) << d.output;
  EXPECT_NE(d.output.find("batch 1/2 (canary)"), std::string::npos)
      << d.output;
  EXPECT_NE(d.output.find("canary: batch 1 (1 instance(s)), soak 30s, then "
                          "stop for `zkroll promote`"),
            std::string::npos)
      << d.output;
}

}  // namespace
}  // namespace zkroll::testing
