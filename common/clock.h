// Wall-clock timestamps for payloads and logs (RFC 3339, UTC, milliseconds).
// Monotonic time and timers that tests can drive are in timer.h.
#ifndef ZKROLL_COMMON_CLOCK_H_
#define ZKROLL_COMMON_CLOCK_H_

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace zkroll {

using WallTime = std::chrono::system_clock::time_point;

// "2026-11-26T12:17:30.123Z"
std::string FormatRfc3339(WallTime t);
inline std::string NowRfc3339() {
  return FormatRfc3339(std::chrono::system_clock::now());
}
// Accepts the form FormatRfc3339 writes, with or without milliseconds.
Result<WallTime> ParseRfc3339(std::string_view text);

// The monotonic clock, behind an interface so that logic which waits or
// times out (common/retry.h) can be driven by a test's clock instead of the
// machine's. Implementations must be thread-safe.
class SteadyClock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~SteadyClock() = default;
  virtual TimePoint Now() const = 0;
  // std::chrono::steady_clock; lives for the whole process.
  static const SteadyClock& Real();
};

// "user@host" of this process, for payloads that say who did something.
std::string CurrentUserAtHost();

}  // namespace zkroll

#endif  // ZKROLL_COMMON_CLOCK_H_
