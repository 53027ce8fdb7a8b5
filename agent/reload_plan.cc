#include "agent/reload_plan.h"

#include <map>

namespace zkroll::agent {

ReloadPlan PlanReload(const AgentConfig& running, const AgentConfig& next) {
  ReloadPlan plan;
  auto listen = [](const AgentConfig& c) {
    return c.metrics_listen ? c.metrics_listen->ToString() : std::string();
  };
  plan.restart_needed = next.zk != running.zk || next.host != running.host ||
                        next.session_timeout != running.session_timeout ||
                        next.auth_file != running.auth_file ||
                        listen(next) != listen(running);
  std::map<InstanceId, const InstanceConfig*> now, wanted;
  for (const auto& c : running.instances) now[c.id] = &c;
  for (const auto& c : next.instances) wanted[c.id] = &c;
  for (const auto& [id, cfg] : now) {
    auto w = wanted.find(id);
    if (w == wanted.end()) {
      plan.steps.push_back({ReloadStep::Kind::kRemove, *cfg});
      ++plan.removed;
    } else if (!w->second->SameSettings(*cfg)) {
      plan.steps.push_back({ReloadStep::Kind::kChange, *w->second});
      ++plan.changed;
    }
  }
  for (const auto& [id, cfg] : wanted) {
    if (now.count(id)) continue;
    plan.steps.push_back({ReloadStep::Kind::kAdd, *cfg});
    ++plan.added;
  }
  return plan;
}

}  // namespace zkroll::agent
