#include "client/discovery.h"

#include <arpa/inet.h>
#include <glog/logging.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <sstream>
#include <utility>

#include "client/weighted_round_robin.h"
#include "common/clock.h"
#include "common/instance_record.h"
#include "common/paths.h"
#include "common/payload.h"

namespace zkroll::client {

namespace asio = boost::asio;

Result<DiscoveryMode> ParseDiscoveryMode(std::string_view text) {
  if (text == "watch") return DiscoveryMode::kWatch;
  if (text == "poll") return DiscoveryMode::kPoll;
  return InvalidArgument("bad discovery mode " + QuoteForMessage(text) +
                         ": expected 'watch' or 'poll'");
}

const char* DiscoveryModeName(DiscoveryMode mode) {
  return mode == DiscoveryMode::kWatch ? "watch" : "poll";
}

bool ServiceView::Contains(const InstanceAddress& address) const {
  return std::any_of(
      instances.begin(), instances.end(),
      [&](const DiscoveredInstance& i) { return i.address == address; });
}

std::string ServiceView::Describe() const {
  std::ostringstream out;
  out << instances.size() << " instance" << (instances.size() == 1 ? "" : "s")
      << ", generation " << generation << ", " << refreshes << " refreshes";
  if (!skipped.empty()) out << ", " << skipped.size() << " skipped";
  if (stale) {
    out << ", stale";
    if (stale_since) out << " since " << FormatRfc3339(*stale_since);
    out << ": " << stale_reason;
  } else {
    out << ", fresh";
  }
  return out.str();
}

// One valid child of the service node.
struct ServiceDiscovery::Entry {
  uint64_t token = 0;  // tells this entry from a later one of the same name
  InstanceAddress address;
  std::optional<DiscoveredInstance> instance;  // set when usable
  std::string bad_reason;                      // set when the record is bad
  bool have_stat = false;
  int64_t czxid = 0;
  int64_t mzxid = 0;
  bool armed = false;      // a data/exists watch of this session is pending
  bool dirty = true;       // the payload must be (re)read
  uint64_t dirty_seq = 0;  // bumped by every invalidation
  bool busy = false;       // a read or stat of this node is in flight
};

struct ServiceDiscovery::Published {
  std::shared_ptr<const ServiceView> view;
  std::vector<uint32_t> schedule;  // indexes into view->instances
};

namespace {

// Numbers the discovery clients of this process: <hostname>-<pid>-<n>.
std::atomic<uint64_t> next_caller_number{1};

std::string Hostname() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) return "";
  return host;
}

// This host's addresses, for matching remote peers of an instance with
// their caller (the coordinator cannot tell processes of one host apart by
// address; the design doc says what that means).
std::vector<std::string> HostAddresses() {
  std::set<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return {};
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    if (a->ifa_addr->sa_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
      if (!inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf)) continue;
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      auto* in = reinterpret_cast<sockaddr_in6*>(a->ifa_addr);
      if (!inet_ntop(AF_INET6, &in->sin6_addr, buf, sizeof buf)) continue;
    } else {
      continue;
    }
    auto canonical = CanonicalIp(buf);
    if (canonical.ok()) out.insert(*canonical);
  }
  freeifaddrs(list);
  return {out.begin(), out.end()};
}

bool SameInstances(const std::vector<DiscoveredInstance>& a,
                   const std::vector<DiscoveredInstance>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].address != b[i].address || a[i].weight != b[i].weight ||
        a[i].czxid != b[i].czxid || a[i].mzxid != b[i].mzxid) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::shared_ptr<ServiceDiscovery> ServiceDiscovery::Create(
    asio::any_io_executor executor, ZkSession* session, Options options) {
  CHECK(session != nullptr);
  CHECK(!options.service.empty()) << "ServiceDiscovery needs a service";
  return std::shared_ptr<ServiceDiscovery>(
      new ServiceDiscovery(std::move(executor), session, std::move(options)));
}

