// ServiceDiscovery: a calling application's in-memory list of the instances
// of one service, read from /services/<service>, and a cheap Pick() of the
// next instance to call.
//
// Modes
// - kWatch: a children watch on /services/<service> and a data watch on
//   every instance node, re-armed after every event; the whole list is
//   re-read after every reconnect and new session and on a slow resync
//   (Options::resync), because changes made while disconnected can be
//   missed. A removed instance leaves the list as soon as ZooKeeper tells us.
// - kPoll: no watches; the children are re-read every
//   Options::poll_interval. This is how the callers that the drain wait
//   exists for behave: they cache the list and refresh it on a timer.
// In both modes a child's payload (InstanceRecord) is read once and cached
// by the node's czxid/mzxid; unchanged children are not read again. In
// watch mode their data watch tells us about changes; in both modes every
// `resync` the cached children are checked with a stat-only read and read
// again only if created or modified since.
//
// Staleness. The list is never emptied because ZooKeeper cannot be reached:
// on a connection loss, a session expiry or a failed read the last known
// list keeps being served and the snapshot says stale, with a reason and
// since when. It is fresh again after the next complete successful read.
// An empty list therefore means ZooKeeper said so (no instance registered,
// or no /services/<service> node), or that nothing has been read yet
// (ServiceView::loaded is false).
//
// Acknowledgements (Options::acknowledge, on by default). Once the first
// list is served, the client keeps an ephemeral node
// /callers/<service>/<caller-id> (caller id <hostname>-<pid>-<n>) holding a
// CallerRecord: this host, its addresses, pid, mode, refresh interval and
// list_pzxid, the pzxid of /services/<service> in the children read behind
// the list served now. A `zkroll deploy --drain auto` ends its drain once
// every caller acknowledges a list read after its pause (docs/design.md,
// "Drain on evidence"). The node is rewritten when the children read behind
// the served list changes (an instance added or removed; a record-only
// change such as a weight needs no acknowledgement): one write at a time, and while one is in flight
// only the latest state is kept and written after it, so a burst of changes
// costs at most two writes. It is re-created on a new session, deleted by
// Stop(). Writes are asynchronous: Pick() never waits for them. A refused
// write (no right to /callers) is logged once and tried again only on a new
// session; the list is served regardless. Callers that must not write to
// ZooKeeper set acknowledge = false: they then count as unknown callers and
// hold a `--drain auto` drain to its cap whenever they talk to the
// instance.
//
// Bad children (a node name that is not a canonical <ip>_<port>, a payload
// that does not parse or names another address or service in zkroll's or
// Curator's fields: common/instance_record.h) are skipped,
// logged once and listed in ServiceView::skipped; they never stop the rest
// of the list from being served.
//
// Threading and ownership
// - Create() on any executor; ServiceDiscovery serializes its own work on a
//   strand of it, so the executor may be run by several threads. The
//   ZkSession is borrowed (the application shares its session) and may
//   deliver its callbacks on any executor.
// - Pick(), Snapshot() and generation() are thread-safe and never block on
//   I/O: they read an immutable snapshot published with std::atomic_store
//   (libstdc++ guards shared_ptr atomics with a small hashed lock held only
//   for the pointer copy) and bump an atomic counter.
// - Start() and Stop() may be called from any thread. After Stop() returns
//   no further call is made to the session, so the session may be destroyed
//   then; callbacks already queued on the executor are ignored. Stop() is
//   final.
// - Change listeners run on the strand, in registration order, whenever
//   the instance list changes (not for status-only changes). Add them
//   before Start().
#ifndef ZKROLL_CLIENT_DISCOVERY_H_
#define ZKROLL_CLIENT_DISCOVERY_H_

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/duration.h"
#include "common/names.h"
#include "common/status.h"
#include "common/zk_session.h"
#include "zkroll.pb.h"

