#include "agent/reload_plan.h"

#include <gtest/gtest.h>

namespace zkroll::agent {
namespace {

InstanceConfig Instance(const std::string& id) {
  InstanceConfig c;
  c.id = InstanceId::Parse(id).value();
  return c;
}

std::vector<std::string> Steps(const ReloadPlan& plan) {
  std::vector<std::string> out;
  for (const ReloadStep& s : plan.steps) {
    const char* kind = s.kind == ReloadStep::Kind::kRemove   ? "remove "
                       : s.kind == ReloadStep::Kind::kChange ? "change "
                                                             : "add ";
    out.push_back(kind + s.cfg.id.ToString());
  }
  return out;
}

TEST(ReloadPlanTest, RemovesChangesThenAddsInTheOrderOfIds) {
  AgentConfig running, next;
  running.instances = {Instance("b@10.0.0.1:80"), Instance("a@10.0.0.1:80"),
                       Instance("c@10.0.0.1:80"), Instance("d@10.0.0.1:80")};
  InstanceConfig changed = Instance("c@10.0.0.1:80");
  changed.rise = 5;
  changed.origin = "another file";  // where it was declared is no setting
  InstanceConfig moved = Instance("d@10.0.0.1:80");
  moved.origin = "elsewhere";
  next.instances = {Instance("e@10.0.0.1:80"), changed, moved,
                    Instance("aa@10.0.0.1:80")};
  ReloadPlan plan = PlanReload(running, next);
  EXPECT_EQ(Steps(plan),
            (std::vector<std::string>{"remove a@10.0.0.1:80",
                                      "remove b@10.0.0.1:80",
                                      "change c@10.0.0.1:80",
                                      "add aa@10.0.0.1:80",
                                      "add e@10.0.0.1:80"}));
  EXPECT_EQ(plan.removed, 2);
  EXPECT_EQ(plan.changed, 1);
  EXPECT_EQ(plan.added, 2);
  EXPECT_EQ(plan.steps[2].cfg.rise, 5) << "a change carries the new settings";
  EXPECT_FALSE(plan.restart_needed);
}

TEST(ReloadPlanTest, SameConfigurationNeedsNothing) {
  AgentConfig running;
  running.instances = {Instance("a@10.0.0.1:80")};
  ReloadPlan plan = PlanReload(running, running);
  EXPECT_TRUE(plan.steps.empty());
  EXPECT_FALSE(plan.restart_needed);
}

TEST(ReloadPlanTest, StartOnlySettingsAreFlaggedNotPlanned) {
  AgentConfig running;
  running.instances = {Instance("a@10.0.0.1:80")};
  auto flagged = [&](auto change) {
    AgentConfig next = running;
    change(next);
    ReloadPlan plan = PlanReload(running, next);
    return plan.restart_needed && plan.steps.empty();
  };
  EXPECT_TRUE(flagged([](AgentConfig& c) { c.zk = "elsewhere:2181"; }));
  EXPECT_TRUE(flagged([](AgentConfig& c) { c.host = "other"; }));
  EXPECT_TRUE(flagged([](AgentConfig& c) { c.session_timeout = Millis(999); }));
  EXPECT_TRUE(flagged([](AgentConfig& c) { c.auth_file = "/etc/auth"; }));
  EXPECT_TRUE(flagged([](AgentConfig& c) { c.metrics_listen.reset(); }));
  EXPECT_FALSE(flagged([](AgentConfig& c) { c.resync = Millis(1); }));
}

}  // namespace
}  // namespace zkroll::agent
