// The two guards that keep a pause and a registration from ever existing
// together (see docs/design.md, "Registration guards").
//
// Watches can be late, so neither side trusts its last read; each write is a
// multi that fails as a whole if the other side wrote since that read.
//
// Pause guard (coordinator writes, agent checks). The guard node of a
// service is /pause/<service>, or /pause while that does not exist. The
// coordinator's pause multi bumps its data version (creating
// /pause/<service> and bumping /pause if needed). The agent reads the
// version of /pause, then the flags under /pause/<service> with that node's
// version, and its registration multi starts with a check op on the guard
// it saw. A pause made after the agent looked fails the registration.
//
// Registry guard (agent writes, coordinator checks). The agent's
// registration multi bumps the data version of /services/<service>, and the
// agent creates /services/<service> together with a bump of /services. The
// coordinator reads the version of /services, then the children of
// /services/<service> with that node's version; if the instance is not
// registered, its pause multi carries a check op on what it saw. A
// registration made after the coordinator looked fails the pause, which is
// then read again and retried (now deleting the registration).
//
// The agent needs only read access to /pause, the coordinator only delete
// access to /services/<service>.
#ifndef ZKROLL_COMMON_REGISTRY_H_
#define ZKROLL_COMMON_REGISTRY_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/names.h"
#include "common/retry.h"
#include "common/zk_session.h"
#include "common/zk_types.h"

