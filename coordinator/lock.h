// ServiceLock: at most one deploy or rollout of a service at a time.
//
// The lock is an ephemeral sequential node /locks/<service>/lock-<seq>
// carrying a LockHolder (who, pid, since, deploy id). Whoever's node has
// the lowest sequence number holds the lock. There is no waiting queue: a
// coordinator that finds a lower node deletes its own and fails at once,
// naming the holder. Because the node is ephemeral, a coordinator that dies
// releases the lock when its session ends.
//
// Thread-safety: Acquire, Release and the destructor run on the main
// thread; StillHeld() may be called from any thread (the deploys of a
// rollout batch check the lock before their COMMAND) while the lock lives.
#ifndef ZKROLL_COORDINATOR_LOCK_H_
#define ZKROLL_COORDINATOR_LOCK_H_

#include <memory>
#include <optional>
#include <string>

#include "common/names.h"
#include "common/status.h"
#include "common/zk_session.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator {

class ServiceLock {
 public:
  // Takes the lock. Fails with FailedPrecondition naming the holder if
  // another coordinator holds it, or with the ZooKeeper error.
  static Result<std::unique_ptr<ServiceLock>> Acquire(
      ZkSession* session, const ServiceName& service,
      const proto::LockHolder& holder, const AclList& acl);

  // Releases the lock if still held (best effort; the node is ephemeral).
  ~ServiceLock();
  ServiceLock(const ServiceLock&) = delete;
  ServiceLock& operator=(const ServiceLock&) = delete;

  // Deletes the lock node. NotFound (already gone) counts as success.
  Status Release();

  // True while our node exists and belongs to the session that is current
  // now: false after a session expiry, when another coordinator may have
  // taken the lock meanwhile. Reads after a sync, so a follower that has
  // not applied our expiry yet cannot answer for the leader.
  Result<bool> StillHeld();

  const std::string& path() const { return path_; }

 private:
  ServiceLock(ZkSession* session, std::string path, int64_t owner)
      : session_(session), path_(std::move(path)), owner_(owner) {}

  ZkSession* session_;
  std::string path_;
  int64_t owner_;
  bool released_ = false;
};

// Who holds the lock of `service` now, read without writing anything (the
// dry-run plan): the lowest lock node and its holder record (default when
// the record does not parse). nullopt when nobody holds it or
// /locks/<service> does not exist. Errors: ZooKeeper failures.
struct LockHolderView {
  std::string path;
  proto::LockHolder holder;
};
Result<std::optional<LockHolderView>> ReadLockHolder(
    ZkSession* session, const ServiceName& service);

// "alice@build-3, pid 4242, since 2026-11-26T12:17:30.123Z, rollout
// 20261126T121730Z-abc123" for messages.
std::string DescribeHolder(const proto::LockHolder& holder);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_LOCK_H_
