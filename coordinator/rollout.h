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
// Protecting itself (docs/coordinator.md, "Rollouts that protect
// themselves"):
//
// --min-healthy-time T  An instance counts as upgraded only once it stayed
//            in service for T after it re-registered (rollout_watch.h);
//            a flap in T fails it (journal step "healthy-time").
// --canary N The first N targets form a batch of their own. With
//            --canary-soak T they must stay in service for T (step
//            "canary-soak" on each canary), then --canary-check runs once
//            (step "canary-check"; exit 0 = good). --canary-promote
//            manual ends the run there: outcome "awaiting-promotion".
// --auto-revert  When the run ends "failed", every instance whose COMMAND
//            ran in this deploy (RolloutResult::touched, including the
//            failed ones) is reverted with RevertInstances.
// --progress-deadline T  The run fails when no instance completed for T
//            (from the start, the last completion or the end of the
//            canary soak, which does not count); the deploys in flight are
//            stopped as by a signal (COMMAND too), and are resumed.
//
// Thread-safety: RunRollout and RevertInstances block the calling thread.
#ifndef ZKROLL_COORDINATOR_ROLLOUT_H_
#define ZKROLL_COORDINATOR_ROLLOUT_H_

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/deploy.h"
#include "coordinator/lock.h"

namespace zkroll::coordinator {

enum class CanaryPromote { kAuto, kManual };

struct RolloutOptions {
  DeployOptions deploy;
  int batch = 1;
  int min_healthy = 0;
  Millis min_healthy_timeout{300000};
  int max_failures = 0;
  Millis min_healthy_time{0};  // 0: registered once is enough
  int canary = 0;              // 0: no canary batch
  Millis canary_soak{0};
  // Run once at the end of the soak (no shell), bounded by
  // deploy.exec_timeout, with ZKROLL_SERVICE, ZKROLL_DEPLOY_ID and
  // ZKROLL_CANARIES (ip:port,ip:port). Empty: none.
  std::vector<std::string> canary_check;
  CanaryPromote canary_promote = CanaryPromote::kAuto;
  std::vector<std::string> revert_command;  // --auto-revert; empty: none
  Millis progress_deadline{0};              // 0: none
};

// What a continued rollout (promote, resume) already has behind it.
struct RolloutState {
  // Instances this deploy id already upgraded (their COMMAND ran), oldest
  // first: a failure reverts them too, after the ones of this run.
  std::vector<InstanceAddress> already_upgraded;
  // The canary stage is over (promoted): no canary batch, no soak.
  bool canary_done = false;
};

struct RevertResult {
  std::vector<InstanceAddress> reverted;  // in the order they were reverted
  // Not back on the old version (their revert failed, was aborted or never
  // started), newest first, and why ("ip:port: why").
  std::vector<InstanceAddress> left;
  std::vector<std::string> failures;
  bool complete() const { return left.empty(); }
};

struct RolloutResult {
  int succeeded = 0;
  int failed = 0;
  int aborted = 0;
  int not_started = 0;
  bool session_lost = false;          // a deploy or the lock saw the session go
  bool min_healthy_stop = false;      // stopped waiting for --min-healthy
  bool progress_deadline_stop = false;  // --progress-deadline passed
  bool canary_failed = false;         // the canary soak or check failed
  bool awaiting_promotion = false;    // --canary-promote manual, canaries passed
  // succeeded | failed | aborted | awaiting-promotion (--canary-promote
  // manual, the canaries passed) | reverted (failed, every touched
  // instance reverted) | revert-incomplete (failed, some not reverted)
  RunOutcome outcome = RunOutcome::kFailed;
  std::string detail;                 // one line for humans
  std::vector<std::string> failures;  // "instance: why", one per failure
  // Upgraded and counted so (state.already_upgraded first), oldest first.
  std::vector<InstanceAddress> upgraded;
  // Every instance whose COMMAND ran in this deploy (state's included),
  // in the order they completed: what a revert must undo.
  std::vector<InstanceAddress> touched;
  std::vector<InstanceAddress> canaries;  // the canary batch of this run
  std::optional<RevertResult> revert;     // set when --auto-revert ran
};

// The batches RunRollout takes `targets` in: consecutive groups of
// `batch_size` (values below 1 count as 1), in order. The dry-run plan
// (plan.h) prints these same batches.
std::vector<std::vector<InstanceAddress>> PlanBatches(
    const std::vector<InstanceAddress>& targets, int batch_size);

// The batches of a rollout with a canary stage: the first `canary` targets
// (at most all of them) as batch 1, then the rest `batch_size` at a time.
// `canary` 0 is PlanBatches.
std::vector<std::vector<InstanceAddress>> PlanRolloutBatches(
    const std::vector<InstanceAddress>& targets, int batch_size, int canary);

// The batches RevertInstances takes `touched` (oldest first) in: newest
// first, `batch_size` at a time.
std::vector<std::vector<InstanceAddress>> PlanRevertBatches(
    const std::vector<InstanceAddress>& touched, int batch_size);

// Checks options against the targets before anything is touched:
// InvalidArgument naming the value when --canary exceeds the number of
// targets.
Status CheckRolloutTargets(const RolloutOptions& options, size_t targets);

// The --progress-deadline clock. Pure: the caller passes the time.
class ProgressClock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // `deadline` 0: never expires.
  ProgressClock(Millis deadline, TimePoint start);
  // An instance completed, or a stage that does not count (the soak)
  // ended: the deadline runs again from `now`.
  void Restart(TimePoint now);
  // While held (the canary soak) the clock never expires.
  void Hold() { held_ = true; }
  bool enabled() const { return deadline_.count() > 0; }
  // TimePoint::max() when disabled or held.
  TimePoint expires_at() const;
  bool Expired(TimePoint now) const { return now >= expires_at(); }
  Millis deadline() const { return deadline_; }

 private:
  Millis deadline_;
  TimePoint last_;
  bool held_ = false;
};

// What --min-healthy counts for `batch`: the registered instances (node
// names under /services/<service>) that are not in the batch.
int RegisteredOutside(const std::vector<std::string>& registered_nodes,
                      const std::vector<InstanceAddress>& batch);

// Deploys `targets` in order: the canary batch (unless state.canary_done),
// then `options.batch` at a time. `lock` (may be null in tests) is checked
// before every batch. To continue a stopped or promoted rollout under the
// same deploy id, pass the targets not yet upgraded and what was
// (`state`). Journals through env.journal (each instance's outcome and
// steps; the caller writes the record's final outcome with
// RolloutResult::outcome and ::detail).
RolloutResult RunRollout(const DeployEnvironment& env,
                         const RolloutOptions& options,
                         const std::vector<InstanceAddress>& targets,
                         ServiceLock* lock, const RolloutState& state = {});

// Reverts `touched` (oldest first, as RolloutResult::touched): newest
// first, options.batch at a time, each with DeployInstance's steps
// (journalled "revert-pause", "revert-drain", ..., instance outcome
// "reverted" or "revert-failed") running options.revert_command instead
// of COMMAND, without --on-failure. A failed revert does not stop the
// others. After a stop request (env.abort) nothing more is started; the
// rest is `left`.
RevertResult RevertInstances(const DeployEnvironment& env,
                             const RolloutOptions& options,
                             const std::vector<InstanceAddress>& touched);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_ROLLOUT_H_
