// The child-process runner of the coordinator (coordinator/command.h),
// with real processes and no ZooKeeper.
#include "coordinator/command.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "tests/support/files.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace zkroll::coordinator {
namespace {

using std::chrono::milliseconds;
using zkroll::testing::ReadFile;
using zkroll::testing::TempDir;
using zkroll::testing::WaitFor;

struct Captured {
  std::mutex mu;
  std::vector<std::string> out, err;
  OutputSink Sink() {
    return [this](OutputStream s, std::string_view line) {
      std::lock_guard<std::mutex> l(mu);
      (s == OutputStream::kStdout ? out : err).emplace_back(line);
    };
  }
};

bool Alive(pid_t pid) { return ::kill(pid, 0) == 0; }

TEST(RunCommandTest, StreamsLinesAndPassesEnvironment) {
  Captured c;
  CommandSpec spec;
  spec.argv = {"/bin/sh", "-c",
               "echo \"svc=$ZKROLL_SERVICE\"; printf 'no newline'; "
               "echo oops >&2; exit 0"};
  spec.env = {{"ZKROLL_SERVICE", "level"}};
  spec.timeout = milliseconds(10000);
  CommandOutcome o = RunCommand(spec, c.Sink(), nullptr);
  EXPECT_TRUE(o.ok()) << o.Describe(spec);
  EXPECT_EQ(o.Describe(spec), "exit status 0");
  ASSERT_EQ(c.out.size(), 2u);
  EXPECT_EQ(c.out[0], "svc=level");
  EXPECT_EQ(c.out[1], "no newline");
  ASSERT_EQ(c.err.size(), 1u);
  EXPECT_EQ(c.err[0], "oops");
}

TEST(RunCommandTest, ReportsExitStatusAndSignal) {
  CommandSpec spec;
  spec.argv = {"/bin/sh", "-c", "exit 7"};
  CommandOutcome o = RunCommand(spec, {}, nullptr);
  EXPECT_FALSE(o.ok());
  EXPECT_EQ(o.kind, CommandOutcome::Kind::kExited);
  EXPECT_EQ(o.exit_code, 7);
  EXPECT_EQ(o.Describe(spec), "exit status 7");

  spec.argv = {"/bin/sh", "-c", "kill -KILL $$"};
  o = RunCommand(spec, {}, nullptr);
  EXPECT_EQ(o.kind, CommandOutcome::Kind::kSignaled);
  EXPECT_EQ(o.signal, SIGKILL);
}

TEST(RunCommandTest, CannotStartNamesTheProgram) {
  CommandSpec spec;
  spec.argv = {"/nonexistent/upgrade"};
  CommandOutcome o = RunCommand(spec, {}, nullptr);
  EXPECT_EQ(o.kind, CommandOutcome::Kind::kCannotStart);
  EXPECT_NE(o.Describe(spec).find("/nonexistent/upgrade"), std::string::npos)
      << o.Describe(spec);
}

TEST(RunCommandTest, TimeoutStopsTheWholeProcessGroup) {
  TempDir dir;
  const std::string pidfile = dir.File("grandchild");
  CommandSpec spec;
  // The grandchild ignores SIGTERM, so only the SIGKILL of the group after
  // the grace period can end it.
  spec.argv = {
      "/bin/sh", "-c",
      "trap '' TERM; tail -f /dev/null & echo $! > " + pidfile + "; wait"};
  spec.timeout = milliseconds(300);
  spec.kill_grace = milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  CommandOutcome o = RunCommand(spec, {}, nullptr);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(o.kind, CommandOutcome::Kind::kTimedOut);
  EXPECT_EQ(o.Describe(spec), "stopped at the timeout of 300ms");
  // Not before the timeout. (No upper bound on a loaded machine's time: the
  // command runs forever, so RunCommand returning at all, timed out, shows
  // that the timeout and the group's SIGKILL ended it.)
  EXPECT_GE(took, milliseconds(300));
  pid_t grandchild = std::atoi(ReadFile(pidfile).c_str());
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(WaitFor([&] { return !Alive(grandchild); }, milliseconds(5000)))
      << "the command's background child survived the timeout";
}

TEST(RunCommandTest, AbortStopsTheCommand) {
  TempDir dir;
  AbortSignal abort;
  CommandSpec spec;
  spec.argv = {"/bin/sh", "-c",
               "touch " + dir.File("started") + "; exec tail -f /dev/null"};
  spec.timeout = milliseconds(60000);
  std::thread stopper([&] {
    WaitFor([&] { return ::access(dir.File("started").c_str(), F_OK) == 0; },
            milliseconds(10000));
    abort.Request(SIGTERM);
  });
  CommandOutcome o = RunCommand(spec, {}, &abort);
  stopper.join();
  EXPECT_EQ(o.kind, CommandOutcome::Kind::kAborted);
  EXPECT_EQ(o.signal, SIGTERM) << "stopped by our SIGTERM, not the KILL";
  // kAborted, not kTimedOut: the abort ended it, not the 60s timeout (no
  // wall-time bound needed).
}

// The fence (the coordinator lost its session) stops the whole group like
// an abort, and says why in the outcome.
TEST(RunCommandTest, FenceStopsTheWholeProcessGroup) {
  TempDir dir;
  AbortSignal abort;
  AbortSignal fence;
  const std::string pidfile = dir.File("child");
  CommandSpec spec;
  spec.argv = {"/bin/sh", "-c",
               "tail -f /dev/null & echo $! > " + pidfile + ".tmp; mv " +
                   pidfile + ".tmp " + pidfile + "; wait"};
  spec.timeout = milliseconds(60000);
  std::thread stopper([&] {
    WaitFor([&] { return ::access(pidfile.c_str(), F_OK) == 0; },
            milliseconds(10000));
    fence.Request(SIGTERM);
  });
  CommandOutcome o = RunCommand(spec, {}, &abort, &fence);
  stopper.join();
  EXPECT_EQ(o.kind, CommandOutcome::Kind::kFenced);
  EXPECT_NE(o.Describe(spec).find("session was lost"), std::string::npos);
  EXPECT_FALSE(abort.requested());
  pid_t child = std::atoi(ReadFile(pidfile).c_str());
  ASSERT_GT(child, 0);
  EXPECT_TRUE(WaitFor([&] { return !Alive(child); }, milliseconds(5000)))
      << "the command's background child survived the fence";
}

TEST(RunCommandTest, BackgroundChildrenOfASuccessfulCommandSurvive) {
  // An upgrade command may start the new service in the background; a
  // normal exit must neither kill it nor wait for it.
  TempDir dir;
  const std::string pidfile = dir.File("daemon");
  CommandSpec spec;
  spec.argv = {"/bin/sh", "-c",
               "tail -f /dev/null >/dev/null 2>&1 & echo $! > " + pidfile};
  spec.timeout = milliseconds(10000);
  CommandOutcome o = RunCommand(spec, {}, nullptr);
  EXPECT_TRUE(o.ok()) << o.Describe(spec);
  pid_t daemon = std::atoi(ReadFile(pidfile).c_str());
  ASSERT_GT(daemon, 0);
  EXPECT_TRUE(Alive(daemon));
  ::kill(daemon, SIGKILL);
}

TEST(SplitCommandLineTest, QuotesAndEscapes) {
  auto r = SplitCommandLine(
      "/usr/bin/rollback --to 'v1 2' \"a \\\"b\\\"\" c\\ d $HOME");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<std::string> want = {"/usr/bin/rollback", "--to", "v1 2",
                                   "a \"b\"",           "c d",  "$HOME"};
  EXPECT_EQ(*r, want);
  EXPECT_FALSE(SplitCommandLine("").ok());
  EXPECT_FALSE(SplitCommandLine("x 'open").ok());
  EXPECT_FALSE(SplitCommandLine("x \"open").ok());
  EXPECT_FALSE(SplitCommandLine("x\ny").ok());
  EXPECT_FALSE(SplitCommandLine("x \\").ok());
}

TEST(CheckExecutableTest, FindsProgramsLikeExecvp) {
  EXPECT_TRUE(CheckExecutable("sh").ok());
  EXPECT_TRUE(CheckExecutable("/bin/sh").ok());
  Status s = CheckExecutable("no-such-zkroll-program");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("no-such-zkroll-program"), std::string::npos);
  TempDir dir;
  EXPECT_FALSE(CheckExecutable(dir.Write("plain", "x", 0644)).ok())
      << "not executable";
  EXPECT_TRUE(CheckExecutable(dir.Write("script", "#!/bin/sh\n", 0755)).ok());
  EXPECT_FALSE(CheckExecutable("/tmp").ok()) << "a directory";
}

}  // namespace
}  // namespace zkroll::coordinator
