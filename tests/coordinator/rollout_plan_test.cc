// The rollout's planning helpers (coordinator/rollout.h), shared by
// RunRollout and the --dry-run plan: batches in order, and the count
// --min-healthy makes.
#include <gtest/gtest.h>

#include "coordinator/rollout.h"

namespace zkroll::coordinator {
namespace {

InstanceAddress A(int port) {
  return *InstanceAddress::Parse("127.0.0.1:" + std::to_string(port));
}

TEST(RolloutPlanTest, BatchesKeepTheOrderAndTheSize) {
  const std::vector<InstanceAddress> t = {A(3), A(1), A(2)};
  auto two = PlanBatches(t, 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0], (std::vector<InstanceAddress>{A(3), A(1)}));
  EXPECT_EQ(two[1], (std::vector<InstanceAddress>{A(2)}));
  EXPECT_EQ(PlanBatches(t, 0).size(), 3u) << "a size below 1 counts as 1";
  EXPECT_EQ(PlanBatches(t, 5).size(), 1u);
  EXPECT_TRUE(PlanBatches({}, 2).empty());
}

TEST(RolloutPlanTest, MinHealthyCountsRegistrationsOutsideTheBatch) {
  const std::vector<std::string> registered = {"127.0.0.1_1", "127.0.0.1_2",
                                               "6c1d1f0e-curator-node"};
  EXPECT_EQ(RegisteredOutside(registered, {A(1)}), 2);
  EXPECT_EQ(RegisteredOutside(registered, {A(1), A(2)}), 1);
  EXPECT_EQ(RegisteredOutside(registered, {A(9)}), 3);
  EXPECT_EQ(RegisteredOutside({}, {A(1)}), 0);
}

}  // namespace
}  // namespace zkroll::coordinator
