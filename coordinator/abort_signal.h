// AbortSignal: the coordinator's one "stop now" request, and the condition
// variable every blocking wait of a deploy sleeps on.
//
// SIGINT/SIGTERM are caught by an asio signal_set on the I/O thread, which
// calls Request(). Deploy threads never sleep blindly: they wait in
// WaitUntil(), which returns as soon as their condition holds, a stop is
// requested, or the deadline passes. Anything that may make a waiter's
// condition true (a ZooKeeper watch, a health-check result, a session
// event) calls Wake(). The child-process runner polls fd(), which becomes
// readable once a stop is requested.
//
// Thread-safety: every method may be called from any thread.
#ifndef ZKROLL_COORDINATOR_ABORT_SIGNAL_H_
#define ZKROLL_COORDINATOR_ABORT_SIGNAL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

#include "common/duration.h"

namespace zkroll::coordinator {

class AbortSignal {
 public:
  using Clock = std::chrono::steady_clock;
  enum class WaitResult { kReady, kAborted, kTimedOut };

  AbortSignal();
  ~AbortSignal();
  AbortSignal(const AbortSignal&) = delete;
  AbortSignal& operator=(const AbortSignal&) = delete;

  // Requests a stop. The first signal number is kept; later calls only
  // wake waiters again.
  void Request(int signo);
  bool requested() const { return requested_.load(); }
  // The signal passed to the first Request(), 0 if none.
  int signo() const { return signo_.load(); }

  // An eventfd that polls readable once a stop was requested.
  int fd() const { return fd_; }

  // Makes every WaitUntil() re-evaluate its condition.
  void Wake();

  // Blocks until `cond` holds (kReady), a stop is requested (kAborted) or
  // `deadline` passes (kTimedOut). `cond` runs without any lock held, and is
  // evaluated first, so a condition that already holds wins over a stop.
  WaitResult WaitUntil(const std::function<bool()>& cond,
                       Clock::time_point deadline);

  // Sleeps for `d`; false if a stop was requested before or meanwhile.
  bool SleepFor(Millis d);

 private:
  std::atomic<bool> requested_{false};
  std::atomic<int> signo_{0};
  int fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;
};

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_ABORT_SIGNAL_H_
