// Registration: one instance's registration node
// /services/<service>/<ip>_<port> in the agent's session, and every
// ZooKeeper operation on it. Its owner (the agent) says what it wants
// (RegistrationDesire: healthy and not paused); Reconcile() brings the node
// there:
//   - registering is one multi guarded by the pause-guard version read
//     (agent/registration_txn.h); refused by the guard, it has the pause
//     flags read again; the node our previous session left (same host in
//     its record) is replaced in the same multi, so callers never see the
//     instance leave; a node of another host is never touched
//     (refused_for_good(), logged once);
//   - a multi that failed with connection loss may have been applied with
//     its reply lost: the outcome stays unknown until a sync and a read of
//     the node settle it, and a later "do not want" still removes it;
//   - while registered, one exists-watch on the node: a delete by someone
//     else (an operator, or a pause whose multi crossed ours) is noticed at
//     once; the pause flags are then read before registering again (from
//     the view held, the guard would refuse it: a transaction for nothing).
// One operation at a time; a Reconcile() meanwhile runs again when it ends.
//
// Retire(): the instance is no longer managed. Whatever is in flight or
// unknown then, the node ends deleted once the outcome is known (or gone
// with the session): a registration whose reply comes after the removal is
// undone, not forgotten. finished() tells when nothing is left to do.
//
// Session rules (the agent forwards its session's events): on connection
// loss nothing changes; OnReconnected() reads the node again (a delete made
// while away may have fired nothing) and reconciles; OnExpired() forgets
// the node, the watch and any unknown outcome: they went with the session.
//
// Threading: executor only. Hold by shared_ptr (Create): ZooKeeper
// callbacks keep it alive; the Env's pointers and hooks must outlive them.
#ifndef ZKROLL_AGENT_REGISTRATION_H_
#define ZKROLL_AGENT_REGISTRATION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/agent_tree.h"
#include "agent/registration_txn.h"
#include "common/names.h"
#include "common/registry.h"
#include "common/zk_session.h"

namespace zkroll::agent {

class AgentMetrics;

struct RegistrationDesire {
  // The service's pause flags were read; until then the registration is
  // neither made nor removed.
  bool known = false;
  bool want = false;       // healthy and not paused
  std::string why_not;     // "paused" or "unhealthy: <check>", for the log
  registry::GuardVersion guard;  // the pause guard read with the flags
};

class Registration : public std::enable_shared_from_this<Registration> {
 public:
  // What every registration of the agent shares.
  struct Env {
    ZkSession* session = nullptr;
    const AgentTree* tree = nullptr;  // ACLs; nothing is created before them
    AgentMetrics* metrics = nullptr;  // may be null
    std::string host;                 // ours, as in the instance records
  };
  // The instance's side; replaced as a whole by Attach().
  struct Owner {
    std::function<RegistrationDesire()> desire;
    std::function<std::string()> record_json;  // the InstanceRecord to write
    std::function<void()> refresh_pause;       // read the flags again
    // /services/<service> is missing: make it, then reconcile.
    std::function<void()> ensure_service_dir;
    // registered() changed (the agent record shows it).
    std::function<void()> published_changed;
    // refused_for_good() became true (start-up waits no longer).
    std::function<void()> settled_changed;
  };

  static std::shared_ptr<Registration> Create(Env env, InstanceId id,
                                              Owner owner);
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  // A new declaration of the same instance (a reload that changed its
  // settings, or declared again a removed one not yet deregistered) takes
  // this registration over, with whatever is in flight; it is no longer
  // retired, and whether it is refused is judged again.
  void Attach(Owner owner);

  void Reconcile();
  // Reads the node with the exists-watch (if not armed); used by the
  // periodic resync to catch what a watch could not tell.
  void Check();
  // The pause flags were read: a registration deleted by someone else may
  // be made again.
  void OnPauseView() { awaiting_pause_view_ = false; }
  void OnReconnected();
  void OnExpired();

  // See the header comment. Nothing of the owner is called after this.
  void Retire();
  bool finished() const {
    return retired_ && !op_in_flight_ && !outcome_unknown_ && !registered_;
  }
  // Shutting down: no further operation (the agent deletes the node).
  void Stop() { stopped_ = true; }

  bool registered() const { return registered_; }
  bool refused_for_good() const { return refused_for_good_; }
  const std::string& node() const { return node_; }
  const InstanceId& id() const { return id_; }

 private:
  Registration(Env env, InstanceId id, Owner owner);
  void Register(const registry::GuardVersion& guard);
  // `failed`: the operation of the transaction that failed (nullopt: the
  // transaction failed as a whole).
  void OnRegisterFailed(const MultiResult& r,
                        std::optional<RegistrationTxn::Op> failed);
  // After a registration whose reply was lost: syncs (the server we
  // reconnected to may lag the leader that applied it), reads the node to
  // learn whether it was applied, then reconciles.
  void Learn();
  void ReadOutcome();
  void Deregister(const std::string& why);
  // An operation ended: reconciles if something changed meanwhile (always
  // once retired).
  void OpDone();
  void Published();

  Env env_;
  InstanceId id_;
  Owner owner_;
  std::string node_;  // /services/<service>/<ip>_<port>
  bool registered_ = false;
  bool op_in_flight_ = false;
  bool dirty_ = false;  // Reconcile() was asked while an op was in flight
  bool retired_ = false;
  bool stopped_ = false;
  std::optional<int32_t> replace_version_;  // our previous session's node
  // An exists-watch on node_ is set in the current session. At most one at
  // a time: re-arming on every read would stack watchers that all fire on
  // the next change.
  bool watch_armed_ = false;
  // A multi failed with connection loss: it may have been applied.
  bool outcome_unknown_ = false;
  // Deleted by someone else: register again only from a pause view read
  // after that.
  bool awaiting_pause_view_ = false;
  bool conflict_logged_ = false;
  bool refused_for_good_ = false;  // another owner, or no permission
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_REGISTRATION_H_
