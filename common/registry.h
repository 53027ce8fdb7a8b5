// The registration guard: how ZooKeeper itself forbids registering a paused
// instance (see docs/design.md, "Registration guard").
//
// A watch on /pause can be late, so the agent never trusts it alone. The
// "guard node" of a service is /pause/<service> if it exists, else /pause.
// - The coordinator's pause transaction bumps the data version of
//   /pause/<service> (creating it, and then bumping /pause, if it was
//   missing) in the same multi that creates the flag.
// - The agent reads the guard's version *before* it lists the flags, and its
//   registration multi starts with a check op on that version. A pause made
//   after the agent looked changed the version, so the registration fails as
//   a whole with BadVersion and the agent re-reads.
// The agent needs only read access to /pause for this.
#ifndef ZKROLL_COMMON_REGISTRY_H_
#define ZKROLL_COMMON_REGISTRY_H_

#include <optional>
#include <string>
#include <vector>

#include "common/names.h"
#include "common/zk_types.h"

namespace zkroll::registry {

// What the agent saw when it found no flag for an instance.
struct GuardVersion {
  std::string path;     // /pause/<service> or /pause
  int32_t version = 0;  // its data version at the time
};

// The coordinator's pause transaction. `pause_dir_exists` says whether
// /pause/<service> exists (read just before; if that changed meanwhile the
// multi fails and the caller re-reads). `instance_version` is the version of
// the registration to delete, or nullopt if it was not registered.
std::vector<ZkOp> PauseOps(const ServiceName& service,
                           const InstanceAddress& address,
                           const std::string& flag_json, CreateMode flag_mode,
                           bool pause_dir_exists,
                           std::optional<int32_t> instance_version,
                           const AclList& pause_acl);

// The agent's registration transaction: check the guard, optionally replace
// a node our previous session left (delete at `stale_version`), create the
// ephemeral registration.
std::vector<ZkOp> RegisterOps(const ServiceName& service,
                              const InstanceAddress& address,
                              const std::string& record_json,
                              const GuardVersion& guard,
                              std::optional<int32_t> stale_version,
                              const AclList& instance_acl);

}  // namespace zkroll::registry

#endif  // ZKROLL_COMMON_REGISTRY_H_
