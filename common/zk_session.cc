#include "common/zk_session.h"

#include <glog/logging.h>

#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <cstdlib>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/names.h"
#include "common/paths.h"
#include "common/zk_codes.h"

namespace zkroll {
namespace {

NodeStat ToNodeStat(const Stat* s) {
  NodeStat out;
  if (s == nullptr) return out;
  out.czxid = s->czxid;
  out.mzxid = s->mzxid;
  out.ctime_ms = s->ctime;
  out.mtime_ms = s->mtime;
  out.version = s->version;
  out.cversion = s->cversion;
  out.ephemeral_owner = s->ephemeralOwner;
  out.data_length = s->dataLength;
  out.num_children = s->numChildren;
  out.pzxid = s->pzxid;
  return out;
}

int ToCreateFlags(CreateMode mode) {
  switch (mode) {
    case CreateMode::kPersistent: return ZOO_PERSISTENT;
    case CreateMode::kEphemeral: return ZOO_EPHEMERAL;
    case CreateMode::kPersistentSequential: return ZOO_PERSISTENT_SEQUENTIAL;
    case CreateMode::kEphemeralSequential: return ZOO_EPHEMERAL_SEQUENTIAL;
  }
  return ZOO_PERSISTENT;
}

WatchEvent::Type ToWatchType(int type) {
  if (type == ZOO_CREATED_EVENT) return WatchEvent::Type::kCreated;
  if (type == ZOO_DELETED_EVENT) return WatchEvent::Type::kDeleted;
  if (type == ZOO_CHANGED_EVENT) return WatchEvent::Type::kDataChanged;
  if (type == ZOO_CHILD_EVENT) return WatchEvent::Type::kChildrenChanged;
  return WatchEvent::Type::kNotWatching;
}

// A C ACL_vector whose strings live as long as this object.
class CAcl {
 public:
  explicit CAcl(const AclList& acl) : entries_(acl) {
    c_entries_.resize(entries_.size());
    for (size_t i = 0; i < entries_.size(); ++i) {
      c_entries_[i].perms = entries_[i].perms;
      c_entries_[i].id.scheme = entries_[i].scheme.data();
      c_entries_[i].id.id = entries_[i].id.data();
    }
    vec_.count = static_cast<int32_t>(c_entries_.size());
    vec_.data = c_entries_.data();
  }
  CAcl(const CAcl&) = delete;
  CAcl& operator=(const CAcl&) = delete;
  const ACL_vector* get() const { return &vec_; }

 private:
  AclList entries_;
  std::vector<ACL> c_entries_;
  ACL_vector vec_{};
};

void IgnoreAuthCompletion(int, const void*) {}

int ZooLogLevelFromEnv() {
  // The C client is chatty at INFO; its connection errors are reported by
  // us as session events. ZKROLL_ZK_LOG_LEVEL=debug|info|warn|error|none.
  const char* v = std::getenv("ZKROLL_ZK_LOG_LEVEL");
  std::string s = v ? v : "error";
  if (s == "none") {
    static FILE* devnull = std::fopen("/dev/null", "w");
    if (devnull != nullptr) zoo_set_log_stream(devnull);
    return ZOO_LOG_LEVEL_ERROR;
  }
  if (s == "debug") return ZOO_LOG_LEVEL_DEBUG;
  if (s == "info") return ZOO_LOG_LEVEL_INFO;
  if (s == "warn") return ZOO_LOG_LEVEL_WARN;
  return ZOO_LOG_LEVEL_ERROR;
}

}  // namespace

class Handle;

// Context of one watcher registration. Owned by its Handle's registry until
// the watch fires with a node event (the C client forgets the watcher then),
// or until the handle is closed.
struct WatchCtx {
  Handle* handle;
  std::weak_ptr<ZkSession::Impl> impl;
  uint64_t generation;
  ZkSession::WatchCallback callback;
};

// Context of the handle's global (session) watcher.
struct GlobalCtx {
  std::weak_ptr<ZkSession::Impl> impl;
  uint64_t generation;
};

// One zhandle_t and the contexts the C client may call back into. Closing
// joins the client's threads, so it must never run on them: only the
// session's owner threads hold shared_ptrs to a Handle.
class Handle {
 public:
  Handle(std::weak_ptr<ZkSession::Impl> impl, uint64_t generation)
      : global_{std::move(impl), generation} {}
  ~Handle() {
    if (zh_ != nullptr) zookeeper_close(zh_);
    // The client's threads are gone: nobody can call a completion or a
    // watcher any more. A call it accepted but never completed is ended
    // here, as closed: the C client (3.8) queues ZCLOSING for the calls in
    // flight at close for its completion thread, which may already have
    // stopped, and then drops that queue, with our context in it (seen by
    // LeakSanitizer when a session closed right after an async call).
    std::unordered_map<const void*, std::function<void()>> abandoned;
    {
      std::lock_guard<std::mutex> l(mu_);
      abandoned.swap(calls_);
    }
    for (auto& [ctx, end] : abandoned) end();
    for (WatchCtx* w : watches_) delete w;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  zhandle_t* zh() const { return zh_; }
  void set_zh(zhandle_t* zh) { zh_ = zh; }
  // The session this handle connected with (0 before it connected). A
  // handle never changes its session: after an expiry it stays expired.
  // Guarded by the Impl's mutex.
  int64_t session_id = 0;
  GlobalCtx* global() { return &global_; }
  uint64_t generation() const { return global_.generation; }

  WatchCtx* AddWatch(ZkSession::WatchCallback cb) {
    auto* w = new WatchCtx{this, global_.impl, global_.generation,
                           std::move(cb)};
    std::lock_guard<std::mutex> l(mu_);
    watches_.insert(w);
    return w;
  }
  // Forgets and frees `w` (watch fired, or it was never registered).
  void DropWatch(WatchCtx* w) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (watches_.erase(w) == 0) return;
    }
    delete w;
  }

