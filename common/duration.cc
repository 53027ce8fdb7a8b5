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
  int64_t ms = d.count();
  char buf[64];
  if (ms % 3600000 == 0 && ms != 0) {
    std::snprintf(buf, sizeof buf, "%lldh", static_cast<long long>(ms / 3600000));
  } else if (ms % 60000 == 0 && ms != 0) {
    std::snprintf(buf, sizeof buf, "%lldm", static_cast<long long>(ms / 60000));
  } else if (ms >= 1000) {
    std::snprintf(buf, sizeof buf, "%.3gs", static_cast<double>(ms) / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  }
  return buf;
}

}  // namespace zkroll