ServiceDiscovery::ServiceDiscovery(asio::any_io_executor executor,
                                   ZkSession* session, Options options)
    : options_(std::move(options)),
      dir_(paths::ServiceDir(options_.service)),
      strand_(asio::make_strand(executor)),
      timer_(strand_),
      session_(session) {
  if (options_.acknowledge) {
    host_ = Hostname();
    const std::string id = host_ + "-" + std::to_string(::getpid()) + "-" +
                           std::to_string(next_caller_number.fetch_add(1));
    auto valid = HostId::Parse(id);
    if (valid.ok()) {
      caller_id_ = id;
      caller_path_ = paths::CallerNode(options_.service, *valid);
      ips_ = HostAddresses();
    } else {
      LOG(WARNING) << "not acknowledging the list of " << dir_
                   << ": the hostname makes no valid caller id ("
                   << valid.status().message()
                   << "); deploys with --drain auto will see this caller as "
                      "unknown";
    }
  }
  auto view = std::make_shared<ServiceView>();
  view->service = options_.service;
  view->stale_reason = stale_reason_;
  auto first = std::make_shared<Published>();
  first->view = std::move(view);
  std::atomic_store(&published_,
                    std::shared_ptr<const Published>(std::move(first)));
}

ServiceDiscovery::~ServiceDiscovery() = default;

template <typename Fn>
bool ServiceDiscovery::CallZk(Fn&& fn) {
  std::lock_guard<std::mutex> l(zk_mu_);
  if (session_ == nullptr) return false;
  fn(session_);
  return true;
}

template <typename Arg, typename Fn>
std::function<void(Arg)> ServiceDiscovery::OnStrand(Fn fn) {
  std::weak_ptr<ServiceDiscovery> weak = weak_from_this();
  auto strand = strand_;
  return [weak, strand, fn = std::move(fn)](Arg arg) {
    asio::post(strand, [weak, fn, arg = std::move(arg)] {
      auto self = weak.lock();
      if (!self || self->stopped_) return;
      fn(self.get(), arg);
    });
  };
}

void ServiceDiscovery::AddChangeListener(ChangeListener listener) {
  CHECK(!started_) << "add change listeners before Start()";
  listeners_.push_back(std::move(listener));
}

void ServiceDiscovery::Start() {
  if (started_.exchange(true)) return;
  CallZk([&](ZkSession* s) {
    s->AddListener(OnStrand<SessionEvent>(
        [](ServiceDiscovery* self, const SessionEvent& e) {
          self->OnSessionEvent(e);
        }));
  });
  asio::post(strand_, [self = shared_from_this()] {
    if (self->stopped_) return;
    self->last_verify_ = std::chrono::steady_clock::now();
    LOG(INFO) << "discovery of " << self->dir_ << " started in "
              << DiscoveryModeName(self->options_.mode) << " mode";
    self->ReadChildren();
    self->ArmTimer();
  });
}

void ServiceDiscovery::Stop() {
  {
    std::lock_guard<std::mutex> l(zk_mu_);
    // A caller that stops serving the list is gone: say so at once rather
    // than when the session ends. The completion is not ours to wait for.
    if (session_ != nullptr && !caller_path_.empty() && started_) {
      session_->Delete(caller_path_, -1, [](Status) {});
    }
    session_ = nullptr;
  }
  stopped_ = true;
  asio::post(strand_, [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->timer_.cancel();
  });
}

std::optional<Endpoint> ServiceDiscovery::Pick() {
  std::shared_ptr<const Published> p = std::atomic_load(&published_);
  if (p->schedule.empty()) return std::nullopt;
  uint64_t n = next_pick_.fetch_add(1, std::memory_order_relaxed);
  const DiscoveredInstance& i =
      p->view->instances[p->schedule[n % p->schedule.size()]];
  return Endpoint{i.address, i.weight};
}

std::shared_ptr<const ServiceView> ServiceDiscovery::Snapshot() const {
  return std::atomic_load(&published_)->view;
}

// --- strand ---------------------------------------------------------------

