// ReloadPlan: what a new, already validated configuration changes for the
// running agent (SIGHUP), as steps the agent applies in order:
//   kRemove  an instance no longer declared: it ends deregistered;
//   kChange  an instance declared again with other settings
//            (InstanceConfig::SameSettings): its checks restart;
//   kAdd     a newly declared instance: it starts.
// Instances declared again with the same settings need no step. Removals
// and changes come in the order of the running instances' ids, then the
// additions in the order of theirs (the order of the agent's log lines).
//
// zk, host, session_timeout, auth_file and metrics_listen are read at
// start only: a change of one is flagged (restart_needed), not applied.
//
// Pure logic; no ZooKeeper call.
#ifndef ZKROLL_AGENT_RELOAD_PLAN_H_
#define ZKROLL_AGENT_RELOAD_PLAN_H_

#include <vector>

#include "agent/config.h"

namespace zkroll::agent {

struct ReloadStep {
  enum class Kind { kRemove, kChange, kAdd };
  Kind kind;
  InstanceConfig cfg;  // kRemove: the running one; else the new one
};

struct ReloadPlan {
  std::vector<ReloadStep> steps;
  bool restart_needed = false;  // a start-only setting differs
  int added = 0, removed = 0, changed = 0;
};

ReloadPlan PlanReload(const AgentConfig& running, const AgentConfig& next);

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_RELOAD_PLAN_H_
