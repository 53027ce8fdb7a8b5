#include "agent/pause_watcher.h"

#include <glog/logging.h>

#include "common/paths.h"
#include "common/payload.h"
#include "zkroll.pb.h"

namespace zkroll::agent {

bool PauseSnapshot::Forbids(const InstanceAddress& address,
                            WallTime now) const {
  const PauseFlagInfo* f = Find(address);
  if (f == nullptr) return false;
  if (!f->parsed) return true;  // fail safe
  return !(f->expires_at && *f->expires_at <= now);
}

const PauseFlagInfo* PauseSnapshot::Find(const InstanceAddress& address) const {
  auto it = flags.find(address.NodeName());
  return it == flags.end() ? nullptr : &it->second;
}

std::shared_ptr<PauseWatcher> PauseWatcher::Create(
    ZkSession* session, boost::asio::any_io_executor ex, ServiceName service,
    Millis resync, OnUpdate on_update) {
  return std::shared_ptr<PauseWatcher>(new PauseWatcher(
      session, ex, std::move(service), resync, std::move(on_update)));
}

PauseWatcher::PauseWatcher(ZkSession* session, boost::asio::any_io_executor ex,
                           ServiceName service, Millis resync,
                           OnUpdate on_update)
    : session_(session),
      service_(std::move(service)),
      on_update_(std::move(on_update)),
      loop_(ex, resync),
      expiry_timer_(ex) {}

void PauseWatcher::Start() {
  std::weak_ptr<PauseWatcher> weak = shared_from_this();
  loop_.Start(weak, [weak](uint64_t epoch) {
    if (auto self = weak.lock()) self->Read(epoch);
  });
}

void PauseWatcher::Stop() {
  loop_.Stop();
  expiry_timer_.cancel();
}

void PauseWatcher::Invalidate() {
  snapshot_.known = false;
  armed_ = false;
  // A read in flight belongs to the dead session; start over.
  loop_.Invalidate();
}

uint64_t PauseWatcher::Refresh() {
  const uint64_t next = reads_started_ + 1;
  loop_.Refresh();
  return next;
}

ZkSession::WatchCallback PauseWatcher::MakeWatcher() {
  std::weak_ptr<PauseWatcher> weak = shared_from_this();
  return [weak](const WatchEvent&) {
    if (auto self = weak.lock()) {
      self->armed_ = false;
      self->Refresh();
    }
  };
}

void PauseWatcher::Read(uint64_t epoch) {
  ++reads_started_;
  auto self = shared_from_this();
  const std::string dir = paths::PauseDir(service_);
  // 1. The version of /pause, read before the children of /pause/<service>.
  session_->Exists(paths::kPauseRoot, nullptr, [self, epoch, dir](
                                                   Result<std::optional<NodeStat>> root) {
    if (!self->loop_.Current(epoch)) return;
    if (!root.ok()) return self->Fail(epoch, root.status());
    if (!root->has_value()) {
      return self->Fail(epoch, NotFound(std::string(paths::kPauseRoot) +
                                        " does not exist; run 'zkroll init'"));
    }
    int32_t root_version = (*root)->version;
    bool with_watch = !self->armed_;
    // 2. The flags and the version of /pause/<service>.
    self->session_->GetChildren(
        dir, with_watch ? self->MakeWatcher() : nullptr,
        [self, epoch, dir, root_version, with_watch](Result<Children> kids) {
          if (!self->loop_.Current(epoch)) return;
          if (kids.ok()) {
            if (with_watch) self->armed_ = true;
            PauseSnapshot snap;
            snap.guard = {dir, kids->stat.version};
            self->ReadFlags(epoch, std::move(snap), kids->names);
            return;
          }
          if (kids.status().code() != StatusCode::kNotFound) {
            return self->Fail(epoch, kids.status());
          }
          // No /pause/<service>: guard on /pause, and wait for the node.
          self->session_->Exists(
              dir, self->MakeWatcher(),
              [self, epoch, root_version](Result<std::optional<NodeStat>> e) {
                if (!self->loop_.Current(epoch)) return;
                if (!e.ok()) return self->Fail(epoch, e.status());
                if (e->has_value()) {
                  // Created meanwhile: read again from the top.
                  self->loop_.Restart();
                  return;
                }
                self->armed_ = true;
                PauseSnapshot snap;
                snap.guard = {paths::kPauseRoot, root_version};
                self->Finish(epoch, std::move(snap));
              });
        });
  });
}

void PauseWatcher::ReadFlags(uint64_t epoch, PauseSnapshot snap,
                             std::vector<std::string> names) {
  if (names.empty()) return Finish(epoch, std::move(snap));
  struct Pending {
    PauseSnapshot snap;
    size_t left;
  };
  auto pending = std::make_shared<Pending>(Pending{std::move(snap), names.size()});
  auto self = shared_from_this();
  for (const std::string& name : names) {
    std::string path = paths::PauseDir(service_) + "/" + name;
    session_->Get(path, nullptr, [self, epoch, pending, name, path](Result<NodeData> d) {
      if (!self->loop_.Current(epoch)) return;
      PauseFlagInfo info;
      if (d.ok()) {
        auto flag = ParsePayload<proto::PauseFlag>(d->data, path);
        if (flag.ok()) {
          info.parsed = true;
          info.by = flag->by();
          info.reason = flag->reason();
          info.since = FormatTimestamp(flag->since(), flag->has_since());
          // A bad expires_at fails the parse above (it is a Timestamp).
          if (flag->has_expires_at()) {
            info.expires_at = FromTimestamp(flag->expires_at());
          }
        } else {
          info.error = flag.status().message();
        }
        if (!info.parsed && self->reported_bad_.insert(path).second) {
          LOG(WARNING) << "pause flag " << path
                       << " cannot be parsed; treating it as a pause: "
                       << info.error;
        }
        pending->snap.flags[name] = info;
      } else if (d.status().code() != StatusCode::kNotFound) {
        // Unreadable but present: fail safe, count it as a pause.
        info.error = d.status().message();
        pending->snap.flags[name] = info;
      }
      if (--pending->left == 0) self->Finish(epoch, std::move(pending->snap));
    });
  }
}

void PauseWatcher::Finish(uint64_t epoch, PauseSnapshot snap) {
  if (!loop_.End(epoch)) return;
  snap.known = true;
  snap.read = reads_started_;
  snapshot_ = std::move(snap);
  ArmExpiry();
  on_update_(snapshot_);
  loop_.Next();
}

void PauseWatcher::Fail(uint64_t epoch, const Status& s) {
  if (!loop_.End(epoch)) return;
  LOG(WARNING) << "cannot read pause flags of service " << service_.str()
               << ": " << s.ToString()
               << (s.IsRetryable() ? " (will retry after reconnect)" : "");
  loop_.Next();
}

void PauseWatcher::ArmExpiry() {
  std::optional<WallTime> earliest;
  WallTime now = std::chrono::system_clock::now();
  for (const auto& [name, f] : snapshot_.flags) {
    if (f.parsed && f.expires_at && *f.expires_at > now &&
        (!earliest || *f.expires_at < *earliest)) {
      earliest = f.expires_at;
    }
  }
  expiry_timer_.cancel();
  if (!earliest) return;
  auto wait = std::chrono::duration_cast<Millis>(*earliest - now) + Millis(5);
  std::weak_ptr<PauseWatcher> weak = shared_from_this();
  expiry_timer_.expires_after(wait);
  expiry_timer_.async_wait([weak](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || !self->loop_.running()) return;
    LOG(INFO) << "a manual pause of service " << self->service_.str()
              << " expired; re-reading pause flags";
    self->Refresh();
  });
}

}  // namespace zkroll::agent