void ServiceDiscovery::OnSessionEvent(const SessionEvent& e) {
  const bool watch = options_.mode == DiscoveryMode::kWatch;
  switch (e.kind) {
    case SessionEvent::Kind::kDisconnected:
      MarkStale("connection to ZooKeeper lost; serving the last known list");
      Publish();
      break;
    case SessionEvent::Kind::kAuthFailed:
      MarkStale(
          "ZooKeeper refused our credentials; serving the last known "
          "list");
      Publish();
      break;
    case SessionEvent::Kind::kExpired:
      MarkStale(
          "ZooKeeper session expired; serving the last known list "
          "until a new session has read it");
      children_armed_ = false;
      for (auto& [name, entry] : entries_) entry.armed = false;
      Publish();
      break;
    case SessionEvent::Kind::kNewSession:
      // Watches died with the old session and anything may have changed
      // meanwhile: read everything again with fresh watches.
      children_armed_ = false;
      for (auto& [name, entry] : entries_) {
        entry.armed = false;
        entry.dirty = true;
        ++entry.dirty_seq;
      }
      if (watch) ReadChildren();
      // Our /callers node died with the old session.
      ack_session_ = 0;
      ack_refused_ = false;
      MaybeAcknowledge();
      break;
    case SessionEvent::Kind::kReconnected:
      // The client library re-registers our watches, but a change made
      // while we were away may have fired for a connection we never saw.
      if (watch) ReadChildren();
      MaybeAcknowledge();  // a write that failed with the connection
      break;
  }
}

void ServiceDiscovery::ReadChildren() {
  if (children_in_flight_) {
    children_again_ = true;
    return;
  }
  children_in_flight_ = true;
  children_again_ = false;
  const bool with_watch =
      options_.mode == DiscoveryMode::kWatch && !children_armed_;
  ZkSession::WatchCallback watcher;
  if (with_watch) {
    watcher =
        OnStrand<WatchEvent>([](ServiceDiscovery* self, const WatchEvent&) {
          self->children_armed_ = false;
          self->ReadChildren();
        });
  }
  auto done = OnStrand<Result<Children>>(
      [with_watch](ServiceDiscovery* self, const Result<Children>& r) {
        self->OnChildren(r, with_watch);
      });
  if (!CallZk([&](ZkSession* s) { s->GetChildren(dir_, watcher, done); })) {
    children_in_flight_ = false;
  }
}

void ServiceDiscovery::OnChildren(const Result<Children>& r, bool with_watch) {
  children_in_flight_ = false;
  if (r.ok()) {
    if (with_watch) children_armed_ = true;
    service_exists_ = true;
    children_pzxid_ = r->stat.pzxid;
    ApplyChildren(r->names);
  } else if (r.status().code() == StatusCode::kNotFound) {
    service_exists_ = false;
    if (options_.mode == DiscoveryMode::kWatch) {
      // No children watch can be set on a missing node; an exists watch
      // tells us when it is created.
      children_in_flight_ = true;
      auto watcher =
          OnStrand<WatchEvent>([](ServiceDiscovery* self, const WatchEvent&) {
            self->children_armed_ = false;
            self->ReadChildren();
          });
      auto done = OnStrand<Result<std::optional<NodeStat>>>(
          [](ServiceDiscovery* self, const Result<std::optional<NodeStat>>& e) {
            self->OnDirExists(e);
          });
      if (!CallZk([&](ZkSession* s) { s->Exists(dir_, watcher, done); })) {
        children_in_flight_ = false;
      }
      return;
    }
    ApplyChildren({});
  } else {
    ++failed_reads_;
    MarkStale("reading the children of " + dir_ + " failed: " +
              r.status().ToString() + "; serving the last known list");
    Publish();
  }
  if (children_again_) ReadChildren();
}

void ServiceDiscovery::OnDirExists(const Result<std::optional<NodeStat>>& r) {
  children_in_flight_ = false;
  if (!r.ok()) {
    ++failed_reads_;
    MarkStale("checking " + dir_ + " failed: " + r.status().ToString() +
              "; serving the last known list");
    Publish();
  } else if (r->has_value()) {
    // Created between our two calls: read it now, with a children watch.
    children_armed_ = false;
    children_again_ = true;
  } else {
    children_armed_ = true;  // the exists watch fires on creation
    ApplyChildren({});
  }
  if (children_again_) ReadChildren();
}

