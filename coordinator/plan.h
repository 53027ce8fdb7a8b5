// The dry-run of `zkroll rollout` and `zkroll deploy` (--dry-run): what the
// run would do and whether it could start, read from ZooKeeper without
// writing anything to it (no lock, no journal, no removal of expired pause
// flags, no parent nodes created).
//
// The plan is made by the rollout's own code: the inventory and target
// selection of inventory.h, the batches of rollout.h (PlanBatches) and the
// count --min-healthy makes (RegisteredOutside). For each batch, in the
// order the rollout takes them, it shows each instance's registration, the
// declaring agents' view of its health and its pause flag, and whether
// --min-healthy is met now and could be met at all; and it shows the lock
// holder, if any.
//
// A plan cannot start (`blockers` not empty) when the service's lock is
// held, when an instance to deploy is paused by a flag that has not expired
// (the deploy of it would fail without touching it), or when --min-healthy
// can never be met for a batch (fewer instances outside it could ever be
// registered). A batch whose minimum is not met now but could be is a note:
// the rollout would wait up to --min-healthy-timeout.
//
// Thread-safety: free functions over a ZkSession; safe from any thread.
#ifndef ZKROLL_COORDINATOR_PLAN_H_
#define ZKROLL_COORDINATOR_PLAN_H_

#include <string>
#include <vector>

#include "common/duration.h"
#include "common/names.h"
#include "common/status.h"
#include "common/zk_session.h"
#include "coordinator/reporter.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator {

struct PlanRequest {
  std::string kind;                      // deploy | rollout
  std::vector<InstanceAddress> targets;  // ignored when from_agents
  bool from_agents = false;
  bool force = false;
  int batch = 1;
  int min_healthy = 0;
  int canary = 0;  // rollout --canary: batch 1 is the canary batch
  Millis canary_soak{0};
  bool canary_manual = false;  // --canary-promote manual
};

// Reads the plan (a "plan" event, stamped). Errors: NotFound when nothing
// is known of `service` (no agent declares, no instance is registered or
// paused) and no instance is forced; InvalidArgument for targets the
// rollout would refuse (SelectTargets, or fewer than --canary); ZooKeeper
// failures.
Result<proto::PlanEvent> MakePlan(ZkSession* session,
                                  const ServiceName& service,
                                  const PlanRequest& request);

// Prints `plan`: text lines, or the "plan" event in JSON mode. The caller
// reports the verdict (Reporter::Result).
void PrintPlan(const proto::PlanEvent& plan, Reporter* reporter);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_PLAN_H_