namespace zkroll::client {

enum class DiscoveryMode { kWatch, kPoll };

// "watch" or "poll"; InvalidArgument naming the text otherwise.
Result<DiscoveryMode> ParseDiscoveryMode(std::string_view text);
const char* DiscoveryModeName(DiscoveryMode mode);

// One usable instance of the service.
struct DiscoveredInstance {
  InstanceAddress address;  // from the node name
  uint32_t weight = 1;      // the record's weight; 0 (unset) counts as 1
  proto::InstanceRecord record;
  int64_t czxid = 0;  // identify the node version the record was read from
  int64_t mzxid = 0;
};

// A child of /services/<service> that is not used, and why.
struct SkippedChild {
  std::string name;
  std::string reason;
};

// An immutable view of the service, as published at one moment.
struct ServiceView {
  ServiceName service;
  std::vector<DiscoveredInstance> instances;  // sorted by address
  // Bumped whenever `instances` changes (an instance added or removed, a
  // weight or record changed). A connection pool compares generations to
  // know when to drop connections to removed instances.
  uint64_t generation = 0;
  // Completed reads of the list: the children and every payload they
  // needed. In poll mode the list only ever changes when this advances.
  uint64_t refreshes = 0;
  // Reads (of the children or of a payload) that failed, e.g. with a
  // connection loss; a metric of how long ZooKeeper has been unreachable.
  uint64_t failed_reads = 0;
  // True once a read of the list completed.
  bool loaded = false;
  // False when /services/<service> does not exist (the list is then empty
  // and, if loaded, fresh: that is ZooKeeper's answer).
  bool service_exists = false;
  // True when the list may be out of date: nothing read yet, the
  // connection to ZooKeeper is lost, the session expired or the last read
  // failed. The list is still the last one known.
  bool stale = true;
  std::string stale_reason;  // empty when fresh
  std::optional<WallTime> stale_since;
  std::optional<WallTime> last_refresh;  // end of the last complete read
  bool zk_connected = false;
  std::vector<SkippedChild> skipped;  // bad children of the current list

  bool Contains(const InstanceAddress& address) const;
  // "2 instances, generation 5, fresh" / "... stale: <reason>", for logs.
  std::string Describe() const;
};

// What Pick() hands out.
struct Endpoint {
  InstanceAddress address;
  uint32_t weight = 1;
};

class ServiceDiscovery : public std::enable_shared_from_this<ServiceDiscovery> {
 public:
  struct Options {
    ServiceName service;
    DiscoveryMode mode = DiscoveryMode::kWatch;
    Millis poll_interval{1000};  // kPoll: time between reads of the list
    Millis resync{30000};        // both: slow full re-check; 0 disables
    bool acknowledge = true;     // keep /callers/<service>/<caller-id>
  };
  using ChangeListener =
      std::function<void(const std::shared_ptr<const ServiceView>&)>;

  // `session` must stay valid until Stop() returned. It does not need to be
  // connected yet.
  static std::shared_ptr<ServiceDiscovery> Create(
      boost::asio::any_io_executor executor, ZkSession* session,
      Options options);
  ~ServiceDiscovery();
  ServiceDiscovery(const ServiceDiscovery&) = delete;
  ServiceDiscovery& operator=(const ServiceDiscovery&) = delete;

  void AddChangeListener(ChangeListener listener);

  // Starts reading in the background; returns at once.
  void Start();
  // Stops every read and timer; see the threading notes above.
  void Stop();

  // The next instance in smooth weighted round-robin order, or nullopt if
  // the list is empty. No ZooKeeper call, no lock held across anything.
  std::optional<Endpoint> Pick();

  // The current view (never null).
  std::shared_ptr<const ServiceView> Snapshot() const;
  uint64_t generation() const { return Snapshot()->generation; }

  const Options& options() const { return options_; }
  // <hostname>-<pid>-<n>, the name of our /callers node; empty when not
  // acknowledging (turned off, or the hostname makes no valid id).
  const std::string& caller_id() const { return caller_id_; }

 private:
  struct Entry;
  struct Published;

  ServiceDiscovery(boost::asio::any_io_executor executor, ZkSession* session,
                   Options options);