  // A call handed to the C client with context `ctx`: `end` completes it as
  // closed if the client never does (see ~Handle).
  void TrackCall(const void* ctx, std::function<void()> end) {
    std::lock_guard<std::mutex> l(mu_);
    calls_.emplace(ctx, std::move(end));
  }
  // The call completed, or was not accepted.
  void UntrackCall(const void* ctx) {
    std::lock_guard<std::mutex> l(mu_);
    calls_.erase(ctx);
  }

 private:
  zhandle_t* zh_ = nullptr;
  GlobalCtx global_;
  std::mutex mu_;
  std::unordered_set<WatchCtx*> watches_;
  std::unordered_map<const void*, std::function<void()>> calls_;
};

class ZkSession::Impl : public std::enable_shared_from_this<ZkSession::Impl> {
 public:
  Impl(boost::asio::any_io_executor ex, ZkOptions options)
      : executor_(std::move(ex)), options_(std::move(options)) {}

  // --- session lifecycle ---------------------------------------------------
  Status Open() {
    std::shared_ptr<Handle> handle;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (closing_) return Aborted("session is closing");
      ++generation_;
      handle = std::make_shared<Handle>(weak_from_this(), generation_);
      connected_ = false;
    }
    zoo_set_debug_level(static_cast<ZooLogLevel>(ZooLogLevelFromEnv()));
    zhandle_t* zh = zookeeper_init(
        options_.connect_string.c_str(), &GlobalWatcher,
        static_cast<int>(options_.session_timeout.count()), nullptr,
        handle->global(), 0);
    if (zh == nullptr) {
      return Unavailable("cannot start a ZooKeeper client for '" +
                         options_.connect_string + "': " + strerror(errno));
    }
    handle->set_zh(zh);
    // Credentials are queued now and re-sent by the client on every
    // reconnect of this handle.
    for (const Credential& c : options_.credentials) {
      std::string cert = c.user + ":" + c.password;
      int rc = zoo_add_auth(zh, "digest", cert.data(),
                            static_cast<int>(cert.size()),
                            &IgnoreAuthCompletion, nullptr);
      if (rc != ZOK) {
        return StatusFromZooKeeper(rc, "adding digest credentials for user '" +
                                           c.user + "'");
      }
    }
    std::lock_guard<std::mutex> l(mu_);
    // The handle may have connected before it was stored here.
    if (connected_) handle->session_id = session_id_;
    handle_ = std::move(handle);
    return Status::Ok();
  }

  // Closes the current handle (outside the lock: closing joins threads
  // that may be waiting for the lock).
  void Close() {
    std::shared_ptr<Handle> old;
    {
      std::lock_guard<std::mutex> l(mu_);
      closing_ = true;
      connected_ = false;
      old = std::move(handle_);
      cv_.notify_all();
    }
    // A listener already running on the executor finishes before the
    // session (and whatever the listener refers to) may go away; no new one
    // starts (Announce checks closing_). Unless this is that listener
    // destroying its own session: then it is this thread's own call.
    if (announcing_thread_.load() != std::this_thread::get_id()) {
      std::lock_guard<std::mutex> wait_for_listeners(announce_mu_);
    }
    old.reset();
  }

  static void GlobalWatcher(zhandle_t* zh, int type, int state,
                            const char* /*path*/, void* ctx) {
    if (type != ZOO_SESSION_EVENT) return;  // node events use WatchCtx
    auto* g = static_cast<GlobalCtx*>(ctx);
    int64_t sid = 0;
    int recv_timeout = 0;
    std::string passwd;
    if (state == ZOO_CONNECTED_STATE) {
      const clientid_t* cid = zoo_client_id(zh);
      sid = cid->client_id;
      passwd.assign(cid->passwd, sizeof cid->passwd);
      recv_timeout = zoo_recv_timeout(zh);
    }
    if (auto impl = g->impl.lock()) {
      impl->OnSessionState(g->generation, state, sid, passwd, recv_timeout);
    }
  }

  // Runs on the ZooKeeper thread: update state, post the rest.
  void OnSessionState(uint64_t generation, int state, int64_t sid,
                      const std::string& passwd, int recv_timeout) {
    std::optional<SessionEvent> event;
    bool renew = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (generation != generation_ || closing_) return;  // old handle
      if (state == ZOO_CONNECTED_STATE) {
        connected_ = true;
        session_id_ = sid;
        if (handle_) handle_->session_id = sid;
        session_password_ = passwd;
        negotiated_timeout_ = Millis(recv_timeout);
        auto kind = sid != announced_session_id_
                        ? SessionEvent::Kind::kNewSession
                        : SessionEvent::Kind::kReconnected;
        announced_session_id_ = sid;
        event = SessionEvent{kind, sid};
      } else if (state == ZOO_CONNECTING_STATE ||
                 state == ZOO_ASSOCIATING_STATE) {
        // Only a loss of an established connection is news; the client
        // reports CONNECTING on every failed attempt too.
        if (connected_) event = SessionEvent{SessionEvent::Kind::kDisconnected,
                                             session_id_};
        connected_ = false;
      } else if (state == ZOO_EXPIRED_SESSION_STATE) {
        connected_ = false;
        event = SessionEvent{SessionEvent::Kind::kExpired, session_id_};
        renew = true;
      } else if (state == ZOO_AUTH_FAILED_STATE) {
        connected_ = false;
        event = SessionEvent{SessionEvent::Kind::kAuthFailed, session_id_};
      }
      cv_.notify_all();
    }
    if (!event) return;
    auto self = weak_from_this();
    boost::asio::post(executor_, [self, generation, event = *event, renew] {
      auto impl = self.lock();
      if (!impl) return;
      if (renew) impl->RenewAfterExpiry(generation);
      impl->Announce(event);
    });
  }

  // On the executor: replace an expired handle with a fresh one.
  void RenewAfterExpiry(uint64_t generation) {
    std::shared_ptr<Handle> old;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (generation != generation_ || closing_) return;
      old = std::move(handle_);
    }
    LOG(WARNING) << "ZooKeeper session 0x" << std::hex << session_id()
                 << std::dec << " expired; its ephemeral nodes and watches "
                 << "are gone"
                 << (options_.renew_on_expiry ? ", opening a new session"
                                              : "");
    old.reset();  // zookeeper_close on the executor, never on a ZK thread
    if (options_.renew_on_expiry) {
      Status s = Open();
      if (!s.ok()) LOG(ERROR) << "cannot open a new session: " << s.ToString();
    }
  }

  void Announce(const SessionEvent& e) {
    std::lock_guard<std::mutex> announcing(announce_mu_);
    std::vector<SessionListener> listeners;
    {
      std::lock_guard<std::mutex> l(mu_);
      // The event was posted before ~ZkSession; its listeners may be gone.
      if (closing_) return;
      listeners = listeners_;
    }
    announcing_thread_ = std::this_thread::get_id();
    if (options_.observer) options_.observer->OnSessionEvent(e.kind);
    for (auto& fn : listeners) fn(e);
    announcing_thread_ = std::thread::id();
  }

  Status WaitConnected(Millis timeout) {
    std::unique_lock<std::mutex> l(mu_);
    bool ok = cv_.wait_for(l, timeout, [&] { return connected_ || closing_; });
    if (ok && connected_) return Status::Ok();
    return DeadlineExceeded("could not connect to ZooKeeper at '" +
                            options_.connect_string + "' within " +
                            FormatDuration(timeout) +
                            "; check that the servers are up and reachable");
  }

  std::shared_ptr<Handle> CurrentHandle() {
    std::lock_guard<std::mutex> l(mu_);
    return handle_;
  }

  // --- completion trampolines (ZooKeeper thread) ---------------------------
  struct Reply {
    int rc = ZOK;
    std::string data;
    NodeStat stat;
    bool has_stat = false;
    std::vector<std::string> children;
    AclList acl;
  };
  using Sink = std::function<void(Reply)>;

  struct CallCtx {
    Sink sink;
    Handle* owner = nullptr;      // the handle the call was submitted on
    Handle* handle = nullptr;     // set when a watch was requested
    WatchCtx* watch = nullptr;
    bool exists_call = false;     // an exists watch is set on ZNONODE too
    void FinishWatch(int rc) {
      if (watch == nullptr) return;
      bool registered = rc == ZOK || (exists_call && rc == ZNONODE);
      if (!registered) handle->DropWatch(watch);
    }
  };

  // A completion takes its context back from the C client.
  static std::unique_ptr<CallCtx> Adopt(const void* data) {
    std::unique_ptr<CallCtx> ctx(static_cast<CallCtx*>(const_cast<void*>(data)));
    ctx->owner->UntrackCall(data);
    return ctx;
  }

  static void OnData(int rc, const char* value, int len, const Stat* stat,
                     const void* data) {
    auto ctx = Adopt(data);
    ctx->FinishWatch(rc);
    Reply r;
    r.rc = rc;
    if (rc == ZOK) {
      if (value != nullptr && len > 0) r.data.assign(value, len);
      r.stat = ToNodeStat(stat);
      r.has_stat = true;
    }
    ctx->sink(std::move(r));
  }
  static void OnStat(int rc, const Stat* stat, const void* data) {
    auto ctx = Adopt(data);
    ctx->FinishWatch(rc);
    Reply r;
    r.rc = rc;
    if (rc == ZOK && stat != nullptr) {
      r.stat = ToNodeStat(stat);
      r.has_stat = true;
    }
    ctx->sink(std::move(r));
  }
  static void OnVoid(int rc, const void* data) {
    auto ctx = Adopt(data);
    Reply r;
    r.rc = rc;
    ctx->sink(std::move(r));
  }
  static void OnString(int rc, const char* value, const void* data) {
    auto ctx = Adopt(data);
    Reply r;
    r.rc = rc;
    if (rc == ZOK && value != nullptr) r.data = value;
    ctx->sink(std::move(r));
  }
  static void OnStrings(int rc, const String_vector* strings, const Stat* stat,
                        const void* data) {
    auto ctx = Adopt(data);
    ctx->FinishWatch(rc);
    Reply r;
    r.rc = rc;
    if (rc == ZOK && strings != nullptr) {
      for (int i = 0; i < strings->count; ++i) {
        r.children.emplace_back(strings->data[i]);
      }
      std::sort(r.children.begin(), r.children.end());
      r.stat = ToNodeStat(stat);
      r.has_stat = true;
    }
    ctx->sink(std::move(r));
  }
  static void OnAcl(int rc, ACL_vector* acl, Stat* stat, const void* data) {
    auto ctx = Adopt(data);
    Reply r;
    r.rc = rc;
    if (rc == ZOK && acl != nullptr) {
      for (int i = 0; i < acl->count; ++i) {
        r.acl.push_back(AclEntry{acl->data[i].perms, acl->data[i].id.scheme,
                                 acl->data[i].id.id});
      }
      r.stat = ToNodeStat(stat);
      r.has_stat = true;
    }
    ctx->sink(std::move(r));
  }

  static void OnWatch(zhandle_t* /*zh*/, int type, int /*state*/,
                      const char* path, void* ctx) {
    // Session events reach every registered watcher as well; the global
    // watcher handles those, and the watch itself is still armed.
    if (type == ZOO_SESSION_EVENT) return;
    auto* w = static_cast<WatchCtx*>(ctx);
    WatchEvent event{ToWatchType(type), path ? path : ""};
    std::weak_ptr<Impl> weak = w->impl;
    uint64_t generation = w->generation;
    WatchCallback cb = std::move(w->callback);
    w->handle->DropWatch(w);  // the client has forgotten this watcher
    if (auto impl = weak.lock()) {
      boost::asio::post(impl->executor_, [weak, generation, cb, event] {
        auto impl = weak.lock();
        if (!impl) return;
        {
          std::lock_guard<std::mutex> l(impl->mu_);
          // A watch of an expired session: its owner re-arms from scratch
          // on kNewSession, so this stale event must not be acted on.
          if (generation != impl->generation_) return;
        }
        if (impl->options_.observer) {
          impl->options_.observer->OnWatchEvent(event.type);
        }
        cb(event);
      });
    }
  }

  // Submits one call. `submit` gets the handle, the context (whose
  // ownership passes to the C client only if the call is accepted) and the
  // watch context (null if none was asked for).
  // With `only_in_session` set, the call goes out only on the handle of
  // that session; if the current handle belongs to another session (or has
  // not connected yet), the sink gets ZSESSIONEXPIRED and nothing is sent.
  // The check and the choice of handle are one step under the lock, and a
  // handle never changes its session, so such a call can never run in a
  // later session.
  template <typename SubmitFn>
  void Submit(ZkOperation op, const std::string& what, Sink sink,
              WatchCallback watcher, bool exists_call, SubmitFn submit,
              int64_t only_in_session = 0) {
    if (options_.observer) sink = Observed(op, exists_call, std::move(sink));
    std::shared_ptr<Handle> h;
    bool wrong_session = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      h = handle_;
      wrong_session = h && only_in_session != 0 &&
                      h->session_id != only_in_session;
    }
    if (!h || wrong_session) {
      Reply r;
      r.rc = h ? ZSESSIONEXPIRED : ZINVALIDSTATE;
      sink(std::move(r));
      return;
    }
    auto ctx = std::make_unique<CallCtx>();
    ctx->sink = std::move(sink);
    ctx->exists_call = exists_call;
    ctx->owner = h.get();
    if (watcher) {
      ctx->handle = h.get();
      ctx->watch = h->AddWatch(std::move(watcher));
    }
    // Tracked before it is submitted: its completion may run at once.
    h->TrackCall(ctx.get(), [p = ctx.get()] {
      std::unique_ptr<CallCtx> c(p);
      c->FinishWatch(ZCLOSING);
      Reply r;
      r.rc = ZCLOSING;
      c->sink(std::move(r));
    });
    int rc = submit(h->zh(), ctx.get());
    if (rc == ZOK) {
      ctx.release();  // the completion re-adopts it
      return;
    }
    h->UntrackCall(ctx.get());
    if (ctx->watch) h->DropWatch(ctx->watch);
    VLOG(1) << what << " not submitted: " << zerror(rc);
    Reply r;
    r.rc = rc;
    ctx->sink(std::move(r));
  }

  // `sink`, telling the observer first how the call went and how long it
  // took (on the completion thread: the observer is thread-safe, and a post
  // per call would cost the executor more than the count itself).
  Sink Observed(ZkOperation op, bool exists_call, Sink sink) {
    return [observer = options_.observer, op, exists_call,
            start = std::chrono::steady_clock::now(),
            sink = std::move(sink)](Reply r) {
      // An exists that finds no node answered the question: not an error.
      int rc = exists_call && r.rc == ZNONODE ? ZOK : r.rc;
      observer->OnOperation(op, ZooKeeperCodeName(rc),
                            std::chrono::steady_clock::now() - start);
      sink(std::move(r));
    };
  }

  // A sink converting a Reply with `convert` and posting the result to the
  // executor; dropped if the session is gone by then.
  template <typename T, typename Convert>
  Sink AsyncSink(std::function<void(T)> done, Convert convert) {
    std::weak_ptr<Impl> weak = weak_from_this();
    auto ex = executor_;
    return [weak, ex, done = std::move(done), convert](Reply r) {
      T value = convert(r);
      boost::asio::post(ex, [weak, done, value = std::move(value)]() mutable {
        if (weak.lock()) done(std::move(value));
      });
    };
  }

  // Runs an async call and blocks for its converted result.
  template <typename T, typename Convert, typename Start>
  T SyncCall(Convert convert, Start start, T on_timeout) {
    auto promise = std::make_shared<std::promise<T>>();
    auto future = promise->get_future();
    start([promise, convert](Reply r) { promise->set_value(convert(r)); });
    Millis limit = std::max<Millis>(2 * options_.session_timeout, Millis(5000));
    if (future.wait_for(limit) != std::future_status::ready) return on_timeout;
    return future.get();
  }

  boost::asio::any_io_executor executor_;
  const ZkOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<Handle> handle_;
  uint64_t generation_ = 0;
  bool closing_ = false;
  bool connected_ = false;
  int64_t session_id_ = 0;
  std::string session_password_;
  int64_t announced_session_id_ = 0;
  Millis negotiated_timeout_{0};
  std::vector<SessionListener> listeners_;
  // Held while the observer and listeners run, so Close() can wait for
  // them (never taken inside mu_); announcing_thread_ names the thread
  // running them, so a listener that destroys its session does not wait
  // for itself.
  std::mutex announce_mu_;
  std::atomic<std::thread::id> announcing_thread_{};

  int64_t session_id() const {
    std::lock_guard<std::mutex> l(mu_);
    return session_id_;
  }
};

