#include "tests/support/io_wait.h"

namespace zkroll::testing {

bool RunUntil(boost::asio::io_context& io, const std::function<bool()>& cond,
              std::chrono::milliseconds deadline) {
  using Clock = std::chrono::steady_clock;
  const auto end = Clock::now() + deadline;
  while (!cond()) {
    const auto now = Clock::now();
    if (now >= end) return false;
    if (io.stopped()) io.restart();
    if (io.run_one_for(end - now) == 0 && io.stopped()) return cond();
  }
  return true;
}

}  // namespace zkroll::testing
