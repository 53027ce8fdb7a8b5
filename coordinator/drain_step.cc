// The `--drain auto` step of InstanceDeploy (deploy.h, drain_decision.h):
// the DrainRequest around the pause, and the event loop that feeds
// DecideDrain with what the watches on /callers/<service> and on the
// instance's traffic node report. No polling: the thread sleeps in a
// NodeWatchSet (node_wait.h) until a watch fires, the session changes, or
// the decision's next wake-up (drain-min, the cap) comes.
#include <glog/logging.h>
#include <unistd.h>

#include <memory>
#include <set>

#include "common/clock.h"
#include "common/paths.h"
#include "common/payload.h"
#include "coordinator/instance_deploy.h"
#include "coordinator/node_wait.h"

namespace zkroll::coordinator::detail {

namespace {

// The keys of the auto drain's watches in its NodeWatchSet.
const char kChildrenKey[] = "children";  // the children of /callers/S
const char kTrafficKey[] = "traffic";    // the instance's traffic node
const char kCallerKeyPrefix[] = "caller/";  // + the caller's node name

// Re-reads after a failed read come no faster than this; the cap bounds
// the whole drain anyway.
constexpr Millis kRetryPause{250};

}  // namespace

void PauseDeploy::StartObservation() {
  observation_.request_path = paths::DrainRequestNode(env_.service, address_);
  observation_.traffic_path = paths::TrafficNode(env_.service, address_);
  const std::string dir = paths::DrainDir(env_.service);
  Status made = Retrying(
      [&] { return env_.session->EnsurePathSync(dir, env_.drain_acl); });
  if (!made.ok()) {
    observation_.note = "cannot create " + dir + ": " + made.ToString();
    env_.reporter->Notice(
        label_ + ": traffic will not be observed: " + observation_.note);
    return;
  }
  proto::DrainRequest req;
  req.set_deploy_id(env_.deploy_id.str());
  req.set_by(CurrentUserAtHost());
  req.set_pid(::getpid());
  *req.mutable_since() = NowTimestamp();
  req.set_interval_ms(100);
  // The agent writes a report when the instance's quiet time reaches this,
  // instead of after every sample (docs/design.md, "Traffic observation").
  req.set_quiet_ms(static_cast<uint32_t>(opt_.drain_quiet.count()));
  const int64_t sid = env_.session->session_id();
  auto created =
      env_.session->CreateSync(observation_.request_path, ToJson(req),
                               CreateMode::kEphemeral, env_.drain_acl);
  if (!created.ok()) {
    // A retryable failure may have created it; an existing node is ours
    // only if our session owns it.
    auto node = Retrying(
        [&] { return env_.session->GetSync(observation_.request_path); });
    bool ours = node.ok() && node->stat.ephemeral_owner == sid &&
                sid == env_.session->session_id();
    if (!ours) {
      observation_.note =
          created.status().code() == StatusCode::kAlreadyExists
              ? "another coordinator holds " + observation_.request_path
              : "cannot create " + observation_.request_path + ": " +
                    created.status().ToString();
      env_.reporter->Notice(
          label_ + ": traffic will not be observed: " + observation_.note);
      return;
    }
  }
  observation_.session = sid;
  observation_.requested = true;

  // Wait for the agent's first report of this request, so that it has seen
  // who talks to the instance before the pause.
  NodeWaitOptions wait;
  wait.watch = NodeWatch::kData;
  wait.deadline = Clock::now() + opt_.drain_observe_timeout;
  wait.retry = kRetryPause;
  const auto start = Clock::now();
  std::string source;
  NodeWaitResult first = WaitForNode(
      env_.session, env_.abort, observation_.traffic_path, wait,
      [&](const NodeRead& read) {
        if (!read.exists()) return false;
        auto report = ParsePayload<proto::TrafficReport>(
            read.data, observation_.traffic_path);
        if (!report.ok() || report->deploy_id() != env_.deploy_id.str()) {
          return false;
        }
        source = report->source();
        return true;
      });
  if (first.end == NodeWaitResult::End::kDone) {
    VLOG(1) << label_ << ": first traffic report after "
            << FormatDuration(Since(start)) << " (source " << source << ")";
    return;
  }
  if (first.end == NodeWaitResult::End::kAborted) return;
  observation_.note = "the agent did not answer the drain request within " +
                      FormatDuration(opt_.drain_observe_timeout) +
                      ": an agent without traffic observation, or none "
                      "running for the instance";
  env_.reporter->Notice(label_ + ": " + observation_.note +
                        "; the drain will run to its cap unless a report "
                        "comes");
}

void PauseDeploy::StopObservation() {
  if (!observation_.requested) return;
  observation_.requested = false;
  auto node = Retrying(
      [&] { return env_.session->GetSync(observation_.request_path); });
  if (!node.ok() || node->stat.ephemeral_owner != observation_.session) {
    return;  // gone with our session, or not ours: nothing to delete
  }
  Status s = Retrying([&] {
    return env_.session->DeleteSync(observation_.request_path,
                                    node->stat.version);
  });
  if (!s.ok() && s.code() != StatusCode::kNotFound) {
    LOG(WARNING) << "cannot delete " << observation_.request_path << ": "
                 << s.ToString()
                 << "; it is ephemeral and goes when the coordinator exits";
  }
}

std::optional<Stop> PauseDeploy::DrainAuto(Step& step) {
  const DrainConfig cfg{opt_.drain_wait, opt_.drain_quiet, opt_.drain_min};
  DrainInputs in;
  in.deploy_id = env_.deploy_id.str();
  in.pause_pzxid = pause_pzxid_;
  const std::string callers_dir = paths::CallersDir(env_.service);
  if (observation_.traffic_path.empty()) {
    observation_.traffic_path = paths::TrafficNode(env_.service, address_);
  }

  NodeWatchSet watches(env_.session, env_.abort);

  bool snapshot_taken = false;
  bool had_report = false;
  std::set<std::string> logged;  // "name\nreason" already logged
  auto skip = [&](const std::string& name, const std::string& why) {
    in.callers.erase(name);
    in.bad_callers[name] = why;
    if (logged.insert(name + "\n" + why).second) {
      LOG(WARNING) << label_ << ": skipping caller node "
                   << QuoteForMessage(name) << " of " << callers_dir << ": "
                   << why;
    }
  };
  auto forget = [&](const std::string& name) {
    auto it = in.callers.find(name);
    if (it != in.callers.end()) {
      in.departed[name] = it->second.record;
      in.callers.erase(it);
    }
    in.bad_callers.erase(name);
  };

  // Reads that failed (connection loss): done again after kRetryPause, not
  // through the watches, which would wake the wait at once. The first pass
  // reads the callers' directory and the traffic node.
  bool again_children = true;
  bool again_traffic = true;
  std::set<std::string> again_callers;
  while (true) {
    bool retry = false;
    // Changed nodes, and after a session change every node read so far.
    const std::set<std::string> changed = watches.TakeChanged();
    const bool read_children = again_children || changed.count(kChildrenKey);
    const bool read_traffic = again_traffic || changed.count(kTrafficKey);
    std::set<std::string> to_read;
    to_read.swap(again_callers);
    for (const std::string& key : changed) {
      if (key.rfind(kCallerKeyPrefix, 0) == 0) {
        to_read.insert(key.substr(sizeof kCallerKeyPrefix - 1));
      }
    }
    again_children = again_traffic = false;

    if (read_children) {
      NodeRead kids =
          watches.Read(kChildrenKey, callers_dir, NodeWatch::kChildren);
      std::optional<std::vector<std::string>> names;
      if (kids.exists()) {
        names = kids.children;
      } else if (kids.status.code() == StatusCode::kNotFound) {
        // No caller ever registered for the service; the exists watch
        // tells us when one does.
        names.emplace();
      }
      if (!names) {
        retry = again_children = true;
      } else {
        std::set<std::string> now(names->begin(), names->end());
        if (!snapshot_taken) {
          in.callers_at_pause = now;
          snapshot_taken = true;
        }
        std::vector<std::string> gone;
        for (const auto& [name, obs] : in.callers) {
          if (now.count(name) == 0) gone.push_back(name);
        }
        for (const auto& [name, why] : in.bad_callers) {
          if (now.count(name) == 0) gone.push_back(name);
        }
        for (const auto& name : gone) forget(name);
        for (const auto& name : now) {
          if (in.callers.count(name) == 0 && in.bad_callers.count(name) == 0) {
            to_read.insert(name);
          }
        }
      }
    }

    for (const std::string& name : to_read) {
      auto id = HostId::Parse(name);
      if (!id.ok()) {
        skip(name, "not a caller id: " + id.status().message());
        continue;
      }
      const std::string path = paths::CallerNode(env_.service, *id);
      NodeRead data =
          watches.Read(kCallerKeyPrefix + name, path, NodeWatch::kData);
      if (!data.exists()) {
        if (data.status.code() == StatusCode::kNotFound) {
          forget(name);
          watches.Forget(kCallerKeyPrefix + name);
        } else {
          // Until it is read it cannot count as acknowledged.
          in.callers.erase(name);
          in.bad_callers[name] = "not read yet: " + data.status.ToString();
          retry = true;
          again_callers.insert(name);
        }
        continue;
      }
      auto record = ParsePayload<proto::CallerRecord>(data.data, path);
      if (!record.ok()) {
        skip(name, record.status().message());
      } else if (record->service() != env_.service.str()) {
        skip(name, "record names service " +
                       QuoteForMessage(record->service()) + ", not " +
                       env_.service.str());
      } else if (record->caller_id() != name) {
        skip(name, "record names caller " +
                       QuoteForMessage(record->caller_id()) +
                       ", not its node name");
      } else {
        in.bad_callers.erase(name);
        CallerObservation& obs = in.callers[name];
        obs.record = std::move(*record);
        if (obs.record.list_pzxid() >= pause_pzxid_ && !obs.acked_at) {
          obs.acked_at = Since(paused_at_);
        }
      }
    }

    if (read_traffic) {
      NodeRead data =
          watches.Read(kTrafficKey, observation_.traffic_path, NodeWatch::kData);
      if (data.exists()) {
        auto report = ParsePayload<proto::TrafficReport>(
            data.data, observation_.traffic_path);
        if (report.ok()) {
          TrafficObservation t;
          t.report = std::move(*report);
          t.written_after_pause = data.stat.mzxid > pause_zxid_;
          t.read_at = Since(paused_at_);
          in.traffic = std::move(t);
          had_report = true;
        } else {
          observation_.note =
              "unreadable traffic report: " + report.status().message();
          in.traffic.reset();
        }
      } else if (data.status.code() == StatusCode::kNotFound) {
        if (had_report) {
          observation_.note =
              "the agent's report vanished during the drain (the agent "
              "stopped or lost its ZooKeeper session)";
        }
        in.traffic.reset();
      } else {
        retry = again_traffic = true;
      }
    }

    in.now = Since(paused_at_);
    in.traffic_note = observation_.note;
    DrainDecision d = DecideDrain(cfg, in);
    if (d.done) {
      env_.reporter->Drain(label_, "auto", d.at_cap ? "cap" : "evidence",
                           in.now, cfg.cap, d.reason, d.missing);
      End(step, StepVerdict::kOk, d.reason);
      return std::nullopt;
    }
    auto deadline = paused_at_ + d.next_wake;
    if (retry) deadline = std::min(deadline, Clock::now() + kRetryPause);
    auto w = watches.Wait(deadline);
    if (w == AbortSignal::WaitResult::kAborted) {
      Stop s = AbortStop("drain");
      End(step, StepVerdict::kAborted, s.detail + " (" + d.reason + ")");
      return s;
    }
  }
}

}  // namespace zkroll::coordinator::detail
