// RegistrationTxn: the agent's registration transaction
// (registry::RegisterOps: check the pause guard, optionally delete the node
// our previous session left, create the registration, bump the registry
// guard) with each operation named, so that a failure is read by what
// failed rather than by its position in the list.
//
// Pure data; no ZooKeeper call.
#ifndef ZKROLL_AGENT_REGISTRATION_TXN_H_
#define ZKROLL_AGENT_REGISTRATION_TXN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/names.h"
#include "common/registry.h"
#include "common/zk_session.h"

namespace zkroll::agent {

class RegistrationTxn {
 public:
  enum class Op {
    kPauseGuard,       // check /pause/<service> (or /pause) at the version read
    kReplacePrevious,  // delete our previous session's node at its version
    kCreate,           // create the ephemeral registration
    kRegistryGuard,    // bump /services/<service>
  };

  static RegistrationTxn Build(const ServiceName& service,
                               const InstanceAddress& address,
                               const std::string& record_json,
                               const registry::GuardVersion& pause_guard,
                               std::optional<int32_t> stale_version,
                               const AclList& instance_acl);

  // The operations, to send (Multi); call once.
  std::vector<ZkOp> TakeOps() { return std::move(ops_); }
  // The operation that failed; nullopt when the transaction failed as a
  // whole (connection loss, timeout, session expired: failed_op -1) or
  // succeeded.
  std::optional<Op> Failed(const MultiResult& r) const;

 private:
  std::vector<ZkOp> ops_;
  std::vector<Op> names_;  // names_[i] names ops_[i]
};

// "pause guard", "create", ... for messages.
const char* RegistrationOpName(RegistrationTxn::Op op);

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_REGISTRATION_TXN_H_
