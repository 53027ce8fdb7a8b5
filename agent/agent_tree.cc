#include "agent/agent_tree.h"

#include <glog/logging.h>

#include <string>
#include <vector>

#include "common/paths.h"
#include "common/registry.h"

namespace zkroll::agent {

void AgentTree::Start(std::function<void()> pause_root_made,
                      std::function<void()> acls_known) {
  acls_known_ = false;
  for (const char* dir : {paths::kServicesRoot, paths::kPauseRoot,
                          paths::kAgentsRoot}) {
    session_->EnsurePath(
        dir, OpenAcl(),
        [dir = std::string(dir), pause_root_made](Status s) {
          if (!s.ok() && s.code() != StatusCode::kPermissionDenied) {
            LOG(WARNING) << "cannot create " << dir << ": " << s.ToString();
          }
          if (s.ok() && dir == paths::kPauseRoot) pause_root_made();
        });
  }
  auto pending = std::make_shared<int>(2);
  auto learn = [this, pending, acls_known](const char* root, AclList* out) {
    session_->GetAcl(root, [this, pending, root, out,
                            acls_known](Result<AclList> r) {
      if (r.ok() && !r->empty()) {
        *out = *r;
      } else {
        if (!r.ok() && r.status().code() != StatusCode::kNotFound) {
          LOG(WARNING) << "cannot read the ACL of " << root << " ("
                       << r.status().ToString()
                       << "); creating nodes with an open ACL";
        }
        *out = OpenAcl();
      }
      if (--*pending > 0) return;
      acls_known_ = true;
      acls_known();
    });
  };
  learn(paths::kServicesRoot, &services_acl_);
  learn(paths::kAgentsRoot, &agents_acl_);
}

void AgentTree::EnsureServiceDir(const ServiceName& service,
                                 std::function<void()> exists) {
  if (!acls_known_) return;
  std::vector<ZkOp> ops = registry::CreateServiceDirOps(service, services_acl_);
  const std::string dir = paths::ServiceDir(service);
  // The failure that means "someone made it already": the create of the
  // node itself, refused because it exists. Anything else is an error.
  auto made_already = [kinds = std::vector<ZkOp>(ops), dir](
                          const MultiResult& r) {
    return r.status.code() == StatusCode::kAlreadyExists && r.failed_op >= 0 &&
           r.failed_op < static_cast<int>(kinds.size()) &&
           kinds[r.failed_op].kind == ZkOp::Kind::kCreate &&
           kinds[r.failed_op].path == dir;
  };
  session_->Multi(std::move(ops), [service, exists, made_already](
                                      MultiResult r) {
    if (r.status.ok()) {
      LOG(INFO) << "created " << paths::ServiceDir(service);
    } else if (!made_already(r)) {
      LOG(WARNING) << "cannot create " << paths::ServiceDir(service) << ": "
                   << r.status.ToString();
      return;
    }
    exists();
  });
}

}  // namespace zkroll::agent
