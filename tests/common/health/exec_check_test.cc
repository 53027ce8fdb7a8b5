// The exec check: real processes, run both with a pidfd and with the
// polling fallback used on kernels without one.
//
// Checks run on virtual time (the fixture's ManualTimeSource): a command is
// killed at its timeout only when a test moves the clock, so a loaded
// machine can neither turn a slow /bin/true into a timeout nor stretch a
// timeout; the tests about timeouts assert the exact virtual time of the
// kill. The real-time limits of RunUntil only bound how long a broken test
// hangs.
#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/health/check.h"
#include "common/health/check_session.h"
#include "common/timer.h"
#include "tests/support/io_wait.h"

namespace zkroll::health {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using namespace std::chrono_literals;
using zkroll::testing::RunUntil;

CheckSpec Exec(std::vector<std::string> argv) {
  CheckSpec spec;
  spec.kind = CheckSpec::Kind::kExec;
  spec.exec_argv = std::move(argv);
  return spec;
}

// True if this process has no child at all, running or zombie. (The test
// process starts no children of its own, so any child is a check's.)
bool NoChildrenLeft() {
  errno = 0;
  int status;
  return ::waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
}

// NoChildrenLeft without reaping anything (WNOWAIT), so it may be polled
// while a check still has to reap its own command.
bool NoChildrenLeftNoReap() {
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  errno = 0;
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == -1 &&
         errno == ECHILD;
}

int OpenFdCount() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (struct dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - 1;  // the DIR's own descriptor
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") +
         "/zkroll_exec_test_" + std::to_string(::getpid()) + "_" + name;
}

pid_t ReadPid(const std::string& path) {
  std::ifstream in(path);
  pid_t pid = -1;
  in >> pid;
  return pid;
}

class ExecCheckTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { internal::SetExecUsesPidfdForTesting(GetParam()); }
  void TearDown() override { internal::SetExecUsesPidfdForTesting(true); }

  // Runs one check to completion, then lets the io_context finish whatever
  // the check left pending, so leftovers (fds, processes) can be asserted.
  CheckResult Check(const CheckSpec& spec, Millis timeout,
                    CheckTarget target = {"127.0.0.1", 9}) {
    int calls = 0;
    std::optional<CheckResult> result;
    RunCheck(
        io_.get_executor(), spec, target, timeout,
        [&](CheckResult r) {
          ++calls;
          result = std::move(r);
        },
        clock_);
    EXPECT_TRUE(RunUntil(io_, [&] { return result.has_value(); }))
        << "the check never completed";
    io_.restart();
    io_.run();  // returns once nothing is pending any more
    EXPECT_EQ(calls, 1);
    return result.value_or(CheckResult{false, "no result", Millis(0)});
  }

  // Like Check, for a command that outlives `timeout`: once it runs (and
  // `ready` holds, if given), moves virtual time to just before the timeout
  // (nothing may happen) and to it (the command must be killed and the check
  // end).
  CheckResult CheckTimingOut(const CheckSpec& spec, Millis timeout,
                             const std::function<bool()>& ready = {}) {
    std::optional<CheckResult> result;
    RunCheck(
        io_.get_executor(), spec, {"127.0.0.1", 9}, timeout,
        [&](CheckResult r) { result = std::move(r); }, clock_);
    io_.poll();  // runs the start: the command is spawned, the deadline set
    EXPECT_FALSE(NoChildrenLeftNoReap()) << "the command did not start";
    if (ready) {
      // `ready` watches the command, not the loop: run the loop in short
      // slices so its state is looked at often.
      const auto end = steady_clock::now() + 10s;
      while (!ready() && steady_clock::now() < end) {
        io_.restart();
        io_.run_for(10ms);
      }
      EXPECT_TRUE(ready()) << "the command never got ready";
    }
    EXPECT_EQ(clock_.Advance(timeout - 1ms), 0) << "killed too early";
    io_.restart();
    io_.poll();
    EXPECT_FALSE(result.has_value()) << result->reason;
    EXPECT_EQ(clock_.Advance(1ms), 1);
    EXPECT_TRUE(RunUntil(io_, [&] { return result.has_value(); }))
        << "the check never completed";
    io_.restart();
    io_.run();  // returns once nothing is pending any more
    return result.value_or(CheckResult{false, "no result", Millis(0)});
  }

  asio::io_context io_;
  // After io_, so it is destroyed first (common/timer.h).
  ManualTimeSource clock_;
};

TEST_P(ExecCheckTest, TruePasses) {
  CheckResult r = Check(Exec({"/bin/true"}), 5s);
  EXPECT_TRUE(r.healthy) << r.reason;
  EXPECT_THAT(r.reason, ::testing::StartsWith("ok (exit 0 in ")) << r.reason;
  EXPECT_TRUE(NoChildrenLeft());
}

