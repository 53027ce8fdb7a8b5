// Health checks of one service instance (ip:port): what to check, and one
// asynchronous run of that check.
//
// A CheckSpec says how an instance is probed: a TCP connect, an HTTP GET, or
// a local command. It is parsed from the one-line textual form used on
// command lines and in config files (ParseCheckSpec below). RunCheck/StartCheck
// run a spec once against a target, with an overall timeout, entirely on an
// Asio executor: no thread per check, no blocking call on the executor's
// thread. The periodic, hysteresis-smoothed view of an instance lives in
// monitor.h.
//
// Thread-safety: CheckSpec, CheckTarget and CheckResult are plain values.
// RunCheck/StartCheck and CheckHandle::Cancel must be called on the thread
// that runs the executor (or before it runs), and the executor must not run
// handlers concurrently: an io_context run by one thread, as every zkroll
// daemon does. A failed check is a CheckResult with healthy == false, never an
// exception or a crash.
#ifndef ZKROLL_COMMON_HEALTH_CHECK_H_
#define ZKROLL_COMMON_HEALTH_CHECK_H_

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/duration.h"
#include "common/status.h"
#include "common/timer.h"

namespace zkroll::health {

// How to probe an instance. Build one with ParseCheckSpec, or fill it in
// directly (fields that do not belong to `kind` are ignored).
struct CheckSpec {
  enum class Kind { kTcp, kHttp, kExec };
  Kind kind = Kind::kTcp;

  // tcp: the connect must complete within this limit, not just within the
  // check's timeout ("is it up, and is it answering quickly").
  std::optional<Millis> max_connect_time;

  // http: GET this origin-form request target (path and optional query).
  std::string http_path = "/";
  // http: accepted status codes as inclusive [low, high] ranges; empty means
  // 200..299.
  std::vector<std::pair<int, int>> expect_status;
  // http: if not empty, the response body must contain this text.
  std::string body_contains;

  // exec: the command and its arguments, run directly (never through a
  // shell). exec_argv[0] is an absolute path, or a bare name looked up in
  // $PATH when the check runs.
  std::vector<std::string> exec_argv;
};

// Parses the textual form of a check. Accepted forms:
//
//   tcp                        connect to ip:port
//   tcp:connect<DURATION       ... and the connect must take less than
//                              DURATION (e.g. tcp:connect<200ms)
//   http                       GET / and expect a 2xx status
//   http:PATH                  GET PATH (must start with '/', may carry a
//                              ?query; other characters percent-encoded)
//   http:PATH|STATUSES         ... and expect one of STATUSES: a comma list
//                              of codes or inclusive ranges, e.g. 200-299,301
//   http:PATH|body=TEXT        ... and the body must contain TEXT (any
//                              characters except '|'; a body over 64 KiB
//                              fails the check)
//   http:PATH|STATUSES|body=TEXT   both, in either order
//   exec:COMMAND ARGS...       run COMMAND; exit status 0 means healthy
//
// The exec command line is split on spaces. 'single quotes' keep everything
// literally, "double quotes" keep everything but \" and \\, and a backslash
// outside quotes escapes the next character. No other shell syntax exists:
// $VAR, globs, pipes and redirections are passed through as plain text.
// COMMAND must be an absolute path or a bare name (looked up in $PATH when
// the check runs); relative paths such as ./check are refused because they
// would depend on the daemon's working directory.
//
// Text containing control characters (including tab and newline) is refused.
// Errors are InvalidArgument and name the offending text and an accepted
// form.
Result<CheckSpec> ParseCheckSpec(std::string_view text);

// The textual form of `spec`, for logs. ParseCheckSpec(DescribeCheck(spec))
// yields an equal spec for every spec that ParseCheckSpec can produce.
std::string DescribeCheck(const CheckSpec& spec);

// The instance to check. `ip` is an IPv4 or IPv6 literal ("127.0.0.1",
// "::1") that the caller has validated; an unparsable one fails the check.
struct CheckTarget {
  std::string ip;
  uint16_t port = 0;
};

// "127.0.0.1:9000", or "[::1]:9000" for IPv6.
std::string DescribeTarget(const CheckTarget& target);

struct CheckResult {
  bool healthy = false;
  // One line for humans and logs, e.g. "ok (connect 0.4ms)", "connection
  // refused", "timeout after 2s (connecting)", "HTTP 503", "body does not
  // contain 'OK'", "exit status 1", "killed at timeout 2s", "exec failed: No
  // such file or directory".
  std::string reason;
  // Time from the start of the check to its outcome, on the check's time
  // source (microseconds: a local check takes well under a millisecond, and
  // the agent's latency histogram needs to tell those apart).
  std::chrono::microseconds elapsed{0};
};

namespace internal {
class CheckSession;
}  // namespace internal

// Refers to a check started by StartCheck, without owning it: the check is
// owned by its own pending handlers, so a handle kept past the check (or
// past the io_context) refers to nothing and is harmless. Copyable.
class CheckHandle {
 public:
  CheckHandle() = default;

