#include "coordinator/drain_decision.h"

#include <algorithm>
#include <cstdio>

namespace zkroll::coordinator {

namespace {

std::string Plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string FormatBytes(uint64_t b) {
  char buf[32];
  if (b < 1024) return std::to_string(b) + " B";
  if (b < 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024.0));
  }
  return buf;
}

std::string DescribeCaller(const std::string& id,
                           const proto::CallerRecord& r) {
  std::string out = id + " (" + (r.mode().empty() ? "?" : r.mode());
  if (r.mode() == "poll" && r.refresh_interval_ms() > 0) {
    out += " " + FormatDuration(Millis(r.refresh_interval_ms()));
  }
  out += ", pid " + std::to_string(r.pid()) + ")";
  return out;
}

bool IsLoopback(const std::string& ip) {
  return ip.rfind("127.", 0) == 0 || ip == "::1" ||
         ip.rfind("::ffff:127.", 0) == 0;
}

}  // namespace

std::string FormatSeconds(Millis d) {
  const double s = d.count() / 1000.0;
  char buf[32];
  if (d.count() % 1000 == 0) {
    std::snprintf(buf, sizeof buf, "%lld s",
                  static_cast<long long>(d.count() / 1000));
  } else if (s < 10) {
    std::snprintf(buf, sizeof buf, "%.2f s", s);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f s", s);
  }
  return buf;
}

