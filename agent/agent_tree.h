// AgentTree: what the agent needs of the ZooKeeper tree before it writes
// anything in a session: the roots it uses (made by `zkroll init`; in an
// open deployment the agent makes them itself) and the ACLs of /services
// and /agents, which every node the agent creates copies, so a secured
// tree never gets an open node (docs/design.md, "Security model").
//
// Start() on every new session makes the roots (errors are logged, not
// fatal: with ACLs the agent may not create /pause, and does not need to)
// and reads both ACLs; a root without an ACL, or one that cannot be read,
// gives the open ACL (logged). Forget() on expiry: nothing may be created
// until Start() learnt them again.
//
// Threading: executor only (the session's completions). Owned by the agent,
// which outlives the session's callbacks.
#ifndef ZKROLL_AGENT_AGENT_TREE_H_
#define ZKROLL_AGENT_AGENT_TREE_H_

#include <functional>
#include <memory>

#include "common/names.h"
#include "common/zk_session.h"

namespace zkroll::agent {

class AgentTree {
 public:
  explicit AgentTree(ZkSession* session) : session_(session) {}
  AgentTree(const AgentTree&) = delete;
  AgentTree& operator=(const AgentTree&) = delete;

  // `pause_root_made`: /pause exists now (the pause guard of services
  // without /pause/<service> may have been missing a moment ago).
  // `acls_known`: both ACLs were read; nodes may be created.
  void Start(std::function<void()> pause_root_made,
             std::function<void()> acls_known);
  void Forget() { acls_known_ = false; }

  bool acls_known() const { return acls_known_; }
  const AclList& services_acl() const { return services_acl_; }
  const AclList& agents_acl() const { return agents_acl_; }

  // Creates /services/<service> together with a bump of /services (a
  // coordinator that saw no /services/<service> guards its pause on the
  // version of /services). `exists` runs when the node exists, made now or
  // before; not before the ACLs are known (Start's `acls_known` is the
  // moment to ask again).
  void EnsureServiceDir(const ServiceName& service,
                        std::function<void()> exists);

 private:
  ZkSession* session_;
  bool acls_known_ = false;
  AclList services_acl_;
  AclList agents_acl_;
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_AGENT_TREE_H_
