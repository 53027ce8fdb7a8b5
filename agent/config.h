// Agent configuration: where instances are declared and how they are
// checked.
//
// Sources, merged in this order (later ones add instances, and a duplicate
// service@ip:port is an error naming both places):
//   1. --config FILE: Boost.Program_options INI syntax. Top-level keys set
//      agent options; each [instance.NAME] section declares one instance.
//   2. --config-dir DIR: every *.conf file in it, each holding one or more
//      [instance.NAME] sections (one file per service for config management).
//   3. --instance SERVICE@IP:PORT on the command line, checked with the
//      command-line defaults (--check, --interval, ...).
// Command-line agent options override the file's top-level keys.
//
// Every error names the file and key (or flag) and what to do; loading is
// pure (no side effects), so SIGHUP can refuse a bad reload and keep going.
#ifndef ZKROLL_AGENT_CONFIG_H_
#define ZKROLL_AGENT_CONFIG_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/forward/forwarder.h"
#include "agent/metrics_server.h"
#include "common/duration.h"
#include "common/health/check.h"
#include "common/names.h"
#include "common/status.h"

namespace zkroll::agent {

// Forwarding mode (docs/design.md, "Port switching"): the agent listens on
// the instance's public address and forwards to a backend it may switch.
struct ForwardConfig {
  InstanceAddress backend;        // forward_backend: the initial backend
  std::vector<uint16_t> ports;    // forward_ports: ports on backend.ip() a
                                  // new version may be started on
  forward::Protocol protocol = forward::Protocol::kTcp;  // forward_protocol
  int threads = 1;                // forward_threads

  // Whether `a` is one of the local backends this instance may use: the
  // configured backend or backend.ip() with one of `ports`.
  bool IsLocalBackend(const InstanceAddress& a) const;
  bool operator==(const ForwardConfig& o) const;
};

// Per-instance settings and their documented defaults.
struct InstanceConfig {
  InstanceId id;
  std::string origin;             // "file:section" or "--instance" for messages
  std::string check_text = "tcp";
  health::CheckSpec check;
  Millis interval{2000};
  Millis timeout{1000};
  int rise = 2;
  int fall = 3;
  uint32_t weight = 0;            // 0: not set (callers use 1)
  std::map<std::string, std::string> metadata;
  // For Curator callers (docs/callers.md); validated when loaded, so the
  // record built from them cannot fail.
  std::string payload;            // a JSON object, or "" (Curator: null)
  std::string uri_spec;           // a URI template, or "" (Curator: null)
  uint32_t ssl_port = 0;          // 0: none (Curator: null)
  std::optional<ForwardConfig> forward;  // set: forwarding mode

  // Equal when every setting that affects checking or the record is equal.
  bool SameSettings(const InstanceConfig& o) const;
};

struct AgentConfig {
  std::string zk;                 // connect string, chroot allowed
  std::string host;               // host id; default: hostname
  Millis session_timeout{10000};
  Millis resync{30000};           // slow periodic re-read of pause flags
  std::string auth_file;          // digest credentials (never on argv)
  // metrics_listen: where Prometheus scrapes /metrics (agent/metrics.h);
  // unset when the value is empty (metrics off).
  std::optional<ListenAddress> metrics_listen =
      ListenAddress{"127.0.0.1", kDefaultMetricsPort};
  std::vector<InstanceConfig> instances;

  // Loopback only by default: the series name every service on the host.
  // 9479 is outside the ports of the common exporters (node_exporter 9100,
  // OpenTelemetry's Prometheus exporter 9464, ...).
  static constexpr uint16_t kDefaultMetricsPort = 9479;
};

// The command line, already split by Boost.Program_options in main.
struct CommandLine {
  std::optional<std::string> config_file;
  std::optional<std::string> config_dir;
  std::optional<std::string> zk;
  std::optional<std::string> host;
  std::optional<std::string> session_timeout;
  std::optional<std::string> resync;
  std::optional<std::string> auth_file;
  std::optional<std::string> metrics_listen;
  std::vector<std::string> instances;   // --instance SERVICE@IP:PORT
  // Defaults for --instance shortcuts.
  std::string check = "tcp";
  std::string interval = "2s";
  std::string timeout = "1s";
  int rise = 2;
  int fall = 3;
};

// Reads every source and validates everything. Pure apart from reading
// the files.
Result<AgentConfig> LoadConfig(const CommandLine& cl);

// Default host id: the hostname, validated as a HostId.
Result<std::string> DefaultHostId();

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_CONFIG_H_
