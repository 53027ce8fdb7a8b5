#include "demo/load_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace zkroll::demo {

const char* FailureName(Failure f) {
  switch (f) {
    case Failure::kRefused:
      return "refused";
    case Failure::kReset:
      return "reset";
    case Failure::kTimeout:
      return "timeout";
    case Failure::kNon2xx:
      return "non2xx";
    case Failure::kNoInstance:
      return "no_instance";
    case Failure::kOther:
      return "other";
  }
  return "other";
}

// Values below 2^11 have a bucket each; above, each power of two is split
// into 1024 buckets (the 10 bits after the leading one).
namespace {
constexpr int kExactBits = 11;
constexpr int kSubBits = 10;
}  // namespace

uint32_t LatencyHistogram::BucketOf(int64_t micros) {
  uint64_t v = static_cast<uint64_t>(std::max<int64_t>(micros, 0));
  if (v < (1u << kExactBits)) return static_cast<uint32_t>(v);
  int msb = 63 - __builtin_clzll(v);
  int shift = msb - kSubBits;
  uint32_t sub = static_cast<uint32_t>((v >> shift) & ((1u << kSubBits) - 1));
  return (1u << kExactBits) +
         static_cast<uint32_t>(msb - kExactBits) * (1u << kSubBits) + sub;
}

int64_t LatencyHistogram::UpperBoundOf(uint32_t bucket) {
  if (bucket < (1u << kExactBits)) return bucket;
  uint32_t rest = bucket - (1u << kExactBits);
  int msb = static_cast<int>(rest >> kSubBits) + kExactBits;
  uint64_t sub = rest & ((1u << kSubBits) - 1);
  int shift = msb - kSubBits;
  uint64_t lower = ((1ull << kSubBits) | sub) << shift;
  return static_cast<int64_t>(lower + (1ull << shift) - 1);
}

void LatencyHistogram::Record(int64_t micros) {
  micros = std::max<int64_t>(micros, 0);
  ++buckets_[BucketOf(micros)];
  ++count_;
  max_ = std::max(max_, micros);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (const auto& [bucket, n] : other.buckets_) buckets_[bucket] += n;
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

int64_t LatencyHistogram::Percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  int64_t rank = static_cast<int64_t>(std::ceil(p / 100.0 * count_));
  rank = std::clamp<int64_t>(rank, 1, count_);
  int64_t seen = 0;
  for (const auto& [bucket, n] : buckets_) {
    seen += n;
    if (seen >= rank) return std::min(UpperBoundOf(bucket), max_);
  }
  return max_;
}

void Tally::AddSent(bool is_late, bool stale, size_t listed) {
  ++sent;
  if (is_late) ++late;
  if (stale) ++stale_picks;
  max_listed = std::max(max_listed, listed);
}

void Tally::AddOutcome(const RequestOutcome& o) {
  InstanceTally& inst = instances[o.instance];
  ++inst.requests;
  if (o.failure) {
    ++failed;
    ++by_failure[static_cast<int>(*o.failure)];
    ++inst.failed;
  } else {
    ++ok;
    ++inst.ok;
  }
  if (o.latency_us) latency.Record(*o.latency_us);
  if (!o.version.empty()) {
    ++versions[o.version];
    ++inst.versions[o.version];
  }
}

void Tally::Merge(const Tally& other) {
  sent += other.sent;
  ok += other.ok;
  failed += other.failed;
  for (int i = 0; i < kFailureKinds; ++i) by_failure[i] += other.by_failure[i];
  late += other.late;
  latency.Merge(other.latency);
  for (const auto& [v, n] : other.versions) versions[v] += n;
  for (const auto& [name, t] : other.instances) {
    InstanceTally& mine = instances[name];
    mine.requests += t.requests;
    mine.ok += t.ok;
    mine.failed += t.failed;
    for (const auto& [v, n] : t.versions) mine.versions[v] += n;
  }
  stale_picks += other.stale_picks;
  max_listed = std::max(max_listed, other.max_listed);
}

std::string FormatMillis(int64_t micros) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3fms", static_cast<double>(micros) / 1000);
  return buf;
}

namespace {

std::string Counters(const Tally& t) {
  std::ostringstream out;
  out << "sent=" << t.sent << " ok=" << t.ok << " failed=" << t.failed;
  for (int i = 0; i < kFailureKinds; ++i) {
    out << " " << FailureName(static_cast<Failure>(i)) << "="
        << t.by_failure[i];
  }
  out << " late=" << t.late << " p50=" << FormatMillis(t.latency.Percentile(50))
      << " p99=" << FormatMillis(t.latency.Percentile(99))
      << " max=" << FormatMillis(t.latency.max()) << " versions=";
  const char* sep = "";
  for (const auto& [v, n] : t.versions) {
    out << sep << v << ":" << n;
    sep = ",";
  }
  if (t.versions.empty()) out << "-";
  out << " instances=";
  sep = "";
  for (const auto& [name, i] : t.instances) {
    out << sep << name << ":" << i.requests;
    sep = ",";
  }
  if (t.instances.empty()) out << "-";
  out << " listed=" << t.max_listed << " stale_picks=" << t.stale_picks;
  return out.str();
}

}  // namespace

std::string FormatSecondLine(int64_t second, const Tally& t) {
  return "second=" + std::to_string(second) + " " + Counters(t);
}

std::string FormatTotalLine(double seconds, const Tally& t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", seconds);
  return std::string("total seconds=") + buf + " " + Counters(t);
}

std::string TimelineRows(int64_t second, const Tally& t) {
  std::string out;
  for (const auto& [name, i] : t.instances) {
    std::string versions;
    for (const auto& [v, n] : i.versions) {
      if (!versions.empty()) versions += '|';
      // Whatever a server calls its version must not break the CSV.
      for (char c : v) {
        versions += (c == ',' || c == '|' || c == '"' || c == '\n' || c == '\r')
                        ? '_'
                        : c;
      }
    }
    out += std::to_string(second) + "," + name + "," +
           std::to_string(i.requests) + "," + std::to_string(i.ok) + "," +
           std::to_string(i.failed) + "," + versions + "\n";
  }
  return out;
}

}  // namespace zkroll::demo
