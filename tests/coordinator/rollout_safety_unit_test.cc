// The pure decisions behind a rollout that protects itself
// (coordinator/rollout.h, rollout_watch.h): the canary batch, the revert
// order, the --progress-deadline clock (driven by the test, never by the
// wall clock), the refusal of --canary beyond the fleet, and what counts as
// leaving service.
#include <gtest/gtest.h>

#include "coordinator/rollout.h"
#include "coordinator/rollout_watch.h"

namespace zkroll::coordinator {
namespace {

using TimePoint = ProgressClock::TimePoint;

InstanceAddress A(int port) {
  return *InstanceAddress::Parse("127.0.0.1:" + std::to_string(port));
}

TEST(RolloutSafetyUnitTest, CanaryIsABatchOfItsOwnThenTheBatchSize) {
  const std::vector<InstanceAddress> t = {A(1), A(2), A(3), A(4), A(5)};
  auto b = PlanRolloutBatches(t, 2, 1);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0], (std::vector<InstanceAddress>{A(1)}));
  EXPECT_EQ(b[1], (std::vector<InstanceAddress>{A(2), A(3)}));
  EXPECT_EQ(b[2], (std::vector<InstanceAddress>{A(4), A(5)}));
  b = PlanRolloutBatches(t, 1, 3);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0], (std::vector<InstanceAddress>{A(1), A(2), A(3)}));
  EXPECT_EQ(PlanRolloutBatches(t, 2, 0), PlanBatches(t, 2));
  EXPECT_EQ(PlanRolloutBatches(t, 2, 5).size(), 1u) << "all canaries";
}

TEST(RolloutSafetyUnitTest, RevertIsNewestFirstInBatches) {
  const std::vector<InstanceAddress> touched = {A(1), A(2), A(3)};
  auto one = PlanRevertBatches(touched, 1);
  ASSERT_EQ(one.size(), 3u);
  EXPECT_EQ(one[0], (std::vector<InstanceAddress>{A(3)}));
  EXPECT_EQ(one[1], (std::vector<InstanceAddress>{A(2)}));
  EXPECT_EQ(one[2], (std::vector<InstanceAddress>{A(1)}));
  auto two = PlanRevertBatches(touched, 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0], (std::vector<InstanceAddress>{A(3), A(2)}));
  EXPECT_EQ(two[1], (std::vector<InstanceAddress>{A(1)}));
  EXPECT_TRUE(PlanRevertBatches({}, 1).empty());
}

TEST(RolloutSafetyUnitTest, CanaryBeyondTheTargetsIsRefused) {
  RolloutOptions o;
  o.canary = 3;
  Status s = CheckRolloutTargets(o, 2);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--canary 3 is more than the 2 instance(s)"),
            std::string::npos)
      << s.message();
  EXPECT_TRUE(CheckRolloutTargets(o, 3).ok());
  o.canary = 0;
  EXPECT_TRUE(CheckRolloutTargets(o, 0).ok());
}

TEST(RolloutSafetyUnitTest, ProgressClockRunsFromTheLastCompletion) {
  const TimePoint t0{std::chrono::seconds(1000)};
  ProgressClock c(Millis(5000), t0);
  EXPECT_TRUE(c.enabled());
  EXPECT_FALSE(c.Expired(t0 + Millis(4999)));
  EXPECT_TRUE(c.Expired(t0 + Millis(5000)));
  c.Restart(t0 + Millis(4000));  // an instance completed
  EXPECT_FALSE(c.Expired(t0 + Millis(8999)));
  EXPECT_TRUE(c.Expired(t0 + Millis(9000)));
  EXPECT_EQ(c.expires_at(), t0 + Millis(9000));
}

TEST(RolloutSafetyUnitTest, ProgressClockHeldDuringTheSoakAndDisabledAtZero) {
  const TimePoint t0{std::chrono::seconds(1000)};
  ProgressClock c(Millis(1000), t0);
  c.Hold();
  EXPECT_FALSE(c.Expired(t0 + std::chrono::hours(5)));
  EXPECT_EQ(c.expires_at(), TimePoint::max());
  c.Restart(t0 + std::chrono::hours(5));  // the soak ended
  EXPECT_FALSE(c.Expired(t0 + std::chrono::hours(5) + Millis(999)));
  EXPECT_TRUE(c.Expired(t0 + std::chrono::hours(5) + Millis(1000)));

  ProgressClock never(Millis(0), t0);
  EXPECT_FALSE(never.enabled());
  EXPECT_FALSE(never.Expired(t0 + std::chrono::hours(1000)));
}

proto::AgentRecord::Instance AgentSees(bool registered, bool healthy,
                                       const std::string& state) {
  proto::AgentRecord::Instance i;
  i.set_registered(registered);
  i.set_healthy(healthy);
  i.set_state(state);
  i.set_last_check("connection refused");
  return i;
}

TEST(RolloutSafetyUnitTest, OutOfServiceWhenDeregisteredOrReportedUnhealthy) {
  InstanceServiceView v;
  v.registered = false;
  ASSERT_TRUE(WhyOutOfService(v).has_value());
  EXPECT_NE(WhyOutOfService(v)->find("registration vanished"),
            std::string::npos);

  v.registered = true;
  v.registered_by = "host-a";
  EXPECT_FALSE(WhyOutOfService(v)) << "no agent record: the node decides";
  v.agent = AgentSees(true, true, "registered");
  EXPECT_FALSE(WhyOutOfService(v));
  v.agent = AgentSees(true, false, "unhealthy");
  ASSERT_TRUE(WhyOutOfService(v).has_value());
  EXPECT_EQ(*WhyOutOfService(v),
            "agent host-a reports it unhealthy (last check: connection "
            "refused)");
  // A record written before the re-registration (paused, or still
  // starting) does not speak for the instance now.
  v.agent = AgentSees(false, false, "paused");
  EXPECT_FALSE(WhyOutOfService(v));
}

}  // namespace
}  // namespace zkroll::coordinator