void ServiceDiscovery::ApplyChildren(const std::vector<std::string>& names) {
  std::set<std::string> current(names.begin(), names.end());
  bool removed = false;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (current.count(it->first) == 0) {
      removed = removed || it->second.instance.has_value() ||
                !it->second.bad_reason.empty();
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  std::map<std::string, std::string> bad;
  for (const std::string& name : current) {
    if (entries_.count(name) != 0) continue;
    auto address = InstanceAddress::ParseNodeName(name);
    if (!address.ok()) {
      bad[name] = address.status().message();
      if (logged_.insert(name + "\n" + bad[name]).second) {
        LOG(WARNING) << "skipping child " << QuoteForMessage(name) << " of "
                     << dir_ << ": " << address.status().message();
      }
      continue;
    }
    Entry entry;
    entry.token = next_token_++;
    entry.address = *address;
    entries_.emplace(name, std::move(entry));
  }
  if (bad != bad_names_) {
    bad_names_ = std::move(bad);
    removed = true;  // the skipped list changed
  }
  // Forget log marks of names that are gone, so a name that comes back
  // bad is logged again.
  for (auto it = logged_.begin(); it != logged_.end();) {
    if (current.count(it->substr(0, it->find('\n'))) == 0) {
      it = logged_.erase(it);
    } else {
      ++it;
    }
  }

  // A failed read of an earlier cycle left its entry dirty; it is read
  // again now, so only this cycle's reads decide whether we are fresh.
  cycle_error_ = Status::Ok();
  cycle_open_ = true;
  for (auto& [name, entry] : entries_) {
    if (entry.dirty && !entry.busy) Fetch(name);
  }
  if (removed) ListChanged();
  MaybeCompleteCycle();
}

void ServiceDiscovery::Fetch(const std::string& name) {
  Entry& e = entries_.at(name);
  const uint64_t token = e.token;
  const uint64_t seq = e.dirty_seq;
  const bool with_watch = options_.mode == DiscoveryMode::kWatch && !e.armed;
  ZkSession::WatchCallback watcher;
  if (with_watch) {
    watcher = OnStrand<WatchEvent>(
        [name, token](ServiceDiscovery* self, const WatchEvent&) {
          self->OnDataWatch(name, token);
        });
  }
  auto done = OnStrand<Result<NodeData>>(
      [name, token, seq, with_watch](ServiceDiscovery* self,
                                     const Result<NodeData>& r) {
        self->OnFetched(name, token, seq, with_watch, r);
      });
  const std::string path = paths::InstanceNode(options_.service, e.address);
  if (CallZk([&](ZkSession* s) { s->Get(path, watcher, done); })) {
    e.busy = true;
    ++outstanding_;
  }
}

void ServiceDiscovery::OnFetched(const std::string& name, uint64_t token,
                                 uint64_t seq, bool with_watch,
                                 const Result<NodeData>& r) {
  --outstanding_;
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.token != token) {
    MaybeCompleteCycle();  // read of a node that has left the list since
    return;
  }
  Entry& e = it->second;
  e.busy = false;
  if (r.ok()) {
    if (with_watch) e.armed = true;
    if (e.dirty_seq == seq) e.dirty = false;
    AcceptRecord(&e, *r);
    if (e.dirty) Fetch(name);  // changed again while we were reading
  } else if (r.status().code() == StatusCode::kNotFound) {
    // Deleted since the children were read: it leaves now, the children
    // read that follows confirms it.
    bool was_listed = e.instance.has_value() || !e.bad_reason.empty();
    entries_.erase(it);
    if (was_listed) ListChanged();
  } else {
    // The entry stays dirty and is read again with the next list.
    ++failed_reads_;
    cycle_error_ = r.status().WithContext(
        "reading " + paths::InstanceNode(options_.service, e.address));
    MarkStale(cycle_error_.ToString() + "; serving the last known list");
    Publish();
  }
  MaybeCompleteCycle();
}