TEST_P(ExecCheckTest, FalseFails) {
  CheckResult r = Check(Exec({"/bin/false"}), 5s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "exit status 1");
  EXPECT_TRUE(NoChildrenLeft());
}

TEST_P(ExecCheckTest, BareNameIsFoundInPath) {
  CheckResult r = Check(Exec({"true"}), 5s);
  EXPECT_TRUE(r.healthy) << r.reason;
}

TEST_P(ExecCheckTest, OutputGoesIntoTheReason) {
  CheckResult r =
      Check(Exec({"/bin/sh", "-c",
                  "echo 'database down'; echo retrying >&2; exit 3"}),
            5s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "exit status 3: database down retrying");
}

TEST_P(ExecCheckTest, ChattyCommandIsDrainedAndTruncated) {
  // 200 KB is far more than a pipe holds: if we stopped reading after the
  // first 200 bytes the command would block and hit the timeout.
  CheckResult r =
      Check(Exec({"/bin/sh", "-c",
                  "head -c 200000 /dev/zero | tr '\\000' x; exit 1"}),
            10s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "exit status 1: " + std::string(200, 'x') + "...");
}

TEST_P(ExecCheckTest, KilledBySignal) {
  CheckResult r = Check(Exec({"/bin/sh", "-c", "kill -TERM $$"}), 5s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "killed by signal 15 (SIGTERM)");
}

TEST_P(ExecCheckTest, SeesTheTargetInItsEnvironment) {
  CheckSpec spec = Exec({"/bin/sh", "-c",
                         "test \"$ZKROLL_CHECK_IP\" = 10.1.2.3 && "
                         "test \"$ZKROLL_CHECK_PORT\" = 8080"});
  EXPECT_TRUE(Check(spec, 5s, {"10.1.2.3", 8080}).healthy);
  EXPECT_EQ(Check(spec, 5s, {"10.1.2.3", 8081}).reason, "exit status 1");
}

TEST_P(ExecCheckTest, StdinIsDevNull) {
  // A command that reads stdin must see EOF at once, not the daemon's stdin.
  CheckResult r =
      Check(Exec({"/bin/sh", "-c",
                  "test \"$(readlink /proc/self/fd/0)\" = /dev/null"}),
            5s);
  EXPECT_TRUE(r.healthy) << r.reason;
}

TEST_P(ExecCheckTest, MissingBinary) {
  CheckResult absolute = Check(Exec({"/nonexistent/zkroll-check"}), 5s);
  EXPECT_FALSE(absolute.healthy);
  EXPECT_EQ(
      absolute.reason,
      "exec failed: No such file or directory (/nonexistent/zkroll-check)");

  CheckResult bare = Check(Exec({"zkroll-no-such-check"}), 5s);
  EXPECT_FALSE(bare.healthy);
  EXPECT_THAT(bare.reason,
              ::testing::StartsWith("exec failed: No such file or directory "
                                    "('zkroll-no-such-check' is not in $PATH="))
      << bare.reason;
  EXPECT_TRUE(NoChildrenLeft());
}

TEST_P(ExecCheckTest, NotExecutable) {
  std::string path = TempPath("not_executable");
  { std::ofstream(path) << "#!/bin/sh\nexit 0\n"; }
  ::chmod(path.c_str(), 0644);
  CheckResult r = Check(Exec({path}), 5s);
  std::remove(path.c_str());
  EXPECT_FALSE(r.healthy);
  // Even root cannot execute a file that has no x bit at all.
  EXPECT_EQ(r.reason, "exec failed: Permission denied (" + path + ")");
}

// Formerly bounded the real elapsed time (200ms..2s); on virtual time the
// kill is seen to happen exactly at the timeout.
TEST_P(ExecCheckTest, KilledAndReapedAtTimeout) {
  CheckResult r = CheckTimingOut(Exec({"/bin/sleep", "5"}), 200ms);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "killed at timeout 200ms");
  EXPECT_EQ(r.elapsed, Millis(200));
  EXPECT_TRUE(NoChildrenLeft()) << "the killed command was not reaped";
}

// Makes this process the reaper of orphaned descendants, so that a test can
// wait for a grandchild and see how it died.
void BecomeSubreaper() {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
}

// Waits for an orphaned grandchild (reparented to us) and returns its wait
// status. Blocks only until it dies: at most the 5s of its own sleep.
int WaitForGrandchild(pid_t pid) {
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  EXPECT_EQ(r, pid) << "grandchild " << pid << ": " << std::strerror(errno);
  return status;
}

