#include "coordinator/deploy.h"

#include <glog/logging.h>

#include <unistd.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <csignal>
#include <memory>
#include <mutex>
#include <optional>

#include "common/clock.h"
#include "common/paths.h"
#include "common/payload.h"
#include "common/registry.h"
#include "coordinator/command.h"
#include "coordinator/connection.h"
#include "coordinator/inventory.h"
#include "coordinator/instance_deploy.h"
#include "coordinator/lock.h"
#include "coordinator/node_wait.h"
#include "coordinator/process_identity.h"
#include "coordinator/session_fence.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator {
namespace detail {

InstanceDeploy::Step InstanceDeploy::Begin(const std::string& name,
                                           const std::string& detail,
                                           bool announce, bool runs_command) {
  Step s;
  s.name = opt_.revert ? "revert-" + name : name;
  s.start = Clock::now();
  s.open = true;
  // A command's start is on record before it runs, so a coordinator that
  // dies in it leaves it visible as "running"; a long step without one is
  // on record within the journal's flush delay.
  if (env_.journal) {
    s.journal_sent = Clock::now();
    s.journal_index = env_.journal->BeginStep(
        address_, s.name, detail, /*persist=*/runs_command, &s.journalled);
  }
  env_.reporter->StepStarted(label_, s.name, detail, announce);
  return s;
}

void InstanceDeploy::End(Step& step, StepVerdict verdict,
                         const std::string& detail) {
  if (!step.open) return;
  step.open = false;
  Millis took = Since(step.start);
  if (env_.journal) {
    env_.journal->EndStep(address_, step.journal_index, verdict, detail);
  }
  env_.reporter->StepEnded(label_, step.name, WireString(verdict), took,
                           detail);
  result_.steps.push_back(StepTiming{step.name, verdict, took, detail});
}

CommandSpec InstanceDeploy::MakeCommand(
    const std::vector<std::string>& argv) const {
  CommandSpec spec;
  spec.argv = argv;
  spec.env = CommandEnvironment(env_.service, address_, env_.deploy_id);
  AddCommandEnvironment(&spec);
  if (opt_.revert) spec.env["ZKROLL_REVERT"] = "1";
  spec.timeout = opt_.exec_timeout;
  return spec;
}

void PauseDeploy::AddCommandEnvironment(CommandSpec* spec) const {
  // The zxid that created the flag verified just before COMMAND: an
  // upgrade script can compare it with the flag there now.
  if (fence_zxid_ != 0) spec->env["ZKROLL_FENCE"] = std::to_string(fence_zxid_);
}

DeployResult InstanceDeploy::Finish(DeployOutcome outcome,
                                    const std::string& detail) {
  result_.outcome = outcome;
  result_.detail = detail;
  result_.command_started = command_started_;
  if (env_.journal) {
    env_.journal->SetInstanceOutcome(address_,
                                     InstanceOutcomeOf(outcome, opt_.revert));
  }
  return result_;
}

DeployResult PauseDeploy::Run() {
  if (env_.journal) {
    env_.journal->SetInstanceOutcome(address_, opt_.revert
                                                   ? InstanceOutcome::kReverting
                                                   : InstanceOutcome::kRunning);
  }
  auto finish = [&](DeployOutcome outcome, const std::string& detail) {
    result_.touched = flag_created_;
    return Finish(outcome, detail);
  };

  if (env_.abort->requested()) {
    return finish(DeployOutcome::kAborted,
                  "stopped before it started; nothing was touched");
  }
  if (opt_.drain_mode == DrainMode::kAuto) StartObservation();
  if (auto stop = Pause()) {
    StopObservation();
    return finish(stop->outcome, stop->detail);
  }
  auto drained = Drain();
  StopObservation();
  if (auto stop = drained) {
    AbortPath(*stop);
    return finish(stop->outcome, stop->detail);
  }
  if (auto stop = Verify()) {
    AbortPath(*stop);
    return finish(stop->outcome, stop->detail);
  }
  if (auto stop = Command()) {
    if (stop->outcome == DeployOutcome::kFailed && !command_started_) {
      Resume("the deploy failed before COMMAND ran");
    } else if (stop->outcome == DeployOutcome::kFailed) {
      FailurePath(stop->detail);
    } else {
      AbortPath(*stop);
    }
    return finish(stop->outcome, stop->detail);
  }
  if (auto stop = Health()) {
    if (stop->outcome == DeployOutcome::kFailed) {
      FailurePath(stop->detail);
    } else {
      AbortPath(*stop);
    }
    return finish(stop->outcome, stop->detail);
  }
  Resume("checks passed");
  if (auto stop = WaitRegistered()) return finish(stop->outcome, stop->detail);
  return finish(DeployOutcome::kSucceeded, "");
}

std::optional<Stop> PauseDeploy::Pause() {
  Step step = Begin("pause", "taking the instance out of traffic", false);
  auto fail = [&](const std::string& why) {
    End(step, StepVerdict::kFailed, why);
    return Stop{DeployOutcome::kFailed, why};
  };
  // PauseOps sets the data of /pause itself when /pause/<service> is new.
  Status root = Retrying([&] {
    return env_.session->EnsurePathSync(paths::kPauseRoot, env_.acl);
  });
  if (!root.ok()) return fail("cannot create /pause: " + root.ToString());

  registry::PauseRequest request;
  request.service = env_.service;
  request.address = address_;
  request.flag_mode = CreateMode::kEphemeral;
  request.acl = env_.acl;
  request.flag_json = [&] {
    proto::PauseFlag flag;
    flag.set_service(env_.service.str());
    flag.set_ip(address_.ip());
    flag.set_port(address_.port());
    flag.set_by(CurrentUserAtHost());
    flag.set_pid(::getpid());
    flag.set_reason(opt_.reason);
    *flag.mutable_since() = NowTimestamp();
    flag.set_deploy_id(env_.deploy_id.str());
    return ToJson(flag);
  };
  request.expired = [&](const NodeData& existing) {
    auto flag = ParsePayload<proto::PauseFlag>(existing.data, flag_path_);
    return flag.ok() && PauseExpired(*flag, std::chrono::system_clock::now());
  };
  request.on_removal = [&](const NodeData& existing, const Status& removal) {
    auto flag = ParsePayload<proto::PauseFlag>(existing.data, flag_path_);
    if (removal.ok() && flag.ok()) {
      env_.reporter->Notice("removed expired pause flag " + flag_path_ +
                            " (by " + flag->by() + ", expired at " +
                            FormatTimestamp(flag->expires_at(), true) + ")");
    } else if (removal.code() == StatusCode::kAborted) {
      env_.reporter->Notice(removal.message() + "; reading it again");
    }
  };
  registry::PauseOutcome paused = registry::Pause(
      *env_.session, retry_, CoordinatorRetry(opt_.zk_retry_window), request);
  if (!paused.status.ok()) {
    const Status& s = paused.status;
    if (s.code() == StatusCode::kAborted) {
      Stop stop = AbortStop("pause");
      End(step, StepVerdict::kAborted, stop.detail + "; nothing was touched");
      return stop;
    }
    if (s.code() == StatusCode::kAlreadyExists && paused.existing) {
      auto flag = ParsePayload<proto::PauseFlag>(paused.existing->data,
                                                 flag_path_);
      std::string who =
          flag.ok() ? flag->by() + " (pid " + std::to_string(flag->pid()) +
                          ") since " +
                          FormatTimestamp(flag->since(), flag->has_since()) +
                          ", reason " + QuoteForMessage(flag->reason()) +
                          (!flag->has_expires_at()
                               ? std::string(", held by a running deploy")
                               : ", until " +
                                     FormatTimestamp(flag->expires_at(), true))
                    : std::string("someone (unreadable flag)");
      return fail("instance is already paused by " + who + " (" + flag_path_ +
                  "); nothing was touched. Wait for that deploy, or run "
                  "`zkroll resume` if the maintenance is over");
    }
    if (s.code() == StatusCode::kNotFound) {
      return fail(std::string(paths::kServicesRoot) +
                  " does not exist: no agent has ever registered anything "
                  "in this ZooKeeper tree; start the agents first");
    }
    return fail(s.ToString());
  }
  // The flag belongs to the session the transaction ran on. If the
  // session changed since, read the flag back: it is ours only if its
  // payload names this deploy and process and its owner is our session
  // now. Anything else is someone else's flag (or none), and adopting it
  // would let Resume delete it.
  paused_session_ = paused.session;
  if (env_.session->session_id() != paused_session_) {
    std::string why;
    if (!AdoptFlag(&why)) {
      why += "; nothing was run and nothing of it is touched";
      End(step, StepVerdict::kAborted, why);
      return Stop{DeployOutcome::kSessionLost, why};
    }
  }
  paused_at_ = Clock::now();
  int64_t flag_czxid = paused.zxid;
  if (flag_czxid == 0) {
    // No zxid in the answer: the flag we adopted carries the pause's.
    auto mine = Retrying([&] { return env_.session->GetSync(flag_path_); });
    if (!mine.ok() || mine->stat.ephemeral_owner != paused_session_) {
      std::string why = "our pause flag " + flag_path_ +
                        " vanished right after it was created (the "
                        "session changed); nothing was run";
      End(step, StepVerdict::kAborted, why);
      return Stop{DeployOutcome::kSessionLost, why};
    }
    flag_czxid = mine->stat.czxid;
  }
  pause_zxid_ = flag_czxid;
  // Deleting the registration set the pzxid of /services/<service> to
  // the pause's zxid. If there was none to delete, a list read at the
  // directory's current pzxid is already without the instance.
  pause_pzxid_ = pause_zxid_;
  if (!paused.was_registered) {
    auto dir = Retrying(
        [&] { return env_.session->ExistsSync(paths::ServiceDir(env_.service)); });
    if (dir.ok() && dir->has_value()) pause_pzxid_ = (*dir)->pzxid;
  }
  flag_created_ = true;
  End(step, StepVerdict::kOk,
      std::string(paused.was_registered ? "registration removed"
                                        : "was not registered") +
          ", flag " + flag_path_ + " (session " + SessionHex(paused_session_) +
          ")");
  return std::nullopt;
}

std::optional<Stop> PauseDeploy::Drain() {
  if (opt_.drain_mode == DrainMode::kAuto) {
    Step step = Begin("drain",
                      "until the callers let go, at most " +
                          FormatDuration(opt_.drain_wait) + " (--drain auto)",
                      opt_.drain_wait >= Millis(1000));
    return DrainAuto(step);
  }
  Step step = Begin("drain",
                    "waiting " + FormatDuration(opt_.drain_wait) +
                        " for callers to drop the instance",
                    opt_.drain_wait >= Millis(1000));
  if (!env_.abort->SleepFor(opt_.drain_wait)) {
    Stop s = AbortStop("drain");
    End(step, StepVerdict::kAborted, s.detail);
    return s;
  }
  std::string detail =
      "waited the fixed " + FormatSeconds(opt_.drain_wait) + " (--drain fixed)";
  env_.reporter->Drain(label_, "fixed", "fixed", Since(paused_at_),
                       opt_.drain_wait, detail, {});
  End(step, StepVerdict::kOk, detail);
  return std::nullopt;
}

std::optional<std::string> WhyNotOurFlag(const NodeData& node,
                                         const std::string& path,
                                         const std::string& deploy_id,
                                         int64_t pid, int64_t session) {
  auto f = ParsePayload<proto::PauseFlag>(node.data, path);
  if (!f.ok() || f->deploy_id() != deploy_id ||
      static_cast<int64_t>(f->pid()) != pid) {
    return "the pause flag " + path + " is not ours (" +
           (f.ok() ? "deploy " + f->deploy_id() + ", pid " +
                         std::to_string(f->pid())
                   : std::string("unreadable payload")) +
           ")";
  }
  if (node.stat.ephemeral_owner != session) {
    return "our pause flag " + path + " belongs to session " +
           SessionHex(node.stat.ephemeral_owner) +
           ", which is not our session now (" + SessionHex(session) +
           "): it goes with that session";
  }
  return std::nullopt;
}

bool PauseDeploy::AdoptFlag(std::string* why) {
  std::string ignored;
  if (why == nullptr) why = &ignored;
  auto mine = Retrying([&] { return env_.session->GetSync(flag_path_); });
  if (!mine.ok()) {
    *why = mine.status().code() == StatusCode::kNotFound
               ? "our pause flag " + flag_path_ +
                     " vanished right after it was created (the session "
                     "changed)"
               : "cannot read back our pause flag " + flag_path_ + ": " +
                     mine.status().ToString();
    return false;
  }
  const int64_t current = env_.session->session_id();
  if (auto not_ours = WhyNotOurFlag(*mine, flag_path_, env_.deploy_id.str(),
                                    ::getpid(), current)) {
    *why = *not_ours + "; our session changed while we paused";
    return false;
  }
  paused_session_ = current;
  return true;
}

bool InstanceDeploy::EphemeralStillOurs(const std::string& path,
                                        int64_t owner, const std::string& what,
                                        const std::string& consequence,
                                        std::string* why, NodeData* out) {
  // A sync first: the server we are connected to may be a follower that
  // has not yet applied the expiry of our session (and the deletion of
  // this node with it); after the sync it has.
  Status synced = Retrying([&] { return env_.session->SyncSync(path); });
  if (!synced.ok()) {
    *why = "cannot confirm our " + what + " " + path +
           " with the ZooKeeper leader: " + synced.ToString();
    return false;
  }
  Clock::time_point sent;
  auto node = Retrying([&] {
    sent = Clock::now();
    return env_.session->GetSync(path);
  });
  if (!node.ok()) {
    if (node.status().code() == StatusCode::kNotFound) {
      *why = "our " + what + " " + path +
             " is gone (the coordinator's ZooKeeper session " +
             SessionHex(owner) + " expired or someone deleted it), so " +
             consequence;
    } else {
      *why = "cannot confirm our " + what + " " + path + ": " +
             node.status().ToString();
    }
    return false;
  }
  if (node->stat.ephemeral_owner != owner) {
    *why = what + " " + path + " now belongs to session " +
           SessionHex(node->stat.ephemeral_owner) + ", not to ours (" +
           SessionHex(owner) + "): our session was lost";
    return false;
  }
  if (env_.session->session_id() != owner) {
    *why = "the coordinator's ZooKeeper session changed from " +
           SessionHex(owner) + " to " + SessionHex(env_.session->session_id());
    return false;
  }
  // The servers answered a request sent at `sent` or later: they cannot
  // expire the session before sent + T (session_fence.h).
  if (sent > confirmed_at_) confirmed_at_ = sent;
  if (out != nullptr) *out = *node;
  return true;
}

bool PauseDeploy::StillOurs(std::string* why) {
  NodeData node;
  if (!EphemeralStillOurs(flag_path_, paused_session_, "pause flag",
                          "the agent may have registered the instance again",
                          why, &node)) {
    return false;
  }
  auto f = ParsePayload<proto::PauseFlag>(node.data, flag_path_);
  if (!f.ok() || f->deploy_id() != env_.deploy_id.str()) {
    *why = "the pause flag " + flag_path_ + " is not ours any more (" +
           (f.ok() ? "deploy " + f->deploy_id() : f.status().message()) + ")";
    return false;
  }
  fence_zxid_ = node.stat.czxid;
  return true;
}

std::optional<Stop> PauseDeploy::Verify() {
  Step step = Begin("verify", "confirming the pause flag is still ours", false);
  std::string why;
  if (!StillOurs(&why)) {
    why += "; COMMAND was not run";
    End(step, StepVerdict::kAborted, why);
    return Stop{DeployOutcome::kSessionLost, why};
  }
  if (env_.lock != nullptr) {
    // As a rollout does between batches: after an expiry another
    // coordinator may hold the lock and be about to deploy this instance.
    auto held = Retrying([&] { return env_.lock->StillHeld(); });
    if (!held.ok() || !*held) {
      why = "lost the lock " + env_.lock->path() +
            (held.ok() ? std::string(" (the node is gone or no longer "
                                     "belongs to our ZooKeeper session)")
                       : ": " + held.status().ToString()) +
            "; another coordinator may be deploying now; COMMAND was not run";
      End(step, StepVerdict::kAborted, why);
      return Stop{DeployOutcome::kSessionLost, why};
    }
  }
  End(step, StepVerdict::kOk,
      "flag owned by session " + SessionHex(paused_session_) +
          " (confirmed after a sync), fence " + std::to_string(fence_zxid_));
  return std::nullopt;
}

std::optional<Stop> InstanceDeploy::Command() {
  if (!opt_.revert && opt_.command_ran_before.count(address_) > 0) {
    const std::string why =
        "not run again by the resume: COMMAND already ran for this instance, "
        "or was running when its coordinator stopped and has ended since; "
        "the checks decide";
    Step step = Begin("command", why, false);
    End(step, StepVerdict::kSkipped, why);
    command_started_ = true;  // a failed check runs --on-failure
    return std::nullopt;
  }
  CommandSpec spec = MakeCommand(opt_.command);
  Step step =
      Begin("command", "running " + QuoteForMessage(opt_.command[0]), true,
            /*runs_command=*/true);
  if (auto stop = RecordCommandStart(step)) return stop;
  // The process goes on record as soon as it exists: a coordinator killed
  // from now on leaves a COMMAND that may still run, and `rollout
  // --resume` must find it to wait for it (process_identity.h).
  spec.on_started = [&](int pid) {
    if (env_.journal == nullptr) return;
    auto process = IdentifyProcess(pid);
    if (!process.ok()) {
      LOG(WARNING) << label_ << ": cannot identify COMMAND's process " << pid
                   << ": " << process.status().ToString();
      return;
    }
    env_.journal->SetStepProcess(address_, step.journal_index, *process);
  };
  CommandOutcome outcome;
  std::string fence_reason;
  {
    // Stops COMMAND as soon as we cannot vouch for our session any more,
    // timed from the last contact the servers confirmed.
    SessionFence fence(env_.session, env_.abort, HeldSession(), HeldPath(),
                       confirmed_at_);
    command_started_ = true;
    outcome = RunCommand(
        spec,
        [&](OutputStream stream, std::string_view line) {
          env_.reporter->Output(label_, opt_.revert ? "revert" : "command",
                              stream, line);
        },
        env_.abort, fence.signal());
    fence_reason = fence.reason();
  }
  std::string described = outcome.Describe(spec);
  if (outcome.kind == CommandOutcome::Kind::kAborted) {
    Stop s = AbortStop("COMMAND");
    End(step, StepVerdict::kAborted, described);
    return s;
  }
  if (outcome.kind == CommandOutcome::Kind::kFenced) {
    std::string why = "COMMAND was stopped (its process group got SIGTERM, "
                      "then SIGKILL): " + fence_reason;
    End(step, StepVerdict::kAborted, why);
    return Stop{DeployOutcome::kSessionLost, why};
  }
  // The session may have expired while COMMAND ran: then our flag vanished
  // and the agent may have registered the instance mid-upgrade (or, when
  // switching, the agent went back to the old backend).
  std::string why;
  if (!StillOurs(&why)) {
    why = "COMMAND ended (" + described + "), but " + why + " while it ran";
    End(step, StepVerdict::kAborted, why);
    return Stop{DeployOutcome::kSessionLost, why};
  }
  if (!outcome.ok()) {
    std::string detail = "COMMAND failed: " + described;
    End(step, StepVerdict::kFailed, described);
    return Stop{DeployOutcome::kFailed, detail};
  }
  End(step, StepVerdict::kOk, described);
  return std::nullopt;
}

std::optional<Stop> InstanceDeploy::RecordCommandStart(Step& step) {
  std::string why;
  // A write retried after an expiry may have been answered in a renewed
  // session: that confirms nothing about the session COMMAND relies on.
  const int64_t owner = HeldSession();
  if (step.journalled.ok() && env_.session->session_id() != owner) {
    step.journalled = Status(StatusCode::kSessionExpired,
                             "the write was answered in another session");
  }
  if (env_.journal == nullptr || step.journalled.ok()) {
    if (env_.journal != nullptr && step.journal_sent > confirmed_at_) {
      confirmed_at_ = step.journal_sent;  // the write was answered
    }
    // --switch has no verify step: confirm the in-flight node (and contact)
    // here when nothing did yet.
    if (confirmed_at_ == Clock::time_point{} && !StillOurs(&why)) {
      why += "; COMMAND was not run";
      End(step, StepVerdict::kAborted, why);
      return Stop{DeployOutcome::kSessionLost, why};
    }
    return std::nullopt;
  }
  // The write may have failed because we are cut off from ZooKeeper: then
  // our session may be expiring right now, and COMMAND must not start on
  // an unconfirmed session nor without a record that it started.
  const std::string first = step.journalled.ToString();
  LOG(WARNING) << label_ << ": the journal could not record that COMMAND "
               << "starts (" << first << "); confirming our session again";
  if (!StillOurs(&why)) {
    why = "the journal could not record that COMMAND starts (" + first +
          "), and then " + why + "; COMMAND was not run";
    End(step, StepVerdict::kAborted, why);
    return Stop{DeployOutcome::kSessionLost, why};
  }
  const Clock::time_point sent = Clock::now();
  Status again = env_.journal->WriteInstanceInSession(address_, owner);
  if (again.ok() && env_.session->session_id() != owner) {
    why = "the journal recorded that COMMAND starts only in a new ZooKeeper "
          "session: our session " + SessionHex(owner) +
          " ended; COMMAND was not run";
    End(step, StepVerdict::kAborted, why);
    return Stop{DeployOutcome::kSessionLost, why};
  }
  if (!again.ok()) {
    why = "cannot record in the journal that COMMAND starts: " +
          again.ToString() + " (first attempt: " + first +
          "); COMMAND was not run";
    End(step, StepVerdict::kFailed, why);
    return Stop{DeployOutcome::kFailed, why};
  }
  if (sent > confirmed_at_) confirmed_at_ = sent;
  return std::nullopt;
}

std::optional<Stop> InstanceDeploy::Health() {
  Step step =
      Begin("health",
            "checking " + health::DescribeCheck(opt_.check) + ", up to " +
                std::to_string(opt_.health_attempts) + " attempts",
            opt_.health_attempts > 1);
  const health::CheckTarget target = target_;
  std::string last_reason;
  for (int attempt = 1; attempt <= opt_.health_attempts; ++attempt) {
    if (attempt > 1 && !env_.abort->SleepFor(opt_.health_interval)) break;
    // The check runs on the I/O thread; we wait for its result here.
    struct Shared {
      std::mutex mu;
      std::optional<health::CheckResult> result;
      health::CheckHandle handle;
    };
    auto shared = std::make_shared<Shared>();
    // The result may come after this attempt gave up waiting for it.
    ScopedWaker waker(env_.abort);
    boost::asio::post(env_.executor, [shared, waker = waker.waker(),
                                      ex = env_.executor, spec = opt_.check,
                                      target, timeout = opt_.health_timeout] {
      auto handle = health::StartCheck(
          ex, spec, target, timeout, [shared, waker](health::CheckResult r) {
            {
              std::lock_guard<std::mutex> l(shared->mu);
              shared->result = std::move(r);
            }
            waker->Wake();
          });
      std::lock_guard<std::mutex> l(shared->mu);
      shared->handle = handle;
    });
    auto has_result = [&] {
      std::lock_guard<std::mutex> l(shared->mu);
      return shared->result.has_value();
    };
    // The check ends itself at its timeout; the slack only guards against
    // a check that never reports.
    auto w = env_.abort->WaitUntil(
        has_result, Clock::now() + opt_.health_timeout + Millis(5000));
    if (w != AbortSignal::WaitResult::kReady) {
      boost::asio::post(env_.executor, [shared] {
        std::lock_guard<std::mutex> l(shared->mu);
        shared->handle.Cancel();
      });
      if (w == AbortSignal::WaitResult::kAborted) break;
      last_reason = "no result within the check timeout";
      continue;
    }
    health::CheckResult r;
    {
      std::lock_guard<std::mutex> l(shared->mu);
      r = *shared->result;
    }
    if (r.healthy) {
      End(step, StepVerdict::kOk,
          "attempt " + std::to_string(attempt) + "/" +
              std::to_string(opt_.health_attempts) + ": " + r.reason);
      return std::nullopt;
    }
    last_reason = r.reason;
    env_.reporter->Notice(label_ + ": health check " + std::to_string(attempt) +
                          "/" + std::to_string(opt_.health_attempts) +
                          " failed: " + r.reason);
  }
  if (env_.abort->requested()) {
    Stop s = AbortStop("health checks");
    End(step, StepVerdict::kAborted, s.detail);
    return s;
  }
  std::string detail = "every health check failed (" +
                       std::to_string(opt_.health_attempts) + " attempts of " +
                       health::DescribeCheck(opt_.check) +
                       "); last: " + last_reason;
  End(step, StepVerdict::kFailed, detail);
  return Stop{DeployOutcome::kFailed, detail};
}

void PauseDeploy::Resume(const std::string& why) {
  Step step = Begin("resume", "deleting our pause flag (" + why + ")", false);
  if (!flag_created_) {
    End(step, StepVerdict::kSkipped, "no flag of ours");
    return;
  }
  // Only the session that created the flag deletes it. After a session
  // change our flag is gone with its session, and a flag at that path now
  // was made by someone else (with the same data version 0).
  auto session_ended = [&] {
    End(step, StepVerdict::kOk,
        "our session " + SessionHex(paused_session_) +
            " ended, and our flag with it; nothing deleted (a flag there "
            "now is someone else's)");
  };
  if (env_.session->session_id() != paused_session_) {
    session_ended();
    return;
  }
  // Every attempt reads the flag again (the guard first) and deletes it with
  // the guarded multi, bound to our session. A delete whose reply was lost
  // may have applied, and the flag at that path may since be an operator's
  // (same data version 0): resending the delete would remove it. The
  // guard also fails a delete when any pause of the service was made
  // between the read and the delete (in a rollout, the other instances'
  // pauses): that only costs another read.
  constexpr int kGuardedAttempts = 20;
  StepVerdict outcome = StepVerdict::kFailed;
  std::string detail;
  for (int attempt = 1; attempt <= kGuardedAttempts; ++attempt) {
    if (env_.session->session_id() != paused_session_) {
      session_ended();
      return;
    }
    auto read = Retrying([&] {
      return registry::ReadPauseFlag(*env_.session, env_.service, address_);
    });
    if (!read.ok()) {
      detail = "cannot read " + flag_path_ + ": " + read.status().ToString();
      break;
    }
    if (!read->flag) {
      outcome = StepVerdict::kOk;
      detail = "flag gone";
      break;
    }
    if (read->flag->stat.ephemeral_owner != paused_session_) {
      outcome = StepVerdict::kSkipped;
      detail = "flag " + flag_path_ +
               " belongs to another session now; left alone";
      break;
    }
    Status s = registry::DeleteReadFlag(*env_.session, env_.service, address_,
                                        read->pause_dir,
                                        read->flag->stat.version,
                                        paused_session_);
    if (s.ok() || s.code() == StatusCode::kNotFound) {
      outcome = StepVerdict::kOk;
      detail = "flag deleted";
      break;
    }
    detail = "cannot delete " + flag_path_ + ": " + s.ToString();
    if (s.code() != StatusCode::kAborted &&
        !s.IsTransient(Status::RetryIn::kAnySession)) {
      break;
    }
  }
  if (outcome == StepVerdict::kFailed &&
      env_.session->session_id() != paused_session_) {
    session_ended();
    return;
  }
  if (outcome == StepVerdict::kFailed) {
    detail += "; it is ephemeral and goes when the coordinator exits";
  }
  End(step, outcome, detail);
}

std::optional<Stop> PauseDeploy::WaitRegistered() {
  Step step = Begin("registered",
                    "waiting up to " + FormatDuration(opt_.register_timeout) +
                        " for the agent to register the instance",
                    false);
  NodeWaitOptions wait;
  wait.watch = NodeWatch::kExists;
  wait.deadline = Clock::now() + opt_.register_timeout;
  NodeWaitResult registered = WaitForNode(
      env_.session, env_.abort, node_path_, wait,
      [](const NodeRead& read) { return read.exists(); });
  if (registered.end == NodeWaitResult::End::kDone) {
    std::string by;
    auto data = env_.session->GetSync(node_path_);
    if (data.ok()) {
      auto rec = ParsePayload<proto::InstanceRecord>(data->data, node_path_);
      if (rec.ok() && !rec->host().empty()) by = " by agent " + rec->host();
    }
    End(step, StepVerdict::kOk, "registered" + by);
    return std::nullopt;
  }
  if (registered.end == NodeWaitResult::End::kAborted) {
    Stop s = AbortStop("the wait for registration");
    s.detail += " (the instance passed its checks and its flag is deleted)";
    End(step, StepVerdict::kAborted, s.detail);
    return s;
  }
  std::string detail =
      "the instance passed its checks but no agent registered it within " +
      FormatDuration(opt_.register_timeout) +
      "; check the agent on its host (`zkroll status --service " +
      env_.service.str() + "`)";
  End(step, StepVerdict::kFailed, detail);
  return Stop{DeployOutcome::kFailed, detail};
}

void InstanceDeploy::RunStepCommand(const std::string& step_name,
                                    const std::vector<std::string>& argv,
                                    const std::string& failure) {
  CommandSpec spec = MakeCommand(argv);
  if (!failure.empty()) spec.env["ZKROLL_FAILURE"] = failure;
  Step step = Begin(step_name, "running " + QuoteForMessage(argv[0]), true,
                    /*runs_command=*/true);
  CommandOutcome outcome = RunCommand(
      spec,
      [&](OutputStream stream, std::string_view line) {
        env_.reporter->Output(label_, step_name, stream, line);
      },
      env_.abort);
  End(step,
      outcome.ok()                                     ? StepVerdict::kOk
      : outcome.kind == CommandOutcome::Kind::kAborted ? StepVerdict::kAborted
                                                       : StepVerdict::kFailed,
      outcome.Describe(spec));
}

void PauseDeploy::FailurePath(const std::string& reason) {
  if (!opt_.on_failure.empty()) {
    RunStepCommand("on-failure", opt_.on_failure, reason);
  }
  Resume("the deploy failed; the agent's checks decide");
}

void PauseDeploy::AbortPath(const Stop& stop) {
  (void)stop;
  Resume("the deploy was aborted");
}

}  // namespace detail