namespace {

using Impl = ZkSession::Impl;
using Reply = ZkSession::Impl::Reply;

// Converters from a raw reply to the public result types.
std::function<Result<NodeData>(const Reply&)> ToNodeData(std::string path) {
  return [path](const Reply& r) -> Result<NodeData> {
    if (r.rc != ZOK) return StatusFromZooKeeper(r.rc, "get " + path);
    return NodeData{r.data, r.stat};
  };
}
std::function<Result<std::optional<NodeStat>>(const Reply&)> ToExists(
    std::string path) {
  return [path](const Reply& r) -> Result<std::optional<NodeStat>> {
    if (r.rc == ZNONODE) return std::optional<NodeStat>();
    if (r.rc != ZOK) return StatusFromZooKeeper(r.rc, "exists " + path);
    return std::optional<NodeStat>(r.stat);
  };
}
std::function<Result<Children>(const Reply&)> ToChildren(std::string path) {
  return [path](const Reply& r) -> Result<Children> {
    if (r.rc != ZOK) return StatusFromZooKeeper(r.rc, "get children of " + path);
    return Children{r.children, r.stat};
  };
}
std::function<Result<std::string>(const Reply&)> ToCreated(std::string path) {
  return [path](const Reply& r) -> Result<std::string> {
    if (r.rc != ZOK) return StatusFromZooKeeper(r.rc, "create " + path);
    return r.data;
  };
}
std::function<Result<NodeStat>(const Reply&)> ToSetStat(std::string path) {
  return [path](const Reply& r) -> Result<NodeStat> {
    if (r.rc != ZOK) return StatusFromZooKeeper(r.rc, "set " + path);
    return r.stat;
  };
}
std::function<Result<AclList>(const Reply&)> ToAcl(std::string path) {
  return [path](const Reply& r) -> Result<AclList> {
    if (r.rc != ZOK) return StatusFromZooKeeper(r.rc, "get ACL of " + path);
    return r.acl;
  };
}
std::function<Status(const Reply&)> ToSynced(std::string path) {
  return [path](const Reply& r) -> Status {
    return StatusFromZooKeeper(r.rc, "sync " + path);
  };
}
std::function<Status(const Reply&)> ToDeleted(std::string path) {
  return [path](const Reply& r) -> Status {
    return StatusFromZooKeeper(r.rc, "delete " + path);
  };
}

Status ValidateZnodePath(const std::string& path) {
  if (path.empty() || path[0] != '/' ||
      (path.size() > 1 && path.back() == '/') ||
      path.find("//") != std::string::npos) {
    return InvalidArgument("bad znode path " + QuoteForMessage(path));
  }
  return Status::Ok();
}

// State of a multi call that must outlive the submission: the C client
// writes results and created paths into these buffers at completion.
struct MultiState {
  std::vector<ZkOp> ops;
  std::vector<std::unique_ptr<CAcl>> acls;
  std::vector<zoo_op_t> c_ops;
  std::vector<zoo_op_result_t> results;
  std::vector<std::vector<char>> path_buffers;
  std::vector<Stat> stats;
};

// Errors of the whole transaction rather than of one op. The C client
// copies such an error into every op's result; taken as op 0's own error it
// would read as "the first op (often a guard check) refused", while the
// transaction may well have been applied with its reply lost.
bool TransactionWideError(int rc) {
  return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT ||
         rc == ZSESSIONEXPIRED || rc == ZSESSIONMOVED || rc == ZCLOSING ||
         rc == ZINVALIDSTATE || rc == ZMARSHALLINGERROR ||
         rc == ZSYSTEMERROR || rc == ZAUTHFAILED;
}

MultiResult ToMultiResult(const MultiState& m, int rc) {
  MultiResult out;
  out.results.resize(m.ops.size());
  const bool whole = TransactionWideError(rc);
  for (size_t i = 0; i < m.ops.size(); ++i) {
    int err = m.results[i].err;
    out.results[i].status = StatusFromZooKeeper(err, m.ops[i].Describe());
    if (err == ZOK && m.ops[i].kind == ZkOp::Kind::kCreate &&
        !m.path_buffers[i].empty()) {
      out.results[i].created_path = m.path_buffers[i].data();
    }
    if (err == ZOK && m.ops[i].kind == ZkOp::Kind::kSetData) {
      out.results[i].stat = ToNodeStat(&m.stats[i]);
    }
    // Ops after the failing one report "runtime inconsistency"; the first
    // real error is the cause.
    if (rc != ZOK && !whole && out.failed_op < 0 && err != ZOK &&
        err != ZRUNTIMEINCONSISTENCY) {
      out.failed_op = static_cast<int>(i);
    }
  }
  if (rc == ZOK) return out;
  if (out.failed_op >= 0) {
    out.status = out.results[out.failed_op].status.WithContext(
        "transaction op " + std::to_string(out.failed_op));
  } else {
    out.status = StatusFromZooKeeper(rc, "transaction of " +
                                             std::to_string(m.ops.size()) +
                                             " ops");
  }
  return out;
}

}  // namespace