void ServiceDiscovery::OnDataWatch(const std::string& name, uint64_t token) {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.token != token) return;
  Entry& e = it->second;
  e.armed = false;
  e.dirty = true;
  ++e.dirty_seq;
  if (!e.busy) Fetch(name);
}

void ServiceDiscovery::Verify(const std::string& name) {
  Entry& e = entries_.at(name);
  const uint64_t token = e.token;
  const bool with_watch = options_.mode == DiscoveryMode::kWatch && !e.armed;
  ZkSession::WatchCallback watcher;
  if (with_watch) {
    watcher = OnStrand<WatchEvent>(
        [name, token](ServiceDiscovery* self, const WatchEvent&) {
          self->OnDataWatch(name, token);
        });
  }
  auto done = OnStrand<Result<std::optional<NodeStat>>>(
      [name, token, with_watch](ServiceDiscovery* self,
                                const Result<std::optional<NodeStat>>& r) {
        self->OnVerified(name, token, with_watch, r);
      });
  const std::string path = paths::InstanceNode(options_.service, e.address);
  if (CallZk([&](ZkSession* s) { s->Exists(path, watcher, done); })) {
    e.busy = true;
    ++outstanding_;
  }
}

void ServiceDiscovery::OnVerified(const std::string& name, uint64_t token,
                                  bool with_watch,
                                  const Result<std::optional<NodeStat>>& r) {
  --outstanding_;
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.token != token) {
    MaybeCompleteCycle();
    return;
  }
  Entry& e = it->second;
  e.busy = false;
  if (!r.ok()) {
    ++failed_reads_;
    cycle_error_ = r.status().WithContext(
        "checking " + paths::InstanceNode(options_.service, e.address));
    MarkStale(cycle_error_.ToString() + "; serving the last known list");
    Publish();
  } else if (!r->has_value()) {
    bool was_listed = e.instance.has_value() || !e.bad_reason.empty();
    entries_.erase(it);
    if (was_listed) ListChanged();
  } else {
    // On an existing node an exists watch fires on change and deletion,
    // like a data watch.
    if (with_watch) e.armed = true;
    const NodeStat& stat = **r;
    if (!e.have_stat || stat.czxid != e.czxid || stat.mzxid != e.mzxid) {
      e.dirty = true;
      ++e.dirty_seq;
    }
    if (e.dirty) Fetch(name);
  }
  MaybeCompleteCycle();
}

void ServiceDiscovery::AcceptRecord(Entry* e, const NodeData& data) {
  e->have_stat = true;
  e->czxid = data.stat.czxid;
  e->mzxid = data.stat.mzxid;
  const std::string path = paths::InstanceNode(options_.service, e->address);
  std::string bad;
  auto record = ParsePayload<proto::InstanceRecord>(data.data, path);
  if (!record.ok()) {
    bad = record.status().message();
  } else if (Status fit =
                 CheckInstanceRecord(*record, options_.service, e->address);
             !fit.ok()) {
    bad = fit.message();
  }
  std::optional<DiscoveredInstance> usable;
  if (bad.empty()) {
    DiscoveredInstance inst;
    inst.address = e->address;
    inst.weight = std::max<uint32_t>(record->weight(), 1);
    inst.record = std::move(*record);
    inst.czxid = e->czxid;
    inst.mzxid = e->mzxid;
    usable = std::move(inst);
  } else {
    const std::string name = e->address.NodeName();
    if (logged_.insert(name + "\n" + bad).second) {
      LOG(WARNING) << "skipping " << path << ": " << bad;
    }
  }
  bool changed =
      usable.has_value() != e->instance.has_value() || bad != e->bad_reason;
  if (!changed && usable) {
    changed = usable->weight != e->instance->weight ||
              usable->mzxid != e->instance->mzxid ||
              usable->czxid != e->instance->czxid;
  }
  e->instance = std::move(usable);
  e->bad_reason = std::move(bad);
  if (changed) ListChanged();
}

