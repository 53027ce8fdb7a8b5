// ErrorRate (demo/demo_service.h): which requests a bad demo version fails.
// Pure logic: the fraction is exact and the same requests fail every run.
#include <gtest/gtest.h>

#include "demo/demo_service.h"

namespace zkroll::demo {
namespace {

TEST(ErrorRateTest, ATenthFailsEveryTenthRequest) {
  auto r = ErrorRate::Parse("0.1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->parts_per_million(), 100000);
  for (int64_t n = 1; n <= 1000; ++n) {
    EXPECT_EQ(r->Fails(n), n % 10 == 0) << "request " << n;
  }
}

TEST(ErrorRateTest, AnyRunOfRequestsHoldsTheFractionWithinOne) {
  for (const char* text : {"0.1", "0.25", "0.333333", "0.05", "0.9"}) {
    auto r = ErrorRate::Parse(text);
    ASSERT_TRUE(r.ok()) << text;
    const double f = static_cast<double>(r->parts_per_million()) / 1e6;
    for (int64_t start = 1; start <= 50; ++start) {
      for (int64_t k : {1, 7, 10, 33, 100}) {
        int64_t failed = 0;
        for (int64_t n = start; n < start + k; ++n) failed += r->Fails(n);
        EXPECT_GE(failed, static_cast<int64_t>(k * f) - 1) << text;
        EXPECT_LE(failed, static_cast<int64_t>(k * f) + 1) << text;
      }
    }
  }
}

TEST(ErrorRateTest, ZeroAndOne) {
  auto zero = ErrorRate::Parse("0");
  ASSERT_TRUE(zero.ok());
  auto all = ErrorRate::Parse("1");
  ASSERT_TRUE(all.ok());
  auto none = ErrorRate();
  for (int64_t n = 1; n <= 100; ++n) {
    EXPECT_FALSE(zero->Fails(n));
    EXPECT_FALSE(none.Fails(n));
    EXPECT_TRUE(all->Fails(n));
  }
  EXPECT_TRUE(ErrorRate::Parse("1.000000").ok());
  EXPECT_TRUE(ErrorRate::Parse("0.000001").ok());
}

TEST(ErrorRateTest, BadTextIsRefusedAndNamed) {
  for (const char* text : {"", "1.5", "2", "-0.1", ".1", "0.", "0.1234567",
                           "10%", "0,1", "1e-1", "0.1 ", "abc", "01"}) {
    auto r = ErrorRate::Parse(text);
    EXPECT_FALSE(r.ok()) << "'" << text << "' was accepted";
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find(std::string("'") + text + "'"),
                std::string::npos)
          << r.status().message();
    }
  }
}

}  // namespace
}  // namespace zkroll::demo
