#include "coordinator/init.h"

#include "common/names.h"
#include "common/paths.h"

namespace zkroll::coordinator {

std::vector<std::pair<std::string, AclList>> RootAcls(
    const InitIdentities& ids) {
  const AclEntry world{perms::kRead, "world", "anyone"};
  const AclEntry admin{perms::kAll, "digest", ids.admin_id};
  const AclEntry agent{perms::kAll, "digest", ids.agent_id};
  const AclEntry coord{perms::kAll, "digest", ids.coordinator_id};
  const AclEntry coord_delete{perms::kDelete | perms::kRead, "digest",
                              ids.coordinator_id};
  AclList callers = {world, admin};
  if (!ids.caller_id.empty()) {
    callers.push_back(AclEntry{perms::kAll, "digest", ids.caller_id});
  }
  return {
      {paths::kServicesRoot, {world, agent, coord_delete, admin}},
      {paths::kAgentsRoot, {world, agent, admin}},
      {paths::kPauseRoot, {world, coord, admin}},
      {paths::kDeploysRoot, {world, coord, admin}},
      {paths::kLocksRoot, {world, coord, admin}},
      {paths::kSwitchRoot, {world, coord, admin}},
      {paths::kForwardersRoot, {world, agent, admin}},
      {paths::kDrainRoot, {world, coord, admin}},
      {paths::kTrafficRoot, {world, agent, admin}},
      {paths::kCallersRoot, callers},
  };
}

namespace {

bool SameAcl(AclList a, AclList b) {
  auto key = [](const AclEntry& e) { return e.scheme + "/" + e.id + "/" + std::to_string(e.perms); };
  auto by = [&](const AclEntry& x, const AclEntry& y) { return key(x) < key(y); };
  std::sort(a.begin(), a.end(), by);
  std::sort(b.begin(), b.end(), by);
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (key(a[i]) != key(b[i])) return false;
  }
  return true;
}

Status Apply(ZkSession& s, const std::string& path, const AclList& acl,
             std::vector<std::string>* changed) {
  auto current = s.GetAclSync(path);
  if (!current.ok()) return current.status();
  if (SameAcl(*current, acl)) return Status::Ok();
  ZKROLL_RETURN_IF_ERROR(s.SetAclSync(path, acl));
  changed->push_back(path + " (ACL set)");
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> InitTree(ZkSession& session,
                                          const InitIdentities& ids) {
  std::vector<std::string> changed;
  for (const auto& [root, acl] : RootAcls(ids)) {
    auto r = session.CreateSync(root, "", CreateMode::kPersistent, acl);
    if (r.ok()) {
      changed.push_back(root + " (created)");
    } else if (r.status().code() == StatusCode::kAlreadyExists) {
      ZKROLL_RETURN_IF_ERROR(Apply(session, root, acl, &changed));
    } else {
      return r.status().WithContext("creating " + root);
    }
    // Direct children (per-service nodes) take their root's ACL too.
    auto kids = session.GetChildrenSync(root);
    if (!kids.ok()) return kids.status();
    if (root == std::string(paths::kAgentsRoot)) continue;  // ephemerals
    for (const std::string& name : kids->names) {
      if (!ServiceName::Parse(name).ok()) continue;  // not ours: leave it
      ZKROLL_RETURN_IF_ERROR(Apply(session, root + "/" + name, acl, &changed));
    }
  }
  return changed;
}

Result<std::string> IdentityFromFlag(const std::string& file_flag,
                                     const std::string& id_flag,
                                     const std::string& what) {
  if (!file_flag.empty() && !id_flag.empty()) {
    return InvalidArgument("give either --" + what + "-auth or --" + what +
                           "-id, not both");
  }
  if (!file_flag.empty()) {
    auto c = ReadCredentialFile(file_flag);
    if (!c.ok()) return c.status();
    return DigestId(*c);
  }
  if (id_flag.empty()) {
    return InvalidArgument("--" + what + "-auth FILE or --" + what +
                           "-id USER:BASE64 is required");
  }
  size_t colon = id_flag.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == id_flag.size()) {
    return InvalidArgument("--" + what + "-id " + QuoteForMessage(id_flag) +
                           " must be USER:BASE64SHA1, as printed by ZooKeeper's "
                           "DigestAuthenticationProvider");
  }
  for (char c : id_flag) {
    bool ok = isalnum(static_cast<unsigned char>(c)) || c == ':' || c == '+' ||
              c == '/' || c == '=' || c == '.' || c == '_' || c == '-';
    if (!ok) {
      return InvalidArgument("--" + what + "-id " + QuoteForMessage(id_flag) +
                             " contains characters a digest id cannot have");
    }
  }
  return id_flag;
}

AclList InheritAcl(ZkSession& session, const std::string& root) {
  auto acl = session.GetAclSync(root);
  if (acl.ok() && !acl->empty()) return *acl;
  return OpenAcl();
}

}  // namespace zkroll::coordinator
