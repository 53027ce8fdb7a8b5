// The load generator's counting: percentiles, tallies and report formats.
#include "demo/load_stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "demo/json_text.h"
#include "demo/loadgen.h"

namespace zkroll::demo {
namespace {

TEST(LatencyHistogramTest, EmptyIsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.Percentile(50), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.count(), 0);
}

TEST(LatencyHistogramTest, NearestRankOnSmallValuesIsExact) {
  LatencyHistogram h;
  for (int v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(50), 50);
  EXPECT_EQ(h.Percentile(99), 99);
  EXPECT_EQ(h.Percentile(100), 100);
  EXPECT_EQ(h.Percentile(1), 1);
  EXPECT_EQ(h.max(), 100);
  LatencyHistogram one;
  one.Record(7);
  EXPECT_EQ(one.Percentile(50), 7);
  EXPECT_EQ(one.Percentile(99), 7);
}

TEST(LatencyHistogramTest, LargeValuesWithinATenthOfAPercent) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int64_t> dist(0, 5'000'000);
  std::vector<int64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 10000; ++i) {
    values.push_back(dist(rng));
    h.Record(values.back());
  }
  std::sort(values.begin(), values.end());
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    int64_t exact =
        values[static_cast<size_t>(std::ceil(p / 100 * values.size())) - 1];
    int64_t approx = h.Percentile(p);
    EXPECT_GE(approx, exact) << p;
    EXPECT_LE(approx, exact + exact / 1000 + 1) << p;
  }
  EXPECT_EQ(h.Percentile(100), values.back());
  EXPECT_EQ(h.max(), values.back());
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverything) {
  LatencyHistogram a, b, all;
  for (int v = 0; v < 5000; v += 7) {
    (v % 2 ? a : b).Record(v * 13);
    all.Record(v * 13);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  for (double p : {10.0, 50.0, 99.0})
    EXPECT_EQ(a.Percentile(p), all.Percentile(p));
}

TEST(TallyTest, EveryRequestIsOkOrFailedOnce) {
  Tally t;
  t.AddSent(false, false, 2);
  t.AddOutcome({"127.0.0.1:1", std::nullopt, 300, "v1"});
  t.AddSent(true, true, 2);
  t.AddOutcome({"127.0.0.1:2", Failure::kRefused, std::nullopt, ""});
  t.AddSent(false, false, 1);
  t.AddOutcome({"none", Failure::kNoInstance, std::nullopt, ""});
  t.AddSent(false, false, 2);
  t.AddOutcome({"127.0.0.1:2", Failure::kNon2xx, 900, "v2"});
  EXPECT_EQ(t.sent, 4);
  EXPECT_EQ(t.ok, 1);
  EXPECT_EQ(t.failed, 3);
  EXPECT_EQ(t.sent, t.ok + t.failed);
  EXPECT_EQ(t.failures(Failure::kRefused), 1);
  EXPECT_EQ(t.failures(Failure::kNoInstance), 1);
  EXPECT_EQ(t.failures(Failure::kNon2xx), 1);
  EXPECT_EQ(t.late, 1);
  EXPECT_EQ(t.stale_picks, 1);
  EXPECT_EQ(t.max_listed, 2u);
  EXPECT_EQ(t.latency.count(), 2);
  EXPECT_EQ(t.versions.at("v1"), 1);
  EXPECT_EQ(t.instances.at("127.0.0.1:2").failed, 2);

  Tally total;
  total.Merge(t);
  total.Merge(t);
  EXPECT_EQ(total.sent, 8);
  EXPECT_EQ(total.failures(Failure::kRefused), 2);
  EXPECT_EQ(total.instances.at("127.0.0.1:1").versions.at("v1"), 2);
}

TEST(ReportTest, SecondLineNamesEveryCause) {
  Tally t;
  t.AddSent(false, false, 1);
  t.AddOutcome({"127.0.0.1:9001", std::nullopt, 1500, "v1"});
  std::string line = FormatSecondLine(3, t);
  for (const char* part :
       {"second=3 ", "sent=1", "ok=1", "failed=0", "refused=0", "reset=0",
        "timeout=0", "non2xx=0", "no_instance=0", "other=0", "p50=1.500ms",
        "p99=1.500ms", "max=1.500ms", "versions=v1:1",
        "instances=127.0.0.1:9001:1"}) {
    EXPECT_NE(line.find(part), std::string::npos) << part << " in " << line;
  }
}

TEST(ReportTest, TimelineRowsPerInstance) {
  Tally t;
  t.AddSent(false, false, 2);
  t.AddOutcome({"127.0.0.1:9001", std::nullopt, 10, "v1"});
  t.AddSent(false, false, 2);
  t.AddOutcome({"127.0.0.1:9001", std::nullopt, 10, "v2"});
  t.AddSent(false, false, 2);
  t.AddOutcome({"127.0.0.1:9002", Failure::kReset, std::nullopt, ""});
  t.AddSent(false, false, 2);
  t.AddOutcome({"127.0.0.1:9003", std::nullopt, 10, "bad,ver"});
  EXPECT_EQ(TimelineRows(7, t),
            "7,127.0.0.1:9001,2,2,0,v1|v2\n"
            "7,127.0.0.1:9002,1,0,1,\n"
            "7,127.0.0.1:9003,1,1,0,bad_ver\n");
}

TEST(JsonTextTest, QuotesAndNumbers) {
  EXPECT_EQ(JsonQuote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(JsonNumber(3), "3");
  EXPECT_EQ(JsonNumber(0.4125), "0.412");
  EXPECT_EQ(JsonNumber(std::nan("")), "0");
}

TEST(VersionOfTest, HeaderFirstThenJsonBody) {
  namespace http = boost::beast::http;
  http::response<http::string_body> r;
  r.body() = R"({"version":"v7","instance":"127.0.0.1:1"})";
  EXPECT_EQ(VersionOf(r), "v7");
  r.set("X-Zkroll-Version", "v8");
  EXPECT_EQ(VersionOf(r), "v8");
  http::response<http::string_body> junk;
  junk.body() = "not json";
  EXPECT_EQ(VersionOf(junk), "");
}

}  // namespace
}  // namespace zkroll::demo
