#include "coordinator/maintenance.h"

#include <unistd.h>

#include "common/clock.h"
#include "common/paths.h"
#include "common/payload.h"
#include "common/registry.h"
#include "common/retry.h"
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
  std::string expires_at;
  registry::PauseRequest request;
  request.service = service;
  request.address = address;
  request.flag_mode = CreateMode::kPersistent;
  request.acl = acl;
  request.flag_json = [&] {
    const WallTime now = std::chrono::system_clock::now();
    proto::PauseFlag flag;
    flag.set_service(service.str());
    flag.set_ip(address.ip());
    flag.set_port(address.port());
    flag.set_by(CurrentUserAtHost());
    flag.set_pid(::getpid());
    flag.set_reason(pause.reason);
    *flag.mutable_since() = ToTimestamp(now);
    *flag.mutable_expires_at() = ToTimestamp(now + pause.ttl);
    expires_at = FormatRfc3339(now + pause.ttl);
    return ToJson(flag);
  };
  // RemoveExpiredFlags ran above; a flag that expired since goes the same
  // way.
  request.expired = [&](const NodeData& existing) {
    auto f = ParsePayload<proto::PauseFlag>(existing.data, flag_path);
    return f.ok() && PauseExpired(*f, std::chrono::system_clock::now());
  };
  ZkRetryContext retry(session);
  registry::PauseOutcome paused =
      registry::Pause(*session, retry, RetryOptions{}, request);
  if (paused.status.code() == StatusCode::kAlreadyExists && paused.existing) {
    auto f = ParsePayload<proto::PauseFlag>(paused.existing->data, flag_path);
    return FailedPrecondition(
        label + " is already paused" +
        (f.ok()
             ? " by " + f->by() + " since " +
                   FormatTimestamp(f->since(), f->has_since()) + ", reason " +
                   QuoteForMessage(f->reason()) +
                   (!f->has_expires_at()
                        ? std::string(" (a running deploy)")
                        : ", until " + FormatTimestamp(f->expires_at(), true))
             : std::string()) +
        "; run `zkroll resume` first to replace it");
  }
  if (paused.status.code() == StatusCode::kNotFound) {
    return FailedPrecondition(
        std::string(paths::kServicesRoot) +
        " does not exist: no agent has ever registered anything in this "
        "ZooKeeper tree; start the agents first");
  }
  if (paused.status.code() == StatusCode::kUnavailable) {
    return Unavailable("the pause of " + label +
                       " kept racing with other writers; try again");
  }
  ZKROLL_RETURN_IF_ERROR(paused.status);
  reporter->Notice("paused " + label + " until " + expires_at + " (" +
                   FormatDuration(pause.ttl) + "), reason " +
                   QuoteForMessage(pause.reason) +
                   (paused.was_registered ? "; its registration was removed"
                                          : "; it was not registered") +
                   ". Undo with `zkroll resume --service " + service.str() +
                   " --instance " + address.ToString() + "`");
  return Status::Ok();
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
