#include "coordinator/resume.h"

#include <glog/logging.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "common/clock.h"
#include "common/paths.h"
#include "coordinator/error_text.h"
#include "coordinator/exit_codes.h"
#include "coordinator/inventory.h"
#include "coordinator/journal.h"
#include "coordinator/lock.h"

namespace zkroll::coordinator {
namespace {

using Clock = std::chrono::steady_clock;

// The outcomes a resume continues. "running" only once nobody holds the
// lock: its coordinator was killed.
const std::set<RunOutcome> kResumable = {
    RunOutcome::kRunning, RunOutcome::kFailed, RunOutcome::kAborted,
    RunOutcome::kAwaitingPromotion};

// The last "command" step that ran COMMAND (a "skipped" one is a resume's
// checks-only pass, which ran nothing), or null.
const proto::DeployRecord::Step* LastCommandStep(
    const proto::DeployRecord::InstanceProgress& inst) {
  const proto::DeployRecord::Step* found = nullptr;
  for (const auto& s : inst.steps()) {
    if (s.name() == "command" && VerdictOf(s) != StepVerdict::kSkipped) {
      found = &s;
    }
  }
  return found;
}

std::string Refuse(const ResumeOptions& o, const std::string& why) {
  return "cannot resume deploy " + o.id.str() + " of " + o.service.str() +
         ": " + why + "; nothing was touched";
}

}  // namespace

Result<ResumePlan> PlanResume(ZkSession* session, const ResumeOptions& o,
                              Millis zk_retry_window) {
  auto rec = ReadJournal(session, o.service, o.id, /*with_steps=*/true);
  if (!rec.ok()) {
    if (rec.status().code() == StatusCode::kNotFound) {
      return InvalidArgument(Refuse(
          o, "there is no such deploy (" + paths::DeployNode(o.service, o.id) +
                 " does not exist); list them with `zkroll history --service " +
                 o.service.str() + "`"));
    }
    return rec.status();
  }
  const std::string& outcome_word = rec->outcome();
  const RunOutcome outcome = OutcomeOf(*rec);
  if (o.promote && outcome != RunOutcome::kAwaitingPromotion) {
    return InvalidArgument(Refuse(
        o, "it is " + QuoteForMessage(outcome_word) +
               ", not awaiting promotion (promote continues a rollout that "
               "stopped after its canary with --canary-promote manual)"));
  }
  if (outcome == RunOutcome::kSucceeded) {
    return InvalidArgument(
        Refuse(o, "it succeeded (ended " + rec->ended_at() +
                      "): every instance is done"));
  }
  auto holder = ReadLockHolder(session, o.service);
  if (!holder.ok()) return holder.status();
  if (*holder) {
    const auto& h = (*holder)->holder;
    if (h.deploy_id() == o.id.str()) {
      return InvalidArgument(Refuse(
          o, "it is running: its coordinator holds the lock " +
                 (*holder)->path + " (" + DescribeHolder(h) +
                 "); stop it first (SIGINT), or resume after its ZooKeeper "
                 "session ended"));
    }
    return InvalidArgument(
        Refuse(o, "another deploy holds the lock " + (*holder)->path + " (" +
                      DescribeHolder(h) + "); resume once it is done"));
  }
  if (kResumable.count(outcome) == 0) {
    return InvalidArgument(Refuse(
        o,
        "its outcome " + QuoteForMessage(outcome_word) + " cannot be resumed"));
  }
  auto request = RolloutRequest::FromParameters(*rec, zk_retry_window);
  if (!request.ok()) {
    return InvalidArgument(Refuse(o, request.status().message()));
  }
  const bool switching = request->options.deploy.switching.enabled;

  ResumePlan plan;
  plan.record = *rec;
  std::vector<InstanceAddress> in_plan;
  for (const auto& inst : rec->instances()) {
    auto a = InstanceAddress::ParseNodeName(inst.instance());
    if (!a.ok()) {
      return InvalidArgument(Refuse(
          o, "the journal names an instance " +
                 QuoteForMessage(inst.instance()) + " that does not parse: " +
                 a.status().message()));
    }
    in_plan.push_back(*a);
    const std::string name = a->ToString();
    if (OutcomeOf(inst) == InstanceOutcome::kSucceeded) {
      plan.done.push_back(*a);
      continue;
    }
    const proto::DeployRecord::Step* cmd = LastCommandStep(inst);
    const StepVerdict verdict =
        cmd == nullptr ? StepVerdict::kRunning : VerdictOf(*cmd);
    if (cmd == nullptr || verdict == StepVerdict::kFailed ||
        verdict == StepVerdict::kAborted ||
        (verdict == StepVerdict::kOk &&
         OutcomeOf(inst) == InstanceOutcome::kFailed)) {
      plan.full.push_back(*a);
      plan.reasons.push_back(
          name + ": deployed in full (" +
          (cmd == nullptr ? std::string("its COMMAND never started")
           : verdict == StepVerdict::kOk
               ? std::string("it failed after COMMAND; a new attempt")
               : "its COMMAND " + cmd->verdict() + "; a new attempt") +
          ")");
      continue;
    }
    if (verdict == StepVerdict::kOk) {
      if (switching && !o.rerun_command) {
        return InvalidArgument(Refuse(
            o, name + " ran COMMAND but did not finish its --switch; a "
                      "switch cannot be completed without COMMAND: resume "
                      "with --rerun-command to deploy it again"));
      }
      (o.rerun_command && switching ? plan.full : plan.checks_only)
          .push_back(*a);
      plan.reasons.push_back(name +
                             (o.rerun_command && switching
                                  ? ": deployed in full (--rerun-command)"
                                  : ": COMMAND succeeded before the stop; "
                                    "checked and resumed without it"));
      continue;
    }
    // COMMAND was running when its coordinator was stopped: its outcome is
    // unknown and it may still run.
    if (switching && !o.rerun_command) {
      return InvalidArgument(Refuse(
          o, "the COMMAND of " + name +
                 " was running when its coordinator stopped, in a --switch "
                 "deploy, which cannot be completed without COMMAND: make "
                 "sure it has ended, then resume with --rerun-command"));
    }
    if (!cmd->has_process()) {
      if (!o.command_ended) {
        return InvalidArgument(Refuse(
            o, "the COMMAND of " + name +
                   " was starting when its coordinator stopped (a pid "
                   "reaches the journal within 2 s), and its "
                   "process is not on record, so zkroll cannot tell whether "
                   "it ran or still runs (coordinator " + rec->by() +
                   "). Make sure it is not running, then resume with "
                   "--command-ended (the checks decide) or with "
                   "--command-ended --rerun-command (COMMAND runs again)"));
      }
    } else {
      const ProcessIdentity& p = cmd->process();
      switch (StateOf(p)) {
        case ProcessState::kElsewhere:
          if (!o.command_ended) {
            return InvalidArgument(Refuse(
                o, "the COMMAND of " + name + " was running as " +
                       DescribeProcess(p) +
                       " when its coordinator stopped; that host is not this "
                       "one (" + ThisHost() +
                       "), so zkroll cannot wait for it. Resume on " +
                       p.host() +
                       ", or make sure it ended and resume with "
                       "--command-ended"));
          }
          break;
        case ProcessState::kRunning:
          plan.wait_for.emplace_back(*a, p);
          break;
        case ProcessState::kGone:
          break;
      }
    }
    (o.rerun_command ? plan.full : plan.checks_only).push_back(*a);
    plan.reasons.push_back(
        name + ": its COMMAND was running when its coordinator stopped" +
        (cmd->has_process() ? " (" + DescribeProcess(cmd->process()) + ")"
                            : std::string()) +
        (o.rerun_command
             ? "; once it has ended COMMAND runs again (--rerun-command)"
             : "; once it has ended the instance is checked and resumed "
               "without running COMMAND again"));
  }

  // The plan must still match the service's instances, or what "the rest"
  // means is ambiguous.
  auto inv = LoadInventory(session, o.service);
  if (!inv.ok()) return inv.status();
  if (!request->force) {
    for (const auto* group : {&plan.checks_only, &plan.full}) {
      for (const auto& a : *group) {
        if (inv->Knows(a)) continue;
        return InvalidArgument(Refuse(
            o, "the service's instances changed: " + a.ToString() +
                   ", not done yet, is no longer declared by any agent nor "
                   "registered, so the rest of the plan is ambiguous; start "
                   "a new rollout (with --instances naming what is left)"));
      }
    }
  }
  if (request->from_agents) {
    const std::set<InstanceAddress> planned(in_plan.begin(), in_plan.end());
    for (const auto& a : inv->DeclaredInstances()) {
      if (planned.count(a)) continue;
      return InvalidArgument(Refuse(
          o, "the service's instances changed: agents now declare " +
                 a.ToString() +
                 ", which the plan (every instance declared when the "
                 "rollout started) does not have, so whether the rest "
                 "includes it is ambiguous; deploy it with a new rollout "
                 "once this one's instances are done (name them with "
                 "--instances)"));
    }
  }
  plan.request = *std::move(request);
  // The remaining instances become the targets, the batch in progress
  // first: Prepare is not run again, so from_agents must not refill them.
  plan.request.targets = plan.checks_only;
  plan.request.targets.insert(plan.request.targets.end(), plan.full.begin(),
                              plan.full.end());
  plan.request.from_agents = false;
  return plan;
}

std::optional<PrepareFailure> PrepareContinuation(Connection* connection,
                                                  Reporter* reporter,
                                                  const RolloutRequest& request,
                                                  const std::string& what,
                                                  PreparedRollout* out) {
  ZkSession* zk = connection->session();
  for (const auto& line : RemoveExpiredFlags(zk, request.service)) {
    reporter->Notice(line);
  }
  auto lock = ServiceLock::Acquire(zk, request.service,
                                   MakeLockHolder(request.id, "rollout"),
                                   connection->AclFor(paths::kLocksRoot));
  if (!lock.ok()) {
    if (lock.status().code() == StatusCode::kFailedPrecondition) {
      return PrepareFailure{kExitUsage,
                            "cannot continue deploy " + request.id.str() +
                                ": " + lock.status().message() +
                                "; nothing was touched"};
    }
    return PrepareFailure{kExitUnavailable,
                          "cannot take the lock of " + request.service.str() +
                              ": " + lock.status().ToString() +
                              Hint(lock.status())};
  }
  proto::DeployRecord::Resumption note;
  note.set_at(NowRfc3339());
  note.set_by(CurrentUserAtHost());
  note.set_pid(static_cast<int32_t>(::getpid()));
  note.set_detail(what);
  auto journal = Journal::Reopen(zk, connection->AclFor(paths::kDeploysRoot),
                                 request.service, request.id, note,
                                 connection->connect_timeout());
  if (!journal.ok()) {
    Status released = (*lock)->Release();
    if (!released.ok()) LOG(WARNING) << released.ToString();
    return PrepareFailure{ExitCodeFor(journal.status()) == kExitUsage
                              ? kExitUsage
                              : kExitUnavailable,
                          "cannot reopen the journal: " +
                              Explain(journal.status())};
  }
  out->lock = std::move(lock).value();
  out->journal = std::move(journal).value();
  reporter->Notice(request.kind + " " + request.id.str() + " of " +
                   request.service.str() + ": " + what + "; lock " +
                   out->lock->path() + ", journal " + out->journal->path());
  return std::nullopt;
}

std::optional<PrepareFailure> PrepareResume(Connection* connection,
                                            Reporter* reporter,
                                            const ResumePlan& plan,
                                            PreparedRollout* out) {
  const std::string what =
      "resuming: " + std::to_string(plan.done.size()) + " instance(s) done, " +
      std::to_string(plan.checks_only.size()) +
      " to check and resume without COMMAND, " +
      std::to_string(plan.full.size()) + " to deploy";
  if (auto failed = PrepareContinuation(connection, reporter, plan.request,
                                        what, out)) {
    return failed;
  }
  for (const auto& r : plan.reasons) reporter->Notice(r);
  return std::nullopt;
}

Result<RevertPlan> PlanRevert(ZkSession* session, const RevertOptions& o,
                              Millis zk_retry_window) {
  auto refuse = [&](const std::string& why) {
    return InvalidArgument("cannot revert deploy " + o.id.str() + " of " +
                           o.service.str() + ": " + why +
                           "; nothing was touched");
  };
  auto rec = ReadJournal(session, o.service, o.id, /*with_steps=*/true);
  if (!rec.ok()) {
    if (rec.status().code() == StatusCode::kNotFound) {
      return refuse("there is no such deploy (" +
                    paths::DeployNode(o.service, o.id) +
                    " does not exist); list them with `zkroll history "
                    "--service " +
                    o.service.str() + "`");
    }
    return rec.status();
  }
  auto holder = ReadLockHolder(session, o.service);
  if (!holder.ok()) return holder.status();
  if (*holder) {
    return refuse(((*holder)->holder.deploy_id() == o.id.str()
                       ? std::string("it is running: its coordinator holds "
                                     "the lock ")
                       : std::string("another deploy holds the lock ")) +
                  (*holder)->path + " (" + DescribeHolder((*holder)->holder) +
                  ")");
  }
  auto request = RolloutRequest::FromParameters(*rec, zk_retry_window);
  if (!request.ok()) return refuse(request.status().message());
  if (request->options.deploy.switching.enabled) {
    return refuse(
        "it is a --switch deploy: a switch that failed already went back to "
        "the old port, and one that succeeded is undone by a new deploy");
  }
  if (!o.revert_command.empty()) {
    request->options.revert_command = o.revert_command;
  }
  if (request->options.revert_command.empty()) {
    return refuse(
        "it recorded no --auto-revert command; give the command that reverts "
        "one instance with --revert-command or after `--`");
  }
  std::vector<std::pair<std::string, InstanceAddress>> started;
  for (const auto& inst : rec->instances()) {
    if (OutcomeOf(inst) == InstanceOutcome::kReverted) continue;
    const proto::DeployRecord::Step* cmd = LastCommandStep(inst);
    if (cmd == nullptr) continue;
    // Only a COMMAND that was started: "aborted" without a process is one
    // that was never run (its start could not be recorded).
    const StepVerdict verdict = VerdictOf(*cmd);
    const bool ran = verdict == StepVerdict::kOk ||
                     verdict == StepVerdict::kFailed ||
                     verdict == StepVerdict::kRunning || cmd->has_process();
    if (!ran) continue;
    auto a = InstanceAddress::ParseNodeName(inst.instance());
    if (!a.ok()) continue;
    if (verdict == StepVerdict::kRunning && cmd->has_process() &&
        StateOf(cmd->process()) == ProcessState::kRunning) {
      return refuse("the COMMAND of " + a->ToString() + " still runs (" +
                    DescribeProcess(cmd->process()) +
                    "), started by a coordinator that stopped; wait until it "
                    "ended");
    }
    started.emplace_back(cmd->started_at(), *a);
  }
  if (started.empty()) {
    return refuse("no instance ran its COMMAND in it (or every one is "
                  "reverted already): nothing to revert");
  }
  // RFC 3339 times in UTC sort as text.
  std::stable_sort(started.begin(), started.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  RevertPlan plan;
  plan.record = *rec;
  plan.request = *std::move(request);
  for (const auto& [at, a] : started) plan.touched.push_back(a);
  return plan;
}

RolloutResult RunResume(const DeployEnvironment& env, const ResumePlan& plan,
                        ServiceLock* lock) {
  RolloutOptions options = plan.request.options;
  // In-flight COMMANDs first: nothing touches their instances before they
  // ended. A dead coordinator would have stopped its COMMAND at
  // --exec-timeout; that is as long as we wait.
  for (const auto& [address, process] : plan.wait_for) {
    if (StateOf(process) != ProcessState::kRunning) continue;
    env.reporter->Notice(
        "waiting for the COMMAND of " + address.ToString() + " (" +
        DescribeProcess(process) +
        "), started by the stopped coordinator, to end (at most "
        "--exec-timeout " +
        FormatDuration(options.deploy.exec_timeout) + ")");
    Status gone = WaitProcessGone(
        process, Clock::now() + options.deploy.exec_timeout, env.abort);
    if (!gone.ok()) {
      RolloutResult stopped;
      stopped.outcome = gone.code() == StatusCode::kAborted
                            ? RunOutcome::kAborted
                            : RunOutcome::kFailed;
      stopped.not_started = static_cast<int>(plan.request.targets.size());
      stopped.detail =
          "nothing was deployed: the COMMAND of " + address.ToString() +
          " (" + DescribeProcess(process) + ") " +
          (gone.code() == StatusCode::kAborted
               ? std::string("was still running when the resume was stopped")
               : "still runs after --exec-timeout " +
                     FormatDuration(options.deploy.exec_timeout) +
                     "; stop it, then resume again");
      stopped.failures.push_back(address.ToString() + ": " + gone.message());
      return stopped;
    }
  }
  options.deploy.command_ran_before.insert(plan.checks_only.begin(),
                                           plan.checks_only.end());
  RolloutState state;
  state.already_upgraded = plan.done;
  // The canaries were the first --canary targets: once they are done (or
  // the record awaited promotion) the canary stage is over.
  state.canary_done =
      OutcomeOf(plan.record) == RunOutcome::kAwaitingPromotion ||
      static_cast<int>(plan.done.size()) >= options.canary;
  RolloutResult r = RunRollout(env, options, plan.request.targets, lock, state);
  r.detail = std::to_string(plan.done.size()) + " done before; " + r.detail;
  return r;
}

}  // namespace zkroll::coordinator
