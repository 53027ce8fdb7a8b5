#include "coordinator/rollout.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "common/paths.h"
#include "coordinator/command.h"
#include "coordinator/rollout_watch.h"
#include "coordinator/node_wait.h"

namespace zkroll::coordinator {
namespace {

using Clock = std::chrono::steady_clock;

// Waits until at least `min_healthy` instances outside `batch` are
// registered. Returns OK, DeadlineExceeded with the explanation, Aborted on
// a stop request, or a ZooKeeper error.
Status WaitMinHealthy(const DeployEnvironment& env, const RolloutOptions& opt,
                      const std::vector<InstanceAddress>& batch) {
  if (opt.min_healthy <= 0) return Status::Ok();
  const std::string dir = paths::ServiceDir(env.service);
  bool announced = false;
  int have = 0;
  NodeWaitOptions wait;
  wait.watch = NodeWatch::kChildren;
  wait.deadline = Clock::now() + opt.min_healthy_timeout;
  wait.fail_on_error = true;
  NodeWaitResult r = WaitForNode(
      env.session, env.abort, dir, wait, [&](const NodeRead& read) {
        if (!read.exists() && read.status.code() != StatusCode::kNotFound) {
          return false;  // a failed read: read again
        }
        // No /services/<service> yet: nothing registered.
        have = read.exists() ? RegisteredOutside(read.children, batch) : 0;
        if (have >= opt.min_healthy) return true;
        if (!announced) {
          announced = true;
          env.reporter->Notice(
              "waiting up to " + FormatDuration(opt.min_healthy_timeout) +
              " for " + std::to_string(opt.min_healthy) +
              " registered instances outside the next batch (now " +
              std::to_string(have) + ")");
        }
        return false;
      });
  switch (r.end) {
    case NodeWaitResult::End::kDone:
      return Status::Ok();
    case NodeWaitResult::End::kFailed:
      return r.last.status;
    case NodeWaitResult::End::kAborted:
      return Aborted("stopped while waiting for --min-healthy");
    case NodeWaitResult::End::kTimedOut:
      break;
  }
  std::string names;
  for (const auto& a : batch) names += (names.empty() ? "" : ", ") + a.ToString();
  return DeadlineExceeded(
      "only " + std::to_string(have) + " instance(s) of " + env.service.str() +
      " would stay registered while " + names +
      " are down, fewer than --min-healthy " + std::to_string(opt.min_healthy) +
      " (waited " + FormatDuration(opt.min_healthy_timeout) +
      "); nothing of this batch was touched. See which instances are "
      "out with `zkroll status --service " +
      env.service.str() + "`, or lower --min-healthy / --batch");
}


// A step the rollout itself records for an instance (healthy-time,
// canary-soak, canary-check): journalled when it starts, like a deploy's
// long steps, and reported.
class RolloutStep {
 public:
  RolloutStep(const DeployEnvironment& env, const InstanceAddress& address,
              std::string name, const std::string& detail)
      : env_(env),
        address_(address),
        label_(InstanceId{env.service, address}.ToString()),
        name_(std::move(name)),
        start_(Clock::now()) {
    if (env_.journal) {
      index_ = env_.journal->BeginStep(address_, name_, detail, true);
    }
    env_.reporter->StepStarted(label_, name_, detail, true);
  }
  void End(StepVerdict verdict, const std::string& detail) {
    if (env_.journal) env_.journal->EndStep(address_, index_, verdict, detail);
    env_.reporter->StepEnded(
        label_, name_, WireString(verdict),
        std::chrono::duration_cast<Millis>(Clock::now() - start_), detail);
  }

 private:
  const DeployEnvironment& env_;
  InstanceAddress address_;
  std::string label_;
  std::string name_;
  Clock::time_point start_;
  int index_ = -1;
};

// The forward part of a rollout runs under a stop signal of its own: a
// stop requested on the outer one (SIGINT/SIGTERM) is passed on to it, and
// so is the expiry of the progress deadline, which leaves the outer signal
// clear so the revert that follows can still run.
class ForwardStop {
 public:
  ForwardStop(AbortSignal* outer, Millis deadline)
      : outer_(outer), clock_(deadline, Clock::now()) {
    thread_ = std::thread([this] { Run(); });
  }
  ~ForwardStop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    outer_->Wake();
    thread_.join();
  }
  ForwardStop(const ForwardStop&) = delete;
  ForwardStop& operator=(const ForwardStop&) = delete;

