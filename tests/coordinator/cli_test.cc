// `zkroll` argument validation, run as a real process. The --zk given
// points at a port where nothing listens: every case below must be refused
// with exit 2 before any connection attempt (a connect would end in exit 3
// after --connect-timeout instead).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/version.h"
#include "tests/support/process.h"
#include "tests/support/zk_server.h"

namespace zkroll::testing {
namespace {

using std::chrono::milliseconds;

struct Case {
  std::vector<std::string> args;
  std::string message;  // expected in the output
};

class CliTest : public ::testing::Test {
 protected:
  RunResult Run(std::vector<std::string> args) {
    std::vector<std::string> argv = {ZKROLL_COORDINATOR_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, milliseconds(20000));
  }
  std::string dead_zk_ = "127.0.0.1:" + std::to_string(PickFreePort());
};

TEST_F(CliTest, BadInputOfEachKindExitsTwoBeforeConnecting) {
  const std::string zk = dead_zk_;
  TempDir dir;
  std::string open_auth = dir.Write("auth", "user:pw\n", 0644);
  const std::vector<Case> cases = {
      {{"deploy", "--zk", zk, "--service", "bad/name", "--instance",
        "127.0.0.1:80", "--", "/bin/true"},
       "--service: service name 'bad/name'"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance", "127.0.0.1",
        "--", "/bin/true"},
       "--instance: bad instance address '127.0.0.1'"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "999.0.0.1:80", "--", "/bin/true"},
       "--instance"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:70000", "--", "/bin/true"},
       "port"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--drain-wait", "20", "--", "/bin/true"},
       "--drain-wait: bad duration '20'"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--drain-wait", "2.5.s", "--", "/bin/true"},
       "--drain-wait: bad duration '2.5.s': missing unit after '2.5'"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--drain-wait", "-1s", "--", "/bin/true"},
       "--drain-wait: bad duration '-1s': negative"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--exec-timeout", "0s", "--", "/bin/true"},
       "--exec-timeout must be more than 0"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80"},
       "missing `-- COMMAND"},
      {{"rollout", "--zk", zk, "--service", "level", "--min-healthy", "1"},
       "missing `-- COMMAND"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--check", "smtp", "--", "/bin/true"},
       "--check: bad health check 'smtp'"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--", "no-such-upgrade-tool"},
       "COMMAND: command 'no-such-upgrade-tool' was not found"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--on-failure", "rollback 'v1", "--", "/bin/true"},
       "--on-failure: bad command line"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--health-attempts", "0", "--", "/bin/true"},
       "--health-attempts must be between 1"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--no-such-option", "--", "/bin/true"},
       "no-such-option"},
      {{"deploy", "--service", "level", "--instance", "127.0.0.1:80", "--",
        "/bin/true"},
       "--zk is required"},
      {{"deploy", "--zk", "zk;rm -rf /", "--service", "level", "--instance",
        "127.0.0.1:80", "--", "/bin/true"},
       "--zk:"},
      {{"deploy", "--zk", zk, "--auth-file", open_auth, "--service", "level",
        "--instance", "127.0.0.1:80", "--", "/bin/true"},
       "--auth-file"},
      {{"deploy", "--zk", zk, "--output", "yaml", "--service", "level",
        "--instance", "127.0.0.1:80", "--", "/bin/true"},
       "--output must be text or json"},
      {{"rollout", "--zk", zk, "--service", "level", "--", "/bin/true"},
       "--min-healthy is required"},
      {{"rollout", "--zk", zk, "--service", "level", "--min-healthy", "1",
        "--instances", "127.0.0.1:80,127.0.0.1:80", "--", "/bin/true"},
       "twice"},
      {{"rollout", "--zk", zk, "--service", "level", "--min-healthy", "1",
        "--batch", "0", "--", "/bin/true"},
       "--batch must be between 1"},
      {{"pause", "--zk", zk, "--service", "level", "--instance", "127.0.0.1:80",
        "--ttl", "1h"},
       "--reason is required"},
      {{"pause", "--zk", zk, "--service", "level", "--instance", "127.0.0.1:80",
        "--reason", "disk swap"},
       "--ttl is required"},
      {{"pause", "--zk", zk, "--service", "level", "--instance", "127.0.0.1:80",
        "--reason", "x", "--ttl", "0s"},
       "--ttl must be more than 0"},
      {{"status", "--zk", zk, "--service", "level", "--", "/bin/true"},
       "takes no `-- COMMAND`"},
      {{"history", "--zk", zk, "--service", "level", "--deploy-id", "../x"},
       "--deploy-id"},
      // Port switching.
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--backup", "127.0.0.1:81", "--", "/bin/true"},
       "--backup needs --switch"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--verify-window", "5s", "--", "/bin/true"},
       "--verify-window needs --switch"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--switch", "--backup", "backup-host:81", "--",
        "/bin/true"},
       "--backup: "},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--switch", "--verify-max-failures", "-1", "--",
        "/bin/true"},
       "--verify-max-failures must be between 0"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--switch", "--switch-timeout", "0s", "--",
        "/bin/true"},
       "--switch-timeout must be more than 0"},
      {{"rollout", "--zk", zk, "--service", "level", "--min-healthy", "1",
        "--switch", "--stop-old", "/nonexistent/stop", "--", "/bin/true"},
       "--stop-old: "},
      // Drain on evidence.
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--drain", "sometimes", "--", "/bin/true"},
       "--drain must be fixed or auto, not 'sometimes'"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--drain", "auto", "--drain-quiet", "0", "--",
        "/bin/true"},
       "--drain-quiet '0' must be more than 0"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--drain", "auto", "--drain-quiet", "0ms", "--",
        "/bin/true"},
       "--drain-quiet '0ms' must be more than 0"},
      {{"rollout", "--zk", zk, "--service", "level", "--min-healthy", "1",
        "--drain", "auto", "--drain-min", "30s", "--", "/bin/true"},
       "--drain-min '30s' is above the cap --drain-wait 20s"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--drain", "auto", "--drain-wait", "2s",
        "--drain-min", "2s500ms", "--", "/bin/true"},
       "--drain-min '2s500ms' is above the cap --drain-wait 2s"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--drain-quiet", "1s", "--", "/bin/true"},
       "--drain-quiet '1s' needs --drain auto"},
      {{"rollout", "--zk", zk, "--service", "level", "--min-healthy", "1",
        "--drain-min", "1s", "--", "/bin/true"},
       "--drain-min '1s' needs --drain auto"},
      {{"deploy", "--zk", zk, "--service", "level", "--instance",
        "127.0.0.1:80", "--drain", "auto", "--switch", "--", "/bin/true"},
       "--drain auto does not apply to --switch"},
      {{"frobnicate"}, "unknown subcommand 'frobnicate'"},
      {{}, "usage: zkroll"},
  };
  for (const auto& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    RunResult r = Run(c.args);
    EXPECT_EQ(r.exit_code, 2) << joined << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos)
        << joined << "\nwanted: " << c.message << "\ngot: " << r.output;
    EXPECT_EQ(r.output.find("ZOO_ERROR"), std::string::npos)
        << joined << ": tried to connect before validating\n"
        << r.output;
  }
}

