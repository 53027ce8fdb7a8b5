// The znode layout, built in exactly one place (see docs/design.md).
//
//   /services/<service>/<ip>_<port>   ephemeral  agent        InstanceRecord
//   /pause/<service>                  persistent coordinator  (guard version)
//   /pause/<service>/<ip>_<port>      pause flag coordinator  PauseFlag
//   /agents/<host>                    ephemeral  agent        AgentRecord
//   /deploys/<service>/<deploy-id>    persistent coordinator  DeployRecord
//   /deploys/<service>/<deploy-id>/<ip>_<port>   persistent   InstanceProgress
//   /locks/<service>/lock-<seq>       ephemeral sequential    LockHolder
//   /switch/<service>/<ip>_<port>     persistent coordinator  ForwardTarget
//   /switch/<service>/<ip>_<port>/deploy  ephemeral coordinator ForwardTarget
//   /forwarders/<service>/<ip>_<port> ephemeral  agent        ForwarderState
//   /callers/<service>/<caller-id>    ephemeral  caller       CallerRecord
//   /drain/<service>/<ip>_<port>      ephemeral  coordinator  DrainRequest
//   /traffic/<service>/<ip>_<port>    ephemeral  agent        TrafficReport
//
// Functions take only validated types (common/names.h).
#ifndef ZKROLL_COMMON_PATHS_H_
#define ZKROLL_COMMON_PATHS_H_

#include <string>
#include <vector>

#include "common/names.h"

namespace zkroll::paths {

inline constexpr char kServicesRoot[] = "/services";
inline constexpr char kPauseRoot[] = "/pause";
inline constexpr char kAgentsRoot[] = "/agents";
inline constexpr char kDeploysRoot[] = "/deploys";
inline constexpr char kLocksRoot[] = "/locks";
inline constexpr char kSwitchRoot[] = "/switch";
inline constexpr char kForwardersRoot[] = "/forwarders";
inline constexpr char kCallersRoot[] = "/callers";
inline constexpr char kDrainRoot[] = "/drain";
inline constexpr char kTrafficRoot[] = "/traffic";

std::string ServiceDir(const ServiceName& s);
std::string InstanceNode(const ServiceName& s, const InstanceAddress& a);
std::string PauseDir(const ServiceName& s);
std::string PauseFlagNode(const ServiceName& s, const InstanceAddress& a);
std::string AgentNode(const HostId& h);
std::string DeployDir(const ServiceName& s);
std::string DeployNode(const ServiceName& s, const DeployId& d);
// One instance's steps in a deploy's journal (a child of DeployNode, so a
// 100-instance rollout stays far below the payload limit per node).
std::string DeployInstanceNode(const ServiceName& s, const DeployId& d,
                               const InstanceAddress& a);
std::string LockDir(const ServiceName& s);
// Port switching: the committed backend, the in-flight one, and what the
// agent applied.
std::string SwitchDir(const ServiceName& s);
std::string SwitchNode(const ServiceName& s, const InstanceAddress& a);
std::string SwitchDeployNode(const ServiceName& s, const InstanceAddress& a);
std::string ForwarderDir(const ServiceName& s);
std::string ForwarderNode(const ServiceName& s, const InstanceAddress& a);
// Drain on evidence: the callers that acknowledge the list they serve, the
// coordinator's request to observe an instance's traffic, and the agent's
// report of it. Caller ids are HostId-shaped names (<host>-<pid>-<n>).
std::string CallersDir(const ServiceName& s);
std::string CallerNode(const ServiceName& s, const HostId& caller_id);
std::string DrainDir(const ServiceName& s);
std::string DrainRequestNode(const ServiceName& s, const InstanceAddress& a);
std::string TrafficDir(const ServiceName& s);
std::string TrafficNode(const ServiceName& s, const InstanceAddress& a);

// Every ancestor of `path` from the root down, excluding "/" and `path`
// itself: "/a/b/c" -> {"/a", "/a/b"}.
std::vector<std::string> Ancestors(const std::string& path);

}  // namespace zkroll::paths

#endif  // ZKROLL_COMMON_PATHS_H_
