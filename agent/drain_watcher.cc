#include "agent/drain_watcher.h"

#include <glog/logging.h>

#include <algorithm>

#include "common/paths.h"
#include "common/payload.h"

namespace zkroll::agent {
namespace {

bool Printable(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
  });
}

}  // namespace

DrainRequestView ValidateDrainRequest(const std::string& data,
                                      const std::string& path) {
  DrainRequestView v;
  auto r = ParsePayload<proto::DrainRequest>(data, path);
  if (!r.ok()) {
    v.error = r.status().message();
    return v;
  }
  const proto::DrainRequest& q = *r;
  if (q.deploy_id().empty() || q.deploy_id().size() > 128 ||
      !Printable(q.deploy_id())) {
    v.error = path + ": deploy_id must be 1..128 printable characters";
    return v;
  }
  if (q.by().size() > 256 || !Printable(q.by())) {
    v.error = path + ": by must be at most 256 printable characters";
    return v;
  }
  v.request = q;
  v.request.set_interval_ms(std::clamp(q.interval_ms(), kMinObserveIntervalMs,
                                       kMaxObserveIntervalMs));
  v.valid = true;
  return v;
}

std::shared_ptr<DrainWatcher> DrainWatcher::Create(
    ZkSession* session, boost::asio::any_io_executor ex, ServiceName service,
    Millis resync, OnUpdate on_update) {
  return std::shared_ptr<DrainWatcher>(new DrainWatcher(
      session, ex, std::move(service), resync, std::move(on_update)));
}

DrainWatcher::DrainWatcher(ZkSession* session, boost::asio::any_io_executor ex,
                           ServiceName service, Millis resync,
                           OnUpdate on_update)
    : session_(session),
      service_(std::move(service)),
      on_update_(std::move(on_update)),
      loop_(ex, resync) {}

void DrainWatcher::SetInstances(std::set<std::string> mine) {
  if (mine == mine_) return;
  mine_ = std::move(mine);
  Refresh();
}

void DrainWatcher::Start() {
  std::weak_ptr<DrainWatcher> weak = shared_from_this();
  loop_.Start(weak, [weak](uint64_t epoch) {
    if (auto self = weak.lock()) self->Read(epoch);
  });
}

void DrainWatcher::Stop() { loop_.Stop(); }

void DrainWatcher::Refresh() { loop_.Refresh(); }

void DrainWatcher::Invalidate() {
  view_.known = false;
  armed_ = false;
  data_armed_.clear();
  loop_.Invalidate();
}

void DrainWatcher::Read(uint64_t epoch) {
  auto self = shared_from_this();
  const std::string dir = paths::DrainDir(service_);
  std::weak_ptr<DrainWatcher> weak = self;
  auto on_children = [weak](const WatchEvent&) {
    if (auto s = weak.lock()) {
      s->armed_ = false;
      s->Refresh();
    }
  };
  const bool with_watch = !armed_;
  session_->GetChildren(
      dir, with_watch ? ZkSession::WatchCallback(on_children) : nullptr,
      [self, epoch, dir, with_watch, on_children](Result<Children> kids) {
        if (!self->loop_.Current(epoch)) return;
        if (kids.ok()) {
          if (with_watch) self->armed_ = true;
          std::vector<std::string> names;
          for (const auto& n : kids->names) {
            if (self->mine_.count(n)) names.push_back(n);
          }
          self->ReadRequests(epoch, std::move(names));
          return;
        }
        if (kids.status().code() != StatusCode::kNotFound) {
          return self->Fail(epoch, kids.status());
        }
        // No /drain/<service> yet: wait for it with an exists watch.
        self->session_->Exists(
            dir, on_children, [self, epoch](Result<std::optional<NodeStat>> e) {
              if (!self->loop_.Current(epoch)) return;
              if (!e.ok()) return self->Fail(epoch, e.status());
              if (e->has_value()) {
                self->loop_.Restart();  // created meanwhile
                return;
              }
              self->armed_ = true;
              self->Finish(epoch, DrainView{});
            });
      });
}

void DrainWatcher::ReadRequests(uint64_t epoch,
                                std::vector<std::string> names) {
  if (names.empty()) return Finish(epoch, DrainView{});
  struct Pending {
    DrainView view;
    size_t left;
  };
  auto pending = std::make_shared<Pending>(Pending{DrainView{}, names.size()});
  auto self = shared_from_this();
  std::weak_ptr<DrainWatcher> weak = self;
  for (const std::string& name : names) {
    const std::string path = paths::DrainDir(service_) + "/" + name;
    const bool with_watch = !data_armed_.count(name);
    ZkSession::WatchCallback watch;
    if (with_watch) {
      watch = [weak, name](const WatchEvent&) {
        if (auto s = weak.lock()) {
          s->data_armed_.erase(name);
          s->Refresh();
        }
      };
    }
    session_->Get(
        path, watch,
        [self, epoch, pending, name, path, with_watch](Result<NodeData> d) {
          if (!self->loop_.Current(epoch)) return;
          if (d.ok()) {
            if (with_watch) self->data_armed_.insert(name);
            DrainRequestView v = ValidateDrainRequest(d->data, path);
            v.owner = d->stat.ephemeral_owner;
            // Bounded: a writer rewriting bad payloads cannot grow it forever.
            if (self->reported_bad_.size() > 1000) self->reported_bad_.clear();
            if (!v.valid &&
                self->reported_bad_.insert({path, d->stat.mzxid}).second) {
              LOG(WARNING) << "drain request " << path
                           << " is not valid; not observing traffic for it: "
                           << v.error;
            }
            pending->view.requests[name] = std::move(v);
          } else if (d.status().code() != StatusCode::kNotFound) {
            // Unreadable: keep what we knew, so a transient error does not
            // stop an observation under way.
            auto it = self->view_.requests.find(name);
            if (it != self->view_.requests.end()) {
              pending->view.requests[name] = it->second;
            }
          }
          if (--pending->left == 0)
            self->Finish(epoch, std::move(pending->view));
        });
  }
}

void DrainWatcher::Finish(uint64_t epoch, DrainView view) {
  if (!loop_.End(epoch)) return;
  view.known = true;
  view_ = std::move(view);
  on_update_(view_);
  loop_.Next();
}

void DrainWatcher::Fail(uint64_t epoch, const Status& s) {
  if (!loop_.End(epoch)) return;
  LOG(WARNING) << "cannot read drain requests of service " << service_.str()
               << ": " << s.ToString()
               << (s.IsRetryable() ? " (will retry after reconnect)" : "");
  loop_.Next();
}

}  // namespace zkroll::agent