void ServiceDiscovery::MaybeCompleteCycle() {
  if (!cycle_open_ || outstanding_ > 0) return;
  cycle_open_ = false;
  loaded_ = true;
  ++refreshes_;
  bool connected = false;
  CallZk([&](ZkSession* s) { connected = s->connected(); });
  if (cycle_error_.ok() && connected) {
    last_refresh_ = std::chrono::system_clock::now();
    if (stale_ && stale_since_) {
      LOG(INFO) << dir_ << ": list is fresh again after being stale since "
                << FormatRfc3339(*stale_since_);
    } else if (stale_) {
      LOG(INFO) << dir_ << ": first list read";
    }
    stale_ = false;
    stale_reason_.clear();
    stale_since_.reset();
  } else if (!connected) {
    // A read answered just before the connection dropped: the list is as
    // of then, and stays stale until a read on a live connection.
    MarkStale("connection to ZooKeeper lost; serving the last known list");
  }
  cycle_error_ = Status::Ok();
  Publish(/*list_too=*/true);
}

void ServiceDiscovery::MarkStale(const std::string& reason) {
  if (!stale_ || stale_reason_ != reason) {
    if (!stale_since_) stale_since_ = std::chrono::system_clock::now();
    if (stale_reason_ != reason) LOG(WARNING) << dir_ << ": " << reason;
    stale_ = true;
    stale_reason_ = reason;
  }
}

void ServiceDiscovery::ListChanged() {
  list_dirty_ = true;
  // A poll-mode caller sees the list change only at the end of a read,
  // like the callers it stands for. The first list is published whole, at
  // the end of the first read, never instance by instance.
  if (options_.mode == DiscoveryMode::kWatch && loaded_) {
    Publish(/*list_too=*/true);
  }
}

void ServiceDiscovery::Publish(bool list_too) {
  std::shared_ptr<const Published> prev = std::atomic_load(&published_);
  auto view = std::make_shared<ServiceView>();
  view->service = options_.service;
  if (list_too || (options_.mode == DiscoveryMode::kWatch && loaded_)) {
    for (const auto& [name, e] : entries_) {
      if (e.instance) view->instances.push_back(*e.instance);
    }
    std::sort(view->instances.begin(), view->instances.end(),
              [](const DiscoveredInstance& a, const DiscoveredInstance& b) {
                return a.address < b.address;
              });
    for (const auto& [name, reason] : bad_names_) {
      view->skipped.push_back(SkippedChild{name, reason});
    }
    for (const auto& [name, e] : entries_) {
      if (!e.bad_reason.empty()) {
        view->skipped.push_back(SkippedChild{name, e.bad_reason});
      }
    }
    list_dirty_ = false;
    // Every entry is a child of the last children read (entries only leave
    // between reads), so the list served now is no older than that read.
    served_pzxid_ = children_pzxid_;
  } else {
    view->instances = prev->view->instances;
    view->skipped = prev->view->skipped;
  }
  const bool changed = !SameInstances(prev->view->instances, view->instances);
  if (changed) ++generation_;
  view->generation = generation_;
  view->refreshes = refreshes_;
  view->failed_reads = failed_reads_;
  view->loaded = loaded_;
  view->service_exists = service_exists_;
  view->stale = stale_;
  view->stale_reason = stale_reason_;
  view->stale_since = stale_since_;
  view->last_refresh = last_refresh_;
  CallZk([&](ZkSession* s) { view->zk_connected = s->connected(); });

  auto next = std::make_shared<Published>();
  std::vector<uint32_t> weights;
  weights.reserve(view->instances.size());
  for (const auto& i : view->instances) weights.push_back(i.weight);
  next->schedule = SmoothWeightedSchedule(weights);
  next->view = view;
  std::atomic_store(&published_,
                    std::shared_ptr<const Published>(std::move(next)));
  if (changed) {
    VLOG(1) << dir_ << ": " << view->Describe();
    for (auto& listener : listeners_) listener(view);
  }
  MaybeAcknowledge();
}

