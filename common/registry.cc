#include "common/registry.h"

#include "common/paths.h"

namespace zkroll::registry {

std::vector<ZkOp> PauseOps(const ServiceName& service,
                           const InstanceAddress& address,
                           const std::string& flag_json, CreateMode flag_mode,
                           bool pause_dir_exists,
                           std::optional<int32_t> instance_version,
                           const AclList& pause_acl) {
  std::vector<ZkOp> ops;
  const std::string dir = paths::PauseDir(service);
  if (!pause_dir_exists) {
    // Agents that saw no /pause/<service> guarded on /pause itself.
    ops.push_back(ZkOp::Create(dir, "", CreateMode::kPersistent, pause_acl));
    ops.push_back(ZkOp::SetData(paths::kPauseRoot, "", -1));
  }
  ops.push_back(ZkOp::SetData(dir, "", -1));
  ops.push_back(ZkOp::Create(paths::PauseFlagNode(service, address), flag_json,
                             flag_mode, pause_acl));
  if (instance_version) {
    ops.push_back(
        ZkOp::Delete(paths::InstanceNode(service, address), *instance_version));
  }
  return ops;
}

std::vector<ZkOp> RegisterOps(const ServiceName& service,
                              const InstanceAddress& address,
                              const std::string& record_json,
                              const GuardVersion& guard,
                              std::optional<int32_t> stale_version,
                              const AclList& instance_acl) {
  const std::string node = paths::InstanceNode(service, address);
  std::vector<ZkOp> ops;
  ops.push_back(ZkOp::Check(guard.path, guard.version));
  if (stale_version) ops.push_back(ZkOp::Delete(node, *stale_version));
  ops.push_back(
      ZkOp::Create(node, record_json, CreateMode::kEphemeral, instance_acl));
  return ops;
}

}  // namespace zkroll::registry
