// ParseDuration / FormatDuration: the syntax people write (Go's), exact
// values, refusals that name the value, and the print-parse round trip.
#include <gtest/gtest.h>

#include <random>

#include "common/duration.h"

namespace zkroll {
namespace {

TEST(DurationTest, ParsesWholeFractionalAndCombinedValues) {
  const struct {
    const char* text;
    int64_t ms;
  } kCases[] = {
      {"0", 0},           {"0s", 0},          {"0.0s", 0},
      {"250ms", 250},     {"20s", 20000},     {"2m", 120000},
      {"1h", 3600000},    {"1m30s", 90000},   {"2.5s", 2500},
      {"1.5m", 90000},    {"0.5h", 1800000},  {"1h30m", 5400000},
      {"1m30.5s", 90500}, {".5s", 500},       {"2.500s", 2500},
      {"1.001s", 1001},   {"0.25ms", -1},     {"1.5ms", -1},
      {"1.0000001h", -1}, {"1.00000000s", 1000},
      {"1h2m3s4ms", 3723004},
      {"30s1m", 90000},  // any order, as Go accepts
      {"2147483647s", 2147483647000LL},
  };
  for (const auto& c : kCases) {
    auto r = ParseDuration(c.text);
    if (c.ms < 0) {
      EXPECT_FALSE(r.ok()) << c.text << " -> " << r->count();
      continue;
    }
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.status().message();
    EXPECT_EQ(r->count(), c.ms) << c.text;
  }
}

TEST(DurationTest, RefusesJunkNamingTheValueAndTheReason) {
  const struct {
    const char* text;
    const char* reason;
  } kCases[] = {
      {"", "empty"},
      {"20", "missing unit after '20'"},
      {"s", "expected a number"},
      {"1x", "unknown unit 'x'"},
      {"20sec", "unknown unit 'sec'"},
      {"-1s", "negative"},
      {"+1s", "expected a number"},
      {"2.5.s", "missing unit after '2.5'"},
      {"1.s", "expected a digit after '1.'"},
      {"1..5s", "expected a digit after '1.'"},
      {"1 s", "unknown unit ' s'"},
      {" 1s", "expected a number"},
      {"250us", "finer than zkroll's resolution"},
      {"10ns", "finer than zkroll's resolution"},
      {"1.0005s", "finer than a millisecond"},
      {"0.1ms", "finer than a millisecond"},
      {"1.123456789s", "finer than a millisecond"},
      {"99999999999h", "too large"},
      {"2147483648s", "too large"},
      {"99999999999999999999999ms", "too large"},
      {"2147483647s1ms", "too large"},
      {"1e3s", "unknown unit 'e'"},
      {"1s ", "unknown unit"},
  };
  for (const auto& c : kCases) {
    auto r = ParseDuration(c.text);
    ASSERT_FALSE(r.ok()) << "'" << c.text << "' -> " << r->count();
    const std::string& m = r.status().message();
    EXPECT_NE(m.find("'" + std::string(c.text) + "'"), std::string::npos) << m;
    EXPECT_NE(m.find(c.reason), std::string::npos) << c.text << ": " << m;
    EXPECT_NE(m.find("e.g. 500ms, 2.5s"), std::string::npos) << m;
  }
}

TEST(DurationTest, FormatsTheWayPeopleWriteThem) {
  const struct {
    int64_t ms;
    const char* text;
  } kCases[] = {
      {0, "0s"},           {1, "1ms"},           {250, "250ms"},
      {999, "999ms"},      {1000, "1s"},         {1500, "1.5s"},
      {2500, "2.5s"},      {1001, "1.001s"},     {1010, "1.01s"},
      {60000, "1m"},       {90000, "1m30s"},     {90500, "1m30.5s"},
      {120500, "2m0.5s"},  {3600000, "1h"},      {5400000, "1h30m"},
      {3600500, "1h0.5s"}, {3723004, "1h2m3.004s"},
      {-1500, "-1.5s"},
  };
  for (const auto& c : kCases) {
    EXPECT_EQ(FormatDuration(Millis(c.ms)), c.text) << c.ms;
  }
}

TEST(DurationTest, EveryRenderingParsesBackExactly) {
  // Edges first (unit boundaries and the largest accepted value), then a
  // fixed-seed sample spread over every magnitude.
  std::vector<int64_t> values = {0,       1,       999,     1000,
                                 1001,    59999,   60000,   60001,
                                 3599999, 3600000, 3600001, 3978610001LL,
                                 2147483647000LL};
  std::mt19937_64 rng(14);
  for (int i = 0; i < 20000; ++i) {
    int64_t magnitude = int64_t{1} << (rng() % 41);
    values.push_back(static_cast<int64_t>(rng() % magnitude));
  }
  for (int64_t ms : values) {
    const std::string text = FormatDuration(Millis(ms));
    auto back = ParseDuration(text);
    ASSERT_TRUE(back.ok()) << ms << " -> " << text << ": "
                           << back.status().message();
    ASSERT_EQ(back->count(), ms) << text;
  }
}

}  // namespace
}  // namespace zkroll
