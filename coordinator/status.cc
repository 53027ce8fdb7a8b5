#include "coordinator/status.h"

#include "coordinator/process_identity.h"
#include <glog/logging.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "common/clock.h"
#include "common/paths.h"
#include "common/payload.h"
#include "coordinator/inventory.h"
#include "coordinator/journal.h"
#include "coordinator/lock.h"

namespace zkroll::coordinator {
namespace {

// How many recent journals status reads to find each instance's last deploy.
constexpr int kStatusJournals = 20;

struct LastDeploy {
  std::string deploy_id;
  std::string kind;
  InstanceOutcome outcome;  // the instance's outcome in that deploy
  std::string started_at;
  RunOutcome deploy_outcome;   // the deploy's (ShownOutcome)
  std::string last_step;       // "canary-soak running"; newest deploy only
};

// The latest step of `instance` in deploy `id` ("name verdict"), or "".
std::string LastStep(ZkSession* session, const ServiceName& service,
                     const DeployId& id, const std::string& instance) {
  auto addr = InstanceAddress::ParseNodeName(instance);
  if (!addr.ok()) return "";
  const std::string path = paths::DeployInstanceNode(service, id, *addr);
  auto data = session->GetSync(path);
  if (!data.ok()) return "";
  auto p = ParsePayload<proto::DeployRecord::InstanceProgress>(data->data, path);
  if (!p.ok() || p->steps().empty()) return "";
  const auto& last = p->steps(p->steps_size() - 1);
  return last.name() + " " + last.verdict();
}

// Deploy ids of running journals whose coordinator still holds the lock.
std::set<std::string> LiveDeploys(ZkSession* session,
                                  const ServiceName& service) {
  std::set<std::string> live;
  const std::string dir = paths::LockDir(service);
  auto children = session->GetChildrenSync(dir);
  if (!children.ok()) return live;
  for (const auto& name : children->names) {
    auto data = session->GetSync(dir + "/" + name);
    if (!data.ok()) continue;
    auto holder = ParsePayload<proto::LockHolder>(data->data, dir + "/" + name);
    if (holder.ok()) live.insert(holder->deploy_id());
  }
  return live;
}

// "running" with nobody holding the lock means the coordinator died.
RunOutcome ShownOutcome(const proto::DeployRecord& r,
                        const std::set<std::string>& live) {
  const RunOutcome outcome = OutcomeOf(r);
  if (outcome == RunOutcome::kRunning && live.count(r.deploy_id()) == 0) {
    return RunOutcome::kUnfinished;
  }
  return outcome;
}

// The forwarding state of a forwarded instance; nullopt for the others.
std::optional<proto::ForwarderState> ForwardingOf(ZkSession* session,
                                                  const ServiceName& service,
                                                  const InstanceAddress& a) {
  const std::string path = paths::ForwarderNode(service, a);
  auto data = session->GetSync(path);
  if (!data.ok()) return std::nullopt;
  auto st = ParsePayload<proto::ForwarderState>(data->data, path);
  if (!st.ok()) return std::nullopt;
  return *st;
}

std::string ForwardingText(const proto::ForwarderState& st) {
  std::string out = "to " + st.backend() + " (" + st.source();
  if (!st.generation().empty()) out += " " + st.generation();
  out += ")";
  if (!st.fallback().empty()) out += ", fallback " + st.fallback();
  if (st.source() == "deploy") out += ", committed " + st.stable_backend();
  for (const auto& b : st.backends()) {
    if (b.backend() == st.backend()) {
      out += ", " + std::to_string(b.active()) + " open connection(s)";
    }
  }
  out += ", agent " + st.host();
  if (!st.listening()) out += " [NOT LISTENING]";
  if (!st.error().empty()) out += "; " + st.error();
  return out;
}

}  // namespace

Status PrintServiceStatus(ZkSession* session, const ServiceName& service,
                          Reporter* reporter) {
  // Reading deletes nothing: an expired flag is shown as such and removed
  // by the next deploy, rollout or pause of the service, or by a resume.
  auto inv = LoadInventory(session, service);
  if (!inv.ok()) return inv.status();
  // Bad nodes are part of the answer, for people and for tools alike.
  for (const auto& w : inv->warnings) reporter->Notice("warning: " + w);

  // Last deploy per instance, from the most recent journals.
  std::map<std::string, LastDeploy> last;
  auto ids = ListJournals(session, service);
  std::set<std::string> live = LiveDeploys(session, service);
  if (ids.ok()) {
    int seen = 0;
    for (auto it = ids->rbegin(); it != ids->rend() && seen < kStatusJournals;
         ++it, ++seen) {
      auto rec = ReadJournal(session, service, *it, false);
      if (!rec.ok()) continue;
      for (const auto& inst : rec->instances()) {
        InstanceOutcome outcome = OutcomeOf(inst);
        if (last.count(inst.instance()) ||
            outcome == InstanceOutcome::kPending) {
          continue;
        }
        if (outcome == InstanceOutcome::kRunning &&
            ShownOutcome(*rec, live) == RunOutcome::kUnfinished) {
          outcome = InstanceOutcome::kUnfinished;
        }
        LastDeploy d{rec->deploy_id(), rec->kind(), outcome,
                     rec->started_at(), ShownOutcome(*rec, live), ""};
        // The steps of the newest deploys only: they say where a running
        // rollout is (a canary soak, a revert).
        if (seen == 0) d.last_step = LastStep(session, service, *it, inst.instance());
        last[inst.instance()] = d;
      }
    }
  }

  std::set<InstanceAddress> all;
  for (const auto& [a, d] : inv->declared) all.insert(a);
  for (const auto& [a, r] : inv->registered) all.insert(a);
  for (const auto& [a, p] : inv->paused) all.insert(a);
  std::set<std::string> agents(inv->live_agents.begin(),
                               inv->live_agents.end());

  if (all.empty() && !reporter->json()) {
    reporter->Line("service " + service.str() +
                   ": no instance is declared by an agent, registered or "
                   "paused");
  }
  int registered = 0;
  for (const InstanceAddress& a : all) {
    const std::string node = a.NodeName();
    auto reg = inv->registered.find(a);
    auto pause = inv->paused.find(a);
    auto decl = inv->declared.find(a);
    auto dep = last.find(node);
    auto fwd = ForwardingOf(session, service, a);
    if (reg != inv->registered.end()) ++registered;

    if (reporter->json()) {
      proto::StatusEvent e;
      Stamp(&e, "instance");
      e.set_service(service.str());
      e.set_instance(a.ToString());
      e.set_registered(reg != inv->registered.end());
      if (reg != inv->registered.end()) {
        e.set_registered_by(reg->second.record.host());
        e.set_registered_at(reg->second.record.registered_at());
      }
      e.set_paused(pause != inv->paused.end());
      if (pause != inv->paused.end()) {
        *e.mutable_pause() = PauseViewOf(pause->second);
      }
      if (decl != inv->declared.end()) {
        for (const auto& d : decl->second) *e.add_agents() = AgentViewOf(d);
      } else if (reg != inv->registered.end() &&
                 !reg->second.record.host().empty()) {
        // Registered by an agent that does not declare it (any more).
        auto* v = e.add_agents();
        v->set_host(reg->second.record.host());
        v->set_alive(agents.count(reg->second.record.host()) > 0);
        v->set_state("unknown");
      }
      if (fwd) {
        auto* f = e.mutable_forwarding();
        f->set_backend(fwd->backend());
        f->set_fallback(fwd->fallback());
        f->set_source(fwd->source());
        f->set_generation(fwd->generation());
        f->set_committed(fwd->stable_backend());
        f->set_agent(fwd->host());
        f->set_listening(fwd->listening());
        f->set_error(fwd->error());
      }
      if (dep != last.end()) {
        auto* l = e.mutable_last_deploy();
        l->set_deploy_id(dep->second.deploy_id);
        l->set_kind(dep->second.kind);
        l->set_outcome(WireString(dep->second.outcome));
        l->set_started_at(dep->second.started_at);
        l->set_deploy_outcome(WireString(dep->second.deploy_outcome));
        l->set_last_step(dep->second.last_step);
      }
      reporter->Emit(e);
      continue;
    }

    std::string text = service.str() + "@" + a.ToString() + "\n";
    if (reg != inv->registered.end()) {
      text += "  registered:  yes";
      if (!reg->second.record.host().empty()) {
        text += ", by agent " + reg->second.record.host();
      }
      if (!reg->second.record.registered_at().empty()) {
        text += " at " + reg->second.record.registered_at();
      }
    } else {
      text += "  registered:  no";
    }
    text += "\n  paused:      " +
            (pause != inv->paused.end() ? DescribePause(PauseViewOf(pause->second)) : "no") +
            "\n";
    if (decl != inv->declared.end()) {
      for (const auto& d : decl->second) {
        text += "  agent:       " + d.host + " (alive), sees " +
                (d.view.state().empty() ? "unknown" : d.view.state());
        if (!d.view.last_check().empty()) {
          text += ", last check: " + d.view.last_check();
          if (d.view.has_last_check_at()) {
            text += " at " + FormatTimestamp(d.view.last_check_at(), true);
          }
        }
        text += "\n";
      }
    } else if (reg != inv->registered.end() &&
               !reg->second.record.host().empty()) {
      const std::string& h = reg->second.record.host();
      text += "  agent:       " + h +
              (agents.count(h) ? " (alive, but does not declare it)"
                               : " (gone: no /agents/" + h + ")") +
              "\n";
    } else {
      text += "  agent:       none declares it\n";
    }
    if (fwd) text += "  forwarding:  " + ForwardingText(*fwd) + "\n";
    text += "  last deploy: " +
            (dep != last.end()
                 ? dep->second.deploy_id + " (" + dep->second.kind + ") " +
                       WireString(dep->second.outcome) + ", started " +
                       dep->second.started_at +
                       // Two sets: said once when the words are the same.
                       (WireName(dep->second.deploy_outcome) !=
                                WireName(dep->second.outcome)
                            ? "; the " + dep->second.kind + " " +
                                  WireString(dep->second.deploy_outcome)
                            : std::string()) +
                       (dep->second.last_step.empty()
                            ? std::string()
                            : "; last step " + dep->second.last_step)
                 : std::string("none recorded"));
    reporter->Line(text);
  }
  if (!reporter->json() && !all.empty()) {
    reporter->Line(std::to_string(registered) + " of " +
                   std::to_string(all.size()) + " instance(s) of " +
                   service.str() + " registered");
  }
  return Status::Ok();
}

Status PrintHistory(ZkSession* session, const ServiceName& service, int limit,
                    Reporter* reporter) {
  auto ids = ListJournals(session, service);
  if (!ids.ok()) return ids.status();
  std::set<std::string> live = LiveDeploys(session, service);
  if (ids->empty() && !reporter->json()) {
    reporter->Line("no deploys of " + service.str() + " recorded under " +
                   paths::DeployDir(service));
    return Status::Ok();
  }
  int shown = 0;
  for (auto it = ids->rbegin(); it != ids->rend() && shown < limit;
       ++it, ++shown) {
    auto rec = ReadJournal(session, service, *it, false);
    if (!rec.ok()) {
      LOG(WARNING) << rec.status().ToString();
      continue;
    }
    int ok = 0, failed = 0, aborted = 0, reverted = 0, revert_failed = 0;
    for (const auto& inst : rec->instances()) {
      const InstanceOutcome o = OutcomeOf(inst);
      ok += o == InstanceOutcome::kSucceeded;
      failed += o == InstanceOutcome::kFailed;
      aborted += o == InstanceOutcome::kAborted;
      reverted += o == InstanceOutcome::kReverted;
      revert_failed += o == InstanceOutcome::kRevertFailed;
    }
    auto param = [&](const char* name) {
      auto p = rec->parameters().find(name);
      return p == rec->parameters().end() ? std::string() : p->second;
    };
    const std::string canary = param("canary") == "0" ? "" : param("canary");
    const std::string outcome = WireString(ShownOutcome(*rec, live));
    if (reporter->json()) {
      proto::HistoryEvent e;
      Stamp(&e, "deploy");
      e.set_deploy_id(rec->deploy_id());
      e.set_kind(rec->kind());
      e.set_outcome(outcome);
      e.set_by(rec->by());
      e.set_pid(static_cast<int32_t>(rec->pid()));
      e.set_started_at(rec->started_at());
      e.set_ended_at(rec->ended_at());
      e.set_instances(static_cast<uint32_t>(rec->instances_size()));
      e.set_succeeded(static_cast<uint32_t>(ok));
      e.set_failed(static_cast<uint32_t>(failed));
      e.set_aborted(static_cast<uint32_t>(aborted));
      e.set_detail(rec->detail());
      e.set_reverted(static_cast<uint32_t>(reverted));
      e.set_revert_failed(static_cast<uint32_t>(revert_failed));
      e.set_canary(canary);
      reporter->Emit(e);
      continue;
    }
    std::string extra;
    if (reverted + revert_failed > 0) {
      extra += ", " + std::to_string(reverted) + " reverted";
      if (revert_failed > 0) {
        extra += ", " + std::to_string(revert_failed) + " revert failed";
      }
    }
    if (!canary.empty()) {
      extra += "; canary " + canary;
      if (!param("canary-soak").empty()) extra += ", soak " + param("canary-soak");
      extra += ", promote " + param("canary-promote");
    }
    reporter->Line(rec->deploy_id() + "  " + rec->kind() + "  " + outcome +
                   "  started " + rec->started_at() + " by " + rec->by() +
                   "  instances " + std::to_string(rec->instances_size()) +
                   " (" + std::to_string(ok) + " ok, " +
                   std::to_string(failed) + " failed, " +
                   std::to_string(aborted) + " aborted" + extra + ")" +
                   (rec->detail().empty() ? "" : "  " + rec->detail()));
  }
  return Status::Ok();
}

Status PrintDeploy(ZkSession* session, const ServiceName& service,
                   const DeployId& id, Reporter* reporter) {
  auto rec = ReadJournal(session, service, id, true);
  if (!rec.ok()) {
    if (rec.status().code() == StatusCode::kNotFound) {
      return NotFound("no deploy " + id.str() + " of " + service.str() + " (" +
                      paths::DeployNode(service, id) +
                      "); list them with `zkroll history --service " +
                      service.str() + "`");
    }
    return rec.status();
  }
  std::set<std::string> live = LiveDeploys(session, service);
  if (reporter->json()) {
    proto::JournalEvent e;
    Stamp(&e, "journal");
    e.set_deploy_id(rec->deploy_id());
    e.set_service(rec->service());
    e.set_kind(rec->kind());
    e.set_by(rec->by());
    e.set_pid(static_cast<int32_t>(rec->pid()));
    e.set_started_at(rec->started_at());
    e.set_ended_at(rec->ended_at());
    e.set_outcome(WireString(ShownOutcome(*rec, live)));
    *e.mutable_command() = rec->command();
    *e.mutable_parameters() = rec->parameters();
    *e.mutable_instances() = rec->instances();
    e.set_detail(rec->detail());
    *e.mutable_resumed() = rec->resumed();
    reporter->Emit(e);
    return Status::Ok();
  }
  std::string text =
      "deploy " + rec->deploy_id() + " (" + rec->kind() + ") of " +
      rec->service() + ": " + WireString(ShownOutcome(*rec, live)) + "\n  by " +
      rec->by() + " (pid " + std::to_string(rec->pid()) + "), started " +
      rec->started_at() +
      (rec->ended_at().empty() ? "" : ", ended " + rec->ended_at()) +
      "\n  command:";
  for (const auto& w : rec->command()) text += " " + QuoteForMessage(w);
  text += "\n";
  for (const auto& [k, v] : rec->parameters()) {
    text += "  " + k + " = " + v + "\n";
  }
  if (!rec->detail().empty()) text += "  detail: " + rec->detail() + "\n";
  for (const auto& r : rec->resumed()) {
    text += "  resumed " + r.at() + " by " + r.by() + " (pid " +
            std::to_string(r.pid()) + "): " + r.detail() + "\n";
  }
  for (const auto& inst : rec->instances()) {
    text += "  " + inst.instance() + ": " + inst.outcome() + "\n";
    for (const auto& s : inst.steps()) {
      text += "    " + s.name() + " " + s.verdict() + " " + s.started_at() +
              " .. " + s.ended_at() +
              (s.detail().empty() ? "" : "  " + s.detail()) +
              (s.has_process() ? "  [" + DescribeProcess(s.process()) + "]"
                               : std::string()) +
              "\n";
    }
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  reporter->Line(text);
  return Status::Ok();
}

}  // namespace zkroll::coordinator
