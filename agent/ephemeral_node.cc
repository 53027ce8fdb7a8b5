#include "agent/ephemeral_node.h"

#include <glog/logging.h>

namespace zkroll::agent {

std::shared_ptr<EphemeralNode> EphemeralNode::Create(ZkSession* session,
                                                     std::string path) {
  return std::shared_ptr<EphemeralNode>(
      new EphemeralNode(session, std::move(path)));
}

void EphemeralNode::Publish(const std::string& data, const AclList& acl,
                            std::function<void()> retry,
                            std::function<void()> done) {
  auto self = shared_from_this();
  withdrawn_ = false;
  if (!done) done = [] {};
  // A creation that lands after Delete() was called is undone at once.
  auto created = [self, done] {
    self->ours_ = true;
    if (self->withdrawn_) {
      self->ours_ = false;
      self->session_->Delete(self->path_, -1, [](Status) {});
    }
    done();
  };
  if (ours_) {
    session_->Set(path_, data, -1, [self, retry, done](Result<NodeStat> r) {
      if (!r.ok()) {
        self->ours_ = false;
        if (r.status().code() == StatusCode::kNotFound) retry();
      }
      done();
    });
    return;
  }
  session_->Create(path_, data, CreateMode::kEphemeral, acl,
                   [self, data, acl, retry, done, created](Result<std::string> r) {
    if (r.ok()) return created();
    if (r.status().code() != StatusCode::kAlreadyExists) {
      LOG(WARNING) << "cannot create " << self->path_ << ": "
                   << r.status().ToString();
      return done();
    }
    self->session_->Get(self->path_, nullptr,
                        [self, data, acl, retry, done, created](Result<NodeData> d) {
      if (!d.ok()) {
        retry();
        return done();
      }
      if (d->stat.ephemeral_owner == self->session_->session_id()) {
        created();
        return retry();
      }
      // Our previous session's node (or a second agent claiming the same
      // node): replace it; it would vanish only when that session expires.
      LOG(WARNING) << self->path_ << " belongs to session 0x" << std::hex
                   << d->stat.ephemeral_owner << std::dec
                   << " (a previous run of this agent?); replacing it";
      self->session_->Multi(
          {ZkOp::Delete(self->path_, d->stat.version),
           ZkOp::Create(self->path_, data, CreateMode::kEphemeral, acl)},
          [retry, done, created](MultiResult m) {
            if (m.status.ok()) return created();
            retry();
            done();
          });
    });
  });
}

void EphemeralNode::Delete(std::function<void()> done) {
  withdrawn_ = true;
  if (!ours_) return done();
  ours_ = false;
  session_->Delete(path_, -1, [done](Status) { done(); });
}

}  // namespace zkroll::agent
