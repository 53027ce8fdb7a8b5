#include "coordinator/plan.h"

#include <set>

#include "common/clock.h"
#include "common/paths.h"
#include "coordinator/inventory.h"
#include "coordinator/lock.h"
#include "coordinator/rollout.h"

namespace zkroll::coordinator {
namespace {

std::string Yes(bool b) { return b ? "yes" : "no"; }

}  // namespace

Result<proto::PlanEvent> MakePlan(ZkSession* session,
                                  const ServiceName& service,
                                  const PlanRequest& request) {
  auto inv = LoadInventory(session, service);
  if (!inv.ok()) return inv.status();
  // What --min-healthy counts: every child of /services/<service>, as the
  // rollout's wait does (a registration zkroll did not write counts too).
  std::vector<std::string> registered_nodes;
  auto children = session->GetChildrenSync(paths::ServiceDir(service));
  if (children.ok()) {
    registered_nodes = children->names;
  } else if (children.status().code() != StatusCode::kNotFound) {
    return children.status();
  }
  const bool nothing_known = inv->declared.empty() && inv->registered.empty() &&
                             inv->paused.empty() && registered_nodes.empty();
  if (nothing_known && !(request.force && !request.from_agents)) {
    return NotFound("service " + service.str() +
                    " does not exist: no agent declares an instance of it "
                    "under " +
                    std::string(paths::kAgentsRoot) +
                    ", none is registered under " + paths::ServiceDir(service) +
                    " and none is paused; check "
                    "the name (--service " +
                    service.str() + ")");
  }
  std::vector<InstanceAddress> targets = request.targets;
  ZKROLL_RETURN_IF_ERROR(SelectTargets(*inv, service, request.from_agents,
                                       request.force, &targets));
  RolloutOptions fits;
  fits.canary = request.canary;
  ZKROLL_RETURN_IF_ERROR(CheckRolloutTargets(fits, targets.size()));
  auto lock = ReadLockHolder(session, service);
  if (!lock.ok()) return lock.status();

  proto::PlanEvent plan;
  Stamp(&plan, "plan");
  plan.set_kind(request.kind);
  plan.set_service(service.str());
  plan.set_batch_size(static_cast<uint32_t>(std::max(1, request.batch)));
  plan.set_min_healthy(static_cast<uint32_t>(std::max(0, request.min_healthy)));
  if (request.canary > 0) {
    plan.set_canary(static_cast<uint32_t>(request.canary));
    plan.set_canary_soak_ms(static_cast<uint32_t>(request.canary_soak.count()));
    plan.set_canary_promote(request.canary_manual ? "manual" : "auto");
  }
  if (*lock) {
    auto* l = plan.mutable_lock();
    l->set_held(true);
    l->set_path((*lock)->path);
    l->set_by((*lock)->holder.by());
    l->set_pid(static_cast<int32_t>((*lock)->holder.pid()));
    l->set_since(
        FormatTimestamp((*lock)->holder.since(), (*lock)->holder.has_since()));
    l->set_deploy_id((*lock)->holder.deploy_id());
    l->set_purpose((*lock)->holder.purpose());
    plan.add_blockers("service " + service.str() + " is locked by " +
                      DescribeHolder((*lock)->holder) + " (" + (*lock)->path +
                      "); wait for that run to finish, or stop it");
  } else {
    plan.mutable_lock()->set_held(false);
  }

  // What --min-healthy could ever count: the registrations there now, and
  // the instances agents declare that are not held out by a pause that has
  // not expired.
  std::set<std::string> possible(registered_nodes.begin(),
                                 registered_nodes.end());
  for (const auto& [a, d] : inv->declared) {
    auto p = inv->paused.find(a);
    if (p != inv->paused.end() && !p->second.expired) continue;
    possible.insert(a.NodeName());
  }
  const std::vector<std::string> possible_nodes(possible.begin(),
                                                possible.end());

  int expired_flags = 0;
  for (const auto& [a, p] : inv->paused) expired_flags += p.expired;
  if (expired_flags > 0) {
    plan.add_notes("would first remove " + std::to_string(expired_flags) +
                   " expired pause flag(s) under " + paths::PauseDir(service));
  }

  const auto batches =
      PlanRolloutBatches(targets, request.batch, request.canary);
  for (size_t b = 0; b < batches.size(); ++b) {
    auto* pb = plan.add_batches();
    pb->set_batch(static_cast<uint32_t>(b + 1));
    pb->set_canary(request.canary > 0 && b == 0);
    for (const InstanceAddress& a : batches[b]) {
      auto* pi = pb->add_instances();
      const std::string name = InstanceId{service, a}.ToString();
      pi->set_instance(name);
      pi->set_known(inv->Knows(a));
      auto reg = inv->registered.find(a);
      pi->set_registered(reg != inv->registered.end());
      if (reg != inv->registered.end()) {
        pi->set_registered_by(reg->second.record.host());
      }
      auto decl = inv->declared.find(a);
      if (decl != inv->declared.end()) {
        for (const auto& d : decl->second) *pi->add_agents() = AgentViewOf(d);
      }
      auto pause = inv->paused.find(a);
      pi->set_paused(pause != inv->paused.end());
      if (pause != inv->paused.end()) {
        *pi->mutable_pause() = PauseViewOf(pause->second);
        if (!pause->second.expired) {
          plan.add_blockers(name + " is already paused " +
                            DescribePause(pi->pause()) +
                            "; its deploy would fail without touching it. "
                            "Wait for that pause to end or `zkroll resume` it");
        }
      }
    }
    const int now = RegisteredOutside(registered_nodes, batches[b]);
    const int could = RegisteredOutside(possible_nodes, batches[b]);
    pb->set_registered_outside(static_cast<uint32_t>(now));
    pb->set_possible_outside(static_cast<uint32_t>(could));
    pb->set_min_healthy_met_now(now >= request.min_healthy);
    pb->set_min_healthy_possible(could >= request.min_healthy);
    if (could < request.min_healthy) {
      plan.add_blockers(
          "batch " + std::to_string(b + 1) + ": at most " +
          std::to_string(could) + " instance(s) of " + service.str() +
          " outside it can be registered, fewer than --min-healthy " +
          std::to_string(request.min_healthy) +
          "; lower --min-healthy or --batch");
    } else if (now < request.min_healthy && b == 0) {
      plan.add_notes("batch 1: " + std::to_string(now) +
                     " instance(s) outside it are registered now, fewer than "
                     "--min-healthy " +
                     std::to_string(request.min_healthy) +
                     "; the rollout would wait up to --min-healthy-timeout");
    }
  }
  plan.set_can_start(plan.blockers_size() == 0);
  return plan;
}

void PrintPlan(const proto::PlanEvent& plan, Reporter* reporter) {
  if (reporter->json()) {
    reporter->Emit(plan);
    return;
  }
  int instances = 0;
  for (const auto& b : plan.batches()) instances += b.instances_size();
  std::string text = "plan: " + plan.kind() + " of " + plan.service() + ", " +
                     std::to_string(instances) + " instance(s) in " +
                     std::to_string(plan.batches_size()) +
                     " batch(es) of up to " + std::to_string(plan.batch_size());
  if (plan.kind() == "rollout") {
    text += ", --min-healthy " + std::to_string(plan.min_healthy());
  }
  if (plan.canary() > 0) {
    text += "\ncanary: batch 1 (" + std::to_string(plan.canary()) +
            " instance(s))";
    if (plan.canary_soak_ms() > 0) {
      text += ", soak " + FormatDuration(Millis(plan.canary_soak_ms()));
    }
    text += plan.canary_promote() == "manual"
                ? ", then stop for `zkroll promote` (--canary-promote manual)"
                : ", then the rest (--canary-promote auto)";
  }
  text += "\nlock: ";
  if (plan.lock().held()) {
    text += "held by " + plan.lock().by() + ", pid " +
            std::to_string(plan.lock().pid()) + ", since " +
            plan.lock().since() + ", " + plan.lock().purpose() + " " +
            plan.lock().deploy_id() + " (" + plan.lock().path() + ")";
  } else {
    text += "free";
  }
  for (const auto& b : plan.batches()) {
    text += "\nbatch " + std::to_string(b.batch()) + "/" +
            std::to_string(plan.batches_size()) +
            (b.canary() ? " (canary)" : "");
    if (plan.kind() == "rollout") {
      text += ": " + std::to_string(b.registered_outside()) +
              " registered outside it now, at most " +
              std::to_string(b.possible_outside()) + "; --min-healthy " +
              std::to_string(plan.min_healthy()) + " " +
              (b.min_healthy_met_now()    ? "met"
               : b.min_healthy_possible() ? "not met yet (would wait)"
                                          : "CANNOT be met");
    }
    for (const auto& i : b.instances()) {
      text +=
          "\n  " + i.instance() + "\n    registered: " + Yes(i.registered());
      if (!i.registered_by().empty()) text += ", by agent " + i.registered_by();
      if (i.agents().empty()) {
        text += "\n    agent:      none declares it";
      }
      for (const auto& a : i.agents()) {
        text += "\n    agent:      " + a.host() + " sees " + a.state();
        if (!a.last_check().empty()) text += ", last check: " + a.last_check();
      }
      text += "\n    paused:     " +
              (i.paused() ? DescribePause(i.pause()) : std::string("no"));
    }
  }
  for (const auto& n : plan.notes()) text += "\nnote: " + n;
  for (const auto& why : plan.blockers()) text += "\ncannot start: " + why;
  reporter->Line(text);
}

}  // namespace zkroll::coordinator
