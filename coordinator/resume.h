// Resume: continues a deploy or rollout that stopped (it failed, was
// aborted, its coordinator was killed, or it awaits promotion) from its
// journal, with the request its journal recorded (RolloutRequest::
// FromParameters), on the instances not yet done. docs/design.md,
// "Resume", states the rules; in short:
//
//  - an instance whose journal says "succeeded" is never touched again;
//  - an instance whose COMMAND never started (no "command" step, or one
//    that failed or was stopped by its coordinator) is deployed in full;
//  - an instance whose COMMAND finished well but whose checks, resume or
//    re-registration did not complete is deployed without COMMAND: pause,
//    drain, checks, resume ("command" recorded "skipped");
//  - an instance whose COMMAND was running when its coordinator was killed
//    (step "command" still "running"): its outcome is unknown and it may
//    still run (a SIGKILLed coordinator does not stop it). The resume waits
//    until that process (recorded by host, boot, pid and start time) has
//    ended, at most --exec-timeout, then deploys the instance without
//    COMMAND, its checks deciding; COMMAND runs again only with
//    --rerun-command. A process that cannot be observed (another host, or
//    not on record because the kill fell between the step's write and the
//    spawn) refuses the resume unless --command-ended says it has ended.
//
// PlanResume decides and writes nothing; its refusals are InvalidArgument
// (exit 2) naming the reason: unknown id, a deploy that succeeded, one that
// is running (the lock is held), a plan the service's instances no longer
// match, an in-flight COMMAND that cannot be waited for.
//
// Thread-safety: call from the coordinator's main thread.
#ifndef ZKROLL_COORDINATOR_RESUME_H_
#define ZKROLL_COORDINATOR_RESUME_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/duration.h"
#include "common/names.h"
#include "common/status.h"
#include "common/zk_session.h"
#include "coordinator/process_identity.h"
#include "coordinator/rollout.h"
#include "coordinator/rollout_request.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator {

struct ResumeOptions {
  ServiceName service;
  DeployId id = DeployId::Generate();
  bool rerun_command = false;  // --rerun-command
  bool command_ended = false;  // --command-ended
  bool promote = false;  // `zkroll promote`: only "awaiting-promotion"
};

struct ResumePlan {
  proto::DeployRecord record;  // as read, with every instance's steps
  RolloutRequest request;      // rebuilt from the record
  std::vector<InstanceAddress> done;         // succeeded: never touched
  std::vector<InstanceAddress> checks_only;  // deployed without COMMAND
  std::vector<InstanceAddress> full;         // deployed in full
  // In-flight COMMANDs still running on this host: waited for first.
  std::vector<std::pair<InstanceAddress, ProcessIdentity>> wait_for;
  // One line per instance not done: what the resume does and why.
  std::vector<std::string> reasons;
};

// Reads the journal of options.id, the service lock and the inventory, and
// decides what a resume does (see the file comment). Writes nothing.
Result<ResumePlan> PlanResume(ZkSession* session, const ResumeOptions& options,
                              Millis zk_retry_window);

// Runs `plan` once prepared (the lock taken, the journal reopened: `env`
// carries both): waits for the in-flight COMMANDs, then continues the
// rollout (RunRollout with RolloutState: the done instances count as
// upgraded, so --auto-revert reverts them too; the canary stage is over
// once as many instances as --canary are done, or the record awaited
// promotion) on the remaining targets, the checks-only ones first (they
// were the batch in progress) with DeployOptions::command_ran_before. The
// counts are this run's; the outcome is the whole rollout's.
RolloutResult RunResume(const DeployEnvironment& env, const ResumePlan& plan,
                        ServiceLock* lock);

// Takes the lock (a holder that appeared since PlanResume: exit 2) and
// reopens the journal with a "resumed" note. Nothing is left behind on
// failure.
std::optional<PrepareFailure> PrepareResume(Connection* connection,
                                            Reporter* reporter,
                                            const ResumePlan& plan,
                                            PreparedRollout* out);

// `zkroll revert`: undoes what deploy `id` upgraded.
struct RevertOptions {
  ServiceName service;
  DeployId id = DeployId::Generate();
  // --revert-command or `-- REVERT_CMD`; empty: the recorded --auto-revert.
  std::vector<std::string> revert_command;
};

struct RevertPlan {
  proto::DeployRecord record;
  RolloutRequest request;  // rebuilt; options.revert_command is the one used
  // The instances whose COMMAND ran in that deploy and that are not
  // reverted yet, in the order their COMMAND started (RevertInstances takes
  // them newest first).
  std::vector<InstanceAddress> touched;
};

// Reads the journal and the lock and decides; writes nothing. Refusals
// (InvalidArgument, exit 2): unknown id, running (lock held), a --switch
// deploy, nothing to revert, no revert command, a COMMAND of a killed
// coordinator that still runs.
Result<RevertPlan> PlanRevert(ZkSession* session, const RevertOptions& options,
                              Millis zk_retry_window);

// Takes the lock and reopens the journal of `request` with a note saying
// `what` (resume and revert). Nothing is left behind on failure.
std::optional<PrepareFailure> PrepareContinuation(Connection* connection,
                                                  Reporter* reporter,
                                                  const RolloutRequest& request,
                                                  const std::string& what,
                                                  PreparedRollout* out);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_RESUME_H_
