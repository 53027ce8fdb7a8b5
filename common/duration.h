// Durations as people write them, on the command line and in configs, in the
// syntax of Go's time.ParseDuration (which Consul and Nomad share): a
// sequence of decimal numbers, each with an optional fraction and a unit,
// such as "500ms", "2.5s", "1.5m", "1h30m", "1m30.5s".
//
// Units: ms, s, m, h. Every duration in zkroll has millisecond resolution
// (timers, the ZooKeeper session timeout), so "us" and "ns", and fractions
// finer than a millisecond ("1.0005s"), are refused rather than rounded:
// a value is either kept exactly or refused. A bare number is refused as
// ambiguous, except "0". Negative durations and values over about 68 years
// (2^31 s) are refused.
#ifndef ZKROLL_COMMON_DURATION_H_
#define ZKROLL_COMMON_DURATION_H_

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace zkroll {

using Millis = std::chrono::milliseconds;

// Parses `text` as a non-negative duration. The InvalidArgument error names
// the text, says what is wrong with it and shows accepted forms.
Result<Millis> ParseDuration(std::string_view text);

// Exact rendering in the syntax ParseDuration accepts, the way Go prints
// durations but without zero components: 250ms -> "250ms", 2500ms ->
// "2.5s", 90000ms -> "1m30s", 60000ms -> "1m", 5430500ms -> "1h30m30.5s",
// 0 -> "0s". ParseDuration(FormatDuration(d)) == d for every d >= 0 that
// ParseDuration accepts.
std::string FormatDuration(Millis d);

}  // namespace zkroll

#endif  // ZKROLL_COMMON_DURATION_H_
