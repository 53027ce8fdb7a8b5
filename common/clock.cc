#include "common/clock.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <vector>

#include "common/names.h"

namespace zkroll {

namespace {
class RealSteadyClock : public SteadyClock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
};
}  // namespace

const SteadyClock& SteadyClock::Real() {
  static const RealSteadyClock clock;
  return clock;
}

std::string FormatRfc3339(WallTime t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                t.time_since_epoch())
                .count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

Result<WallTime> ParseRfc3339(std::string_view text) {
  std::string s(text);
  std::tm tm{};
  int ms = 0;
  int consumed = 0;
  int n = std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year,
                      &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                      &tm.tm_sec, &consumed);
  auto bad = [&] {
    return InvalidArgument("bad timestamp " + QuoteForMessage(text) +
                           ": expected RFC 3339 UTC like "
                           "2026-11-26T12:17:30.123Z");
  };
  if (n != 6) return bad();
  std::string rest = s.substr(consumed);
  if (!rest.empty() && rest[0] == '.') {
    size_t i = 1;
    int digits = 0;
    while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') {
      if (digits < 3) ms = ms * 10 + (rest[i] - '0');
      ++digits;
      ++i;
    }
    if (digits == 0) return bad();
    for (int d = digits; d < 3; ++d) ms *= 10;
    rest = rest.substr(i);
  }
  if (rest != "Z") return bad();
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return bad();
  }
  std::time_t secs = timegm(&tm);
  return WallTime(std::chrono::milliseconds(static_cast<int64_t>(secs) * 1000 + ms));
}

google::protobuf::Timestamp ToTimestamp(WallTime t) {
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         t.time_since_epoch())
                         .count();
  // Floor division: a time before 1970 still has nanos in [0, 1e9).
  int64_t secs = ms / 1000;
  int64_t rest = ms % 1000;
  if (rest < 0) {
    rest += 1000;
    --secs;
  }
  google::protobuf::Timestamp out;
  out.set_seconds(secs);
  out.set_nanos(static_cast<int32_t>(rest * 1000000));
  return out;
}

WallTime FromTimestamp(const google::protobuf::Timestamp& t) {
  return WallTime(
      std::chrono::milliseconds(t.seconds() * 1000 + t.nanos() / 1000000));
}

std::string FormatTimestamp(const google::protobuf::Timestamp& t, bool set) {
  return set ? FormatRfc3339(FromTimestamp(t)) : std::string();
}

std::string CurrentUserAtHost() {
  std::string user = "unknown";
  // getpwuid_r, not getpwuid: concurrent deploy threads call this, and
  // getpwuid returns a static buffer each call overwrites (ThreadSanitizer
  // caught two switch deploys writing it at once).
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  passwd entry{};
  passwd* pw = nullptr;
  if (getpwuid_r(getuid(), &entry, buf.data(), buf.size(), &pw) == 0 &&
      pw != nullptr && pw->pw_name) {
    user = pw->pw_name;
  }
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return user + "@" + (host[0] ? host : "unknown-host");
}

}  // namespace zkroll
