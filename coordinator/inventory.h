// Inventory: what ZooKeeper says about one service's instances, read in one
// pass: which agents declare them (/agents), which are registered
// (/services/S) and which are paused (/pause/S).
//
// Every name and address inside a payload is validated (common/names.h)
// before use; records that do not parse, or that name another service or
// address than their node (common/instance_record.h: e.g. a node Apache
// Curator registered), are skipped with a warning naming the znode, so one
// broken or foreign writer cannot stop a deploy of other instances.
//
// Thread-safety: free functions over a ZkSession; safe from any thread.
#ifndef ZKROLL_COORDINATOR_INVENTORY_H_
#define ZKROLL_COORDINATOR_INVENTORY_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/names.h"
#include "common/status.h"
#include "common/zk_session.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator {

// One agent's declaration of an instance.
struct Declaration {
  std::string host;  // agent host id (/agents/<host>)
  proto::AgentRecord::Instance view;
};

struct RegisteredInstance {
  proto::InstanceRecord record;  // may be default if the payload was bad
  NodeStat stat;
};

struct PauseState {
  proto::PauseFlag flag;
  NodeStat stat;
  bool expired = false;  // expires_at set and in the past
  bool ephemeral() const { return stat.ephemeral_owner != 0; }
};

struct ServiceInventory {
  std::map<InstanceAddress, std::vector<Declaration>> declared;
  std::map<InstanceAddress, RegisteredInstance> registered;
  std::map<InstanceAddress, PauseState> paused;
  std::vector<std::string> live_agents;  // every /agents child
  std::vector<std::string> warnings;     // skipped malformed records
  // Data version of /pause/<service> read with its children, before the
  // flags (none: it does not exist). See registry::DeleteReadFlag.
  std::optional<int32_t> pause_dir_version;

  bool Knows(const InstanceAddress& a) const {
    return declared.count(a) > 0 || registered.count(a) > 0;
  }
  // Every instance declared by an agent, in address order.
  std::vector<InstanceAddress> DeclaredInstances() const;
};

// Reads the inventory of `service`. Missing parent nodes mean "nothing
// there", not an error. Errors are ZooKeeper failures.
Result<ServiceInventory> LoadInventory(ZkSession* session,
                                       const ServiceName& service);

// The instances a deploy or rollout of `service` takes, checked against
// `inv`. `from_agents`: every instance an agent declares, in address order
// (`*targets` is replaced). Otherwise `*targets` as given, each of which
// must be declared or registered unless `force`. Errors: InvalidArgument
// naming the service or the unknown instance and what to do.
Status SelectTargets(const ServiceInventory& inv, const ServiceName& service,
                     bool from_agents, bool force,
                     std::vector<InstanceAddress>* targets);

// True if `flag` carries an expires_at that is before `now` (a flag whose
// expires_at does not parse counts as not expired, so a typo never lifts a
// pause).
bool PauseExpired(const proto::PauseFlag& flag, WallTime now);

// Deletes the expired flags of `service`. Each delete is a multi checking
// the version of /pause/<service> read before the flags
// (registry::DeleteReadFlag), so a flag re-created meanwhile by a pause
// survives. Returns one human line per removed flag. `zkroll status` never
// calls this: reading must not delete.
std::vector<std::string> RemoveExpiredFlags(ZkSession* session,
                                            const ServiceName& service);

// The views of a pause flag and of an agent's declaration that status and
// the dry-run plan print (--output json). An agent state outside the
// documented set (healthy | unhealthy | paused | registered) is shown as
// "unknown": the record is the agent's, the enum is ours.
proto::PauseView PauseViewOf(const PauseState& pause);
proto::AgentView AgentViewOf(const Declaration& declaration);
// "by alice@h (pid 42) since ..., reason '...', until ..." for status and
// the plan.
std::string DescribePause(const proto::PauseView& pause);

// "agents h1, h2" / "no agent" for messages.
std::string DescribeDeclarations(const std::vector<Declaration>& d);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_INVENTORY_H_
