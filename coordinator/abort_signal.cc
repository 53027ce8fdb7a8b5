#include "coordinator/abort_signal.h"

#include <glog/logging.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace zkroll::coordinator {

AbortSignal::AbortSignal() {
  fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  PCHECK(fd_ >= 0) << "eventfd";
}

AbortSignal::~AbortSignal() {
  if (fd_ >= 0) ::close(fd_);
}

void AbortSignal::Request(int signo) {
  int expected = 0;
  signo_.compare_exchange_strong(expected, signo);
  if (!requested_.exchange(true)) {
    uint64_t one = 1;
    // The counter only ever goes 0 -> 1, so the write cannot block or fail
    // in a way that matters: readers only poll for readability.
    ssize_t n = ::write(fd_, &one, sizeof one);
    (void)n;
  }
  Wake();
}

void AbortSignal::Wake() {
  std::lock_guard<std::mutex> l(mu_);
  ++generation_;
  cv_.notify_all();
}

uint64_t AbortSignal::wakes() const {
  std::lock_guard<std::mutex> l(mu_);
  return generation_;
}

AbortSignal::WaitResult AbortSignal::WaitUntil(
    const std::function<bool()>& cond, Clock::time_point deadline) {
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    // Read the generation before evaluating the condition: a Wake() that
    // happens while cond() runs bumps it, so the wait below cannot miss it.
    uint64_t seen = generation_;
    l.unlock();
    bool ready = cond();
    l.lock();
    if (ready) return WaitResult::kReady;
    if (requested_.load()) return WaitResult::kAborted;
    if (Clock::now() >= deadline) return WaitResult::kTimedOut;
    cv_.wait_until(l, deadline,
                   [&] { return generation_ != seen || requested_.load(); });
  }
}

bool AbortSignal::SleepFor(Millis d) {
  return WaitUntil([] { return false; }, Clock::now() + d) !=
         WaitResult::kAborted;
}

void Waker::Wake() {
  // Lock order: the waker's, then the signal's (inside Wake()). Nothing
  // takes them the other way round: WaitUntil runs its condition unlocked.
  std::lock_guard<std::mutex> l(mu_);
  if (signal_ != nullptr) signal_->Wake();
}

void Waker::Disarm() {
  std::lock_guard<std::mutex> l(mu_);
  signal_ = nullptr;
}

}  // namespace zkroll::coordinator
