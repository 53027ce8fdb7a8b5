#include "common/duration.h"

#include <cstdint>
#include <cstdio>
#include <limits>

namespace zkroll {

Result<Millis> ParseDuration(std::string_view text) {
  auto bad = [&](const char* why) {
    return InvalidArgument("bad duration '" + std::string(text) + "': " + why +
                           " (use e.g. 500ms, 20s, 2m, 1h, 1m30s)");
  };
  if (text.empty()) return bad("empty");
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] < '0' || text[i] > '9') return bad("expected a number");
    int64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i] - '0');
      if (n > 1000LL * 1000 * 1000) return bad("too large");
      ++i;
    }
    size_t unit_start = i;
    while (i < text.size() && (text[i] < '0' || text[i] > '9')) ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    int64_t scale;
    if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60 * 1000;
    } else if (unit == "h") {
      scale = 3600 * 1000;
    } else if (unit.empty()) {
      return bad("missing unit");
    } else {
      return bad("unknown unit");
    }
    total += n * scale;
    if (total > std::numeric_limits<int32_t>::max() * 1000LL) {
      return bad("too large");
    }
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
  const struct {
    int64_t unit;
    const char* name;
  } kUnits[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
  for (const auto& u : kUnits) {
    if (ms >= u.unit) {
      out += std::to_string(ms / u.unit) + u.name;
      ms %= u.unit;
    }
  }
  return out;
}

}  // namespace zkroll
