// Manual maintenance: `zkroll pause` and `zkroll resume`.
//
// A manual pause is a PERSISTENT flag /pause/<service>/<ip>_<port> written
// with the same transaction as a deploy's (registry::PauseOps: the flag,
// the guard bump and the deregistration in one multi), so it outlives the
// process that made it. It always carries expires_at = now + TTL: agents
// treat an expired flag as absent, and deploy, rollout and pause delete
// every expired flag of the service they see (status does not: reading
// deletes nothing), so no pause is permanent. resume deletes the flag (no guard bump is
// needed to allow a registration), exactly the incarnation it read: the
// delete checks /pause/<service> at the version read before the flag
// (registry::DeleteReadFlag).
//
// Errors: InvalidArgument for an instance nobody knows (unless forced);
// FailedPrecondition when the instance is already paused (pause), paused
// by a running deploy (resume, unless forced), or paused anew between
// resume's read and its delete (nothing deleted); otherwise ZooKeeper
// errors.
// Thread-safety: plain functions over a ZkSession.
#ifndef ZKROLL_COORDINATOR_MAINTENANCE_H_
#define ZKROLL_COORDINATOR_MAINTENANCE_H_

#include <string>

#include "common/duration.h"
#include "common/names.h"
#include "common/status.h"
#include "common/zk_session.h"
#include "coordinator/reporter.h"

namespace zkroll::coordinator {

struct ManualPause {
  std::string reason;
  Millis ttl{0};
  bool force = false;  // pause an instance no agent declares
};

Status PauseInstance(ZkSession* session, const AclList& acl,
                     const ServiceName& service, const InstanceAddress& address,
                     const ManualPause& pause, Reporter* reporter);

Status ResumeInstance(ZkSession* session, const ServiceName& service,
                      const InstanceAddress& address, bool force,
                      Reporter* reporter);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_MAINTENANCE_H_
