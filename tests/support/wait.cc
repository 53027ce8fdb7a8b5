#include "tests/support/wait.h"

namespace zkroll::testing {

void Signal::Notify() {
  std::lock_guard<std::mutex> l(mu_);
  ++generation_;
  cv_.notify_all();
}

bool Signal::WaitFor(const std::function<bool()>& cond, milliseconds deadline,
                     milliseconds recheck) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (cond()) return true;
    auto now = std::chrono::steady_clock::now();
    if (now >= end) return cond();
    std::unique_lock<std::mutex> l(mu_);
    uint64_t seen = generation_;
    cv_.wait_until(l, std::min(end, now + recheck),
                   [&] { return generation_ != seen; });
  }
}

bool WaitFor(const std::function<bool()>& cond, milliseconds deadline) {
  static Signal signal;
  return signal.WaitFor(cond, deadline);
}

}  // namespace zkroll::testing
