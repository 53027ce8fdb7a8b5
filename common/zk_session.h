// ZkSession: the one owner of a ZooKeeper C client handle.
//
// What it does
// - Opens a session to `connect_string` ("h1:2181,h2:2181[/chroot]"; with a
//   chroot every path we use is relative to it, so environments can share
//   one ensemble) and authenticates with the configured digest credentials.
// - Tells connection loss from session expiry. On a loss it only reports
//   kDisconnected: the C client reconnects by itself and the session, its
//   ephemerals and watches survive. On expiry it closes the dead handle and,
//   if options.renew_on_expiry, opens a fresh one; owners subscribed with
//   AddListener() get kNewSession when it is connected and must re-create
//   their ephemerals and re-arm their watches.
// - Bridges the C client's callbacks into an Asio executor: completion and
//   watcher callbacks (which run on the client's single completion thread)
//   only copy data out and post to the executor. They never block, never
//   call synchronous zoo_* functions and never close the handle. Per-call
//   contexts are released to the C client only after it accepted the call.
//   Watch events of an older handle (a session that has since expired) are
//   dropped; completions are always delivered, so no caller waits forever.
//
// Threading
// - Async methods may be called from any thread; callbacks and listeners
//   run on the executor given at construction.
// - Sync methods block the calling thread until the server answers or the
//   call times out (2 x session timeout). They must not be called on the
//   executor's thread while that thread is needed to make progress (they do
//   not need it: their results bypass the executor), and never from a
//   ZooKeeper callback.
// - The object must be destroyed on a thread that is not a ZooKeeper
//   callback thread; destruction closes the handle (ending the session and
//   removing its ephemerals) and drops every pending callback.
#ifndef ZKROLL_COMMON_ZK_SESSION_H_
#define ZKROLL_COMMON_ZK_SESSION_H_

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "common/duration.h"
#include "common/status.h"
#include "common/zk_types.h"

namespace zkroll {

// The calls a session makes, as an observer sees them.
enum class ZkOperation {
  kCreate, kDelete, kExists, kGet, kGetChildren, kSet, kMulti, kSync,
  kGetAcl, kSetAcl,
};
// "create", "delete", "exists", "get", "get_children", "set", "multi",
// "sync", "get_acl", "set_acl": stable, for metric labels.
const char* ZkOperationName(ZkOperation op);

// Optional hooks through which a daemon counts what its session does
// (agent/metrics.h), without this layer knowing how it is counted.
// Implementations must be thread-safe, must not block and must not call
// back into the session.
class ZkObserver {
 public:
  virtual ~ZkObserver() = default;
  // Every call once its answer is in (or it was refused before being sent):
  // on the C client's completion thread, or on the caller's thread.
  // `code` is "ok" or a ZooKeeperCodeName (common/zk_codes.h); an exists
  // that finds no node is "ok". `latency` runs from submitting the call.
  virtual void OnOperation(ZkOperation op, const char* code,
                           std::chrono::nanoseconds latency) = 0;
  // A watch fired and is handed to its owner (on the executor; events of
  // an expired session, which are dropped, are not reported).
  virtual void OnWatchEvent(WatchEvent::Type type) = 0;
  // A session event, just before the listeners get it (on the executor).
  virtual void OnSessionEvent(SessionEvent::Kind kind) = 0;
};

struct ZkOptions {
  std::string connect_string;           // "host:port[,host:port][/chroot]"
  Millis session_timeout{10000};        // negotiated by the server within
                                        // its min/max bounds
  std::vector<Credential> credentials;  // digest auth, re-sent on reconnect
  bool renew_on_expiry = true;
  std::shared_ptr<ZkObserver> observer;  // may be null
};

// Validates a connect string: comma-separated host:port (IPv6 in
// brackets), optional chroot "/a/b" made of valid znode name characters.
Status ValidateConnectString(const std::string& connect_string);

class ZkSession {
 public:
  template <typename T>
  using Callback = std::function<void(Result<T>)>;
  using StatusCallback = std::function<void(Status)>;
  using WatchCallback = std::function<void(const WatchEvent&)>;
  using SessionListener = std::function<void(const SessionEvent&)>;

