#include "common/registry.h"

#include <algorithm>

#include <glog/logging.h>

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

PauseOutcome Pause(ZkSession& session, RetryContext& retry,
                   const RetryOptions& options, const PauseRequest& request) {
  const ServiceName& service = request.service;
  const InstanceAddress& address = request.address;
  const std::string flag = paths::PauseFlagNode(service, address);
  PauseOutcome out;
  for (int attempt = 1; attempt <= request.attempts; ++attempt) {
    if (retry.stop_requested()) {
      out.status = Aborted("stopped before the pause of " + flag +
                           " was sent");
      return out;
    }
    auto read = Retry(retry, options,
                      [&] { return ReadPauseFlag(session, service, address); });
    if (!read.ok()) {
      out.status = read.status().WithContext("cannot read " + flag);
      return out;
    }
    if (read->flag) {
      if (request.expired && request.expired(*read->flag)) {
        // Exactly the flag read: a pause made since fails the delete, and
        // the next attempt reads whatever is there now.
        Status removal = DeleteReadFlag(session, service, address,
                                        read->pause_dir,
                                        read->flag->stat.version);
        if (request.on_removal) request.on_removal(*read->flag, removal);
        continue;
      }
      out.existing = read->flag;
      out.status = Status(StatusCode::kAlreadyExists,
                          flag + " exists: the instance is already paused");
      return out;
    }
    auto ctx = Retry(retry, options, [&] {
      return ReadPauseContext(session, service, address);
    });
    if (!ctx.ok()) {
      out.status = ctx.status().code() == StatusCode::kNotFound
                       ? ctx.status()
                       : ctx.status().WithContext(
                             "cannot read the registration of " +
                             paths::InstanceNode(service, address));
      return out;
    }
    const std::string json = request.flag_json();
    if (request.before_write) request.before_write(attempt);
    const int64_t sid = session.session_id();
    MultiResult m = session.MultiSync(PauseOps(
        service, address, json, request.flag_mode, *ctx, request.acl));
    if (m.status.ok()) {
      for (const ZkOpResult& op : m.results) {
        // Every op of a multi shares its zxid; a set-data result carries it.
        if (op.status.ok() && op.stat.mzxid != 0) out.zxid = op.stat.mzxid;
      }
      out.status = Status::Ok();
      out.was_registered = ctx->registered;
      out.session = sid;
      return out;
    }
    if (m.status.IsTransient(options.scope)) {
      // The transaction may or may not have applied. The flag is ours only
      // if it carries what we sent and, ephemeral, lives in our session now;
      // anything else is someone else's flag (or none): read again.
      auto mine = Retry(retry, options, [&] { return session.GetSync(flag); });
      const int64_t now_sid = session.session_id();
      if (mine.ok() && mine->data == json &&
          (request.flag_mode != CreateMode::kEphemeral ||
           mine->stat.ephemeral_owner == now_sid)) {
        out.status = Status::Ok();
        out.was_registered = ctx->registered;
        out.zxid = mine->stat.czxid;
        out.session = request.flag_mode == CreateMode::kEphemeral
                          ? mine->stat.ephemeral_owner
                          : now_sid;
        return out;
      }
      continue;
    }
    const StatusCode code = m.status.code();
    if (code == StatusCode::kBadVersion || code == StatusCode::kNotFound ||
        code == StatusCode::kAlreadyExists) {
      // The agent registered or deregistered, or another coordinator
      // created /pause/<service> or a flag, between our read and our
      // write: read again.
      ++out.races;
      VLOG(1) << flag << ": pause transaction raced (" << m.status.ToString()
              << "), attempt " << attempt;
      continue;
    }
    out.status = m.status.WithContext("the pause transaction was refused");
    return out;
  }
  out.status = Unavailable("the pause transaction of " + flag +
                           " kept racing with other writers of " +
                           paths::PauseDir(service) + "; try again");
  return out;
}

PauseOutcome Pause(ZkSession& session, const ServiceName& service,
                   const InstanceAddress& address, const std::string& flag_json,
                   CreateMode flag_mode, const AclList& pause_acl) {
  ZkRetryContext retry(&session);
  PauseRequest request;
  request.service = service;
  request.address = address;
  request.flag_json = [&] { return flag_json; };
  request.flag_mode = flag_mode;
  request.acl = pause_acl;
  return Pause(session, retry, RetryOptions{}, request);
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
