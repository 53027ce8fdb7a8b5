// ChildrenWatch: keeps a fresh view of a node's children despite one-shot
// watches, lost connections and expired sessions.
//
// ZooKeeper watches fire once and changes made while we were disconnected
// or between a fire and the next read can be missed, so this helper re-reads
// (and re-arms) after every event, after every reconnect and new session,
// and on a slow periodic resync. At most one read is in flight; events that
// arrive meanwhile cause exactly one more read (common/refresh_loop.h). If
// the node does not exist, an exists-watch waits for it and the snapshot
// reports exists == false.
//
// Threading: all methods and the callback run on the session's executor.
// The object must be held by a shared_ptr (Create); Stop() ends callbacks.
#ifndef ZKROLL_COMMON_ZK_WATCH_H_
#define ZKROLL_COMMON_ZK_WATCH_H_

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "common/refresh_loop.h"
#include "common/zk_session.h"

namespace zkroll {

struct ChildrenSnapshot {
  bool exists = false;
  Children children;  // empty names when !exists
};

class ChildrenWatch : public std::enable_shared_from_this<ChildrenWatch> {
 public:
  // `on_update` gets every successful read, and errors other than NotFound
  // (e.g. connection loss; the view it had stays valid until the next
  // successful read).
  using OnUpdate = std::function<void(const Result<ChildrenSnapshot>&)>;

  static std::shared_ptr<ChildrenWatch> Create(ZkSession* session,
                                               boost::asio::any_io_executor ex,
                                               std::string path, Millis resync,
                                               OnUpdate on_update);
  void Start();
  void Stop();
  // Re-reads now (coalesced with any read in flight).
  void Refresh();
  const std::string& path() const { return path_; }
  int64_t reads() const { return reads_; }

 private:
  ChildrenWatch(ZkSession* session, boost::asio::any_io_executor ex,
                std::string path, Millis resync, OnUpdate on_update);
  void Read(uint64_t epoch);
  void ReadDone(uint64_t epoch, const Result<Children>& r, bool with_watch);
  void ExistsDone(uint64_t epoch, const Result<std::optional<NodeStat>>& r);
  ZkSession::WatchCallback MakeWatcher();

  ZkSession* session_;
  std::string path_;
  OnUpdate on_update_;
  RefreshLoop loop_;
  bool armed_ = false;  // a watch of the current session is pending
  int64_t reads_ = 0;
};

}  // namespace zkroll

#endif  // ZKROLL_COMMON_ZK_WATCH_H_
