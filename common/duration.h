// Human durations on the command line and in configs: "250ms", "20s",
// "2m", "1h", "1m30s". A bare number is refused (ambiguous unit).
#ifndef ZKROLL_COMMON_DURATION_H_
#define ZKROLL_COMMON_DURATION_H_

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace zkroll {

using Millis = std::chrono::milliseconds;

// Parses `text` as a non-negative duration. The error names the text and
// shows an accepted form.
Result<Millis> ParseDuration(std::string_view text);

// Exact rendering in the syntax ParseDuration accepts: 1500ms -> "1s500ms",
// 60000ms -> "1m", 250ms -> "250ms", 0 -> "0s".
std::string FormatDuration(Millis d);

}  // namespace zkroll

#endif  // ZKROLL_COMMON_DURATION_H_
