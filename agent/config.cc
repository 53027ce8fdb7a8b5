#include "agent/config.h"

#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/instance_record.h"
#include "common/zk_session.h"

namespace zkroll::agent {
namespace po = boost::program_options;

namespace {

constexpr char kInstancePrefix[] = "instance.";

// Finds the 1-based line of `needle` in `file`, 0 if not found.
int LineOf(const std::string& file, const std::string& needle) {
  std::ifstream in(file);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find(needle) != std::string::npos) return n;
  }
  return 0;
}

Status ConfigError(const std::string& file, const std::string& key,
                   const std::string& what) {
  std::string where = file;
  int line = key.empty() ? 0 : LineOf(file, key.substr(key.rfind('.') + 1));
  if (line > 0) where += ":" + std::to_string(line);
  if (!key.empty()) where += " (key '" + key + "')";
  return InvalidArgument(where + ": " + what);
}

Result<int> ParseCount(const std::string& text, const char* what, int min,
                       int max) {
  try {
    size_t used = 0;
    int v = std::stoi(text, &used);
    if (used == text.size() && v >= min && v <= max) return v;
  } catch (...) {
  }
  return InvalidArgument(std::string(what) + " " + QuoteForMessage(text) +
                         " must be a whole number from " + std::to_string(min) +
                         " to " + std::to_string(max));
}

Result<std::map<std::string, std::string>> ParseMetadata(
    const std::string& text) {
  // "zone=a,rack=3"
  std::map<std::string, std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgument("metadata item " + QuoteForMessage(item) +
                             " must be KEY=VALUE (e.g. zone=a,rack=3)");
    }
    std::string key = item.substr(0, eq);
    for (char c : key) {
      if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
            c == '.')) {
        return InvalidArgument("metadata key " + QuoteForMessage(key) +
                               " may only contain letters, digits, . _ -");
      }
    }
    std::string value = item.substr(eq + 1);
    for (unsigned char c : value) {
      if (c < 0x20 || c == 0x7f) {
        return InvalidArgument("metadata value for " + key +
                               " contains a control character");
      }
    }
    out[key] = value;
  }
  return out;
}

// "18081, 18082": distinct ports 1-65535, at most 16.
Result<std::vector<uint16_t>> ParsePortList(const std::string& text) {
  std::vector<uint16_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t b = item.find_first_not_of(" \t");
    size_t e = item.find_last_not_of(" \t");
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    auto n = ParseCount(item, "forward_ports entry", 1, 65535);
    if (!n.ok()) return n.status();
    if (std::find(out.begin(), out.end(), *n) != out.end()) {
      return InvalidArgument("port " + item + " is listed twice");
    }
    out.push_back(static_cast<uint16_t>(*n));
  }
  if (out.empty() || out.size() > 16) {
    return InvalidArgument("expected 1 to 16 comma-separated ports, got " +
                           QuoteForMessage(text));
  }
  return out;
}

// Applies one `key = value` of an instance section to `inst`.
Status ApplyInstanceKey(InstanceConfig& inst, const std::string& key,
                        const std::string& value, std::string* service,
                        std::string* ip, std::string* port) {
  if (key == "service") {
    *service = value;
  } else if (key == "ip") {
    *ip = value;
  } else if (key == "port") {
    *port = value;
  } else if (key == "check") {
    auto spec = health::ParseCheckSpec(value);
    if (!spec.ok()) return spec.status();
    inst.check = *spec;
    inst.check_text = value;
  } else if (key == "interval" || key == "timeout") {
    auto d = ParseDuration(value);
    if (!d.ok()) return d.status();
    if (d->count() < 10) {
      return InvalidArgument(key + " must be at least 10ms");
    }
    (key == "interval" ? inst.interval : inst.timeout) = *d;
  } else if (key == "rise" || key == "fall") {
    auto n = ParseCount(value, key.c_str(), 1, 100);
    if (!n.ok()) return n.status();
    (key == "rise" ? inst.rise : inst.fall) = *n;
  } else if (key == "weight") {
    auto n = ParseCount(value, "weight", 1, 1000000);
    if (!n.ok()) return n.status();
    inst.weight = static_cast<uint32_t>(*n);
  } else if (key == "metadata") {
    auto m = ParseMetadata(value);
    if (!m.ok()) return m.status();
    inst.metadata = *m;
  } else if (key == "payload") {
    auto payload = ParseRecordPayload(value);
    if (!payload.ok()) return payload.status();
    inst.payload = value;
  } else if (key == "uri_spec") {
    auto spec = ParseUriSpec(value);
    if (!spec.ok()) return spec.status();
    inst.uri_spec = value;
  } else if (key == "ssl_port") {
    auto n = ParseCount(value, "ssl_port", 1, 65535);
    if (!n.ok()) return n.status();
    inst.ssl_port = static_cast<uint32_t>(*n);
  } else if (key == "forward_backend") {
    auto a = InstanceAddress::Parse(value);
    if (!a.ok()) return a.status();
    if (!inst.forward) inst.forward.emplace();
    inst.forward->backend = *a;
  } else if (key == "forward_ports") {
    auto ports = ParsePortList(value);
    if (!ports.ok()) return ports.status();
    if (!inst.forward) inst.forward.emplace();
    inst.forward->ports = *ports;
  } else if (key == "forward_protocol") {
    auto p = forward::ParseProtocol(value);
    if (!p.ok()) return p.status();
    if (!inst.forward) inst.forward.emplace();
    inst.forward->protocol = *p;
  } else if (key == "forward_threads") {
    auto n = ParseCount(value, "forward_threads", 1, 16);
    if (!n.ok()) return n.status();
    if (!inst.forward) inst.forward.emplace();
    inst.forward->threads = *n;
  } else {
    return InvalidArgument(
        "unknown key; instance keys are service, ip, port, check, interval, "
        "timeout, rise, fall, weight, metadata, payload, uri_spec, ssl_port, "
        "forward_backend, "
        "forward_ports, forward_protocol, forward_threads");
  }
  return Status::Ok();
}