RunOutcome RunOutcomeOf(DeployOutcome outcome) {
  switch (outcome) {
    case DeployOutcome::kSucceeded:
      return RunOutcome::kSucceeded;
    case DeployOutcome::kFailed:
      return RunOutcome::kFailed;
    case DeployOutcome::kAborted:
    case DeployOutcome::kSessionLost:
      return RunOutcome::kAborted;
  }
  return RunOutcome::kFailed;
}

InstanceOutcome InstanceOutcomeOf(DeployOutcome outcome, bool revert) {
  if (revert) {
    return outcome == DeployOutcome::kSucceeded
               ? InstanceOutcome::kReverted
               : InstanceOutcome::kRevertFailed;
  }
  switch (outcome) {
    case DeployOutcome::kSucceeded:
      return InstanceOutcome::kSucceeded;
    case DeployOutcome::kFailed:
      return InstanceOutcome::kFailed;
    case DeployOutcome::kAborted:
    case DeployOutcome::kSessionLost:
      return InstanceOutcome::kAborted;
  }
  return InstanceOutcome::kFailed;
}

std::string DeployOutcomeName(DeployOutcome outcome) {
  return WireString(RunOutcomeOf(outcome));
}

std::string DescribeTimings(const std::vector<StepTiming>& steps) {
  std::string out;
  for (const auto& s : steps) {
    if (!out.empty()) out += ", ";
    out += s.name + " " + FormatDuration(s.took);
    if (s.verdict != StepVerdict::kOk) {
      out += " (" + WireString(s.verdict) + ")";
    }
  }
  return out;
}

std::map<std::string, std::string> CommandEnvironment(
    const ServiceName& service, const InstanceAddress& address,
    const DeployId& deploy_id) {
  return {
      {"ZKROLL_SERVICE", service.str()},
      {"ZKROLL_IP", address.ip()},
      {"ZKROLL_PORT", std::to_string(address.port())},
      {"ZKROLL_INSTANCE", address.NodeName()},
      {"ZKROLL_DEPLOY_ID", deploy_id.str()},
  };
}

DeployResult DeployInstance(const DeployEnvironment& env,
                            const DeployOptions& options,
                            const InstanceAddress& address,
                            const std::vector<InstanceAddress>& busy) {
  if (options.switching.enabled) {
    detail::SwitchDeploy deploy(env, options, address);
    return deploy.Run(busy);
  }
  detail::PauseDeploy deploy(env, options, address);
  return deploy.Run();
}

}  // namespace zkroll::coordinator