// Asserts the outcome, not the mechanism: the group is killed at the
// deadline, and again when the dead leader is reaped, so this test fails
// only if both kills miss the background child.
TEST_P(ExecCheckTest, TimeoutKillsTheWholeProcessGroup) {
  BecomeSubreaper();
  std::string pid_file = TempPath("group_timeout");
  // The kill comes once the background child exists (its pid is written).
  CheckResult r = CheckTimingOut(
      Exec({"/bin/sh", "-c", "tail -f /dev/null & echo $! > " + pid_file + "; wait"}),
      1s, [&] { return ReadPid(pid_file) > 0; });
  EXPECT_EQ(r.reason, "killed at timeout 1s");
  pid_t grandchild = ReadPid(pid_file);
  std::remove(pid_file.c_str());
  ASSERT_GT(grandchild, 0);
  int status = WaitForGrandchild(grandchild);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the background sleep was not killed with its group";
  EXPECT_TRUE(NoChildrenLeft());
}

TEST_P(ExecCheckTest, LeftoversAreKilledAfterANormalExit) {
  BecomeSubreaper();
  std::string pid_file = TempPath("group_leftover");
  // The background sleep keeps the output pipe open: the check must still
  // finish when the command itself exits. Virtual time never moves here, so
  // a check waiting for the pipe (or its timeout) would never finish.
  CheckResult r =
      Check(Exec({"/bin/sh", "-c", "tail -f /dev/null & echo $! > " + pid_file}), 3s);
  EXPECT_TRUE(r.healthy) << r.reason;
  EXPECT_EQ(r.elapsed, Millis(0));
  pid_t grandchild = ReadPid(pid_file);
  std::remove(pid_file.c_str());
  ASSERT_GT(grandchild, 0);
  int status = WaitForGrandchild(grandchild);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST_P(ExecCheckTest, CancelKillsAndReaps) {
  int calls = 0;
  std::optional<CheckResult> result;
  // The command would run for 300s: it is gone within RunUntil's limit
  // only if Cancel killed it. (Formerly: a 5s command gone within 2s of
  // real time.)
  CheckHandle handle = StartCheck(
      io_.get_executor(), Exec({"/bin/sleep", "300"}), {"127.0.0.1", 9}, 30s,
      [&](CheckResult r) {
        ++calls;
        result = std::move(r);
      },
      clock_);
  io_.poll();  // runs the start: the command is spawned
  ASSERT_FALSE(NoChildrenLeft());
  handle.Cancel();
  // The exit watch reaps the killed command.
  EXPECT_TRUE(RunUntil(io_, [&] { return NoChildrenLeftNoReap(); }, 60s))
      << "the cancelled command was not killed";
  io_.restart();
  io_.run();  // then nothing is left pending
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->reason, "cancelled");
  EXPECT_TRUE(NoChildrenLeft());
}

TEST_P(ExecCheckTest, IoContextDestroyedMidCheck) {
  bool called = false;
  {
    asio::io_context io;
    RunCheck(io.get_executor(), Exec({"/bin/sleep", "5"}), {"127.0.0.1", 9},
             30s, [&](CheckResult) { called = true; });
    io.poll();  // spawns the command
    ASSERT_FALSE(NoChildrenLeft());
  }
  EXPECT_FALSE(called);
  EXPECT_TRUE(NoChildrenLeft()) << "the command outlived its io_context";
}

TEST_P(ExecCheckTest, ManyAtOnceLeakNoDescriptors) {
  // The first I/O object creates the io_context's reactor descriptors
  // (epoll, eventfd, timerfd); count only after that.
  ASSERT_TRUE(Check(Exec({"/bin/true"}), 5s).healthy);
  const int fds_before = OpenFdCount();
  ASSERT_GT(fds_before, 0);
  int completed = 0;
  int passed = 0;
  const std::vector<std::vector<std::string>> commands = {
      {"/bin/true"}, {"/bin/false"}, {"/nonexistent"}, {"/bin/sleep", "5"}};
  for (int i = 0; i < 5; ++i) {
    for (const auto& argv : commands) {
      RunCheck(
          io_.get_executor(), Exec(argv), {"127.0.0.1", 9}, 300ms,
          [&](CheckResult r) {
            ++completed;
            if (r.healthy) ++passed;
          },
          clock_);
    }
  }
  // Everything but the sleeps ends by itself; the sleeps at their timeout.
  ASSERT_TRUE(RunUntil(io_, [&] { return completed == 15; }));
  EXPECT_EQ(clock_.Advance(300ms), 5);
  ASSERT_TRUE(RunUntil(io_, [&] { return completed == 20; }));
  io_.restart();
  io_.run();
  EXPECT_EQ(passed, 5);
  EXPECT_EQ(OpenFdCount(), fds_before);
  EXPECT_TRUE(NoChildrenLeft());
}

INSTANTIATE_TEST_SUITE_P(ExitWatch, ExecCheckTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Pidfd" : "Polling";
                         });

}  // namespace
}  // namespace zkroll::health