// Forwarding keys need forward_backend, and no local backend may be the
// public address itself (the forwarder would connect to itself).
Status CheckForward(const InstanceConfig& inst) {
  const ForwardConfig& f = *inst.forward;
  if (f.backend.empty()) {
    return InvalidArgument(
        "forward_ports, forward_protocol and forward_threads need "
        "forward_backend = IP:PORT (where the instance really listens)");
  }
  if (f.backend == inst.id.address) {
    return InvalidArgument("forward_backend " + f.backend.ToString() +
                           " is the instance's public address; the backend "
                           "must listen on another port");
  }
  for (uint16_t p : f.ports) {
    if (f.backend.ip() == inst.id.address.ip() && p == inst.id.address.port()) {
      return InvalidArgument("forward_ports lists " + std::to_string(p) +
                             ", the instance's public port");
    }
  }
  return Status::Ok();
}

struct FileContents {
  std::map<std::string, std::string> top;  // top-level key -> value
  std::vector<InstanceConfig> instances;
};

// Parses one INI file. `allow_top` says whether agent options may appear.
Result<FileContents> ParseFile(const std::string& file, bool allow_top,
                               const InstanceConfig& defaults) {
  std::ifstream in(file);
  if (!in) {
    return InvalidArgument("cannot read config file " + QuoteForMessage(file) +
                           ": " + strerror(errno));
  }
  // Check the line syntax ourselves first: our message names the line, and
  // Boost 1.74 loops forever formatting its own error for a bad line that
  // contains its placeholder syntax (found by tests/fuzz/config_fuzz.cc).
  {
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      std::string t = line.substr(0, line.find('#'));
      size_t b = t.find_first_not_of(" \t\r");
      if (b == std::string::npos) continue;
      t = t.substr(b);
      t = t.substr(0, t.find_last_not_of(" \t\r") + 1);
      bool section = t.front() == '[' && t.back() == ']' && t.size() > 2;
      size_t eq = t.find('=');
      bool pair = eq != std::string::npos &&
                  t.substr(0, eq).find_first_not_of(" \t") != std::string::npos;
      if (!section && !pair) {
        return InvalidArgument(file + ":" + std::to_string(n) +
                               ": expected 'key = value', a [section] or a "
                               "# comment, got " + QuoteForMessage(line));
      }
    }
    in.clear();
    in.seekg(0);
  }
  po::parsed_options parsed(nullptr);
  try {
    po::options_description none;
    parsed = po::parse_config_file(in, none, /*allow_unregistered=*/true);
  } catch (const po::error& e) {
    std::string msg = e.what();
    // Boost quotes the offending line; find it to report its number.
    size_t q1 = msg.find('\''), q2 = msg.rfind('\'');
    int line = 0;
    if (q1 != std::string::npos && q2 > q1) {
      line = LineOf(file, msg.substr(q1 + 1, q2 - q1 - 1));
    }
    return InvalidArgument(file + (line ? ":" + std::to_string(line) : "") +
                           ": " + msg + " (expected 'key = value' lines and "
                           "[instance.NAME] sections)");
  }
  FileContents out;
  std::map<std::string, InstanceConfig> sections;
  std::map<std::string, std::array<std::string, 3>> addr_parts;
  std::vector<std::string> order;
  static const std::set<std::string> kTopKeys = {
      "zk", "host", "session_timeout", "resync", "auth_file", "metrics_listen"};
  for (const auto& opt : parsed.options) {
    const std::string& key = opt.string_key;
    std::string value = opt.value.empty() ? "" : opt.value.front();
    if (key.rfind(kInstancePrefix, 0) == 0) {
      std::string rest = key.substr(sizeof(kInstancePrefix) - 1);
      size_t dot = rest.find('.');
      if (dot == std::string::npos) {
        return ConfigError(file, key, "expected [instance.NAME] sections");
      }
      std::string name = rest.substr(0, dot);
      std::string field = rest.substr(dot + 1);
      if (!sections.count(name)) {
        sections[name] = defaults;
        sections[name].origin = file + " [instance." + name + "]";
        order.push_back(name);
      }
      auto& parts = addr_parts[name];
      Status s = ApplyInstanceKey(sections[name], field, value, &parts[0],
                                  &parts[1], &parts[2]);
      if (!s.ok()) return ConfigError(file, key, s.message());
    } else if (kTopKeys.count(key)) {
      if (!allow_top) {
        return ConfigError(file, key,
                           "agent options belong in the main --config file, "
                           "not in --config-dir files");
      }
      out.top[key] = value;
    } else {
      return ConfigError(file, key,
                         "unknown key; top-level keys are zk, host, "
                         "session_timeout, resync, auth_file, metrics_listen, "
                         "and instances go in [instance.NAME] sections");
    }
  }
  for (const std::string& name : order) {
    auto& inst = sections[name];
    auto& parts = addr_parts[name];
    const std::string section = "instance." + name;
    if (parts[0].empty() || parts[1].empty() || parts[2].empty()) {
      return ConfigError(file, "",
                         "section [" + section +
                             "] needs service, ip and port");
    }
    auto service = ServiceName::Parse(parts[0]);
    if (!service.ok()) {
      return ConfigError(file, section + ".service", service.status().message());
    }
    auto port = ParseCount(parts[2], "port", 1, 65535);
    if (!port.ok()) return ConfigError(file, section + ".port", port.status().message());
    auto addr = InstanceAddress::FromParts(parts[1], *port);
    if (!addr.ok()) return ConfigError(file, section + ".ip", addr.status().message());
    inst.id = InstanceId{*service, *addr};
    if (inst.forward) {
      Status f = CheckForward(inst);
      if (!f.ok()) return ConfigError(file, section + ".forward_backend", f.message());
    }
    out.instances.push_back(inst);
  }
  return out;
}

}  // namespace

