#include "agent/switch_watcher.h"

#include <glog/logging.h>

#include "common/paths.h"
#include "common/payload.h"
#include "zkroll.pb.h"

namespace zkroll::agent {
namespace {

// A target's addresses, parsed; the first error found, or none.
struct ParsedTarget {
  std::optional<proto::ForwardTarget> payload;
  std::optional<InstanceAddress> backend;
  std::optional<InstanceAddress> fallback;
  std::string error;
};

ParsedTarget ParseTarget(const std::string& data, const std::string& path,
                         bool in_flight) {
  ParsedTarget t;
  auto p = ParsePayload<proto::ForwardTarget>(data, path);
  if (!p.ok()) {
    t.error = p.status().message();
    return t;
  }
  t.payload = *p;
  const std::string& phase = p->phase();
  bool phase_ok = in_flight ? (phase == "backup" || phase == "verify")
                            : phase == "committed";
  if (!phase_ok) {
    t.error = path + ": phase " + QuoteForMessage(phase) + " is not " +
              (in_flight ? "backup or verify" : "committed");
    return t;
  }
  auto b = InstanceAddress::Parse(p->backend());
  if (!b.ok()) {
    t.error = path + ": backend: " + b.status().message();
    return t;
  }
  t.backend = *b;
  if (!p->fallback().empty()) {
    auto f = InstanceAddress::Parse(p->fallback());
    if (!f.ok()) {
      t.error = path + ": fallback: " + f.status().message();
      return t;
    }
    t.fallback = *f;
  }
  return t;
}

// Why `a` may not be a backend of `id`, or "" if it may.
std::string RefuseBackend(const InstanceId& id, const ForwardConfig& cfg,
                          const SwitchView& view, const InstanceAddress& a) {
  if (a == id.address) {
    return a.ToString() + " is the public address itself (a loop)";
  }
  if (cfg.IsLocalBackend(a)) return "";
  if (view.registered.count(a.ToString())) return "";
  return a.ToString() +
         " is neither a local backend of this instance (forward_backend or "
         "forward_ports) nor a registered instance of service " +
         id.service.str();
}

}  // namespace

std::set<std::string> RemoteBackends(const ForwardConfig& cfg,
                                     const SwitchView& view) {
  std::set<std::string> out;
  auto add = [&](const std::optional<std::string>& data, bool in_flight) {
    if (!data) return;
    ParsedTarget t = ParseTarget(*data, "", in_flight);
    for (const auto& a : {t.backend, t.fallback}) {
      if (a && !cfg.IsLocalBackend(*a)) out.insert(a->ToString());
    }
  };
  add(view.committed, false);
  add(view.in_flight, true);
  return out;
}

ForwardDecision DecideForward(const InstanceId& id, const ForwardConfig& cfg,
                              const SwitchView& view) {
  ForwardDecision d;
  d.backend = cfg.backend;
  d.stable = cfg.backend;
  d.source = "config";
  auto refuse = [&](const ParsedTarget& t, const std::string& why) {
    // The in-flight refusal is the one worth reporting: it is what a
    // coordinator is waiting on.
    d.refused_generation = t.payload ? t.payload->generation() : "";
    d.error = why;
  };
  auto validate = [&](const ParsedTarget& t) -> std::string {
    if (!t.error.empty()) return t.error;
    std::string why = RefuseBackend(id, cfg, view, *t.backend);
    if (why.empty() && t.fallback) {
      why = RefuseBackend(id, cfg, view, *t.fallback);
      if (!why.empty()) why = "fallback " + why;
    }
    return why;
  };
  const std::string committed_path =
      paths::SwitchNode(id.service, id.address);
  if (view.committed && !view.committed->empty()) {
    ParsedTarget t = ParseTarget(*view.committed, committed_path, false);
    std::string why = validate(t);
    if (why.empty()) {
      d.backend = *t.backend;
      d.fallback = t.fallback;
      d.stable = *t.backend;
      d.source = "committed";
      d.generation = t.payload->generation();
    } else {
      refuse(t, "refused the committed target: " + why);
    }
  }
  if (view.in_flight) {
    ParsedTarget t = ParseTarget(
        *view.in_flight, paths::SwitchDeployNode(id.service, id.address), true);
    std::string why = validate(t);
    if (why.empty()) {
      d.backend = *t.backend;
      d.fallback = t.fallback;
      d.source = "deploy";
      d.generation = t.payload->generation();
    } else {
      refuse(t, "refused the in-flight target: " + why);
    }
  }
  if (d.fallback && *d.fallback == d.backend) d.fallback.reset();
  return d;
}

std::shared_ptr<SwitchWatcher> SwitchWatcher::Create(
    ZkSession* session, boost::asio::any_io_executor ex, InstanceId id,
    ForwardConfig cfg, Millis resync, OnUpdate on_update) {
  return std::shared_ptr<SwitchWatcher>(new SwitchWatcher(
      session, ex, std::move(id), std::move(cfg), resync, std::move(on_update)));
}

SwitchWatcher::SwitchWatcher(ZkSession* session,
                             boost::asio::any_io_executor ex, InstanceId id,
                             ForwardConfig cfg, Millis resync,
                             OnUpdate on_update)
    : session_(session),
      id_(std::move(id)),
      cfg_(std::move(cfg)),
      on_update_(std::move(on_update)),
      loop_(ex, resync) {}

void SwitchWatcher::Start() {
  std::weak_ptr<SwitchWatcher> weak = shared_from_this();
  loop_.Start(weak, [weak](uint64_t epoch) {
    if (auto self = weak.lock()) self->Read(epoch);
  });
}

void SwitchWatcher::Stop() { loop_.Stop(); }

void SwitchWatcher::Invalidate() {
  // The view stays as it was (the forwarder keeps its backend), but every
  // watch went with the session.
  committed_armed_ = false;
  deploy_armed_ = false;
  loop_.Invalidate();
}

void SwitchWatcher::Refresh() { loop_.Refresh(); }

ZkSession::WatchCallback SwitchWatcher::MakeWatcher(bool* armed) {
  std::weak_ptr<SwitchWatcher> weak = shared_from_this();
  return [weak, armed](const WatchEvent&) {
    if (auto self = weak.lock()) {
      *armed = false;
      self->Refresh();
    }
  };
}

void SwitchWatcher::ReadNode(
    uint64_t epoch, const std::string& path, bool* armed,
    std::function<void(std::optional<std::string>)> next) {
  auto self = shared_from_this();
  bool with_watch = !*armed;
  session_->Get(path, with_watch ? MakeWatcher(armed) : nullptr,
                [self, epoch, path, armed, with_watch,
                 next](Result<NodeData> d) {
    if (!self->loop_.Current(epoch)) return;
    if (d.ok()) {
      if (with_watch) *armed = true;
      return next(d->data);
    }
    if (d.status().code() != StatusCode::kNotFound) {
      return self->Fail(epoch, d.status());
    }
    // Missing: an exists watch tells us when it appears. A Get watch is not
    // set on a missing node.
    self->session_->Exists(
        path, self->MakeWatcher(armed),
        [self, epoch, path, armed, next](Result<std::optional<NodeStat>> e) {
          if (!self->loop_.Current(epoch)) return;
          if (!e.ok()) return self->Fail(epoch, e.status());
          *armed = true;
          if (e->has_value()) {
            // Created between the two reads; the watch just set fires on
            // its next change, so read its data now without one.
            self->session_->Get(path, nullptr,
                                [self, epoch, next](Result<NodeData> d2) {
                                  if (!self->loop_.Current(epoch)) return;
                                  if (d2.ok()) return next(d2->data);
                                  if (d2.status().code() == StatusCode::kNotFound) {
                                    return next(std::nullopt);
                                  }
                                  self->Fail(epoch, d2.status());
                                });
            return;
          }
          next(std::nullopt);
        });
  });
}

void SwitchWatcher::Read(uint64_t epoch) {
  auto self = shared_from_this();
  const std::string committed = paths::SwitchNode(id_.service, id_.address);
  const std::string deploy = paths::SwitchDeployNode(id_.service, id_.address);
  ReadNode(epoch, committed, &committed_armed_,
           [self, epoch, deploy](std::optional<std::string> c) {
             self->ReadNode(epoch, deploy, &self->deploy_armed_,
                            [self, epoch, c](std::optional<std::string> f) {
                              SwitchView v;
                              v.committed = c;
                              v.in_flight = f;
                              self->CheckRegistered(epoch, std::move(v));
                            });
           });
}

void SwitchWatcher::CheckRegistered(uint64_t epoch, SwitchView view) {
  std::set<std::string> remote = RemoteBackends(cfg_, view);
  if (remote.empty()) return Finish(epoch, std::move(view));
  struct Pending {
    SwitchView view;
    size_t left;
  };
  auto pending = std::make_shared<Pending>(Pending{std::move(view), remote.size()});
  auto self = shared_from_this();
  for (const std::string& text : remote) {
    auto a = InstanceAddress::Parse(text);  // came from ToString(): valid
    std::string path = paths::InstanceNode(id_.service, *a);
    session_->Exists(path, nullptr, [self, epoch, pending, text](
                                        Result<std::optional<NodeStat>> e) {
      if (!self->loop_.Current(epoch)) return;
      if (e.ok() && e->has_value()) pending->view.registered.insert(text);
      if (--pending->left == 0) self->Finish(epoch, std::move(pending->view));
    });
  }
}

void SwitchWatcher::Finish(uint64_t epoch, SwitchView view) {
  if (!loop_.End(epoch)) return;
  view.known = true;
  view_ = std::move(view);
  on_update_(view_);
  loop_.Next();
}

void SwitchWatcher::Fail(uint64_t epoch, const Status& s) {
  if (!loop_.End(epoch)) return;
  LOG(WARNING) << "cannot read the switch nodes of " << id_.ToString() << ": "
               << s.ToString()
               << (s.IsRetryable() ? " (will retry after reconnect)" : "");
  loop_.Next();
}

}  // namespace zkroll::agent