Status ValidateConnectString(const std::string& cs) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("bad ZooKeeper connect string " +
                           QuoteForMessage(cs) + ": " + why +
                           " (expected host:port[,host:port...][/chroot], "
                           "e.g. 127.0.0.1:2181/zkroll-prod)");
  };
  if (cs.empty()) return bad("empty");
  size_t slash = cs.find('/');
  std::string hosts = cs.substr(0, slash);
  if (slash != std::string::npos) {
    std::string chroot = cs.substr(slash);
    if (chroot == "/" || chroot.back() == '/' ||
        chroot.find("//") != std::string::npos) {
      return bad("malformed chroot");
    }
    for (char c : chroot) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
                c == '/';
      if (!ok) return bad("chroot may only contain letters, digits, . _ - /");
    }
  }
  if (hosts.empty()) return bad("no servers");
  size_t start = 0;
  while (start <= hosts.size()) {
    size_t comma = hosts.find(',', start);
    std::string server = hosts.substr(
        start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t colon = server.rfind(':');
    if (server.empty() || colon == std::string::npos || colon == 0 ||
        colon + 1 == server.size()) {
      return bad("server " + QuoteForMessage(server) + " is not host:port");
    }
    for (size_t i = colon + 1; i < server.size(); ++i) {
      if (server[i] < '0' || server[i] > '9') {
        return bad("server " + QuoteForMessage(server) + " has a bad port");
      }
    }
    for (char c : server.substr(0, colon)) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':' ||
                c == '[' || c == ']' || c == '_';
      if (!ok) return bad("server " + QuoteForMessage(server) +
                          " has a bad host");
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return Status::Ok();
}

ZkSession::ZkSession(boost::asio::any_io_executor executor, ZkOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

ZkSession::~ZkSession() { impl_->Close(); }

Status ZkSession::Start() {
  ZKROLL_RETURN_IF_ERROR(ValidateConnectString(impl_->options_.connect_string));
  return impl_->Open();
}

Status ZkSession::WaitConnected(Millis timeout) {
  return impl_->WaitConnected(timeout);
}

void ZkSession::AddListener(SessionListener listener) {
  std::lock_guard<std::mutex> l(impl_->mu_);
  impl_->listeners_.push_back(std::move(listener));
}

bool ZkSession::connected() const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  return impl_->connected_;
}
int64_t ZkSession::session_id() const { return impl_->session_id(); }
Millis ZkSession::negotiated_timeout() const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  return impl_->negotiated_timeout_;
}
std::string ZkSession::session_password() const {
  std::lock_guard<std::mutex> l(impl_->mu_);
  return impl_->session_password_;
}
const ZkOptions& ZkSession::options() const { return impl_->options_; }

