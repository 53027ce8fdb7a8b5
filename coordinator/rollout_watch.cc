#include "coordinator/rollout_watch.h"

#include <memory>

#include "common/paths.h"
#include "common/payload.h"
#include "common/states.h"
#include "coordinator/connection.h"
#include "coordinator/node_wait.h"

namespace zkroll::coordinator {
namespace {

using Clock = std::chrono::steady_clock;

// A resync in case a watch event was lost while disconnected.
constexpr Millis kResync{5000};

// Reads `address` once, arming watches in `watches`. A transient failure is
// returned as such; the caller retries within its window.
Result<InstanceServiceView> ReadView(const DeployEnvironment& env,
                                     const InstanceAddress& address,
                                     NodeWatchSet& watches) {
  InstanceServiceView view;
  const std::string node = paths::InstanceNode(env.service, address);
  NodeRead exists = watches.Read(node, node, NodeWatch::kExists);
  if (!exists.exists() && exists.status.code() != StatusCode::kNotFound) {
    return exists.status;
  }
  view.registered = exists.exists();
  if (!view.registered) return view;
  auto data = env.session->GetSync(node);
  if (!data.ok()) {
    if (data.status().code() == StatusCode::kNotFound) {
      view.registered = false;  // gone between the two reads; watch fired
      return view;
    }
    return data.status();
  }
  auto rec = ParsePayload<proto::InstanceRecord>(data->data, node);
  if (!rec.ok()) return view;  // registered, but by nobody we can ask
  auto host = HostId::Parse(rec->host());
  if (!host.ok()) return view;
  view.registered_by = host->str();
  const std::string agent_path = paths::AgentNode(*host);
  NodeRead agent = watches.Read(agent_path, agent_path, NodeWatch::kData);
  if (!agent.exists()) {
    // No record (the agent's session ended): its registration goes with
    // it, and the exists-watch sees that.
    if (agent.status.code() == StatusCode::kNotFound) return view;
    return agent.status;
  }
  auto record = ParsePayload<proto::AgentRecord>(agent.data, agent_path);
  if (!record.ok()) return view;
  for (const auto& inst : record->instances()) {
    if (inst.service() == env.service.str() && inst.ip() == address.ip() &&
        inst.port() == address.port()) {
      view.agent = inst;
      break;
    }
  }
  return view;
}

}  // namespace

std::optional<std::string> WhyOutOfService(const InstanceServiceView& view) {
  if (!view.registered) {
    return std::string("its registration vanished (the agent deregistered "
                       "it, or the agent's session ended)");
  }
  // Only an agent record that already shows the registration speaks for
  // the instance now; an older one describes it before it came back.
  if (view.agent && view.agent->registered() && !view.agent->healthy()) {
    std::string why =
        "agent " + view.registered_by + " reports it " +
        (view.agent->state().empty() ? WireString(AgentState::kUnhealthy)
                                     : view.agent->state());
    if (!view.agent->last_check().empty()) {
      why += " (last check: " + view.agent->last_check() + ")";
    }
    return why;
  }
  return std::nullopt;
}

StayInServiceResult WatchStayInService(
    const DeployEnvironment& env, const std::vector<InstanceAddress>& instances,
    Millis period, Millis zk_retry_window) {
  StayInServiceResult result;
  const auto deadline = Clock::now() + period;
  // When the reads began to fail (zero: they do not).
  Clock::time_point failing_since{};
  NodeWatchSet watches(env.session, env.abort);
  while (true) {
    // Everything is read again on any change.
    (void)watches.TakeChanged();
    Status read_error = Status::Ok();
    for (const InstanceAddress& a : instances) {
      auto view = ReadView(env, a, watches);
      if (!view.ok()) {
        read_error = view.status();
        continue;
      }
      if (auto why = WhyOutOfService(*view)) {
        result.flapped.push_back(a);
        result.flaps.push_back(a.ToString() + ": " + *why);
      }
    }
    if (!result.flapped.empty()) {
      result.verdict = StayInServiceResult::Verdict::kFlapped;
      return result;
    }
    if (!read_error.ok()) {
      if (!read_error.IsTransient(Status::RetryIn::kAnySession)) {
        result.verdict = StayInServiceResult::Verdict::kFlapped;
        result.error = "cannot observe the instances: " + read_error.ToString();
        return result;
      }
      if (failing_since == Clock::time_point{}) failing_since = Clock::now();
      if (Clock::now() - failing_since >= zk_retry_window) {
        result.verdict = StayInServiceResult::Verdict::kFlapped;
        result.error = "cannot observe the instances for " +
                       FormatDuration(zk_retry_window) + ": " +
                       read_error.ToString();
        return result;
      }
    } else {
      failing_since = Clock::time_point{};
    }
    if (Clock::now() >= deadline) return result;  // held for the period
    auto w = watches.Wait(
        std::min(deadline,
                 Clock::now() + (read_error.ok() ? kResync : Millis(250))),
        [&] { return !read_error.ok() && env.session->connected(); });
    if (w == AbortSignal::WaitResult::kAborted) {
      result.verdict = StayInServiceResult::Verdict::kAborted;
      return result;
    }
  }
}

}  // namespace zkroll::coordinator