  AbortSignal* signal() { return &forward_; }
  bool deadline_passed() const { return passed_.load(); }
  // An instance completed, or the soak ended: the deadline runs again.
  void Restart() { Change([&] { clock_.Restart(Clock::now()); }); }
  void Hold() { Change([&] { clock_.Hold(); }); }

 private:
  template <typename F>
  void Change(F f) {
    {
      std::lock_guard<std::mutex> l(mu_);
      f();
      ++changes_;
    }
    outer_->Wake();
  }
  void Run() {
    while (true) {
      Clock::time_point expiry;
      uint64_t seen;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stop_) return;
        expiry = clock_.expires_at();
        seen = changes_;
      }
      // A far deadline rather than time_point::max(): waits convert it.
      const auto wake = std::min(expiry, Clock::now() + std::chrono::hours(24));
      auto w = outer_->WaitUntil(
          [&] {
            std::lock_guard<std::mutex> l(mu_);
            return stop_ || changes_ != seen;
          },
          wake);
      if (w == AbortSignal::WaitResult::kAborted) {
        forward_.Request(outer_->signo());
        return;
      }
      if (w == AbortSignal::WaitResult::kTimedOut) {
        std::lock_guard<std::mutex> l(mu_);
        if (!stop_ && changes_ == seen && clock_.Expired(Clock::now())) {
          passed_ = true;
          forward_.Request(0);
          return;
        }
      }
    }
  }

  AbortSignal* outer_;
  // Waits on it hand ZooKeeper watches only a Waker they disarm when they
  // return (abort_signal.h), so a watch that fires after the rollout
  // returned does not reach this signal.
  AbortSignal forward_;
  std::mutex mu_;  // guards clock_, stop_, changes_
  ProgressClock clock_;
  bool stop_ = false;
  uint64_t changes_ = 0;
  std::atomic<bool> passed_{false};
  std::thread thread_;
};

std::string Join(const std::vector<InstanceAddress>& list) {
  std::string out;
  for (const auto& a : list) out += (out.empty() ? "" : ",") + a.ToString();
  return out;
}

// --min-healthy-time for one instance that just re-registered: `r` stays
// a success only if the instance stays in service for the whole time.
void HoldHealthyTime(const DeployEnvironment& env, const RolloutOptions& opt,
                     const InstanceAddress& address, DeployResult* r) {
  RolloutStep step(env, address, "healthy-time",
                   "must stay registered and healthy for " +
                       FormatDuration(opt.min_healthy_time));
  auto watched = WatchStayInService(env, {address}, opt.min_healthy_time,
                                    opt.deploy.zk_retry_window);
  using V = StayInServiceResult::Verdict;
  if (watched.verdict == V::kHeld) {
    step.End(StepVerdict::kOk, "stayed registered and healthy for " +
                                   FormatDuration(opt.min_healthy_time));
    if (env.journal)
      env.journal->SetInstanceOutcome(address, InstanceOutcome::kSucceeded);
    return;
  }
  if (watched.verdict == V::kAborted) {
    r->outcome = DeployOutcome::kAborted;
    r->detail = "stopped during --min-healthy-time";
    step.End(StepVerdict::kAborted, r->detail);
    if (env.journal)
      env.journal->SetInstanceOutcome(address, InstanceOutcome::kAborted);
    return;
  }
  const std::string why =
      watched.error.empty() ? watched.flaps.front() : watched.error;
  r->outcome = DeployOutcome::kFailed;
  r->detail = "left service within --min-healthy-time " +
              FormatDuration(opt.min_healthy_time) + ": " + why;
  step.End(StepVerdict::kFailed, why);
  if (env.journal)
    env.journal->SetInstanceOutcome(address, InstanceOutcome::kFailed);
}

