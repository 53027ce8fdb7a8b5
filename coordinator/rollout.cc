#include "coordinator/rollout.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <thread>

#include "common/paths.h"
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

RolloutResult RunRollout(const DeployEnvironment& env,
                         const RolloutOptions& options,
                         const std::vector<InstanceAddress>& targets,
                         ServiceLock* lock) {
  RolloutResult result;
  const std::vector<std::vector<InstanceAddress>> plan =
      PlanBatches(targets, options.batch);
  const int batches = static_cast<int>(plan.size());
  size_t next = 0;
  std::string stop_reason;
  for (int b = 1; b <= batches; ++b) {
    const std::vector<InstanceAddress>& batch = plan[b - 1];
    if (env.abort->requested()) {
      stop_reason = "stopped by a signal";
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
    Status healthy = WaitMinHealthy(env, options, batch);
    if (!healthy.ok()) {
      if (healthy.code() == StatusCode::kAborted) {
        stop_reason = healthy.message();
      } else {
        result.min_healthy_stop = true;
        stop_reason = healthy.message();
      }
      break;
    }
    std::vector<std::string> names;
    for (const auto& a : batch)
      names.push_back(InstanceId{env.service, a}.ToString());
    env.reporter->Batch(b, batches, names);

    std::vector<DeployResult> results(batch.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < batch.size(); ++i) {
      threads.emplace_back([&, i] {
        results[i] = DeployInstance(env, options.deploy, batch[i], batch);
      });
    }
    for (auto& t : threads) t.join();
    next += batch.size();

    for (size_t i = 0; i < batch.size(); ++i) {
      const DeployResult& r = results[i];
      switch (r.outcome) {
        case DeployOutcome::kSucceeded:
          ++result.succeeded;
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
    if (result.session_lost) {
      stop_reason = "the coordinator lost its ZooKeeper session";
      break;
    }
    if (env.abort->requested()) {
      stop_reason = "stopped by a signal";
      break;
    }
    if (result.failed > options.max_failures) {
      stop_reason = std::to_string(result.failed) +
                    " instance(s) failed, more than --max-failures " +
                    std::to_string(options.max_failures);
      break;
    }
  }
  result.not_started = static_cast<int>(targets.size() - next);

  if (env.abort->requested() || (result.aborted > 0 && !result.session_lost)) {
    result.outcome = "aborted";
  } else if (result.session_lost) {
    result.outcome = "aborted";
  } else if (result.failed > 0 || result.min_healthy_stop) {
    result.outcome = "failed";
  } else {
    result.outcome = "succeeded";
  }
  result.detail = std::to_string(result.succeeded) + " succeeded, " +
                  std::to_string(result.failed) + " failed, " +
                  std::to_string(result.aborted) + " aborted, " +
                  std::to_string(result.not_started) + " not started";
  if (!stop_reason.empty()) result.detail += "; stopped: " + stop_reason;
  return result;
}

}  // namespace zkroll::coordinator
