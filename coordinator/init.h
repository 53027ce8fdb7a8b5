// `zkroll init`: creates the znode tree with its ACLs (docs/design.md,
// "Security model").
//
//   path        world  agent            coordinator      admin
//   /services   read   all              delete           all
//   /agents     read   all              -                all
//   /pause      read   -                all              all
//   /deploys    read   -                all              all
//   /locks      read   -                all              all
//   /switch     read   -                all              all
//   /forwarders read   all              -                all
//   /drain      read   -                all              all
//   /traffic    read   all              -                all
//   /callers    read   -                -                all    caller: all
//
// /callers is written by the discovery clients of callers (their
// acknowledgements, docs/design.md "Drain on evidence") under their own
// caller identity, which may write nothing else. Without a caller identity
// only the admin may write there, so callers cannot acknowledge and
// `--drain auto` drains run to their cap.
//
// Nodes below inherit their root's ACL: the agent copies the ACL of
// /services and /agents onto what it creates, the coordinator that of
// /pause, /deploys and /locks. ZooKeeper decides a delete by the parent's
// ACL, so the coordinator's delete right on /services/<service> (copied
// from /services) lets its pause transaction remove a registration while
// only the agent can create one.
//
// Existing nodes (the roots and their direct children) get their ACL set,
// so init can also tighten an open tree. Idempotent.
#ifndef ZKROLL_COORDINATOR_INIT_H_
#define ZKROLL_COORDINATOR_INIT_H_

#include <string>
#include <vector>

#include "common/status.h"
#include "common/zk_session.h"
#include "common/zk_types.h"

namespace zkroll::coordinator {

struct InitIdentities {
  std::string admin_id;        // digest ids: "user:base64(sha1(user:pw))"
  std::string agent_id;
  std::string coordinator_id;
  std::string caller_id;  // empty: no caller identity (see above)
};

// The ACL of each root, by path.
std::vector<std::pair<std::string, AclList>> RootAcls(const InitIdentities& ids);

// Creates or re-ACLs the tree through `session` (which must be
// authenticated as the admin). Returns the paths it created or changed.
Result<std::vector<std::string>> InitTree(ZkSession& session,
                                          const InitIdentities& ids);

// Reads a digest identity from either a credential file (user:password,
// private) or a literal "user:base64hash" id.
Result<std::string> IdentityFromFlag(const std::string& file_flag,
                                     const std::string& id_flag,
                                     const std::string& what);

// The coordinator's ACL for nodes it creates under a root: copied from the
// root; open if the root has none readable.
AclList InheritAcl(ZkSession& session, const std::string& root);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_INIT_H_