const char* ZkOperationName(ZkOperation op) {
  switch (op) {
    case ZkOperation::kCreate: return "create";
    case ZkOperation::kDelete: return "delete";
    case ZkOperation::kExists: return "exists";
    case ZkOperation::kGet: return "get";
    case ZkOperation::kGetChildren: return "get_children";
    case ZkOperation::kSet: return "set";
    case ZkOperation::kMulti: return "multi";
    case ZkOperation::kSync: return "sync";
    case ZkOperation::kGetAcl: return "get_acl";
    case ZkOperation::kSetAcl: return "set_acl";
  }
  return "unknown";
}

// --- async ----------------------------------------------------------------

void ZkSession::Create(const std::string& path, const std::string& data,
                       CreateMode mode, const AclList& acl,
                       Callback<std::string> done) {
  auto sink = impl_->AsyncSink<Result<std::string>>(std::move(done),
                                                    ToCreated(path));
  auto c_acl = std::make_shared<CAcl>(acl);
  impl_->Submit(ZkOperation::kCreate, "create " + path, std::move(sink), {}, false,
                [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                  return zoo_acreate(zh, path.c_str(), data.data(),
                                     static_cast<int>(data.size()),
                                     c_acl->get(), ToCreateFlags(mode),
                                     &Impl::OnString, ctx);
                });
}

