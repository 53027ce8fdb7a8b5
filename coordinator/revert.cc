// RevertInstances and its batch order (declared in rollout.h).
#include <algorithm>
#include <thread>

#include "coordinator/rollout.h"

namespace zkroll::coordinator {

std::vector<std::vector<InstanceAddress>> PlanRevertBatches(
    const std::vector<InstanceAddress>& touched, int batch_size) {
  // Newest first: the last instances upgraded are the least proven, and
  // the first ones have served longest on the new version.
  std::vector<InstanceAddress> newest_first(touched.rbegin(), touched.rend());
  return PlanBatches(newest_first, batch_size);
}

RevertResult RevertInstances(const DeployEnvironment& env,
                             const RolloutOptions& options,
                             const std::vector<InstanceAddress>& touched) {
  RevertResult result;
  // The deploy's own steps with the revert command; --on-failure belongs
  // to the upgrade and does not run.
  DeployOptions revert = options.deploy;
  revert.command = options.revert_command;
  revert.on_failure.clear();
  revert.revert = true;
  const auto batches = PlanRevertBatches(touched, options.batch);
  const int count = static_cast<int>(batches.size());
  for (int b = 0; b < count; ++b) {
    const auto& batch = batches[b];
    if (env.abort->requested()) {
      for (int rest = b; rest < count; ++rest) {
        for (const auto& a : batches[rest]) {
          result.left.push_back(a);
          result.failures.push_back(a.ToString() +
                                    ": not reverted (stopped by a signal)");
        }
      }
      break;
    }
    std::string names;
    for (const auto& a : batch) names += (names.empty() ? "" : ", ") + a.ToString();
    env.reporter->Notice("revert batch " + std::to_string(b + 1) + "/" +
                         std::to_string(count) + ": " + names);
    std::vector<DeployResult> results(batch.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < batch.size(); ++i) {
      threads.emplace_back([&, i] {
        results[i] = DeployInstance(env, revert, batch[i], batch);
      });
    }
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < batch.size(); ++i) {
      if (results[i].outcome == DeployOutcome::kSucceeded) {
        result.reverted.push_back(batch[i]);
      } else {
        result.left.push_back(batch[i]);
        result.failures.push_back(batch[i].ToString() + ": revert " +
                                  DeployOutcomeName(results[i].outcome) +
                                  ": " + results[i].detail);
      }
    }
  }
  return result;
}

}  // namespace zkroll::coordinator
