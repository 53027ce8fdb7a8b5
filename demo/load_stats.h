// Counting what the load generator saw: per second and for the whole run.
//
// Every request that was due is counted exactly once as sent, and exactly
// once as ok or as failed with one cause; nothing is retried or dropped, so
// sent == ok + failed once every request has an outcome.
//
// Thread-safety: plain values and pure functions.
#ifndef ZKROLL_DEMO_LOAD_STATS_H_
#define ZKROLL_DEMO_LOAD_STATS_H_

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace zkroll::demo {

enum class Failure {
  kRefused,     // connect refused
  kReset,       // connection reset or closed before a full response
  kTimeout,     // no outcome by the deadline (including waiting for a
                // connection: the backlog of a pool that cannot keep up)
  kNon2xx,      // answered with another status than 2xx
  kNoInstance,  // the discovery list was empty when the request was due
  kOther,       // anything else (e.g. unreachable, malformed response)
};
inline constexpr int kFailureKinds = 6;
// "refused", "reset", "timeout", "non2xx", "no_instance", "other".
const char* FailureName(Failure f);

// Latencies in microseconds: exact below 2048us, within 0.1% above (a
// log-linear histogram, so a long run needs little memory).
class LatencyHistogram {
 public:
  void Record(int64_t micros);
  void Merge(const LatencyHistogram& other);
  int64_t count() const { return count_; }
  int64_t max() const { return max_; }
  // Nearest-rank percentile, p in (0, 100]: the smallest recorded value
  // (within the precision above) with at least p% of the values at or
  // below it. 0 when empty.
  int64_t Percentile(double p) const;

 private:
  static uint32_t BucketOf(int64_t micros);
  static int64_t UpperBoundOf(uint32_t bucket);
  std::map<uint32_t, int64_t> buckets_;
  int64_t count_ = 0;
  int64_t max_ = 0;
};

// The outcome of one request.
struct RequestOutcome {
  std::string instance;               // "ip:port", or "none"
  std::optional<Failure> failure;     // nullopt when ok
  std::optional<int64_t> latency_us;  // set when a response was read
  std::string version;                // who answered, if known
};

struct InstanceTally {
  int64_t requests = 0;
  int64_t ok = 0;
  int64_t failed = 0;
  std::map<std::string, int64_t> versions;
};

struct Tally {
  int64_t sent = 0;
  int64_t ok = 0;
  int64_t failed = 0;
  std::array<int64_t, kFailureKinds> by_failure{};
  // Sent later than due by more than the lateness threshold (the sender
  // fell behind); informational, the request still counts.
  int64_t late = 0;
  LatencyHistogram latency;  // requests that got a response
  std::map<std::string, int64_t> versions;
  std::map<std::string, InstanceTally> instances;
  // Discovery while sending: requests picked from a stale list, and the
  // largest list seen.
  int64_t stale_picks = 0;
  size_t max_listed = 0;

  void AddSent(bool late, bool stale, size_t listed);
  void AddOutcome(const RequestOutcome& outcome);
  void Merge(const Tally& other);
  int64_t failures(Failure f) const { return by_failure[static_cast<int>(f)]; }
};

// Microseconds as milliseconds with three decimals: "0.412ms".
std::string FormatMillis(int64_t micros);

// One line per second, key=value, e.g.
// "second=3 sent=2000 ok=2000 failed=0 refused=0 ... p50=0.310ms
//  p99=1.020ms max=2.441ms versions=v1:2000 instances=127.0.0.1:9001:1000,...
//  listed=2 stale_picks=0"
std::string FormatSecondLine(int64_t second, const Tally& t);
// The same counters for the whole run, prefixed "total seconds=S".
std::string FormatTotalLine(double seconds, const Tally& t);

inline constexpr char kTimelineHeader[] =
    "second,instance,requests,ok,failed,version\n";
// One CSV row per instance that was sent requests in that second; version
// lists every version that answered, joined by '|' (empty if none did).
std::string TimelineRows(int64_t second, const Tally& t);

}  // namespace zkroll::demo

#endif  // ZKROLL_DEMO_LOAD_STATS_H_