void ZkSession::Delete(const std::string& path, int32_t version,
                       StatusCallback done) {
  auto sink = impl_->AsyncSink<Status>(std::move(done), ToDeleted(path));
  impl_->Submit(ZkOperation::kDelete, "delete " + path, std::move(sink), {}, false,
                [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                  return zoo_adelete(zh, path.c_str(), version, &Impl::OnVoid,
                                     ctx);
                });
}

void ZkSession::Exists(const std::string& path, WatchCallback watcher,
                       Callback<std::optional<NodeStat>> done) {
  auto sink = impl_->AsyncSink<Result<std::optional<NodeStat>>>(
      std::move(done), ToExists(path));
  impl_->Submit(ZkOperation::kExists, "exists " + path, std::move(sink), std::move(watcher), true,
                [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                  if (ctx->watch) {
                    return zoo_awexists(zh, path.c_str(), &Impl::OnWatch,
                                        ctx->watch, &Impl::OnStat, ctx);
                  }
                  return zoo_aexists(zh, path.c_str(), 0, &Impl::OnStat, ctx);
                });
}

void ZkSession::Get(const std::string& path, WatchCallback watcher,
                    Callback<NodeData> done) {
  auto sink = impl_->AsyncSink<Result<NodeData>>(std::move(done),
                                                 ToNodeData(path));
  impl_->Submit(ZkOperation::kGet, "get " + path, std::move(sink), std::move(watcher), false,
                [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                  if (ctx->watch) {
                    return zoo_awget(zh, path.c_str(), &Impl::OnWatch,
                                     ctx->watch, &Impl::OnData, ctx);
                  }
                  return zoo_aget(zh, path.c_str(), 0, &Impl::OnData, ctx);
                });
}

void ZkSession::GetChildren(const std::string& path, WatchCallback watcher,
                            Callback<Children> done) {
  auto sink = impl_->AsyncSink<Result<Children>>(
      std::move(done), ToChildren(path));
  impl_->Submit(ZkOperation::kGetChildren, "get children of " + path, std::move(sink), std::move(watcher),
                false, [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                  if (ctx->watch) {
                    return zoo_awget_children2(zh, path.c_str(),
                                               &Impl::OnWatch, ctx->watch,
                                               &Impl::OnStrings, ctx);
                  }
                  return zoo_aget_children2(zh, path.c_str(), 0,
                                            &Impl::OnStrings, ctx);
                });
}

void ZkSession::Set(const std::string& path, const std::string& data,
                    int32_t version, Callback<NodeStat> done) {
  auto sink = impl_->AsyncSink<Result<NodeStat>>(std::move(done),
                                                 ToSetStat(path));
  impl_->Submit(ZkOperation::kSet, "set " + path, std::move(sink), {}, false,
                [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                  return zoo_aset(zh, path.c_str(), data.data(),
                                  static_cast<int>(data.size()), version,
                                  &Impl::OnStat, ctx);
                });
}

