// The port-switching sequence of one instance (deploy.h, "--switch").
//
// The coordinator only writes intent (/switch/...) and reads what the agent
// applied (/forwarders/...); the agent's forwarder moves the traffic. Every
// write carries a fresh generation, and each step waits until the agent
// reports that generation applied (or refused), so a step never assumes
// the traffic moved.
#include <algorithm>

#include "common/clock.h"
#include "common/paths.h"
#include "common/payload.h"
#include "coordinator/instance_deploy.h"
#include "coordinator/inventory.h"
#include "coordinator/node_wait.h"

namespace zkroll::coordinator::detail {
namespace {

// Failed connections and 5xx answers the agent counted for `backend`.
uint64_t Failures(const proto::ForwarderState& st, const std::string& backend,
                  uint64_t* connections = nullptr) {
  for (const auto& b : st.backends()) {
    if (b.backend() != backend) continue;
    if (connections) *connections = b.connections();
    return b.connect_failures() + b.http_5xx();
  }
  if (connections) *connections = 0;
  return 0;
}

uint32_t Active(const proto::ForwarderState& st, const std::string& backend) {
  for (const auto& b : st.backends()) {
    if (b.backend() == backend) return b.active();
  }
  return 0;
}

}  // namespace

std::pair<std::optional<proto::ForwarderState>, bool>
SwitchDeploy::WaitForwarderState(
    const std::function<bool(const proto::ForwarderState&)>& done,
    Millis timeout, bool stop_on_abort) {
  const std::string path = paths::ForwarderNode(env_.service, address_);
  std::optional<proto::ForwarderState> last;
  NodeWaitOptions wait;
  wait.watch = NodeWatch::kData;
  wait.deadline = Clock::now() + timeout;
  wait.stop_on_abort = stop_on_abort;
  // A missing or unreadable node: the agent may be restarting.
  wait.resync = Millis(2000);
  wait.retry = Millis(200);
  NodeWaitResult r = WaitForNode(
      env_.session, env_.abort, path, wait, [&](const NodeRead& read) {
        if (!read.exists()) return false;
        auto st = ParsePayload<proto::ForwarderState>(read.data, path);
        if (!st.ok()) return false;
        last = *st;
        return done(*st);
      });
  return {last, r.end == NodeWaitResult::End::kDone};
}

proto::ForwardTarget SwitchDeploy::NewTarget(const InstanceAddress& backend,
                                             const std::string& phase) {
  proto::ForwardTarget t;
  t.set_backend(backend.ToString());
  t.set_phase(phase);
  t.set_generation(env_.deploy_id.str() + "#" + std::to_string(++plan_.writes));
  t.set_deploy_id(env_.deploy_id.str());
  t.set_by(CurrentUserAtHost());
  *t.mutable_updated_at() = NowTimestamp();
  return t;
}

std::pair<std::optional<proto::ForwarderState>, bool> SwitchDeploy::WaitApplied(
    const std::string& generation, bool stop_on_abort) {
  return WaitForwarderState(
      [&](const proto::ForwarderState& s) {
        return s.generation() == generation ||
               s.refused_generation() == generation;
      },
      opt_.switching.apply_timeout, stop_on_abort);
}

bool SwitchDeploy::StillOurs(std::string* why) {
  return EphemeralStillOurs(plan_.deploy_path, plan_.session,
                            "in-flight switch node",
                            "the agent went back to the committed backend " +
                                plan_.old_backend.ToString(),
                            why);
}

void SwitchDeploy::AddCommandEnvironment(CommandSpec* spec) const {
  spec->env["ZKROLL_NEW_PORT"] = std::to_string(plan_.new_backend.port());
  spec->env["ZKROLL_OLD_PORT"] = std::to_string(plan_.old_backend.port());
  spec->env["ZKROLL_BACKEND_IP"] = plan_.new_backend.ip();
  spec->env["ZKROLL_BACKUP"] = plan_.backup.ToString();
}

std::optional<Stop> SwitchDeploy::Prepare(
    const std::vector<InstanceAddress>& busy) {
  Step step = Begin("prepare", "reading the agent's forwarding state", false);
  auto fail = [&](const std::string& why) {
    End(step, StepVerdict::kFailed, why + "; nothing was touched");
    return Stop{DeployOutcome::kFailed, why + "; nothing was touched"};
  };
  plan_.switch_path = paths::SwitchNode(env_.service, address_);
  plan_.deploy_path = paths::SwitchDeployNode(env_.service, address_);
  plan_.state_path = paths::ForwarderNode(env_.service, address_);
  auto data = Retrying([&] { return env_.session->GetSync(plan_.state_path); });
  if (!data.ok()) {
    if (data.status().code() == StatusCode::kNotFound) {
      return fail("no agent forwards " + label_ + " (" + plan_.state_path +
                  " does not exist): declare forward_backend for it in its "
                  "agent's config (docs/agent.md), or deploy without "
                  "--switch");
    }
    return fail("cannot read " + plan_.state_path + ": " +
                data.status().ToString());
  }
  auto st = ParsePayload<proto::ForwarderState>(data->data, plan_.state_path);
  if (!st.ok()) return fail(st.status().message());
  plan_.last = *st;
  if (!st->listening()) {
    return fail("the agent on " + st->host() + " cannot listen on " +
                address_.ToString() + ": " + st->error());
  }
  if (st->source() == "deploy") {
    return fail("a switch of " + label_ + " is already in flight (generation " +
                st->generation() + ", " + plan_.deploy_path +
                "); wait for it, or for its coordinator's session to expire");
  }
  auto old = InstanceAddress::Parse(st->stable_backend());
  if (!old.ok()) {
    return fail(plan_.state_path +
                ": stable_backend: " + old.status().message());
  }
  plan_.old_backend = *old;
  for (uint32_t port : st->local_ports()) {
    auto candidate = InstanceAddress::FromParts(st->local_ip(), port);
    if (candidate.ok() && !(*candidate == *old)) {
      plan_.new_backend = *candidate;
      break;
    }
  }
  if (plan_.new_backend.empty()) {
    return fail("the agent offers no local port besides the committed "
                "backend " + old->ToString() + " for the new version; add "
                "one to forward_ports in the instance's agent config");
  }
  auto taken = [&](const InstanceAddress& a) {
    return a == address_ ||
           std::find(busy.begin(), busy.end(), a) != busy.end();
  };
  if (opt_.switching.backup) {
    const InstanceAddress& b = *opt_.switching.backup;
    if (taken(b)) {
      return fail("--backup " + b.ToString() +
                  " is the instance itself or deployed at the same time");
    }
    auto reg = Retrying([&] {
      return env_.session->ExistsSync(paths::InstanceNode(env_.service, b));
    });
    if (!reg.ok() || !reg->has_value()) {
      return fail("--backup " + b.ToString() + " is not a registered instance "
                  "of " + env_.service.str() + "; the agent would refuse it");
    }
    plan_.backup = b;
  } else {
    auto kids = Retrying([&] {
      return env_.session->GetChildrenSync(paths::ServiceDir(env_.service));
    });
    if (kids.ok()) {
      for (const std::string& name : kids->names) {
        auto a = InstanceAddress::ParseNodeName(name);
        if (a.ok() && !taken(*a)) {
          plan_.backup = *a;
          break;
        }
      }
    }
    if (plan_.backup.empty()) {
      return fail("no other registered instance of " + env_.service.str() +
                  " can take " + label_ + "'s traffic while COMMAND runs; "
                  "start one, or name one with --backup");
    }
  }
  End(step, StepVerdict::kOk,
      "old backend " + plan_.old_backend.ToString() + ", new " +
          plan_.new_backend.ToString() + ", backup " + plan_.backup.ToString() +
          " (agent " + st->host() + ")");
  return std::nullopt;
}

std::optional<Stop> SwitchDeploy::Forward(const std::string& step_name,
                                          const InstanceAddress& backend,
                                          const std::string& phase,
                                          const std::string& detail) {
  Step step = Begin(step_name, detail, false);
  auto fail = [&](DeployOutcome outcome, const std::string& why) {
    End(step,
        outcome == DeployOutcome::kFailed ? StepVerdict::kFailed
                                          : StepVerdict::kAborted,
        why);
    return Stop{outcome, why};
  };
  proto::ForwardTarget t = NewTarget(backend, phase);
  t.set_fallback(plan_.old_backend.ToString());
  const std::string json = ToJson(t);
  if (!plan_.in_flight) {
    Status dir = Retrying([&] {
      return env_.session->EnsurePathSync(plan_.switch_path, env_.switch_acl);
    });
    if (!dir.ok()) {
      return fail(DeployOutcome::kFailed,
                  "cannot create " + plan_.switch_path + ": " + dir.ToString());
    }
    auto created = Retrying([&] {
      return env_.session->CreateSync(plan_.deploy_path, json,
                                      CreateMode::kEphemeral, env_.switch_acl);
    });
    const int64_t sid = env_.session->session_id();
    if (!created.ok()) {
      // A create retried after a connection loss may have landed the first
      // time: then the node is ours.
      auto mine = env_.session->GetSync(plan_.deploy_path);
      if (!(created.status().code() == StatusCode::kAlreadyExists &&
            mine.ok() && mine->stat.ephemeral_owner == sid)) {
        return fail(DeployOutcome::kFailed,
                    created.status().code() == StatusCode::kAlreadyExists
                        ? "another switch of " + label_ + " is in flight (" +
                              plan_.deploy_path + " exists)"
                        : "cannot create " + plan_.deploy_path + ": " +
                              created.status().ToString());
      }
    }
    plan_.in_flight = true;
    plan_.session = sid;
    result_.touched = true;
  } else {
    std::string why;
    if (!StillOurs(&why)) return fail(DeployOutcome::kSessionLost, why);
    Status set = Retrying([&] {
      return env_.session->SetSync(plan_.deploy_path, json).status();
    });
    if (!set.ok()) {
      return fail(DeployOutcome::kFailed,
                  "cannot write " + plan_.deploy_path + ": " + set.ToString());
    }
  }
  const std::string gen = t.generation();
  auto [st, ok] = WaitApplied(gen, /*stop_on_abort=*/true);
  if (st) plan_.last = st;
  if (!ok) {
    if (env_.abort->requested()) {
      Stop s = AbortStop(step_name);
      End(step, StepVerdict::kAborted, s.detail);
      return s;
    }
    return fail(DeployOutcome::kFailed,
                "the agent did not apply generation " + gen + " (" +
                    backend.ToString() + ") within " +
                    FormatDuration(opt_.switching.apply_timeout) +
                    "; is zkroll-agent running on the instance's host?");
  }
  if (st->generation() != gen) {
    return fail(DeployOutcome::kFailed,
                "the agent refused " + backend.ToString() + ": " + st->error());
  }
  End(step, StepVerdict::kOk,
      "new connections go to " + st->backend() +
          (st->fallback().empty() ? "" : ", fallback " + st->fallback()));
  return std::nullopt;
}

std::optional<Stop> SwitchDeploy::Verify() {
  const std::string backend = plan_.new_backend.ToString();
  const uint64_t max = opt_.switching.verify_max_failures;
  Step step = Begin("verify",
                    "watching " + backend + " for " +
                        FormatDuration(opt_.switching.verify_window) +
                        " (at most " + std::to_string(max) +
                        " failed connections or 5xx answers)",
                    true);
  uint64_t base_connections = 0;
  const uint64_t base =
      plan_.last ? Failures(*plan_.last, backend, &base_connections) : 0;
  // The agent publishes its counters at most ~100 ms after they change;
  // the grace makes the last moments of the window count too.
  const Millis grace(150);
  auto [st, bad] = WaitForwarderState(
      [&](const proto::ForwarderState& s) {
        return Failures(s, backend) > base + max;
      },
      opt_.switching.verify_window + grace, /*stop_on_abort=*/true);
  if (st) plan_.last = st;
  if (env_.abort->requested()) {
    Stop s = AbortStop("verify");
    End(step, StepVerdict::kAborted, s.detail);
    return s;
  }
  if (!st) {
    std::string why = "cannot read the agent's counters (" + plan_.state_path +
                      ") to verify " + backend;
    End(step, StepVerdict::kFailed, why);
    return Stop{DeployOutcome::kFailed, why};
  }
  uint64_t connections = 0;
  uint64_t failures = Failures(*st, backend, &connections) - base;
  connections -= std::min(connections, base_connections);
  std::string counts = std::to_string(connections) + " connection(s), " +
                       std::to_string(failures) +
                       " failure(s) (failed connects and 5xx answers)";
  if (bad || st->backend() != backend) {
    std::string why =
        st->backend() != backend
            ? "the agent no longer forwards to " + backend + " (now " +
                  st->backend() + ")"
            : backend + " failed during verify: " + counts;
    End(step, StepVerdict::kFailed, why);
    return Stop{DeployOutcome::kFailed, why};
  }
  End(step, StepVerdict::kOk, counts);
  return std::nullopt;
}

std::optional<Stop> SwitchDeploy::Commit() {
  Step step =
      Begin("commit",
            "making " + plan_.new_backend.ToString() + " the committed backend",
            false);
  std::string why;
  if (!StillOurs(&why)) {
    End(step, StepVerdict::kAborted, why);
    return Stop{DeployOutcome::kSessionLost, why};
  }
  proto::ForwardTarget t = NewTarget(plan_.new_backend, "committed");
  // One transaction: the agent never sees the in-flight node gone while
  // the committed one still names the old backend.
  // Through our session only: a retry in a later session would delete
  // another coordinator's in-flight node.
  MultiResult m = RetryingIn(plan_.session, [&] {
    if (env_.session->session_id() != plan_.session) {
      MultiResult lost;
      lost.status = Aborted("the coordinator's ZooKeeper session changed "
                            "before the commit; our in-flight node is gone");
      return lost;
    }
    return env_.session->MultiInSessionSync(
        {ZkOp::SetData(plan_.switch_path, ToJson(t)),
         ZkOp::Delete(plan_.deploy_path)},
        plan_.session);
  });
  if (!m.status.ok()) {
    why = "cannot commit: " + m.status.ToString();
    End(step, StepVerdict::kFailed, why);
    return Stop{DeployOutcome::kFailed, why};
  }
  plan_.committed = true;
  plan_.in_flight = false;
  const std::string gen = t.generation();
  auto [st, ok] = WaitApplied(gen, /*stop_on_abort=*/false);
  if (st) plan_.last = st;
  if (!ok || st->generation() != gen) {
    // Committed in ZooKeeper: the agent applies it when it can. Not a
    // reason to roll back.
    env_.reporter->Notice(label_ + ": the agent has not confirmed the "
                          "committed backend yet" +
                          (st && !st->error().empty() ? ": " + st->error()
                                                      : std::string()));
  }
  End(step, StepVerdict::kOk, plan_.switch_path + " = " + t.backend());
  return std::nullopt;
}

void SwitchDeploy::DrainAndRun(const InstanceAddress& backend,
                               const std::vector<std::string>& argv,
                               const std::string& step_name,
                               const std::string& reason) {
  const std::string text = backend.ToString();
  Step drain = Begin("drain-" + std::string(step_name == "stop-old" ? "old" : "new"),
                     "waiting up to " + FormatDuration(opt_.drain_wait) +
                         " for the connections to " + text + " to end",
                     opt_.drain_wait >= Millis(1000));
  auto [st, ok] = WaitForwarderState(
      [&](const proto::ForwarderState& s) { return Active(s, text) == 0; },
      opt_.drain_wait, /*stop_on_abort=*/false);
  if (ok) {
    End(drain, StepVerdict::kOk, "no connection left on " + text);
  } else {
    // Normal with keep-alive callers, whose connections stay until the
    // service closes them; not a failure of the deploy.
    End(drain, StepVerdict::kOk,
        (st ? std::to_string(Active(*st, text)) : std::string("unknown")) +
            " connection(s) still open on " + text + " after " +
            FormatDuration(opt_.drain_wait) + "; going on");
  }
  if (!argv.empty()) RunStepCommand(step_name, argv, reason);
}

void SwitchDeploy::Rollback(const std::string& reason) {
  result_.rolled_back = true;
  Step step = Begin(
      "rollback",
      "sending new connections back to " + plan_.old_backend.ToString(), false);
  if (plan_.in_flight) {
    // Our in-flight node names the new backend (or the backup); without it
    // the agent goes back to the committed backend, the old one.
    // Deleted only through the session that created it: after a session
    // change ours is gone with it, and a node there now is another
    // coordinator's.
    Status d = RetryingIn(plan_.session, [&] {
      if (env_.session->session_id() != plan_.session) return Status::Ok();
      auto node = env_.session->GetSync(plan_.deploy_path);
      if (!node.ok()) return node.status();
      if (node->stat.ephemeral_owner != plan_.session) return Status::Ok();
      return env_.session->DeleteInSessionSync(
          plan_.deploy_path, node->stat.version, plan_.session);
    });
    if (!d.ok() && d.code() != StatusCode::kNotFound) {
      End(step, StepVerdict::kFailed,
          "cannot delete " + plan_.deploy_path + ": " + d.ToString() +
              "; it is ephemeral and goes when the coordinator exits");
      return;
    }
    plan_.in_flight = false;
  }
  const std::string old = plan_.old_backend.ToString();
  auto [st, ok] = WaitForwarderState(
      [&](const proto::ForwarderState& s) {
        return s.source() != "deploy" && s.backend() == old;
      },
      opt_.switching.apply_timeout, /*stop_on_abort=*/false);
  if (!ok) {
    End(step, StepVerdict::kFailed,
        "the agent has not confirmed forwarding to " + old + " within " +
            FormatDuration(opt_.switching.apply_timeout) +
            (st ? " (it reports " + st->backend() + ")" : std::string()));
  } else {
    End(step, StepVerdict::kOk, "new connections go to " + old + " again");
  }
  // The new version may still be running on its port: drain it, then let
  // --on-failure stop it. Before COMMAND there is nothing to stop.
  if (plan_.command_started) {
    DrainAndRun(plan_.new_backend, opt_.on_failure, "on-failure", reason);
  }
}

DeployResult SwitchDeploy::Run(const std::vector<InstanceAddress>& busy) {
  if (env_.journal)
    env_.journal->SetInstanceOutcome(address_, InstanceOutcome::kRunning);
  auto rollback = [&](const Stop& stop) {
    Rollback(stop.detail);
    std::string detail = stop.detail + "; rolled back: new connections go to " +
                         plan_.old_backend.ToString() + " again";
    return Finish(stop.outcome, detail);
  };
  if (env_.abort->requested()) {
    return Finish(DeployOutcome::kAborted,
                  "stopped before it started; nothing was touched");
  }
  if (auto stop = Prepare(busy)) {
    return Finish(stop->outcome, stop->detail);
  }
  if (auto stop = Forward("forward-backup", plan_.backup, "backup",
                          "new connections to " + plan_.backup.ToString() +
                              " while COMMAND runs")) {
    return rollback(*stop);
  }
  plan_.command_started = true;
  if (auto stop = Command()) return rollback(*stop);
  target_ =
      health::CheckTarget{plan_.new_backend.ip(), plan_.new_backend.port()};
  if (auto stop = Health()) return rollback(*stop);
  if (auto stop = Forward("forward-new", plan_.new_backend, "verify",
                          "new connections to the new version on " +
                              plan_.new_backend.ToString())) {
    return rollback(*stop);
  }
  if (auto stop = Verify()) return rollback(*stop);
  if (auto stop = Commit()) return rollback(*stop);
  DrainAndRun(plan_.old_backend, opt_.switching.stop_old, "stop-old", "");
  return Finish(DeployOutcome::kSucceeded, "");
}

}  // namespace zkroll::coordinator::detail