bool InstanceConfig::SameSettings(const InstanceConfig& o) const {
  return id == o.id && check_text == o.check_text && interval == o.interval &&
         timeout == o.timeout && rise == o.rise && fall == o.fall &&
         weight == o.weight && metadata == o.metadata && payload == o.payload &&
         uri_spec == o.uri_spec && ssl_port == o.ssl_port &&
         forward == o.forward;
}

bool ForwardConfig::IsLocalBackend(const InstanceAddress& a) const {
  if (a == backend) return true;
  if (a.ip() != backend.ip()) return false;
  return std::find(ports.begin(), ports.end(), a.port()) != ports.end();
}

bool ForwardConfig::operator==(const ForwardConfig& o) const {
  return backend == o.backend && ports == o.ports && protocol == o.protocol &&
         threads == o.threads;
}

Result<std::string> DefaultHostId() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) {
    return InvalidArgument("cannot read the hostname; pass --host");
  }
  auto id = HostId::Parse(host);
  if (!id.ok()) {
    return InvalidArgument("the hostname is not a valid host id (" +
                           id.status().message() + "); pass --host");
  }
  return id->str();
}

Result<AgentConfig> LoadConfig(const CommandLine& cl) {
  AgentConfig cfg;
  // Defaults for instances declared with --instance.
  InstanceConfig cli_defaults;
  {
    auto spec = health::ParseCheckSpec(cl.check);
    if (!spec.ok()) return spec.status().WithContext("--check");
    cli_defaults.check = *spec;
    cli_defaults.check_text = cl.check;
    auto iv = ParseDuration(cl.interval);
    if (!iv.ok()) return iv.status().WithContext("--interval");
    auto to = ParseDuration(cl.timeout);
    if (!to.ok()) return to.status().WithContext("--timeout");
    if (iv->count() < 10 || to->count() < 10) {
      return InvalidArgument("--interval and --timeout must be at least 10ms");
    }
    cli_defaults.interval = *iv;
    cli_defaults.timeout = *to;
    if (cl.rise < 1 || cl.rise > 100 || cl.fall < 1 || cl.fall > 100) {
      return InvalidArgument("--rise and --fall must be from 1 to 100");
    }
    cli_defaults.rise = cl.rise;
    cli_defaults.fall = cl.fall;
  }
  InstanceConfig file_defaults;  // documented defaults: tcp, 2s, 1s, 2, 3
  file_defaults.check = *health::ParseCheckSpec("tcp");

  std::map<std::string, std::string> top;
  auto add_instances = [&](const std::vector<InstanceConfig>& list) -> Status {
    for (const auto& inst : list) {
      for (const auto& have : cfg.instances) {
        if (have.id == inst.id) {
          return InvalidArgument("instance " + inst.id.ToString() +
                                 " is declared twice: in " + have.origin +
                                 " and in " + inst.origin);
        }
      }
      cfg.instances.push_back(inst);
    }
    return Status::Ok();
  };
  if (cl.config_file) {
    auto f = ParseFile(*cl.config_file, true, file_defaults);
    if (!f.ok()) return f.status();
    top = f->top;
    ZKROLL_RETURN_IF_ERROR(add_instances(f->instances));
  }
  if (cl.config_dir) {
    std::error_code ec;
    if (!std::filesystem::is_directory(*cl.config_dir, ec)) {
      return InvalidArgument("--config-dir " + QuoteForMessage(*cl.config_dir) +
                             " is not a readable directory");
    }
    std::vector<std::string> files;
    for (const auto& entry :
         std::filesystem::directory_iterator(*cl.config_dir, ec)) {
      if (entry.is_regular_file() && entry.path().extension() == ".conf") {
        files.push_back(entry.path().string());
      }
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      auto f = ParseFile(file, false, file_defaults);
      if (!f.ok()) return f.status();
      ZKROLL_RETURN_IF_ERROR(add_instances(f->instances));
    }
  }
  std::vector<InstanceConfig> shortcuts;
  for (const auto& text : cl.instances) {
    auto id = InstanceId::Parse(text);
    if (!id.ok()) return id.status().WithContext("--instance");
    InstanceConfig inst = cli_defaults;
    inst.id = *id;
    inst.origin = "--instance " + text;
    shortcuts.push_back(inst);
  }
  ZKROLL_RETURN_IF_ERROR(add_instances(shortcuts));

  auto pick = [&](const std::optional<std::string>& flag,
                  const char* key) -> std::optional<std::string> {
    if (flag) return flag;
    auto it = top.find(key);
    if (it != top.end()) return it->second;
    return std::nullopt;
  };
  const std::string file = cl.config_file.value_or("");
  auto where = [&](const std::optional<std::string>& flag, const char* key,
                   const char* flag_name) {
    return flag ? std::string(flag_name) : file + " (key '" + key + "')";
  };
  auto zk = pick(cl.zk, "zk");
  if (!zk || zk->empty()) {
    return InvalidArgument("no ZooKeeper connect string: pass --zk HOST:PORT[/chroot] "
                           "or set 'zk' in the config file");
  }
  ZKROLL_RETURN_IF_ERROR(ValidateConnectString(*zk).WithContext(
      where(cl.zk, "zk", "--zk")));
  cfg.zk = *zk;
  if (auto host = pick(cl.host, "host")) {
    auto id = HostId::Parse(*host);
    if (!id.ok()) return id.status().WithContext(where(cl.host, "host", "--host"));
    cfg.host = id->str();
  } else {
    auto h = DefaultHostId();
    if (!h.ok()) return h.status();
    cfg.host = *h;
  }
  if (auto st = pick(cl.session_timeout, "session_timeout")) {
    auto d = ParseDuration(*st);
    if (!d.ok()) {
      return d.status().WithContext(
          where(cl.session_timeout, "session_timeout", "--session-timeout"));
    }
    if (d->count() < 400 || d->count() > 600000) {
      return InvalidArgument(where(cl.session_timeout, "session_timeout",
                                   "--session-timeout") +
                             ": must be between 400ms and 10m");
    }
    cfg.session_timeout = *d;
  }
  if (auto rs = pick(cl.resync, "resync")) {
    auto d = ParseDuration(*rs);
    if (!d.ok()) return d.status().WithContext(where(cl.resync, "resync", "--resync"));
    if (d->count() < 100) {
      return InvalidArgument(where(cl.resync, "resync", "--resync") +
                             ": must be at least 100ms");
    }
    cfg.resync = *d;
  }
  if (auto af = pick(cl.auth_file, "auth_file")) cfg.auth_file = *af;
  if (auto ml = pick(cl.metrics_listen, "metrics_listen")) {
    if (ml->empty()) {
      cfg.metrics_listen.reset();
    } else {
      auto a = ParseListenAddress(*ml);
      if (!a.ok()) {
        if (cl.metrics_listen) return a.status().WithContext("--metrics-listen");
        return ConfigError(file, "metrics_listen", a.status().message());
      }
      cfg.metrics_listen = *a;
    }
  }
  return cfg;
}

}  // namespace zkroll::agent
