#include "common/paths.h"

#include <glog/logging.h>

#include <vector>

namespace zkroll::paths {

std::string ServiceDir(const ServiceName& s) {
  CHECK(!s.empty()) << "path built from an empty service name";
  return std::string(kServicesRoot) + "/" + s.str();
}
std::string InstanceNode(const ServiceName& s, const InstanceAddress& a) {
  CHECK(!a.empty()) << "path built from an empty instance address";
  return ServiceDir(s) + "/" + a.NodeName();
}
std::string PauseDir(const ServiceName& s) {
  CHECK(!s.empty()) << "path built from an empty service name";
  return std::string(kPauseRoot) + "/" + s.str();
}
std::string PauseFlagNode(const ServiceName& s, const InstanceAddress& a) {
  CHECK(!a.empty()) << "path built from an empty instance address";
  return PauseDir(s) + "/" + a.NodeName();
}
std::string AgentNode(const HostId& h) {
  return std::string(kAgentsRoot) + "/" + h.str();
}
std::string DeployDir(const ServiceName& s) {
  CHECK(!s.empty()) << "path built from an empty service name";
  return std::string(kDeploysRoot) + "/" + s.str();
}
std::string DeployNode(const ServiceName& s, const DeployId& d) {
  return DeployDir(s) + "/" + d.str();
}
std::string DeployInstanceNode(const ServiceName& s, const DeployId& d,
                               const InstanceAddress& a) {
  CHECK(!a.empty()) << "path built from an empty instance address";
  return DeployNode(s, d) + "/" + a.NodeName();
}
std::string LockDir(const ServiceName& s) {
  CHECK(!s.empty()) << "path built from an empty service name";
  return std::string(kLocksRoot) + "/" + s.str();
}
std::string SwitchDir(const ServiceName& s) {
  CHECK(!s.empty()) << "path built from an empty service name";
  return std::string(kSwitchRoot) + "/" + s.str();
}
std::string SwitchNode(const ServiceName& s, const InstanceAddress& a) {
  CHECK(!a.empty()) << "path built from an empty instance address";
  return SwitchDir(s) + "/" + a.NodeName();
}
std::string SwitchDeployNode(const ServiceName& s, const InstanceAddress& a) {
  return SwitchNode(s, a) + "/deploy";
}
std::string ForwarderDir(const ServiceName& s) {
  CHECK(!s.empty()) << "path built from an empty service name";
  return std::string(kForwardersRoot) + "/" + s.str();
}
std::string ForwarderNode(const ServiceName& s, const InstanceAddress& a) {
  CHECK(!a.empty()) << "path built from an empty instance address";
  return ForwarderDir(s) + "/" + a.NodeName();
}

std::string CallersDir(const ServiceName& s) {
  CHECK(!s.empty()) << "path built from an empty service name";
  return std::string(kCallersRoot) + "/" + s.str();
}
std::string CallerNode(const ServiceName& s, const HostId& caller_id) {
  return CallersDir(s) + "/" + caller_id.str();
}
std::string DrainDir(const ServiceName& s) {
  CHECK(!s.empty()) << "path built from an empty service name";
  return std::string(kDrainRoot) + "/" + s.str();
}
std::string DrainRequestNode(const ServiceName& s, const InstanceAddress& a) {
  CHECK(!a.empty()) << "path built from an empty instance address";
  return DrainDir(s) + "/" + a.NodeName();
}
std::string TrafficDir(const ServiceName& s) {
  CHECK(!s.empty()) << "path built from an empty service name";
  return std::string(kTrafficRoot) + "/" + s.str();
}
std::string TrafficNode(const ServiceName& s, const InstanceAddress& a) {
  CHECK(!a.empty()) << "path built from an empty instance address";
  return TrafficDir(s) + "/" + a.NodeName();
}

std::vector<std::string> Ancestors(const std::string& path) {
  std::vector<std::string> out;
  for (size_t i = 1; i < path.size(); ++i) {
    if (path[i] == '/') out.push_back(path.substr(0, i));
  }
  return out;
}

}  // namespace zkroll::paths
