// Rollout: the deploy of deploy.h, run for K instances at a time.
//
// Before each batch the rollout makes sure that at least --min-healthy
// instances outside the batch are registered, waiting (with a watch on
// /services/<service>) up to --min-healthy-timeout; if they never are, it
// stops without touching the batch. The instances of a batch are deployed
// in parallel, one thread each. After a batch, the rollout stops if more
// than --max-failures instances have failed so far, if a stop was requested
// (SIGINT/SIGTERM), or if the coordinator's lock or session was lost: it
// never takes further instances down after that.
//
// The check of --min-healthy is made just before a batch starts; an
// instance that fails its agent's checks during the batch can still bring
// the count below the minimum. That is the agent's decision to make, not
// the coordinator's.
//
// Thread-safety: RunRollout blocks the calling thread.
#ifndef ZKROLL_COORDINATOR_ROLLOUT_H_
#define ZKROLL_COORDINATOR_ROLLOUT_H_

#include <string>
#include <vector>

#include "coordinator/deploy.h"
#include "coordinator/lock.h"

namespace zkroll::coordinator {

struct RolloutOptions {
  DeployOptions deploy;
  int batch = 1;
  int min_healthy = 0;
  Millis min_healthy_timeout{300000};
  int max_failures = 0;
};

struct RolloutResult {
  int succeeded = 0;
  int failed = 0;
  int aborted = 0;
  int not_started = 0;
  bool session_lost = false;          // a deploy or the lock saw the session go
  bool min_healthy_stop = false;      // stopped waiting for --min-healthy
  std::string outcome;                // succeeded | failed | aborted
  std::string detail;                 // one line for humans
  std::vector<std::string> failures;  // "instance: why", one per failure
};

// The batches RunRollout takes `targets` in: consecutive groups of
// `batch_size` (values below 1 count as 1), in order. The dry-run plan
// (plan.h) prints these same batches.
std::vector<std::vector<InstanceAddress>> PlanBatches(
    const std::vector<InstanceAddress>& targets, int batch_size);

// What --min-healthy counts for `batch`: the registered instances (node
// names under /services/<service>) that are not in the batch.
int RegisteredOutside(const std::vector<std::string>& registered_nodes,
                      const std::vector<InstanceAddress>& batch);

// Deploys `targets` in order, `options.batch` at a time. `lock` (may be
// null in tests) is checked before every batch.
RolloutResult RunRollout(const DeployEnvironment& env,
                         const RolloutOptions& options,
                         const std::vector<InstanceAddress>& targets,
                         ServiceLock* lock);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_ROLLOUT_H_
