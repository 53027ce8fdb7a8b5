// Running the upgrade COMMAND (and --on-failure) as a child process.
//
// The command is started with posix_spawnp from an argv: no shell ever sees
// text from the command line, a znode or a config (users who want a shell
// pass `/bin/sh -c '...'` themselves). It runs in its own process group, so
// that a timeout or an abort can stop it together with everything it
// started, with stdin from /dev/null and stdout/stderr read through pipes
// and handed to an OutputSink one line at a time.
//
// At the timeout, or when the AbortSignal or the fence fires, the process
// group gets
// SIGTERM and, if the command has not exited `kill_grace` later, SIGKILL;
// anything left in the group after the command exited is SIGKILLed too.
// After a normal exit the group is left alone: an upgrade command may well
// start the new service in the background. Output is read until the command
// itself exits, not until every holder of the pipes closes them, so such a
// background service should redirect its own output.
//
// Thread-safety: RunCommand may run on several threads at once (one per
// instance of a rollout batch); the sink is called on the calling thread.
#ifndef ZKROLL_COORDINATOR_COMMAND_H_
#define ZKROLL_COORDINATOR_COMMAND_H_

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.h"
#include "common/status.h"
#include "coordinator/abort_signal.h"

namespace zkroll::coordinator {

struct CommandSpec {
  std::vector<std::string> argv;  // argv[0] looked up in $PATH if bare
  // Added to (or replacing entries of) the coordinator's environment.
  std::map<std::string, std::string> env;
  Millis timeout{600000};
  Millis kill_grace{2000};
  // Called on the calling thread once the command was spawned, with its
  // pid (= its process group id), before its output is read: the deploy
  // records it in the journal (process_identity.h). Keep it short.
  std::function<void(int pid)> on_started;
};

struct CommandOutcome {
  enum class Kind {
    kExited,       // exit_code is valid
    kSignaled,     // killed by `signal` (not by us)
    kTimedOut,     // we stopped it at the timeout
    kAborted,      // we stopped it because a stop was requested
    kFenced,       // we stopped it because the fence fell (session lost)
    kCannotStart,  // spawn failed; `error` says why
  };
  Kind kind = Kind::kCannotStart;
  int exit_code = -1;
  int signal = 0;
  Millis elapsed{0};
  std::string error;

  bool ok() const { return kind == Kind::kExited && exit_code == 0; }
  // "exit status 0", "killed by signal 9", "killed at the timeout 5s",
  // "stopped by the abort", "cannot start 'x': No such file or directory".
  std::string Describe(const CommandSpec& spec) const;
};

enum class OutputStream { kStdout, kStderr };
// One line of output, without its newline. Lines longer than 8 KiB arrive
// in pieces.
using OutputSink = std::function<void(OutputStream, std::string_view line)>;

// Runs `spec` to completion (see the file comment). `abort` may be null.
// `fence` (may be null) stops the command like `abort` does, and the
// outcome is then kFenced: the coordinator's session was lost, so it can no
// longer vouch for the pause the command relies on (session_fence.h).
CommandOutcome RunCommand(const CommandSpec& spec, const OutputSink& sink,
                          AbortSignal* abort, AbortSignal* fence = nullptr);

// Checks that `program` can be executed the way posix_spawnp will: a path
// containing '/' must be an executable file, a bare name must be found as
// one in $PATH. InvalidArgument naming the program and what to do otherwise.
Status CheckExecutable(const std::string& program);

// Splits a one-line command (the --on-failure value) into an argv with the
// quoting rules of the health checks' `exec:` form: spaces separate words,
// 'single quotes' keep text literally, "double quotes" keep text except for
// \" and \\, a backslash escapes the next character. No other shell syntax.
Result<std::vector<std::string>> SplitCommandLine(std::string_view text);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_COMMAND_H_