void ServiceDiscovery::MaybeAcknowledge() {
  if (caller_id_.empty() || !loaded_ || stopped_ || ack_in_flight_ ||
      ack_refused_) {
    return;  // an in-flight write calls us again when it completes
  }
  int64_t sid = 0;
  bool connected = false;
  CallZk([&](ZkSession* s) {
    sid = s->session_id();
    connected = s->connected();
  });
  if (!connected) return;  // kReconnected / kNewSession call us again
  // Only a new children read can make the list lose (or gain) an
  // instance for good: a removal seen first through a data watch is
  // confirmed by the children read that follows, and writing both would
  // cost two writes per change. Record-only changes (a weight) need none.
  // A new child's record read after its children read adds an instance at
  // the same pzxid: that one is written, so the node never says fewer
  // instances than are served (a removal at the same pzxid is left to the
  // children read that follows).
  std::shared_ptr<const Published> p = std::atomic_load(&published_);
  const auto serving = static_cast<uint32_t>(p->view->instances.size());
  if (ack_session_ == sid && acked_pzxid_ == served_pzxid_ &&
      serving <= acked_instances_) {
    return;
  }
  WriteAcknowledgement();
}

void ServiceDiscovery::WriteAcknowledgement() {
  proto::CallerRecord record;
  record.set_service(options_.service.str());
  record.set_caller_id(caller_id_);
  record.set_host(host_);
  for (const auto& ip : ips_) record.add_ips(ip);
  record.set_pid(::getpid());
  record.set_mode(DiscoveryModeName(options_.mode));
  record.set_refresh_interval_ms(static_cast<uint64_t>(
      (options_.mode == DiscoveryMode::kPoll ? options_.poll_interval
                                             : options_.resync)
          .count()));
  record.set_list_pzxid(served_pzxid_);
  std::shared_ptr<const Published> p = std::atomic_load(&published_);
  writing_instances_ = static_cast<uint32_t>(p->view->instances.size());
  record.set_instances(writing_instances_);
  *record.mutable_updated_at() = NowTimestamp();
  const std::string json = ToJson(record);
  const uint64_t generation = generation_;
  const int64_t pzxid = served_pzxid_;
  int64_t sid = 0;
  CallZk([&](ZkSession* s) { sid = s->session_id(); });
  ack_in_flight_ = true;

  if (ack_session_ == sid) {
    auto done = OnStrand<Result<NodeStat>>(
        [generation, pzxid, sid](ServiceDiscovery* self,
                                 const Result<NodeStat>& r) {
          if (!r.ok() && r.status().code() == StatusCode::kNotFound) {
            self->ack_session_ = 0;  // gone (deleted by hand): create again
          }
          self->OnAcknowledged(r.ok() ? Status::Ok() : r.status(), generation,
                               pzxid, sid);
        });
    if (!CallZk([&](ZkSession* s) { s->Set(caller_path_, json, -1, done); })) {
      ack_in_flight_ = false;
    }
    return;
  }
  // A new node: its ACL is that of /callers (what `zkroll init` set), so
  // the tree's owner decides who may read it; open without init.
  auto with_acl = OnStrand<Result<AclList>>(
      [json, generation, pzxid, sid](ServiceDiscovery* self,
                                     const Result<AclList>& acl) {
        AclList use = acl.ok() && !acl->empty() ? *acl : OpenAcl();
        auto ensured = self->OnStrand<Status>(
            [json, generation, pzxid, sid, use](ServiceDiscovery* self,
                                                const Status& st) {
              if (!st.ok()) {
                self->OnAcknowledged(st, generation, pzxid, sid);
                return;
              }
              self->CreateCallerNode(json, generation, pzxid, sid, use,
                                     /*replace=*/true);
            });
        const std::string dir = paths::CallersDir(self->options_.service);
        if (!self->CallZk(
                [&](ZkSession* s) { s->EnsurePath(dir, use, ensured); })) {
          self->ack_in_flight_ = false;
        }
      });
  if (!CallZk([&](ZkSession* s) { s->GetAcl(paths::kCallersRoot, with_acl); })) {
    ack_in_flight_ = false;
  }
}

