// Hysteresis: the rise/fall state machine behind HealthMonitor.
#include <gtest/gtest.h>

#include <string>

#include "common/health/monitor.h"

namespace zkroll::health {
namespace {

struct Case {
  const char* name;
  int rise;
  int fall;
  bool initially_healthy;
  // One character per observed result: 'P' pass, 'F' fail.
  const char* results;
  // The expected state after each result ('H' healthy, 'U' unhealthy) and
  // whether that result flipped it (upper case 'H'/'U' = no flip, lower case
  // 'h'/'u' = this result caused the transition).
  const char* expected;
};

TEST(HysteresisTest, Table) {
  const Case cases[] = {
      {"rises after two passes", 2, 3, false, "PP", "Uh"},
      {"a failure resets the rise streak", 2, 3, false, "PFPP", "UUUh"},
      {"falls after three failures", 2, 3, true, "FFF", "HHu"},
      {"a pass resets the fall streak", 2, 3, true, "FFPFFF", "HHHHHu"},
      {"flapping keeps the state", 2, 2, true, "FPFPFPFP", "HHHHHHHH"},
      {"flapping keeps unhealthy too", 2, 2, false, "PFPFPF", "UUUUUU"},
      {"rise 1 fall 1 follows every result", 1, 1, false, "PFFPP", "huUhH"},
      {"full cycle", 2, 3, false, "PPPFFFFPP", "UhHHHuUUh"},
      {"only one transition per streak", 3, 2, false, "PPPPPPFFFF",
       "UUhHHHHuUU"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Hysteresis h(c.rise, c.fall, c.initially_healthy);
    EXPECT_EQ(h.healthy(), c.initially_healthy);
    std::string results = c.results;
    std::string expected = c.expected;
    ASSERT_EQ(results.size(), expected.size());
    for (size_t i = 0; i < results.size(); ++i) {
      bool flipped = h.Observe(results[i] == 'P');
      char want = expected[i];
      bool want_healthy = want == 'H' || want == 'h';
      bool want_flip = want == 'h' || want == 'u';
      EXPECT_EQ(h.healthy(), want_healthy) << "after result " << i;
      EXPECT_EQ(flipped, want_flip) << "after result " << i;
    }
  }
}

TEST(HysteresisTest, CountsStreaks) {
  Hysteresis h(2, 3);
  h.Observe(true);
  h.Observe(true);
  h.Observe(true);
  EXPECT_EQ(h.consecutive_passes(), 3);
  EXPECT_EQ(h.consecutive_failures(), 0);
  h.Observe(false);
  EXPECT_EQ(h.consecutive_passes(), 0);
  EXPECT_EQ(h.consecutive_failures(), 1);
}

TEST(HysteresisTest, ForceHealthyThenNormalFall) {
  Hysteresis h(5, 2);
  h.Observe(false);  // one failure before the force must not count later
  h.ForceHealthy();
  EXPECT_TRUE(h.healthy());
  EXPECT_FALSE(h.Observe(false));
  EXPECT_TRUE(h.Observe(false));
  EXPECT_FALSE(h.healthy());
}

TEST(HysteresisTest, ForceUnhealthyNeedsAFullRise) {
  Hysteresis h(3, 2);
  for (int i = 0; i < 5; ++i) h.Observe(true);
  ASSERT_TRUE(h.healthy());
  h.ForceUnhealthy();
  EXPECT_FALSE(h.healthy());
  // The passes before the force do not count towards the rise.
  EXPECT_FALSE(h.Observe(true));
  EXPECT_FALSE(h.Observe(true));
  EXPECT_TRUE(h.Observe(true));
  EXPECT_TRUE(h.healthy());
}

TEST(HysteresisTest, ForcingTheCurrentStateIsNotAFlip) {
  Hysteresis h(1, 1, true);
  h.ForceHealthy();
  EXPECT_TRUE(h.healthy());
  EXPECT_FALSE(h.Observe(true));
}

}  // namespace
}  // namespace zkroll::health