  // Everything below runs on strand_.
  void OnSessionEvent(const SessionEvent& e);
  void ReadChildren();
  void OnChildren(const Result<Children>& r, bool with_watch);
  void OnDirExists(const Result<std::optional<NodeStat>>& r);
  void ApplyChildren(const std::vector<std::string>& names);
  void Fetch(const std::string& name);
  void OnFetched(const std::string& name, uint64_t token, uint64_t seq,
                 bool with_watch, const Result<NodeData>& r);
  void Verify(const std::string& name);
  void OnVerified(const std::string& name, uint64_t token, bool with_watch,
                  const Result<std::optional<NodeStat>>& r);
  void OnDataWatch(const std::string& name, uint64_t token);
  void AcceptRecord(Entry* entry, const NodeData& data);
  void MaybeCompleteCycle();
  void MarkStale(const std::string& reason);
  void ListChanged();
  // Publishes a new view. The instance list is carried over from the
  // previous view unless `list_too` (the end of a read) or, in watch mode
  // only, after the first complete read.
  void Publish(bool list_too = false);
  void ArmTimer();
  void OnTimer();
  // Acknowledgements: writes our CallerRecord if what is served differs
  // from what was last written (or our node is not of this session).
  void MaybeAcknowledge();
  void WriteAcknowledgement();
  void CreateCallerNode(const std::string& json, uint64_t generation,
                        int64_t pzxid, int64_t sid, const AclList& acl,
                        bool replace);
  void OnAcknowledged(const Status& s, uint64_t generation, int64_t pzxid,
                      int64_t sid);

  // Issues one ZooKeeper call unless stopped; false if stopped.
  template <typename Fn>
  bool CallZk(Fn&& fn);
  // Wraps a callback so that it runs on strand_ while we live and run.
  template <typename Arg, typename Fn>
  std::function<void(Arg)> OnStrand(Fn fn);

  const Options options_;
  const std::string dir_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  boost::asio::steady_timer timer_;

  // Guards session_ against Stop(): a call is either issued before Stop()
  // returns or never.
  std::mutex zk_mu_;
  ZkSession* session_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> started_{false};

  std::vector<ChangeListener> listeners_;

  // Strand state.
  std::map<std::string, Entry> entries_;  // valid names only
  std::map<std::string, std::string> bad_names_;
  std::set<std::string> logged_;  // "name\nreason" already logged
  uint64_t next_token_ = 1;
  bool children_in_flight_ = false;
  bool children_again_ = false;
  bool children_armed_ = false;  // a children/exists watch is pending
  bool service_exists_ = false;
  bool cycle_open_ = false;
  Status cycle_error_;
  int outstanding_ = 0;  // payload and stat reads in flight
  bool list_dirty_ = false;
  bool loaded_ = false;
  uint64_t refreshes_ = 0;
  uint64_t failed_reads_ = 0;
  uint64_t generation_ = 0;
  std::optional<WallTime> last_refresh_;
  bool stale_ = true;
  std::string stale_reason_ = "not read yet";
  std::optional<WallTime> stale_since_;
  std::chrono::steady_clock::time_point last_verify_;

  // Acknowledgement state (strand, except the constants).
  std::string caller_id_;  // empty: not acknowledging
  std::string caller_path_;
  std::string host_;
  std::vector<std::string> ips_;
  int64_t children_pzxid_ = 0;  // of the last children read
  int64_t served_pzxid_ = 0;    // of the read behind the list served now
  int64_t ack_session_ = 0;     // session our node was created in; 0: none
  bool ack_in_flight_ = false;
  bool ack_refused_ = false;    // ZooKeeper refused; until a new session
  uint64_t acked_generation_ = 0;
  int64_t acked_pzxid_ = -1;    // -1: nothing written
  // Instances named by the write in flight (one at a time) and by the last
  // one written: a child's record read after its children read changes the
  // count at the same pzxid, and the node should not say less than is served.
  uint32_t writing_instances_ = 0;
  uint32_t acked_instances_ = 0;

  std::shared_ptr<const Published> published_;  // atomic_load/atomic_store
  std::atomic<uint64_t> next_pick_{0};
};

}  // namespace zkroll::client

#endif  // ZKROLL_CLIENT_DISCOVERY_H_