void ServiceDiscovery::CreateCallerNode(const std::string& json,
                                        uint64_t generation, int64_t pzxid,
                                        int64_t sid, const AclList& acl,
                                        bool replace) {
  auto created = OnStrand<Result<std::string>>(
      [json, generation, pzxid, sid, acl, replace](
          ServiceDiscovery* self, const Result<std::string>& r) {
        if (r.ok()) {
          self->ack_session_ = sid;
          self->OnAcknowledged(Status::Ok(), generation, pzxid, sid);
        } else if (r.status().code() == StatusCode::kAlreadyExists &&
                   replace) {
          // A node of ours from a create that raced a connection loss (or
          // from a session the server has not yet expired): our id is
          // unique to this process, so replace it once.
          auto deleted = self->OnStrand<Status>(
              [json, generation, pzxid, sid, acl](ServiceDiscovery* self,
                                                  const Status&) {
                self->CreateCallerNode(json, generation, pzxid, sid, acl,
                                       /*replace=*/false);
              });
          if (!self->CallZk([&](ZkSession* s) {
                s->Delete(self->caller_path_, -1, deleted);
              })) {
            self->ack_in_flight_ = false;
          }
        } else {
          self->OnAcknowledged(r.status(), generation, pzxid, sid);
        }
      });
  if (!CallZk([&](ZkSession* s) {
        s->Create(caller_path_, json, CreateMode::kEphemeral, acl, created);
      })) {
    ack_in_flight_ = false;
  }
}

void ServiceDiscovery::OnAcknowledged(const Status& s, uint64_t generation,
                                      int64_t pzxid, int64_t sid) {
  ack_in_flight_ = false;
  if (s.ok()) {
    acked_generation_ = generation;
    acked_pzxid_ = pzxid;
    acked_instances_ = writing_instances_;
    VLOG(1) << caller_path_ << ": acknowledged list pzxid " << pzxid
            << " (generation " << generation << ", session " << sid << ")";
    MaybeAcknowledge();  // the latest state, if it changed meanwhile
    return;
  }
  if (s.code() == StatusCode::kPermissionDenied ||
      s.code() == StatusCode::kInvalidArgument) {
    ack_refused_ = true;
    LOG(WARNING) << "cannot acknowledge the list of " << dir_ << " in "
                 << caller_path_ << ": " << s.ToString()
                 << "; serving the list anyway. Give this caller a "
                    "credential that may write /callers, or turn "
                    "acknowledgements off; until then deploys with --drain "
                    "auto run to their cap when this caller talks to the "
                    "instance";
    return;
  }
  // Connection trouble: kReconnected or kNewSession writes again. A write
  // that failed on a live connection (e.g. the parent vanished) is retried
  // with the next change.
  VLOG(1) << caller_path_ << ": acknowledgement failed: " << s.ToString();
}

void ServiceDiscovery::ArmTimer() {
  const Millis period = options_.mode == DiscoveryMode::kPoll
                            ? options_.poll_interval
                            : options_.resync;
  if (period.count() <= 0 || stopped_) return;
  timer_.expires_after(period);
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopped_) return;
    self->OnTimer();
    self->ArmTimer();
  });
}

void ServiceDiscovery::OnTimer() {
  ReadChildren();
  auto now = std::chrono::steady_clock::now();
  bool verify =
      options_.mode == DiscoveryMode::kWatch ||
      (options_.resync.count() > 0 && now - last_verify_ >= options_.resync);
  if (!verify) return;
  last_verify_ = now;
  // Belt and braces: a stat of every cached child catches a change whose
  // watch we missed (or, in poll mode, a re-created node of the same name).
  std::vector<std::string> names;
  for (const auto& [name, e] : entries_) {
    if (!e.busy) names.push_back(name);
  }
  for (const auto& name : names) {
    auto it = entries_.find(name);
    if (it == entries_.end() || it->second.busy) continue;
    if (it->second.dirty) {
      Fetch(name);
    } else {
      Verify(name);
    }
  }
  cycle_open_ = cycle_open_ || outstanding_ > 0;
}

}  // namespace zkroll::client
