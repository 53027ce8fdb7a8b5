// Internal to zkroll_health: the machinery shared by the tcp, http and exec
// checks. Not part of the library's public interface; include check.h.
#ifndef ZKROLL_COMMON_HEALTH_CHECK_SESSION_H_
#define ZKROLL_COMMON_HEALTH_CHECK_SESSION_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "common/health/check.h"
#include "common/timer.h"

namespace zkroll::health::internal {

// One run of one check. Modelled on the Asio examples: every pending
// handler holds a shared_ptr to the session, so the session lives exactly as
// long as something can still complete, and destroying the io_context (which
// destroys the pending handlers) destroys the session too.
class CheckSession : public std::enable_shared_from_this<CheckSession> {
 public:
  virtual ~CheckSession() = default;
  CheckSession(const CheckSession&) = delete;
  CheckSession& operator=(const CheckSession&) = delete;

  // Posts Begin() to the executor, so that `done` is never called from
  // inside StartCheck even when the check fails at once.
  // Returns a handle that does not keep the session alive.
  CheckHandle Launch();

  // See CheckHandle::Cancel.
  void Cancel();

 protected:
  CheckSession(boost::asio::any_io_executor ex, CheckTarget target,
               Millis timeout, CheckCallback done, TimeSource& time);

  // Starts the work; runs on the executor, at most once, and not at all if
  // the check was cancelled first.
  virtual void Begin() = 0;
  // Releases sockets, timers and processes after Cancel(). The session is
  // already finished.
  virtual void Abort() = 0;

  // Records the outcome. The first call wins; later ones (a deadline and a
  // completion racing each other) are ignored. `done` is posted, not called.
  void Finish(bool healthy, std::string reason);
  bool finished() const { return finished_; }

  // Time since Begin(), on the check's time source.
  std::chrono::steady_clock::duration Elapsed() const;
  // A timer on the check's executor and time source: every deadline of a
  // check is one, so a test's virtual clock decides when a check times out.
  std::unique_ptr<Timer> MakeTimer() { return time_.MakeTimer(ex_); }

  template <typename T>
  std::shared_ptr<T> SharedAs() {
    return std::static_pointer_cast<T>(shared_from_this());
  }

  const boost::asio::any_io_executor& executor() const { return ex_; }
  const CheckTarget& target() const { return target_; }
  Millis timeout() const { return timeout_; }

 private:
  boost::asio::any_io_executor ex_;
  CheckTarget target_;
  Millis timeout_;
  CheckCallback done_;
  TimeSource& time_;
  std::chrono::steady_clock::time_point start_;
  bool finished_ = false;
};

// A check that talks to the target over one TCP connection (tcp, http).
// It owns the socket and the deadline timer; Abort() and Close() release
// both. Same threading as CheckSession: everything runs on the executor.
class SocketCheckSession : public CheckSession {
 protected:
  SocketCheckSession(boost::asio::any_io_executor ex, CheckTarget target,
                     Millis timeout, CheckCallback done, TimeSource& time);

  // Starts connecting to the target and arms the deadline to fire after
  // `budget`: OnConnect or OnDeadline follows, on the executor (each only
  // while the session lives). A target ip that does not parse finishes the
  // check as failed ("bad address '...'") and starts nothing.
  void Connect(Millis budget);
  virtual void OnConnect(boost::system::error_code ec) = 0;
  virtual void OnDeadline() = 0;

  void Abort() override { Close(); }
  // Shuts the socket down and closes it (a pending operation completes
  // with operation_aborted, releasing its reference to the session), and
  // cancels the deadline.
  void Close();

  boost::asio::ip::tcp::socket& socket() { return socket_; }

 private:
  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<Timer> deadline_;
};

std::shared_ptr<CheckSession> MakeTcpCheck(boost::asio::any_io_executor ex,
                                           const CheckSpec& spec,
                                           const CheckTarget& target,
                                           Millis timeout, CheckCallback done,
    TimeSource& time);
std::shared_ptr<CheckSession> MakeHttpCheck(boost::asio::any_io_executor ex,
                                            const CheckSpec& spec,
                                            const CheckTarget& target,
                                            Millis timeout, CheckCallback done,
    TimeSource& time);
std::shared_ptr<CheckSession> MakeExecCheck(boost::asio::any_io_executor ex,
                                            const CheckSpec& spec,
                                            const CheckTarget& target,
                                            Millis timeout, CheckCallback done,
    TimeSource& time);

// "0.4ms", "350.2ms", "1.25s": precise enough to compare with a limit.
std::string FormatElapsed(std::chrono::steady_clock::duration d);

// An error for a reason line: "connection refused", not "Connection refused".
std::string ErrorText(const boost::system::error_code& ec);

// The exec check notices the command's exit through a pidfd where the kernel
// has one (Linux 5.3+) and otherwise by polling waitid(WNOHANG) on a timer.
// Tests switch the pidfd off to exercise the fallback.
void SetExecUsesPidfdForTesting(bool use_pidfd);

}  // namespace zkroll::health::internal

#endif  // ZKROLL_COMMON_HEALTH_CHECK_SESSION_H_
