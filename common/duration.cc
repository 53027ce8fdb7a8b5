#include "common/duration.h"

#include <cstdint>
#include <limits>

namespace zkroll {

namespace {

constexpr int64_t kMaxMillis = std::numeric_limits<int32_t>::max() * 1000LL;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Milliseconds per unit, 0 for an unknown unit.
int64_t UnitScale(std::string_view unit) {
  if (unit == "ms") return 1;
  if (unit == "s") return 1000;
  if (unit == "m") return 60 * 1000;
  if (unit == "h") return 3600 * 1000;
  return 0;
}

}  // namespace

Result<Millis> ParseDuration(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("bad duration '" + std::string(text) + "': " + why +
                           " (use e.g. 500ms, 2.5s, 1m30s, 1h)");
  };
  if (text.empty()) return bad("empty");
  if (text == "0") return Millis(0);
  if (text[0] == '-') return bad("negative durations are not allowed");
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    const size_t number_start = i;
    // Whole part. The bound keeps every product below int64's range; a
    // larger value is over kMaxMillis whatever its unit.
    int64_t whole = 0;
    bool whole_digits = false;
    while (i < text.size() && IsDigit(text[i])) {
      whole = whole * 10 + (text[i] - '0');
      whole_digits = true;
      if (whole > kMaxMillis) return bad("too large");
      ++i;
    }
    // Fraction, kept as digits: it is applied exactly once the unit is known.
    std::string_view fraction;
    if (i < text.size() && text[i] == '.') {
      ++i;
      size_t fraction_start = i;
      while (i < text.size() && IsDigit(text[i])) ++i;
      fraction = text.substr(fraction_start, i - fraction_start);
      if (fraction.empty()) {
        return bad("expected a digit after '" +
                   std::string(text.substr(number_start, i - number_start)) +
                   "'");
      }
    }
    if (!whole_digits && fraction.empty()) {
      return bad(i < text.size() ? "expected a number at '" +
                                       std::string(text.substr(i)) + "'"
                                 : "expected a number");
    }
    const std::string_view number = text.substr(number_start, i - number_start);
    size_t unit_start = i;
    while (i < text.size() && !IsDigit(text[i]) && text[i] != '.') ++i;
    const std::string_view unit = text.substr(unit_start, i - unit_start);
    if (unit.empty()) {
      return bad("missing unit after '" + std::string(number) +
                 "' (ms, s, m or h)");
    }
    const int64_t scale = UnitScale(unit);
    if (scale == 0) {
      if (unit == "us" || unit == "\xC2\xB5s" || unit == "ns") {
        return bad("unit '" + std::string(unit) +
                   "' is finer than zkroll's resolution of 1ms");
      }
      return bad("unknown unit '" + std::string(unit) + "' (ms, s, m or h)");
    }
    if (whole > kMaxMillis / scale) return bad("too large");
    int64_t part = whole * scale;
    // The fraction must come to a whole number of milliseconds: strip its
    // trailing zeros, then scale * digits must divide by 10^length. With
    // scale <= 3.6e6 a significant fraction longer than 7 digits never can.
    while (!fraction.empty() && fraction.back() == '0') {
      fraction.remove_suffix(1);
    }
    if (fraction.size() > 7) return bad("finer than a millisecond");
    if (!fraction.empty()) {
      int64_t digits = 0, denominator = 1;
      for (char c : fraction) {
        digits = digits * 10 + (c - '0');
        denominator *= 10;
      }
      if ((digits * scale) % denominator != 0) {
        return bad("'" + std::string(number) + std::string(unit) +
                   "' is finer than a millisecond");
      }
      part += digits * scale / denominator;
    }
    total += part;
    if (total > kMaxMillis) return bad("too large");
  }
  return Millis(total);
}

std::string FormatDuration(Millis d) {
  // Exact and in ParseDuration's own syntax, so a printed duration can be
  // pasted back (and a check spec printed by DescribeCheck parses again).
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  if (ms < 1000) return out + std::to_string(ms) + "ms";
  const int64_t hours = ms / 3600000;
  const int64_t minutes = ms / 60000 % 60;
  const int64_t seconds = ms / 1000 % 60;
  const int64_t millis = ms % 1000;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (minutes > 0) out += std::to_string(minutes) + "m";
  if (seconds > 0 || millis > 0) {
    out += std::to_string(seconds);
    if (millis > 0) {
      std::string frac = std::to_string(millis);
      frac.insert(0, 3 - frac.size(), '0');
      while (frac.back() == '0') frac.pop_back();
      out += "." + frac;
    }
    out += "s";
  }
  return out;
}

}  // namespace zkroll
