#include "tests/support/wait.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace zkroll::testing {

double TimeScale() {
  static const double scale = [] {
    const char* text = std::getenv("ZKROLL_TEST_TIME_SCALE");
    if (text == nullptr || *text == '\0') return 1.0;
    char* end = nullptr;
    double v = std::strtod(text, &end);
    if (*end != '\0' || !(v >= 1.0 && v <= 100.0)) {
      // A typo must not silently shrink or drop every deadline.
      std::fprintf(stderr,
                   "ZKROLL_TEST_TIME_SCALE=%s: expected a number from 1 to 100\n",
                   text);
      std::abort();
    }
    return v;
  }();
  return scale;
}

milliseconds Scaled(milliseconds d) {
  return milliseconds(static_cast<milliseconds::rep>(
      static_cast<double>(d.count()) * TimeScale()));
}

void Signal::Notify() {
  std::lock_guard<std::mutex> l(mu_);
  ++generation_;
  cv_.notify_all();
}

bool Signal::WaitFor(const std::function<bool()>& cond, milliseconds deadline,
                     milliseconds recheck) {
  auto end = std::chrono::steady_clock::now() + Scaled(deadline);
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