TEST_F(CliTest, FractionalAndCombinedDurationsAreAccepted) {
  // Valid flags get past validation to the connection attempt, which the
  // dead --zk turns into exit 3; a refused duration would exit 2 first.
  for (const char* drain : {"2.5s", "1.5m", "1m30.5s", "500ms"}) {
    RunResult r = Run({"deploy", "--zk", dead_zk_, "--connect-timeout", "0.3s",
                       "--service", "level", "--instance", "127.0.0.1:80",
                       "--drain-wait", drain, "--exec-timeout", "1h30m", "--",
                       "/bin/true"});
    EXPECT_EQ(r.exit_code, 3) << drain << "\n" << r.output;
    EXPECT_EQ(r.output.find("bad duration"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("cannot reach ZooKeeper"), std::string::npos)
        << r.output;
  }
}

// `--drain auto` alone is valid (the cap is --drain-wait's 20s default), as
// is a floor equal to the cap: validation passes and the coordinator goes
// on to connect, which fails on the dead --zk with exit 3.
TEST_F(CliTest, DrainAutoWithDefaultsPassesValidation) {
  for (std::vector<std::string> extra :
       {std::vector<std::string>{"--drain", "auto"},
        std::vector<std::string>{"--drain", "auto", "--drain-wait", "3s",
                                 "--drain-min", "3s", "--drain-quiet",
                                 "200ms"}}) {
    std::vector<std::string> args = {"deploy", "--zk", dead_zk_,
                                     "--connect-timeout", "500ms",
                                     "--service", "level", "--instance",
                                     "127.0.0.1:80"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--", "/bin/true"});
    RunResult r = Run(args);
    EXPECT_EQ(r.exit_code, 3) << r.output;
    EXPECT_NE(r.output.find("cannot reach ZooKeeper"), std::string::npos)
        << r.output;
  }
}

TEST_F(CliTest, HelpAndVersion) {
  RunResult v = Run({"--version"});
  EXPECT_EQ(v.exit_code, 0);
  // "zkroll 0.2.0 (git d044061)": the project version and the revision
  // captured when the build was configured ("unknown" outside git).
  EXPECT_EQ(v.output, "zkroll " ZKROLL_VERSION " (git " ZKROLL_GIT_REVISION ")\n");
  EXPECT_NE(std::string(ZKROLL_GIT_REVISION), "");
  RunResult h = Run({"--help"});
  EXPECT_EQ(h.exit_code, 0);
  for (const char* want : {"deploy", "rollout", "status", "history", "pause",
                           "resume", "Exit codes", "130"}) {
    EXPECT_NE(h.output.find(want), std::string::npos) << want;
  }
  RunResult d = Run({"deploy", "--help"});
  EXPECT_EQ(d.exit_code, 0);
  for (const char* want : {"--drain-wait", "--drain ", "--drain-quiet",
                           "--drain-min", "--exec-timeout", "--check",
                           "--health-attempts", "--on-failure", "--zk"}) {
    EXPECT_NE(d.output.find(want), std::string::npos) << want;
  }
}

TEST_F(CliTest, UnreachableZooKeeperExitsThree) {
  RunResult r = Run({"--zk", dead_zk_, "--connect-timeout", "500ms", "status",
                     "--service", "level"});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("cannot reach ZooKeeper"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(dead_zk_), std::string::npos) << r.output;
}

}  // namespace
}  // namespace zkroll::testing