// The canary soak and check. Empty if the canaries passed; otherwise why
// not. `aborted` is set when a stop request ended it.
std::string SoakCanaries(const DeployEnvironment& env,
                         const RolloutOptions& opt,
                         const std::vector<InstanceAddress>& canaries,
                         bool* aborted) {
  *aborted = false;
  if (opt.canary_soak.count() > 0) {
    std::vector<std::unique_ptr<RolloutStep>> steps;
    for (const auto& a : canaries) {
      steps.push_back(std::make_unique<RolloutStep>(
          env, a, "canary-soak",
          "the canaries must stay registered and healthy for " +
              FormatDuration(opt.canary_soak)));
    }
    auto watched = WatchStayInService(env, canaries, opt.canary_soak,
                                      opt.deploy.zk_retry_window);
    using V = StayInServiceResult::Verdict;
    std::string why;
    if (watched.verdict == V::kAborted) {
      *aborted = true;
      why = "stopped during the canary soak";
    } else if (watched.verdict == V::kFlapped) {
      why = watched.error.empty() ? "" : watched.error;
      for (const auto& f : watched.flaps) why += (why.empty() ? "" : "; ") + f;
    }
    for (size_t i = 0; i < canaries.size(); ++i) {
      steps[i]->End(why.empty() ? StepVerdict::kOk
                    : *aborted  ? StepVerdict::kAborted
                                : StepVerdict::kFailed,
                    why.empty() ? "every canary stayed in service for " +
                                      FormatDuration(opt.canary_soak)
                                : why);
    }
    if (!why.empty()) return "canary soak: " + why;
  }
  if (opt.canary_check.empty()) return "";
  CommandSpec spec;
  spec.argv = opt.canary_check;
  spec.env = {{"ZKROLL_SERVICE", env.service.str()},
              {"ZKROLL_DEPLOY_ID", env.deploy_id.str()},
              {"ZKROLL_CANARIES", Join(canaries)}};
  spec.timeout = opt.deploy.exec_timeout;
  std::vector<std::unique_ptr<RolloutStep>> steps;
  for (const auto& a : canaries) {
    steps.push_back(std::make_unique<RolloutStep>(
        env, a, "canary-check",
        "running " + QuoteForMessage(opt.canary_check[0]) +
            " on the canaries"));
  }
  const std::string label = env.service.str() + "@canaries";
  CommandOutcome outcome = RunCommand(
      spec,
      [&](OutputStream stream, std::string_view line) {
        env.reporter->Output(label, "canary-check", stream, line);
      },
      env.abort);
  const std::string described = outcome.Describe(spec);
  *aborted = outcome.kind == CommandOutcome::Kind::kAborted;
  const StepVerdict verdict = outcome.ok() ? StepVerdict::kOk
                              : *aborted   ? StepVerdict::kAborted
                                           : StepVerdict::kFailed;
  for (auto& step : steps) step->End(verdict, described);
  if (outcome.ok()) return "";
  return "--canary-check " + QuoteForMessage(opt.canary_check[0]) + ": " +
         described;
}

}  // namespace

std::vector<std::vector<InstanceAddress>> PlanBatches(
    const std::vector<InstanceAddress>& targets, int batch_size) {
  const size_t size = static_cast<size_t>(std::max(1, batch_size));
  std::vector<std::vector<InstanceAddress>> batches;
  for (size_t next = 0; next < targets.size(); next += size) {
    batches.emplace_back(
        targets.begin() + static_cast<long>(next),
        targets.begin() + static_cast<long>(std::min(targets.size(), next + size)));
  }
  return batches;
}

int RegisteredOutside(const std::vector<std::string>& registered_nodes,
                      const std::vector<InstanceAddress>& batch) {
  std::set<std::string> in_batch;
  for (const auto& a : batch) in_batch.insert(a.NodeName());
  int have = 0;
  for (const auto& name : registered_nodes) {
    if (in_batch.count(name) == 0) ++have;
  }
  return have;
}

std::vector<std::vector<InstanceAddress>> PlanRolloutBatches(
    const std::vector<InstanceAddress>& targets, int batch_size, int canary) {
  const size_t n =
      std::min(targets.size(), static_cast<size_t>(std::max(0, canary)));
  if (n == 0) return PlanBatches(targets, batch_size);
  std::vector<std::vector<InstanceAddress>> batches = {
      std::vector<InstanceAddress>(targets.begin(),
                                   targets.begin() + static_cast<long>(n))};
  const std::vector<InstanceAddress> rest(
      targets.begin() + static_cast<long>(n), targets.end());
  for (auto& b : PlanBatches(rest, batch_size)) batches.push_back(std::move(b));
  return batches;
}