DrainDecision DecideDrain(const DrainConfig& config, const DrainInputs& in) {
  DrainDecision d;
  std::vector<std::string>& missing = d.missing;

  // 1. Callers.
  int acked = 0;
  int gone = 0;
  int total = 0;
  Millis last_ack{0};
  std::vector<std::string> late;
  std::set<std::string> everyone(in.callers_at_pause);
  for (const auto& [id, obs] : in.callers) everyone.insert(id);
  for (const auto& [id, why] : in.bad_callers) everyone.insert(id);
  for (const std::string& id : everyone) {
    ++total;
    auto bad = in.bad_callers.find(id);
    if (bad != in.bad_callers.end()) {
      late.push_back(id + " (no valid record: " + bad->second + ")");
      continue;
    }
    auto it = in.callers.find(id);
    if (it == in.callers.end()) {
      ++gone;  // existed at the pause, its session ended since
      continue;
    }
    const CallerObservation& obs = it->second;
    if (obs.record.list_pzxid() >= in.pause_pzxid) {
      ++acked;
      if (obs.acked_at) last_ack = std::max(last_ack, *obs.acked_at);
    } else {
      late.push_back(DescribeCaller(id, obs.record));
    }
  }
  if (!late.empty()) {
    std::string text = Plural(late.size(), "caller has", "callers have") +
                       " not acknowledged a list without the instance: ";
    for (size_t i = 0; i < late.size(); ++i) {
      if (i > 0) text += ", ";
      text += late[i];
    }
    missing.push_back(text);
  }

  // 2. and 3. Traffic.
  const TrafficObservation* t = in.traffic ? &*in.traffic : nullptr;
  std::string unobserved;
  if (t == nullptr) {
    unobserved = "traffic not observed: no report from the instance's agent" +
                 (in.traffic_note.empty() ? std::string(" (an agent without "
                                                        "traffic observation, "
                                                        "or not running)")
                                          : " (" + in.traffic_note + ")");
  } else if (t->report.deploy_id() != in.deploy_id) {
    unobserved = "traffic not observed: the agent's report is for deploy " +
                 t->report.deploy_id() + ", not this one";
  } else if (t->report.source().empty() || t->report.source() == "none") {
    unobserved = "traffic not observed: the agent reports no source" +
                 (t->report.error().empty() ? std::string()
                                            : " (" + t->report.error() + ")");
  } else if (t->report.source().rfind("sock_diag", 0) != 0) {
    // The forwarder's counters alone count connections but name no peer,
    // so an unknown caller could not be seen.
    unobserved = "traffic observed without peers (source " +
                 t->report.source() + "): unknown callers cannot be ruled out" +
                 (t->report.error().empty() ? std::string()
                                            : " (" + t->report.error() + ")");
  }
  uint64_t quiet_ms = 0;
  if (!unobserved.empty()) {
    missing.push_back(unobserved);
  } else {
    const proto::TrafficReport& r = t->report;
    quiet_ms = r.quiet_ms();
    if (!t->written_after_pause) {
      missing.push_back("no traffic report written after the pause yet");
    } else if (r.quiet_ms() < static_cast<uint64_t>(config.quiet.count())) {
      missing.push_back(
          "traffic not quiet for " + FormatDuration(config.quiet) +
          ": last new connection or byte " +
          FormatDuration(Millis(r.quiet_ms())) +
          " before the agent's latest report (" +
          Plural(r.connections(), "connection", "connections") + " open)");
    }
    // Peers: every one that talked to the instance since observation began
    // (before the pause too) must belong to a registered caller.
    std::set<std::string> local_ips;
    std::vector<const proto::CallerRecord*> records;
    for (const auto& [id, obs] : in.callers) records.push_back(&obs.record);
    for (const auto& [id, rec] : in.departed) records.push_back(&rec);
    for (const auto* rec : records) {
      if (!r.hostname().empty() && rec->host() == r.hostname()) {
        local_ips.insert(rec->ips().begin(), rec->ips().end());
      }
    }
    std::vector<std::string> unknown;
    for (const auto& p : r.peers()) {
      bool known = false;
      if (p.pid() != 0) {
        for (const auto* rec : records) {
          if (rec->pid() == p.pid() && !r.hostname().empty() &&
              rec->host() == r.hostname()) {
            known = true;
            break;
          }
        }
      } else if (!IsLoopback(p.ip()) && local_ips.count(p.ip()) == 0) {
        for (const auto* rec : records) {
          if (std::find(rec->ips().begin(), rec->ips().end(), p.ip()) !=
              rec->ips().end()) {
            known = true;
            break;
          }
        }
      }
      if (known) continue;
      std::string who = p.ip();
      if (p.pid() != 0) {
        who += " pid " + std::to_string(p.pid());
      } else if (IsLoopback(p.ip()) || local_ips.count(p.ip()) != 0) {
        who += " (on the agent's host, process unknown" +
               std::string(r.pids_known() ? ""
                                          : ": the agent cannot map "
                                            "sockets to processes") +
               ")";
      }
      unknown.push_back(
          who + ": " + Plural(p.connections(), "connection", "connections") +
          " open, " + std::to_string(p.connections_total()) + " since " +
          "observation began, " + FormatBytes(p.bytes_received()) +
          " received, idle " + FormatDuration(Millis(p.idle_ms())));
    }
    if (!unknown.empty()) {
      std::string text =
          Plural(unknown.size(), "peer belongs", "peers belong") +
          " to no registered caller: ";
      for (size_t i = 0; i < unknown.size(); ++i) {
        if (i > 0) text += "; ";
        text += unknown[i];
      }
      missing.push_back(text);
    }
    if (r.peers_truncated()) {
      missing.push_back(
          "the agent's peer list is truncated: not every peer can be told "
          "apart from an unknown caller");
    }
  }

  // 4. The floor.
  if (in.now < config.min) {
    missing.push_back("--drain-min " + FormatDuration(config.min) +
                      " not reached");
  }

  const bool all_hold = missing.empty();
  d.done = all_hold || in.now >= config.cap;
  d.at_cap = !all_hold;
  d.next_wake = in.now < config.min ? config.min : config.cap;

  std::string callers_text =
      total == 0 ? std::string("no callers registered")
                 : std::to_string(acked) + "/" + std::to_string(total - gone) +
                       " callers acknowledged" +
                       (acked > 0 ? " (last " + FormatDuration(last_ack) + ")"
                                  : std::string()) +
                       (gone > 0 ? ", " + std::to_string(gone) + " gone"
                                 : std::string());
  if (all_hold) {
    d.reason = "drained in " + FormatSeconds(in.now) + " of " +
               FormatSeconds(config.cap) + ": " + callers_text +
               ", no traffic for " + FormatDuration(Millis(quiet_ms));
    if (config.min.count() > 0) {
      d.reason += ", --drain-min " + FormatDuration(config.min);
    }
  } else {
    std::string text;
    for (size_t i = 0; i < missing.size(); ++i) {
      if (i > 0) text += "; ";
      text += missing[i];
    }
    d.reason =
        (d.done ? "drain ran to the " + FormatSeconds(config.cap) + " cap: "
                : "draining for " + FormatSeconds(in.now) + " of " +
                      FormatSeconds(config.cap) + ": ") +
        text;
  }
  return d;
}

}  // namespace zkroll::coordinator
