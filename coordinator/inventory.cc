#include "coordinator/inventory.h"

#include <glog/logging.h>

#include <cstdint>

#include "common/clock.h"
#include "common/instance_record.h"
#include "common/paths.h"
#include "common/payload.h"
#include "common/registry.h"
#include "common/states.h"

namespace zkroll::coordinator {
namespace {

// Children of `path`, or none if it does not exist.
Result<std::vector<std::string>> ChildrenOrNone(ZkSession* session,
                                                const std::string& path) {
  auto r = session->GetChildrenSync(path);
  if (r.ok()) return r->names;
  if (r.status().code() == StatusCode::kNotFound) {
    return std::vector<std::string>{};
  }
  return r.status();
}

}  // namespace

std::vector<InstanceAddress> ServiceInventory::DeclaredInstances() const {
  std::vector<InstanceAddress> out;
  for (const auto& [a, d] : declared) out.push_back(a);
  return out;
}

std::string DescribePause(const proto::PauseView& p) {
  std::string out = "by " + p.by() + " (pid " + std::to_string(p.pid()) +
                    ") since " + p.since() + ", reason " +
                    QuoteForMessage(p.reason());
  if (p.ephemeral()) {
    out += ", deploy " + p.deploy_id() + " (ends with its coordinator)";
  } else {
    out += ", until " + p.expires_at();
  }
  if (p.expired()) {
    out += " [expired, will be removed by the next deploy or `zkroll resume`]";
  }
  return out;
}

proto::PauseView PauseViewOf(const PauseState& pause) {
  proto::PauseView v;
  v.set_by(pause.flag.by());
  // A pid is a pid_t; a payload's larger value is shown as -1, not wrapped.
  const int64_t pid = pause.flag.pid();
  v.set_pid(pid >= INT32_MIN && pid <= INT32_MAX ? static_cast<int32_t>(pid)
                                                 : -1);
  v.set_reason(pause.flag.reason());
  // The event keeps its strings ("" for none), as before the flag's times
  // were Timestamps.
  v.set_since(FormatTimestamp(pause.flag.since(), pause.flag.has_since()));
  v.set_expires_at(
      FormatTimestamp(pause.flag.expires_at(), pause.flag.has_expires_at()));
  v.set_deploy_id(pause.flag.deploy_id());
  v.set_ephemeral(pause.ephemeral());
  v.set_expired(pause.expired);
  return v;
}

proto::AgentView AgentViewOf(const Declaration& d) {
  proto::AgentView v;
  v.set_host(d.host);
  v.set_alive(true);  // declared in its /agents node, which is ephemeral
  // A word outside the set (a newer agent's, or garbage) is shown as
  // "unknown", as is "unknown" itself.
  const auto state = Parse<AgentState>(d.view.state());
  v.set_state(WireString(state.ok() ? *state : AgentState::kUnknown));
  v.set_healthy(d.view.healthy());
  v.set_paused(d.view.paused());
  v.set_registered(d.view.registered());
  v.set_last_check(d.view.last_check());
  v.set_last_check_at(
      FormatTimestamp(d.view.last_check_at(), d.view.has_last_check_at()));
  return v;
}

Status SelectTargets(const ServiceInventory& inv, const ServiceName& service,
                     bool from_agents, bool force,
                     std::vector<InstanceAddress>* targets) {
  if (from_agents) {
    *targets = inv.DeclaredInstances();
    if (targets->empty()) {
      return InvalidArgument(
          "no agent declares an instance of " + service.str() + " under " +
          paths::kAgentsRoot +
          "; start the agents first, or name instances with --instances");
    }
  }
  for (const auto& a : *targets) {
    if (!inv.Knows(a) && !force) {
      return InvalidArgument(
          "no agent declares " + InstanceId{service, a}.ToString() +
          " and it is not registered; check the address (`zkroll status "
          "--service " +
          service.str() + "`) or pass --force. Nothing was touched");
    }
  }
  return Status::Ok();
}

bool PauseExpired(const proto::PauseFlag& flag, WallTime now) {
  return flag.has_expires_at() && FromTimestamp(flag.expires_at()) <= now;
}

Result<ServiceInventory> LoadInventory(ZkSession* session,
                                       const ServiceName& service) {
  ServiceInventory inv;
  const WallTime now = std::chrono::system_clock::now();

  auto agents = ChildrenOrNone(session, paths::kAgentsRoot);
  if (!agents.ok()) return agents.status();
  for (const std::string& name : *agents) {
    auto host = HostId::Parse(name);
    if (!host.ok()) {
      inv.warnings.push_back("skipped agent node " + QuoteForMessage(name) +
                             ": " + host.status().message());
      continue;
    }
    const std::string path = paths::AgentNode(*host);
    auto data = session->GetSync(path);
    if (!data.ok()) {
      if (data.status().code() == StatusCode::kNotFound) continue;  // left
      return data.status();
    }
    inv.live_agents.push_back(name);
    auto record = ParsePayload<proto::AgentRecord>(data->data, path);
    if (!record.ok()) {
      inv.warnings.push_back(record.status().message());
      continue;
    }
    for (const auto& inst : record->instances()) {
      if (inst.service() != service.str()) continue;
      auto addr = InstanceAddress::FromParts(inst.ip(), inst.port());
      if (!addr.ok()) {
        inv.warnings.push_back(
            path + " declares a bad instance: " + addr.status().message());
        continue;
      }
      inv.declared[*addr].push_back(Declaration{name, inst});
    }
  }

  const std::string service_dir = paths::ServiceDir(service);
  auto registered = ChildrenOrNone(session, service_dir);
  if (!registered.ok()) return registered.status();
  for (const std::string& name : *registered) {
    auto addr = InstanceAddress::ParseNodeName(name);
    if (!addr.ok()) {
      inv.warnings.push_back("skipped " + service_dir + "/" +
                             QuoteForMessage(name) + ": " +
                             addr.status().message());
      continue;
    }
    const std::string path = paths::InstanceNode(service, *addr);
    auto data = session->GetSync(path);
    if (!data.ok()) {
      if (data.status().code() == StatusCode::kNotFound) continue;
      return data.status();
    }
    RegisteredInstance reg;
    reg.stat = data->stat;
    auto record = ParsePayload<proto::InstanceRecord>(data->data, path);
    if (!record.ok()) {
      inv.warnings.push_back(record.status().message());
    } else if (Status fit = CheckInstanceRecord(*record, service, *addr);
               !fit.ok()) {
      // The node still exists (and keeps the agent from registering), so
      // it stays listed; its record is not trusted.
      inv.warnings.push_back("skipped the record of " + path + ": " +
                             fit.message());
    } else {
      reg.record = *record;
    }
    inv.registered[*addr] = reg;
  }

  const std::string pause_dir = paths::PauseDir(service);
  // The children come with /pause/<service>'s own stat, read before any
  // flag: the version a later delete of an expired flag checks.
  auto flags = session->GetChildrenSync(pause_dir);
  if (!flags.ok() && flags.status().code() != StatusCode::kNotFound) {
    return flags.status();
  }
  if (flags.ok()) inv.pause_dir_version = flags->stat.version;
  const std::vector<std::string> flag_names =
      flags.ok() ? flags->names : std::vector<std::string>{};
  for (const std::string& name : flag_names) {
    auto addr = InstanceAddress::ParseNodeName(name);
    if (!addr.ok()) {
      inv.warnings.push_back("skipped " + pause_dir + "/" +
                             QuoteForMessage(name) + ": " +
                             addr.status().message());
      continue;
    }
    const std::string path = paths::PauseFlagNode(service, *addr);
    auto data = session->GetSync(path);
    if (!data.ok()) {
      if (data.status().code() == StatusCode::kNotFound) continue;
      return data.status();
    }
    PauseState state;
    state.stat = data->stat;
    auto flag = ParsePayload<proto::PauseFlag>(data->data, path);
    if (flag.ok()) {
      state.flag = *flag;
    } else {
      // An unreadable flag (a bad expires_at included: it is a
      // Timestamp) still forbids registration, since the agent fails safe,
      // and never expires by itself; so it is reported with how to end it.
      inv.warnings.push_back(
          flag.status().message() +
          "; it will not expire by itself; end it with 'zkroll resume "
          "--service " +
          service.str() + " --instance " + addr->ToString() + " --force'");
      state.flag.set_reason("(unreadable flag payload)");
    }
    state.expired = PauseExpired(state.flag, now);
    inv.paused[*addr] = state;
  }
  return inv;
}

std::vector<std::string> RemoveExpiredFlags(ZkSession* session,
                                            const ServiceName& service) {
  std::vector<std::string> removed;
  auto inv = LoadInventory(session, service);
  if (!inv.ok()) {
    LOG(WARNING) << "cannot look for expired pause flags of " << service.str()
                 << ": " << inv.status().ToString();
    return removed;
  }
  for (const auto& [addr, state] : inv->paused) {
    if (!state.expired) continue;
    const std::string path = paths::PauseFlagNode(service, addr);
    Status s = registry::DeleteReadFlag(
        *session, service, addr,
        registry::GuardVersion{paths::PauseDir(service),
                               inv->pause_dir_version.value_or(-1)},
        state.stat.version);
    if (s.ok()) {
      std::string line =
          "removed expired pause flag " + path + " (by " + state.flag.by() +
          ", reason " + QuoteForMessage(state.flag.reason()) + ", expired at " +
          FormatTimestamp(state.flag.expires_at(), true) + ")";
      LOG(WARNING) << line;
      removed.push_back(line);
    } else if (s.code() == StatusCode::kAborted) {
      // A pause was made since we read: the flag there may be a new one.
      // The next command reads again and decides again.
      LOG(WARNING) << "left expired pause flag " << path
                   << " in place: " << s.message();
    } else if (s.code() != StatusCode::kNotFound) {
      LOG(WARNING) << "cannot remove expired pause flag " << path << ": "
                   << s.ToString();
    }
  }
  return removed;
}

std::string DescribeDeclarations(const std::vector<Declaration>& d) {
  if (d.empty()) return "no agent";
  std::string out = d.size() == 1 ? "agent " : "agents ";
  for (size_t i = 0; i < d.size(); ++i) out += (i ? ", " : "") + d[i].host;
  return out;
}

}  // namespace zkroll::coordinator
