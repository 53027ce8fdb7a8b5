// Smooth weighted round robin: order, proportions and bounds.
#include "client/weighted_round_robin.h"

#include <gtest/gtest.h>

#include <map>

namespace zkroll::client {
namespace {

std::map<uint32_t, int> Count(const std::vector<uint32_t>& schedule) {
  std::map<uint32_t, int> n;
  for (uint32_t i : schedule) ++n[i];
  return n;
}

TEST(SmoothWeightedScheduleTest, EmptyInputGivesEmptySchedule) {
  EXPECT_TRUE(SmoothWeightedSchedule({}).empty());
}

TEST(SmoothWeightedScheduleTest, EqualWeightsArePlainRoundRobin) {
  EXPECT_EQ(SmoothWeightedSchedule({1, 1, 1}),
            (std::vector<uint32_t>{0, 1, 2}));
  // Equal weights of any size reduce to one pick each per cycle.
  EXPECT_EQ(SmoothWeightedSchedule({7, 7}), (std::vector<uint32_t>{0, 1}));
}

TEST(SmoothWeightedScheduleTest, ZeroWeightCountsAsOne) {
  EXPECT_EQ(SmoothWeightedSchedule({0, 1}), (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(Count(SmoothWeightedSchedule({0, 2})),
            (std::map<uint32_t, int>{{0, 1}, {1, 2}}));
}

TEST(SmoothWeightedScheduleTest, SpreadsAHeavyInstanceLikeNginx) {
  // nginx's documented sequence for weights {5, 1, 1}.
  EXPECT_EQ(SmoothWeightedSchedule({5, 1, 1}),
            (std::vector<uint32_t>{0, 0, 1, 0, 2, 0, 0}));
}

TEST(SmoothWeightedScheduleTest, ProportionsAreExactPerCycle) {
  auto s = SmoothWeightedSchedule({1, 2, 3});
  ASSERT_EQ(s.size(), 6u);
  EXPECT_EQ(Count(s), (std::map<uint32_t, int>{{0, 1}, {1, 2}, {2, 3}}));
  // Divided by the common divisor first.
  EXPECT_EQ(SmoothWeightedSchedule({200, 400, 600}), s);
}

TEST(SmoothWeightedScheduleTest, NoInstanceIsPickedTwiceInARowWhenAvoidable) {
  // Weights {2, 2, 1}: a smooth order never repeats an instance.
  auto s = SmoothWeightedSchedule({2, 2, 1});
  ASSERT_EQ(s.size(), 5u);
  for (size_t i = 1; i < s.size(); ++i) EXPECT_NE(s[i], s[i - 1]) << i;
}

TEST(SmoothWeightedScheduleTest, HugeWeightsAreBoundedAndKeepEveryInstance) {
  // Coprime weights whose sum is far above the bound.
  auto s = SmoothWeightedSchedule({1000000, 999999, 1}, /*max_length=*/1000);
  EXPECT_LE(s.size(), 1000u + 3);
  auto n = Count(s);
  ASSERT_EQ(n.size(), 3u) << "an instance lost every pick";
  EXPECT_GE(n[2], 1);
  // The two heavy ones stay within one pick of each other's share.
  EXPECT_NEAR(n[0], n[1], 2);
}

TEST(SmoothWeightedScheduleTest, MoreInstancesThanTheBoundStillGetOneEach) {
  std::vector<uint32_t> w(50, 3);
  w[0] = 1000;
  auto s = SmoothWeightedSchedule(w, /*max_length=*/10);
  auto n = Count(s);
  EXPECT_EQ(n.size(), 50u);
}

}  // namespace
}  // namespace zkroll::client
