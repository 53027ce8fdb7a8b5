#include "common/registry.h"

#include <algorithm>

#include "common/paths.h"

namespace zkroll::registry {

Result<PauseContext> ReadPauseContext(ZkSession& session,
                                      const ServiceName& service,
                                      const InstanceAddress& address) {
  PauseContext ctx;
  // The root's version first: a /services/<service> created after this read
  // bumps it (CreateServiceDirOps).
  auto root = session.ExistsSync(paths::kServicesRoot);
  if (!root.ok()) return root.status();
  if (!root->has_value()) {
    return NotFound(std::string(paths::kServicesRoot) +
                    " does not exist; run 'zkroll init' (or start an agent)");
  }
  auto kids = session.GetChildrenSync(paths::ServiceDir(service));
  if (kids.ok()) {
    ctx.registry_guard = {paths::ServiceDir(service), kids->stat.version};
    ctx.registered = std::binary_search(kids->names.begin(), kids->names.end(),
                                        address.NodeName());
  } else if (kids.status().code() == StatusCode::kNotFound) {
    ctx.registry_guard = {paths::kServicesRoot, (*root)->version};
  } else {
    return kids.status();
  }
  auto dir = session.ExistsSync(paths::PauseDir(service));
  if (!dir.ok()) return dir.status();
  ctx.pause_dir_exists = dir->has_value();
  return ctx;
}

std::vector<ZkOp> PauseOps(const ServiceName& service,
                           const InstanceAddress& address,
                           const std::string& flag_json, CreateMode flag_mode,
                           const PauseContext& context,
                           const AclList& pause_acl) {
  std::vector<ZkOp> ops;
  const std::string dir = paths::PauseDir(service);
  if (!context.pause_dir_exists) {
    // Agents that saw no /pause/<service> guarded on /pause itself.
    ops.push_back(ZkOp::Create(dir, "", CreateMode::kPersistent, pause_acl));
    ops.push_back(ZkOp::SetData(paths::kPauseRoot, "", -1));
  }
  ops.push_back(ZkOp::SetData(dir, "", -1));
  ops.push_back(ZkOp::Create(paths::PauseFlagNode(service, address), flag_json,
                             flag_mode, pause_acl));
  if (context.registered) {
    ops.push_back(ZkOp::Delete(paths::InstanceNode(service, address), -1));
  } else {
    ops.push_back(ZkOp::Check(context.registry_guard.path,
                              context.registry_guard.version));
  }
  return ops;
}

MultiResult Pause(ZkSession& session, const ServiceName& service,
                  const InstanceAddress& address, const std::string& flag_json,
                  CreateMode flag_mode, const AclList& pause_acl,
                  int attempts) {
  const std::string flag = paths::PauseFlagNode(service, address);
  MultiResult last;
  for (int i = 0; i < attempts; ++i) {
    auto ctx = ReadPauseContext(session, service, address);
    if (!ctx.ok()) {
      last.status = ctx.status();
      return last;
    }
    auto ops = PauseOps(service, address, flag_json, flag_mode, *ctx, pause_acl);
    last = session.MultiSync(ops);
    if (last.status.ok()) return last;
    if (last.failed_op < 0) return last;  // connection trouble, not a race
    const ZkOp& failed = ops[last.failed_op];
    StatusCode code = last.status.code();
    if (failed.kind == ZkOp::Kind::kCreate && failed.path == flag &&
        code == StatusCode::kAlreadyExists) {
      return last;  // somebody else holds the pause
    }
    bool raced = code == StatusCode::kBadVersion ||
                 code == StatusCode::kNotFound ||
                 code == StatusCode::kAlreadyExists;
    if (!raced) return last;
    // The agent registered or deregistered, or another pause created
    // /pause/<service>, between our read and our write: read again.
  }
  return last;
}

std::vector<ZkOp> RegisterOps(const ServiceName& service,
                              const InstanceAddress& address,
                              const std::string& record_json,
                              const GuardVersion& pause_guard,
                              std::optional<int32_t> stale_version,
                              const AclList& instance_acl) {
  const std::string node = paths::InstanceNode(service, address);
  std::vector<ZkOp> ops;
  ops.push_back(ZkOp::Check(pause_guard.path, pause_guard.version));
  if (stale_version) ops.push_back(ZkOp::Delete(node, *stale_version));
  ops.push_back(
      ZkOp::Create(node, record_json, CreateMode::kEphemeral, instance_acl));
  ops.push_back(ZkOp::SetData(paths::ServiceDir(service), "", -1));
  return ops;
}

Result<FlagRead> ReadPauseFlag(ZkSession& session, const ServiceName& service,
                               const InstanceAddress& address) {
  FlagRead read;
  read.pause_dir.path = paths::PauseDir(service);
  read.pause_dir.version = -1;
  // The guard first: a pause made after this read bumps it, whatever we
  // read of the flag next.
  auto dir = session.ExistsSync(read.pause_dir.path);
  if (!dir.ok()) return dir.status();
  if (!dir->has_value()) return read;  // no /pause/<service>: no flag
  read.pause_dir.version = (*dir)->version;
  auto flag = session.GetSync(paths::PauseFlagNode(service, address));
  if (flag.ok()) {
    read.flag = *flag;
  } else if (flag.status().code() != StatusCode::kNotFound) {
    return flag.status();
  }
  return read;
}

std::vector<ZkOp> DeleteFlagOps(const ServiceName& service,
                                const InstanceAddress& address,
                                const GuardVersion& pause_dir,
                                int32_t flag_version) {
  return {ZkOp::Check(pause_dir.path, pause_dir.version),
          ZkOp::Delete(paths::PauseFlagNode(service, address), flag_version)};
}

Status DeleteReadFlag(ZkSession& session, const ServiceName& service,
                      const InstanceAddress& address,
                      const GuardVersion& pause_dir, int32_t flag_version,
                      std::optional<int64_t> in_session) {
  constexpr int kGuardCheck = 0;  // the ops of DeleteFlagOps, in order
  constexpr int kFlagDelete = 1;
  const std::string flag = paths::PauseFlagNode(service, address);
  auto ops = DeleteFlagOps(service, address, pause_dir, flag_version);
  MultiResult m = in_session
                      ? session.MultiInSessionSync(std::move(ops), *in_session)
                      : session.MultiSync(std::move(ops));
  if (m.status.ok()) return m.status;
  if (m.failed_op == kGuardCheck) {
    return Aborted("did not delete " + flag + ": " + pause_dir.path +
                   " changed since the flag was read (a pause was made "
                   "meanwhile), so the flag there now may be a new one");
  }
  if (m.failed_op == kFlagDelete &&
      m.status.code() == StatusCode::kNotFound) {
    return NotFound(flag + " is already gone");
  }
  if (m.failed_op == kFlagDelete &&
      m.status.code() == StatusCode::kBadVersion) {
    // Flags are never rewritten; still, a changed flag is not the one read.
    return Aborted("did not delete " + flag + ": it changed since it was read");
  }
  return m.status;
}

std::vector<ZkOp> CreateServiceDirOps(const ServiceName& service,
                                      const AclList& acl) {
  return {ZkOp::Create(paths::ServiceDir(service), "", CreateMode::kPersistent,
                       acl),
          ZkOp::SetData(paths::kServicesRoot, "", -1)};
}

}  // namespace zkroll::registry