namespace zkroll::registry {

// A node and the data version a reader saw.
struct GuardVersion {
  std::string path;
  int32_t version = 0;
};

// What the coordinator read before pausing, in guard order.
struct PauseContext {
  bool pause_dir_exists = false;   // /pause/<service>
  bool registered = false;         // /services/<service>/<ip>_<port>
  GuardVersion registry_guard;     // /services/<service> or /services
};

// Reads a PauseContext (synchronous; CLI and tests).
Result<PauseContext> ReadPauseContext(ZkSession& session,
                                      const ServiceName& service,
                                      const InstanceAddress& address);

// The coordinator's pause transaction for `context`.
std::vector<ZkOp> PauseOps(const ServiceName& service,
                           const InstanceAddress& address,
                           const std::string& flag_json, CreateMode flag_mode,
                           const PauseContext& context,
                           const AclList& pause_acl);

// --- The pause transaction loop ---------------------------------------
// The one loop that pauses an instance: `zkroll deploy` and `rollout` (an
// ephemeral flag of the coordinator's session), `zkroll pause` (a
// persistent flag) and the tests all run it. Each attempt reads the flag
// (ReadPauseFlag), then the PauseContext, then sends PauseOps:
// - a flag already there holds the pause: AlreadyExists, nothing touched,
//   unless `expired` says it ran out; then exactly the incarnation read is
//   deleted (DeleteReadFlag) and the attempt starts over;
// - a transaction refused because the other side wrote between our read
//   and our write (BadVersion, NotFound, AlreadyExists) is read again and
//   retried, at most `attempts` times in all (then Unavailable);
// - a transaction whose answer was lost (transient by the retry options'
//   scope) may have applied: the flag is read back and is ours only if its
//   payload is exactly the one sent and, for an ephemeral flag, its owner
//   is the current session. Otherwise the attempt starts over (and finds
//   someone else's flag, or none). It is never resent blindly.
// Reads are repeated through Retry (common/retry.h) with `options`.
struct PauseRequest {
  ServiceName service;
  InstanceAddress address;
  // The flag's payload for one attempt (later attempts may stamp a later
  // time); called once per transaction sent.
  std::function<std::string()> flag_json;
  CreateMode flag_mode = CreateMode::kEphemeral;
  AclList acl;  // for /pause/<service> and the flag
  int attempts = 10;
  // Whether a flag found at the instance's path has run out and may be
  // removed (the coordinator: an expires_at in the past). None: every flag
  // found holds the pause.
  std::function<bool(const NodeData& flag)> expired;
  // Told the outcome of each removal of an expired flag: Ok, Aborted (a
  // pause was made since it was read: read again) or ZooKeeper's error.
  std::function<void(const NodeData& flag, const Status& removal)> on_removal;
  // Runs after an attempt's reads, just before its transaction (attempts
  // count from 1). Only tests set it, to force the other side's write into
  // that gap.
  std::function<void(int attempt)> before_write;
};

struct PauseOutcome {
  // Ok: our flag is there. AlreadyExists: `existing` holds the pause and
  // nothing was touched. NotFound: /services does not exist (no agent ever
  // ran). Aborted: a stop was requested (RetryContext::stop_requested)
  // before a transaction was sent. Unavailable: it kept racing. Otherwise
  // a refused read or transaction (its message says which).
  Status status;
  std::optional<NodeData> existing;
  bool was_registered = false;  // the transaction deleted the registration
  int64_t zxid = 0;     // the transaction's zxid, which created our flag
  int64_t session = 0;  // the session it ran in (an ephemeral flag's owner)
  int races = 0;        // transactions refused by the other side's writes
};

PauseOutcome Pause(ZkSession& session, RetryContext& retry,
                   const RetryOptions& options, const PauseRequest& request);

// The same with a fixed payload, ZkRetryContext and default RetryOptions.
PauseOutcome Pause(ZkSession& session, const ServiceName& service,
                   const InstanceAddress& address, const std::string& flag_json,
                   CreateMode flag_mode, const AclList& pause_acl);

// The agent's registration transaction: check the pause guard, optionally
// replace a node our previous session left (delete at `stale_version`),
// create the ephemeral registration, bump the registry guard.
std::vector<ZkOp> RegisterOps(const ServiceName& service,
                              const InstanceAddress& address,
                              const std::string& record_json,
                              const GuardVersion& pause_guard,
                              std::optional<int32_t> stale_version,
                              const AclList& instance_acl);

// --- Deleting a flag that was read earlier --------------------------------
// Flags are created and never rewritten, so every incarnation of a flag has
// data version 0, and a delete "at the version we read" cannot tell the flag
// we read from one created at the same path since (ABA: a resume deleting a
// deploy's fresh flag). Every pause bumps /pause/<service> (PauseOps), so
// the version of /pause/<service>, read BEFORE the flag, names the
// incarnation: the delete is a multi that checks it, and a pause made in
// between fails the delete instead of deleting the new flag. Deleting a flag
// does not bump the guard: it needs no agent to notice anything.

// The flag of one instance and the guard read just before it.
struct FlagRead {
  std::optional<NodeData> flag;  // nullopt: no flag
  GuardVersion pause_dir;        // /pause/<service>; version -1 if missing
};

// Reads /pause/<service>'s version, then the flag (synchronous).
Result<FlagRead> ReadPauseFlag(ZkSession& session, const ServiceName& service,
                               const InstanceAddress& address);

// The delete transaction: check `pause_dir` at the version read, delete the
// flag at `flag_version`.
std::vector<ZkOp> DeleteFlagOps(const ServiceName& service,
                                const InstanceAddress& address,
                                const GuardVersion& pause_dir,
                                int32_t flag_version);

// Runs DeleteFlagOps once. Ok when the flag read is gone; NotFound when it
// was already gone; Aborted (message names the flag) when a pause was made
// since it was read, so it may be another incarnation: read again and
// decide again. Other errors are ZooKeeper's (connection loss: the delete
// may or may not have applied: read again, never resend it blindly).
// With `in_session`, the multi goes out only through that session
// (ZkSession::MultiInSessionSync), for the owner of an ephemeral flag.
Status DeleteReadFlag(ZkSession& session, const ServiceName& service,
                      const InstanceAddress& address,
                      const GuardVersion& pause_dir, int32_t flag_version,
                      std::optional<int64_t> in_session = std::nullopt);

// The agent's creation of /services/<service>: create it and bump /services
// in one multi (AlreadyExists on op 0 means someone else made it: fine).
std::vector<ZkOp> CreateServiceDirOps(const ServiceName& service,
                                      const AclList& acl);

}  // namespace zkroll::registry

#endif  // ZKROLL_COMMON_REGISTRY_H_