namespace {

// Submits a multi whose state lives in `m` until `finish` has run.
void SubmitMulti(Impl* impl, std::shared_ptr<MultiState> m,
                 std::function<void(MultiResult)> finish,
                 int64_t only_in_session = 0) {
  const size_t n = m->ops.size();
  m->c_ops.resize(n);
  m->results.resize(n);
  m->path_buffers.resize(n);
  m->stats.resize(n);
  for (size_t i = 0; i < n; ++i) {
    ZkOp& op = m->ops[i];
    m->results[i] = zoo_op_result_t{ZOK, nullptr, 0, nullptr};
    switch (op.kind) {
      case ZkOp::Kind::kCreate:
        m->acls.push_back(std::make_unique<CAcl>(op.acl));
        m->path_buffers[i].assign(op.path.size() + 32, '\0');
        zoo_create_op_init(&m->c_ops[i], op.path.c_str(), op.data.data(),
                           static_cast<int>(op.data.size()),
                           m->acls.back()->get(), ToCreateFlags(op.mode),
                           m->path_buffers[i].data(),
                           static_cast<int>(m->path_buffers[i].size()));
        break;
      case ZkOp::Kind::kDelete:
        zoo_delete_op_init(&m->c_ops[i], op.path.c_str(), op.version);
        break;
      case ZkOp::Kind::kSetData:
        zoo_set_op_init(&m->c_ops[i], op.path.c_str(), op.data.data(),
                        static_cast<int>(op.data.size()), op.version,
                        &m->stats[i]);
        break;
      case ZkOp::Kind::kCheck:
        zoo_check_op_init(&m->c_ops[i], op.path.c_str(), op.version);
        break;
    }
  }
  Impl::Sink sink = [m, finish](Reply r) { finish(ToMultiResult(*m, r.rc)); };
  impl->Submit(
      ZkOperation::kMulti, "transaction", std::move(sink), {}, false,
      [&](zhandle_t* zh, Impl::CallCtx* ctx) {
        return zoo_amulti(zh, static_cast<int>(n), m->c_ops.data(),
                          m->results.data(), &Impl::OnVoid, ctx);
      },
      only_in_session);
}

}  // namespace

void ZkSession::Multi(std::vector<ZkOp> ops,
                      std::function<void(MultiResult)> done) {
  auto m = std::make_shared<MultiState>();
  m->ops = std::move(ops);
  std::weak_ptr<Impl> weak = impl_;
  auto ex = impl_->executor_;
  SubmitMulti(impl_.get(), m, [weak, ex, done](MultiResult r) {
    boost::asio::post(ex, [weak, done, r = std::move(r)]() mutable {
      if (weak.lock()) done(std::move(r));
    });
  });
}

void ZkSession::Sync(const std::string& path, StatusCallback done) {
  auto sink = impl_->AsyncSink<Status>(std::move(done), ToSynced(path));
  impl_->Submit(ZkOperation::kSync, "sync " + path, std::move(sink), {}, false,
                [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                  return zoo_async(zh, path.c_str(), &Impl::OnString, ctx);
                });
}

void ZkSession::GetAcl(const std::string& path, Callback<AclList> done) {
  auto sink = impl_->AsyncSink<Result<AclList>>(std::move(done), ToAcl(path));
  impl_->Submit(ZkOperation::kGetAcl, "get ACL of " + path, std::move(sink), {}, false,
                [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                  return zoo_aget_acl(zh, path.c_str(), &Impl::OnAcl, ctx);
                });
}

void ZkSession::EnsurePath(const std::string& path, const AclList& acl,
                           StatusCallback done) {
  Status valid = ValidateZnodePath(path);
  if (!valid.ok()) {
    boost::asio::post(impl_->executor_, [done, valid] { done(valid); });
    return;
  }
  auto todo = std::make_shared<std::vector<std::string>>(
      paths::Ancestors(path));
  todo->push_back(path);
  auto step = std::make_shared<std::function<void(size_t)>>();
  // `step` refers to itself only through a weak pointer, so the chain
  // frees itself when it ends.
  std::weak_ptr<std::function<void(size_t)>> weak_step = step;
  *step = [this, todo, acl, done, weak_step](size_t i) {
    if (i == todo->size()) {
      done(Status::Ok());
      return;
    }
    auto self = weak_step.lock();
    Create((*todo)[i], "", CreateMode::kPersistent, acl,
           [self, i, done](Result<std::string> r) {
             if (!r.ok() && r.status().code() != StatusCode::kAlreadyExists) {
               done(r.status());
               return;
             }
             (*self)(i + 1);
           });
  };
  // Look before creating, as EnsurePathSync does: a create refused with
  // NodeExists still costs the ensemble a transaction (and an fsync), and
  // the path usually exists.
  Exists(path, nullptr,
         [step, done](Result<std::optional<NodeStat>> r) {
           if (r.ok() && r->has_value()) {
             done(Status::Ok());
             return;
           }
           (*step)(0);
         });
}

// --- sync ------------------------------------------------------------------

Result<std::string> ZkSession::CreateSync(const std::string& path,
                                          const std::string& data,
                                          CreateMode mode,
                                          const AclList& acl) {
  CAcl c_acl(acl);
  return impl_->SyncCall<Result<std::string>>(
      ToCreated(path),
      [&](Impl::Sink sink) {
        impl_->Submit(ZkOperation::kCreate, "create " + path, std::move(sink), {}, false,
                      [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                        return zoo_acreate(zh, path.c_str(), data.data(),
                                           static_cast<int>(data.size()),
                                           c_acl.get(), ToCreateFlags(mode),
                                           &Impl::OnString, ctx);
                      });
      },
      StatusFromZooKeeper(ZOPERATIONTIMEOUT, "create " + path));
}

Status ZkSession::DeleteSync(const std::string& path, int32_t version) {
  return DeleteInSessionSync(path, version, 0);
}

Status ZkSession::DeleteInSessionSync(const std::string& path,
                                      int32_t version, int64_t session_id) {
  return impl_->SyncCall<Status>(
      ToDeleted(path),
      [&](Impl::Sink sink) {
        impl_->Submit(
            ZkOperation::kDelete, "delete " + path, std::move(sink), {}, false,
            [&](zhandle_t* zh, Impl::CallCtx* ctx) {
              return zoo_adelete(zh, path.c_str(), version, &Impl::OnVoid,
                                 ctx);
            },
            session_id);
      },
      StatusFromZooKeeper(ZOPERATIONTIMEOUT, "delete " + path));
}

Status ZkSession::SyncSync(const std::string& path) {
  return impl_->SyncCall<Status>(
      ToSynced(path),
      [&](Impl::Sink sink) {
        impl_->Submit(ZkOperation::kSync, "sync " + path, std::move(sink), {}, false,
                      [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                        return zoo_async(zh, path.c_str(), &Impl::OnString,
                                         ctx);
                      });
      },
      StatusFromZooKeeper(ZOPERATIONTIMEOUT, "sync " + path));
}