  // Ends the check early. If it had not finished yet, `done` runs later on
  // the executor (never inside Cancel) with healthy == false and reason
  // "cancelled"; sockets are closed and an exec check's process group is
  // killed and then reaped in the background. No effect on a finished check
  // or a default-constructed handle.
  void Cancel();

 private:
  friend class internal::CheckSession;
  explicit CheckHandle(std::weak_ptr<internal::CheckSession> session)
      : session_(std::move(session)) {}

  std::weak_ptr<internal::CheckSession> session_;
};

using CheckCallback = std::function<void(CheckResult)>;

// Runs `spec` once against `target`. The whole check (connect, request,
// response, or the command's run) must end within `timeout`.
//
// `done` is called exactly once, on `ex`, never from inside StartCheck -
// unless the executor's io_context is stopped for good or destroyed first, in
// which case `done` is destroyed uncalled. Either way nothing is leaked: the
// check's objects are owned by its pending handlers, and an exec check's
// process group is killed and reaped when they are destroyed.
//
// How each kind decides:
//  - tcp: healthy iff the connect succeeds (within max_connect_time if set).
//  - http: HTTP/1.1 GET with Host and "Connection: close"; healthy iff the
//    status is accepted and, if body_contains is set, the body contains it.
//    Without body_contains only the header is read; with it, a body over
//    64 KiB fails the check rather than being buffered.
//  - exec: the command runs in its own process group with the daemon's
//    environment plus ZKROLL_CHECK_IP and ZKROLL_CHECK_PORT, stdin from
//    /dev/null, stdout and stderr captured (the first 200 bytes go into the
//    reason on failure). Healthy iff it exits with status 0. At the timeout
//    the whole group gets SIGKILL and `done` follows once the command is
//    reaped ("killed at timeout 2s"), or at most 1s later if it is slow to
//    die (it is then reaped in the background). Once the command exits,
//    anything it left running in its group is killed too. Only the
//    command's own pid is ever waited for, so other children of the process
//    are not disturbed.
//
// `time` measures `elapsed` and runs every deadline of the check (the
// timeout, the connect limit, the exec check's grace after SIGKILL); tests
// pass a ManualTimeSource so that a timeout happens when they say. It must
// outlive the check.
CheckHandle StartCheck(boost::asio::any_io_executor ex, const CheckSpec& spec,
                       const CheckTarget& target, Millis timeout,
                       CheckCallback done,
                       TimeSource& time = SteadyTimeSource());

// StartCheck for callers that never cancel.
void RunCheck(boost::asio::any_io_executor ex, const CheckSpec& spec,
              const CheckTarget& target, Millis timeout,
              std::function<void(CheckResult)> done,
              TimeSource& time = SteadyTimeSource());

}  // namespace zkroll::health

#endif  // ZKROLL_COMMON_HEALTH_CHECK_H_