  ZkSession(boost::asio::any_io_executor executor, ZkOptions options);
  ~ZkSession();
  ZkSession(const ZkSession&) = delete;
  ZkSession& operator=(const ZkSession&) = delete;

  // Starts connecting (non-blocking). The C client keeps retrying the
  // servers in the connect string until one answers.
  Status Start();

  // Blocks until connected or `timeout` passes (DeadlineExceeded naming the
  // connect string). Not on the executor thread.
  Status WaitConnected(Millis timeout);

  // Listeners run on the executor, in subscription order. None runs once
  // the destructor returned: called on another thread, it waits for a
  // listener that is running.
  void AddListener(SessionListener listener);

  bool connected() const;
  // Id of the current session, 0 before the first connection.
  int64_t session_id() const;
  Millis negotiated_timeout() const;
  // Password of the current session (16 bytes). Only tests use it, to
  // expire the session from a second handle.
  std::string session_password() const;
  const ZkOptions& options() const;

  // --- asynchronous calls: `done` runs once on the executor -------------
  void Create(const std::string& path, const std::string& data,
              CreateMode mode, const AclList& acl, Callback<std::string> done);
  void Delete(const std::string& path, int32_t version, StatusCallback done);
  // Exists: value is std::nullopt when the node does not exist (not an
  // error). With a watcher, the watch is set in both cases.
  void Exists(const std::string& path, WatchCallback watcher,
              Callback<std::optional<NodeStat>> done);
  void Get(const std::string& path, WatchCallback watcher,
           Callback<NodeData> done);
  void GetChildren(const std::string& path, WatchCallback watcher,
                   Callback<Children> done);
  void Set(const std::string& path, const std::string& data, int32_t version,
           Callback<NodeStat> done);
  void Multi(std::vector<ZkOp> ops, std::function<void(MultiResult)> done);
  void GetAcl(const std::string& path, Callback<AclList> done);
  // Asks the server we are connected to to catch up with the leader on
  // `path` (zoo_async). Reads issued after `done` ran see every write the
  // leader committed before the sync: a follower that lags can no longer
  // show a node that is already gone.
  void Sync(const std::string& path, StatusCallback done);
  // Creates every missing ancestor and `path` itself as persistent nodes
  // with `acl` (empty data). Existing nodes are fine; when `path` exists
  // already nothing is written.
  void EnsurePath(const std::string& path, const AclList& acl,
                  StatusCallback done);

  // --- synchronous calls (CLI, tests) ------------------------------------
  Result<std::string> CreateSync(const std::string& path,
                                 const std::string& data, CreateMode mode,
                                 const AclList& acl);
  Status DeleteSync(const std::string& path, int32_t version = -1);
  // Deletes `path` only through session `session_id`: if the current
  // session is another one (that session expired and a new one replaced
  // it, or the new one is still connecting), nothing is sent and the
  // result is SessionExpired. For nodes whose delete is a decision of the
  // session that created them (a coordinator's own pause flag): a delete
  // retried in a later session could hit a node that someone else created
  // at the same path meanwhile, with the same data version.
  Status DeleteInSessionSync(const std::string& path, int32_t version,
                             int64_t session_id);
  // MultiSync through session `session_id` only, like DeleteInSessionSync
  // (nothing is sent from another session: SessionExpired).
  MultiResult MultiInSessionSync(std::vector<ZkOp> ops, int64_t session_id);
  // Sync() and wait for it.
  Status SyncSync(const std::string& path);
  Result<std::optional<NodeStat>> ExistsSync(const std::string& path,
                                             WatchCallback watcher = {});
  Result<NodeData> GetSync(const std::string& path,
                           WatchCallback watcher = {});
  Result<Children> GetChildrenSync(
      const std::string& path, WatchCallback watcher = {});
  Result<NodeStat> SetSync(const std::string& path, const std::string& data,
                           int32_t version = -1);
  MultiResult MultiSync(std::vector<ZkOp> ops);
  Status EnsurePathSync(const std::string& path, const AclList& acl);
  Result<AclList> GetAclSync(const std::string& path);
  Status SetAclSync(const std::string& path, const AclList& acl,
                    int32_t version = -1);

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace zkroll

#endif  // ZKROLL_COMMON_ZK_SESSION_H_