Status CheckRolloutTargets(const RolloutOptions& options, size_t targets) {
  if (options.canary > 0 && static_cast<size_t>(options.canary) > targets) {
    return InvalidArgument(
        "--canary " + std::to_string(options.canary) + " is more than the " +
        std::to_string(targets) +
        " instance(s) this rollout would deploy; nothing was touched");
  }
  return Status::Ok();
}

ProgressClock::ProgressClock(Millis deadline, TimePoint start)
    : deadline_(deadline), last_(start) {}

void ProgressClock::Restart(TimePoint now) {
  held_ = false;
  last_ = now;
}

ProgressClock::TimePoint ProgressClock::expires_at() const {
  if (!enabled() || held_) return TimePoint::max();
  return last_ + deadline_;
}

RolloutResult RunRollout(const DeployEnvironment& env,
                         const RolloutOptions& options,
                         const std::vector<InstanceAddress>& targets,
                         ServiceLock* lock, const RolloutState& state) {
  RolloutResult result;
  result.upgraded = state.already_upgraded;
  result.touched = state.already_upgraded;
  const int canary = state.canary_done ? 0 : options.canary;
  const std::vector<std::vector<InstanceAddress>> plan =
      PlanRolloutBatches(targets, options.batch, canary);
  const int batches = static_cast<int>(plan.size());
  size_t next = 0;
  std::string stop_reason;
  std::string canary_note;

  ForwardStop forward(env.abort, options.progress_deadline);
  DeployEnvironment fenv = env;
  fenv.abort = forward.signal();
  const std::string deadline_text =
      "no instance completed within --progress-deadline " +
      FormatDuration(options.progress_deadline);

  for (int b = 1; b <= batches; ++b) {
    const std::vector<InstanceAddress>& batch = plan[b - 1];
    const bool canary_batch = canary > 0 && b == 1;
    if (fenv.abort->requested()) {
      stop_reason = forward.deadline_passed() ? deadline_text
                                              : "stopped by a signal";
      break;
    }
    if (lock != nullptr) {
      auto held = lock->StillHeld();
      if (!held.ok() || !*held) {
        result.session_lost = true;
        stop_reason = "lost the lock " + lock->path() +
                      (held.ok() ? std::string(" (our ZooKeeper session ended)")
                                 : ": " + held.status().ToString()) +
                      "; another coordinator may be deploying now";
        break;
      }
    }
    Status healthy = WaitMinHealthy(fenv, options, batch);
    if (!healthy.ok()) {
      if (healthy.code() == StatusCode::kAborted) {
        stop_reason = forward.deadline_passed() ? deadline_text
                                                : healthy.message();
      } else {
        result.min_healthy_stop = true;
        stop_reason = healthy.message();
      }
      break;
    }
    std::vector<std::string> names;
    for (const auto& a : batch)
      names.push_back(InstanceId{env.service, a}.ToString());
    if (canary_batch) {
      result.canaries = batch;
      env.reporter->Notice("canary batch: " + Join(batch) +
                           (options.canary_soak.count() > 0
                                ? ", then a soak of " +
                                      FormatDuration(options.canary_soak)
                                : std::string()));
    }
    env.reporter->Batch(b, batches, names);

    std::vector<DeployResult> results(batch.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < batch.size(); ++i) {
      threads.emplace_back([&, i] {
        results[i] = DeployInstance(fenv, options.deploy, batch[i], batch);
        if (results[i].outcome == DeployOutcome::kSucceeded &&
            options.min_healthy_time.count() > 0) {
          HoldHealthyTime(fenv, options, batch[i], &results[i]);
        }
        if (results[i].outcome == DeployOutcome::kSucceeded) forward.Restart();
      });
    }
    for (auto& t : threads) t.join();
    next += batch.size();

    int batch_bad = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      DeployResult& r = results[i];
      if (r.command_started) result.touched.push_back(batch[i]);
      // A deploy stopped by the deadline (not by a signal) failed.
      if (r.outcome == DeployOutcome::kAborted && forward.deadline_passed() &&
          !env.abort->requested()) {
        r.outcome = DeployOutcome::kFailed;
        r.detail = deadline_text + " (" + r.detail + ")";
        if (env.journal)
          env.journal->SetInstanceOutcome(batch[i], InstanceOutcome::kFailed);
      }
      batch_bad += r.outcome != DeployOutcome::kSucceeded;
      switch (r.outcome) {
        case DeployOutcome::kSucceeded:
          ++result.succeeded;
          result.upgraded.push_back(batch[i]);
          break;
        case DeployOutcome::kFailed:
          ++result.failed;
          result.failures.push_back(batch[i].ToString() + ": " + r.detail);
          break;
        case DeployOutcome::kSessionLost:
          result.session_lost = true;
          [[fallthrough]];
        case DeployOutcome::kAborted:
          ++result.aborted;
          result.failures.push_back(batch[i].ToString() + ": " + r.detail);
          break;
      }
    }
    if (forward.deadline_passed()) result.progress_deadline_stop = true;
    if (result.session_lost) {
      stop_reason = "the coordinator lost its ZooKeeper session";
      break;
    }
    if (env.abort->requested()) {
      stop_reason = "stopped by a signal";
      break;
    }
    if (result.progress_deadline_stop) {
      stop_reason = deadline_text;
      break;
    }
    if (canary_batch && batch_bad > 0) {
      result.canary_failed = true;
      stop_reason = "the canary batch failed; the rest of the fleet was not "
                    "touched";
      break;
    }
    if (result.failed > options.max_failures) {
      stop_reason = std::to_string(result.failed) +
                    " instance(s) failed, more than --max-failures " +
                    std::to_string(options.max_failures);
      break;
    }
    if (!canary_batch) continue;
    // The soak is observation, not progress: the deadline does not run.
    forward.Hold();
    bool aborted = false;
    std::string why = SoakCanaries(fenv, options, batch, &aborted);
    forward.Restart();
    if (aborted) {
      stop_reason = "stopped by a signal during the canary stage";
      break;
    }
    if (!why.empty()) {
      result.canary_failed = true;
      result.failures.push_back("canaries " + Join(batch) + ": " + why);
      stop_reason = "the canaries failed (" + why +
                    "); the rest of the fleet was not touched";
      break;
    }
    canary_note = "canaries " + Join(batch) + " passed";
    if (options.canary_promote == CanaryPromote::kManual && b < batches) {
      result.awaiting_promotion = true;
      break;
    }
    env.reporter->Notice(canary_note + "; promoting: the rest follows");
  }
  result.not_started = static_cast<int>(targets.size() - next);

  if (env.abort->requested() ||
      (result.aborted > 0 && !result.session_lost)) {
    result.outcome = RunOutcome::kAborted;
  } else if (result.session_lost) {
    result.outcome = RunOutcome::kAborted;
  } else if (result.failed > 0 || result.min_healthy_stop ||
             result.canary_failed || result.progress_deadline_stop) {
    result.outcome = RunOutcome::kFailed;
  } else if (result.awaiting_promotion) {
    result.outcome = RunOutcome::kAwaitingPromotion;
  } else {
    result.outcome = RunOutcome::kSucceeded;
  }
  result.detail = std::to_string(result.succeeded) + " succeeded, " +
                  std::to_string(result.failed) + " failed, " +
                  std::to_string(result.aborted) + " aborted, " +
                  std::to_string(result.not_started) + " not started";
  if (!stop_reason.empty()) result.detail += "; stopped: " + stop_reason;
  if (result.awaiting_promotion) {
    result.detail += "; " + canary_note +
                     " and await promotion: continue with `zkroll promote "
                     "--service " +
                     env.service.str() + " --deploy " + env.deploy_id.str() +
                     "` or revert with `zkroll revert --service " +
                     env.service.str() + " --deploy " + env.deploy_id.str() +
                     "`";
  }
  if (result.outcome != RunOutcome::kFailed || options.revert_command.empty()) {
    return result;
  }
  if (result.touched.empty()) {
    result.detail += "; nothing to revert (no COMMAND ran)";
    return result;
  }
  env.reporter->Notice("the rollout failed: reverting " +
                       std::to_string(result.touched.size()) +
                       " instance(s), newest first: " +
                       Join([&] {
                         auto r = result.touched;
                         std::reverse(r.begin(), r.end());
                         return r;
                       }()));
  result.revert = RevertInstances(env, options, result.touched);
  if (result.revert->complete()) {
    result.outcome = RunOutcome::kReverted;
    result.detail += "; reverted every touched instance (" +
                     Join(result.revert->reverted) + ")";
  } else {
    result.outcome = RunOutcome::kRevertIncomplete;
    result.detail += "; revert incomplete, not reverted: " +
                     Join(result.revert->left);
  }
  return result;
}

}  // namespace zkroll::coordinator
