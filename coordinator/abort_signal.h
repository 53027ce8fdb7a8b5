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
// A callback that may outlive its waiter (a ZooKeeper watch cannot be
// cancelled and fires whenever its node changes, perhaps long after the
// wait that set it returned; a check result or a read completion can come
// late) never holds the AbortSignal itself: it holds a Waker, which the
// waiter's ScopedWaker disarms when the wait ends. A late callback then
// wakes nobody, and never touches a signal that may be gone.
//
// Thread-safety: every method may be called from any thread.
#ifndef ZKROLL_COORDINATOR_ABORT_SIGNAL_H_
#define ZKROLL_COORDINATOR_ABORT_SIGNAL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
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
  // How many times Wake() ran (Request() wakes too): lets a test see that
  // a late callback woke nobody.
  uint64_t wakes() const;

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
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;
};

// What a late-running callback holds to wake a waiter (see the file
// comment). Shared between the waiter and its callbacks; Wake() after
// Disarm() does nothing.
class Waker {
 public:
  explicit Waker(AbortSignal* signal) : signal_(signal) {}
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;

  // Wakes the signal's waiters, unless disarmed.
  void Wake();
  // From now on Wake() does nothing; returns once no Wake() is under way,
  // so the signal may be destroyed right after.
  void Disarm();

 private:
  std::mutex mu_;  // held across signal_->Wake(), so Disarm waits it out
  AbortSignal* signal_;
};

// Owns a Waker for the duration of a wait: callbacks capture waker() (a
// shared_ptr), and the destructor disarms it when the waiting function
// returns.
class ScopedWaker {
 public:
  explicit ScopedWaker(AbortSignal* signal)
      : waker_(std::make_shared<Waker>(signal)) {}
  ~ScopedWaker() { waker_->Disarm(); }
  ScopedWaker(const ScopedWaker&) = delete;
  ScopedWaker& operator=(const ScopedWaker&) = delete;

  const std::shared_ptr<Waker>& waker() const { return waker_; }

 private:
  std::shared_ptr<Waker> waker_;
};

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_ABORT_SIGNAL_H_
