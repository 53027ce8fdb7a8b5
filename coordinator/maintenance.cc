#include "coordinator/maintenance.h"

#include <unistd.h>

#include "common/clock.h"
#include "common/paths.h"
#include "common/payload.h"
#include "common/registry.h"
#include "coordinator/inventory.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator {

Status PauseInstance(ZkSession* session, const AclList& acl,
                     const ServiceName& service, const InstanceAddress& address,
                     const ManualPause& pause, Reporter* reporter) {
  const std::string label = InstanceId{service, address}.ToString();
  auto inv = LoadInventory(session, service);
  if (!inv.ok()) return inv.status();
  if (!inv->Knows(address) && !pause.force) {
    return InvalidArgument("no agent declares " + label +
                           " and it is not registered; check "
                           "the address (`zkroll status --service " +
                           service.str() +
                           "`) or pass --force to pause it anyway");
  }
  for (const auto& line : RemoveExpiredFlags(session, service)) {
    reporter->Notice(line);
  }
  ZKROLL_RETURN_IF_ERROR(session->EnsurePathSync(paths::kPauseRoot, acl));
  const std::string flag_path = paths::PauseFlagNode(service, address);
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto existing = session->GetSync(flag_path);
    if (existing.ok()) {
      auto f = ParsePayload<proto::PauseFlag>(existing->data, flag_path);
      return FailedPrecondition(
          label + " is already paused" +
          (f.ok() ? " by " + f->by() + " since " + f->since() + ", reason " +
                        QuoteForMessage(f->reason()) +
                        (f->expires_at().empty() ? " (a running deploy)"
                                                 : ", until " + f->expires_at())
                  : std::string()) +
          "; run `zkroll resume` first to replace it");
    }
    if (existing.status().code() != StatusCode::kNotFound) {
      return existing.status();
    }
    auto ctx = registry::ReadPauseContext(*session, service, address);
    if (!ctx.ok()) {
      if (ctx.status().code() == StatusCode::kNotFound) {
        return FailedPrecondition(
            std::string(paths::kServicesRoot) +
            " does not exist: no agent has ever registered anything in this "
            "ZooKeeper tree; start the agents first");
      }
      return ctx.status();
    }
    const WallTime now = std::chrono::system_clock::now();
    proto::PauseFlag flag;
    flag.set_service(service.str());
    flag.set_ip(address.ip());
    flag.set_port(address.port());
    flag.set_by(CurrentUserAtHost());
    flag.set_pid(::getpid());
    flag.set_reason(pause.reason);
    flag.set_since(FormatRfc3339(now));
    flag.set_expires_at(FormatRfc3339(now + pause.ttl));
    MultiResult m = session->MultiSync(registry::PauseOps(
        service, address, ToJson(flag), CreateMode::kPersistent, *ctx, acl));
    if (m.status.ok()) {
      reporter->Notice("paused " + label + " until " + flag.expires_at() +
                       " (" + FormatDuration(pause.ttl) + "), reason " +
                       QuoteForMessage(pause.reason) +
                       (ctx->registered ? "; its registration was removed"
                                        : "; it was not registered") +
                       ". Undo with `zkroll resume --service " + service.str() +
                       " --instance " + address.ToString() + "`");
      return Status::Ok();
    }
    if (m.status.code() == StatusCode::kBadVersion ||
        m.status.code() == StatusCode::kNotFound ||
        m.status.code() == StatusCode::kAlreadyExists ||
        m.status.IsRetryable()) {
      continue;  // raced with an agent or another coordinator: read again
    }
    return m.status;
  }
  return Unavailable("the pause of " + label +
                     " kept racing with other writers; try again");
}

Status ResumeInstance(ZkSession* session, const ServiceName& service,
                      const InstanceAddress& address, bool force,
                      Reporter* reporter) {
  const std::string label = InstanceId{service, address}.ToString();
  const std::string flag_path = paths::PauseFlagNode(service, address);
  auto read = registry::ReadPauseFlag(*session, service, address);
  if (!read.ok()) return read.status();
  if (!read->flag) {
    reporter->Notice(label + " is not paused; nothing to do");
    return Status::Ok();
  }
  const NodeData& existing = *read->flag;
  auto f = ParsePayload<proto::PauseFlag>(existing.data, flag_path);
  if (existing.stat.ephemeral_owner != 0 && !force) {
    return FailedPrecondition(
        label + " is paused by a running deploy" +
        (f.ok() ? " " + f->deploy_id() + " (" + f->by() + ", pid " +
                      std::to_string(f->pid()) + ")"
                : std::string()) +
        "; stop that deploy (Ctrl-C) and it resumes the instance itself, or "
        "pass --force to delete its flag anyway");
  }
  // Deletes exactly the flag read above: if a pause was made since (say the
  // flag expired and a deploy replaced it), the delete fails.
  Status s = registry::DeleteReadFlag(*session, service, address,
                                      read->pause_dir, existing.stat.version);
  if (s.code() == StatusCode::kNotFound) {
    reporter->Notice(label + " is not paused; nothing to do");
    return Status::Ok();
  }
  if (s.code() == StatusCode::kAborted) {
    return FailedPrecondition(
        s.message() + ". Nothing was deleted; look at `zkroll status "
        "--service " + service.str() + "` and run resume again if the new "
        "pause should end too");
  }
  ZKROLL_RETURN_IF_ERROR(s);
  reporter->Notice("resumed " + label +
                   "; its agent registers it after its next passing check");
  return Status::Ok();
}

}  // namespace zkroll::coordinator
