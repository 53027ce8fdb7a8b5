// EphemeralNode: one ephemeral znode this agent keeps published
// (/agents/<host>, /forwarders/<service>/<ip>_<port>).
//
// Publish() sets the node's data if this session created it, creates it
// otherwise, and replaces (delete + create in one multi) a node left by an
// earlier session: a previous run of this agent, whose node would vanish
// only when that session expires. After a failure it calls `retry` (the
// owner publishes again later, coalesced); `done`, if given, runs once when
// the attempt has ended either way (owners that publish often use it to
// keep one write in flight). Forget() is for a new or expired session: the
// node is no longer ours. Delete() while a creation is in flight deletes
// the node once that creation lands, so a node withdrawn by its owner never
// stays behind.
//
// Threading: executor only. Must outlive its pending callbacks, so owners
// hold it by shared_ptr.
#ifndef ZKROLL_AGENT_EPHEMERAL_NODE_H_
#define ZKROLL_AGENT_EPHEMERAL_NODE_H_

#include <functional>
#include <memory>
#include <string>

#include "common/zk_session.h"

namespace zkroll::agent {

class EphemeralNode : public std::enable_shared_from_this<EphemeralNode> {
 public:
  static std::shared_ptr<EphemeralNode> Create(ZkSession* session,
                                               std::string path);
  void Publish(const std::string& data, const AclList& acl,
               std::function<void()> retry,
               std::function<void()> done = nullptr);
  void Forget() {
    ours_ = false;
    withdrawn_ = false;
  }
  bool ours() const { return ours_; }
  const std::string& path() const { return path_; }
  // Deletes the node if it is ours; `done` runs once either way.
  void Delete(std::function<void()> done);

 private:
  EphemeralNode(ZkSession* session, std::string path)
      : session_(session), path_(std::move(path)) {}
  ZkSession* session_;
  std::string path_;
  bool ours_ = false;
  bool withdrawn_ = false;  // Delete() called since the last Publish()
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_EPHEMERAL_NODE_H_