Result<std::optional<NodeStat>> ZkSession::ExistsSync(const std::string& path,
                                                      WatchCallback watcher) {
  return impl_->SyncCall<Result<std::optional<NodeStat>>>(
      ToExists(path),
      [&](Impl::Sink sink) {
        impl_->Submit(ZkOperation::kExists, "exists " + path, std::move(sink), std::move(watcher),
                      true, [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                        if (ctx->watch) {
                          return zoo_awexists(zh, path.c_str(), &Impl::OnWatch,
                                              ctx->watch, &Impl::OnStat, ctx);
                        }
                        return zoo_aexists(zh, path.c_str(), 0, &Impl::OnStat,
                                           ctx);
                      });
      },
      StatusFromZooKeeper(ZOPERATIONTIMEOUT, "exists " + path));
}

Result<NodeData> ZkSession::GetSync(const std::string& path,
                                    WatchCallback watcher) {
  return impl_->SyncCall<Result<NodeData>>(
      ToNodeData(path),
      [&](Impl::Sink sink) {
        impl_->Submit(ZkOperation::kGet, "get " + path, std::move(sink), std::move(watcher), false,
                      [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                        if (ctx->watch) {
                          return zoo_awget(zh, path.c_str(), &Impl::OnWatch,
                                           ctx->watch, &Impl::OnData, ctx);
                        }
                        return zoo_aget(zh, path.c_str(), 0, &Impl::OnData,
                                        ctx);
                      });
      },
      StatusFromZooKeeper(ZOPERATIONTIMEOUT, "get " + path));
}

Result<Children> ZkSession::GetChildrenSync(const std::string& path,
                                           WatchCallback watcher) {
  return impl_->SyncCall<Result<Children>>(
      ToChildren(path),
      [&](Impl::Sink sink) {
        impl_->Submit(ZkOperation::kGetChildren, "get children of " + path, std::move(sink),
                      std::move(watcher), false,
                      [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                        if (ctx->watch) {
                          return zoo_awget_children2(
                              zh, path.c_str(), &Impl::OnWatch, ctx->watch,
                              &Impl::OnStrings, ctx);
                        }
                        return zoo_aget_children2(zh, path.c_str(), 0,
                                                  &Impl::OnStrings, ctx);
                      });
      },
      StatusFromZooKeeper(ZOPERATIONTIMEOUT, "get children of " + path));
}

Result<NodeStat> ZkSession::SetSync(const std::string& path,
                                    const std::string& data, int32_t version) {
  return impl_->SyncCall<Result<NodeStat>>(
      ToSetStat(path),
      [&](Impl::Sink sink) {
        impl_->Submit(ZkOperation::kSet, "set " + path, std::move(sink), {}, false,
                      [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                        return zoo_aset(zh, path.c_str(), data.data(),
                                        static_cast<int>(data.size()), version,
                                        &Impl::OnStat, ctx);
                      });
      },
      StatusFromZooKeeper(ZOPERATIONTIMEOUT, "set " + path));
}

MultiResult ZkSession::MultiSync(std::vector<ZkOp> ops) {
  return MultiInSessionSync(std::move(ops), 0);
}

MultiResult ZkSession::MultiInSessionSync(std::vector<ZkOp> ops,
                                          int64_t session_id) {
  auto m = std::make_shared<MultiState>();
  m->ops = std::move(ops);
  auto promise = std::make_shared<std::promise<MultiResult>>();
  auto future = promise->get_future();
  SubmitMulti(
      impl_.get(), m,
      [promise](MultiResult r) { promise->set_value(std::move(r)); },
      session_id);
  Millis limit =
      std::max<Millis>(2 * impl_->options_.session_timeout, Millis(5000));
  if (future.wait_for(limit) != std::future_status::ready) {
    MultiResult r;
    r.status = StatusFromZooKeeper(ZOPERATIONTIMEOUT, "transaction");
    return r;
  }
  return future.get();
}

Status ZkSession::EnsurePathSync(const std::string& path, const AclList& acl) {
  ZKROLL_RETURN_IF_ERROR(ValidateZnodePath(path));
  std::vector<std::string> todo = paths::Ancestors(path);
  todo.push_back(path);
  for (const std::string& p : todo) {
    auto exists = ExistsSync(p);
    if (!exists.ok()) return exists.status();
    if (exists->has_value()) continue;
    auto r = CreateSync(p, "", CreateMode::kPersistent, acl);
    if (!r.ok() && r.status().code() != StatusCode::kAlreadyExists) {
      return r.status();
    }
  }
  return Status::Ok();
}

Result<AclList> ZkSession::GetAclSync(const std::string& path) {
  return impl_->SyncCall<Result<AclList>>(
      ToAcl(path),
      [&](Impl::Sink sink) {
        impl_->Submit(ZkOperation::kGetAcl, "get ACL of " + path, std::move(sink), {}, false,
                      [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                        return zoo_aget_acl(zh, path.c_str(), &Impl::OnAcl,
                                            ctx);
                      });
      },
      StatusFromZooKeeper(ZOPERATIONTIMEOUT, "get ACL of " + path));
}

Status ZkSession::SetAclSync(const std::string& path, const AclList& acl,
                             int32_t version) {
  CAcl c_acl(acl);
  return impl_->SyncCall<Status>(
      [path](const Reply& r) -> Status {
        return StatusFromZooKeeper(r.rc, "set ACL of " + path);
      },
      [&](Impl::Sink sink) {
        impl_->Submit(ZkOperation::kSetAcl, "set ACL of " + path, std::move(sink), {}, false,
                      [&](zhandle_t* zh, Impl::CallCtx* ctx) {
                        return zoo_aset_acl(zh, path.c_str(), version,
                                            const_cast<ACL_vector*>(c_acl.get()),
                                            &Impl::OnVoid, ctx);
                      });
      },
      StatusFromZooKeeper(ZOPERATIONTIMEOUT, "set ACL of " + path));
}

}  // namespace zkroll
