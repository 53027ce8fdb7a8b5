#include "agent/forwarding.h"

#include <unistd.h>

#include <boost/asio/post.hpp>
#include <glog/logging.h>

#include "common/clock.h"
#include "common/paths.h"
#include "common/payload.h"
#include "zkroll.pb.h"

namespace zkroll::agent {
namespace {

std::string Describe(const ForwardDecision& d) {
  std::string out = d.backend.ToString() + " (" + d.source;
  if (!d.generation.empty()) out += " " + d.generation;
  out += ")";
  if (d.fallback) out += ", fallback " + d.fallback->ToString();
  return out;
}

}  // namespace

std::shared_ptr<ForwardedInstance> ForwardedInstance::Create(
    ZkSession* session, boost::asio::any_io_executor ex, InstanceId id,
    ForwardConfig cfg, std::string host, Millis resync) {
  return std::shared_ptr<ForwardedInstance>(new ForwardedInstance(
      session, ex, std::move(id), std::move(cfg), std::move(host), resync));
}

ForwardedInstance::ForwardedInstance(ZkSession* session,
                                     boost::asio::any_io_executor ex,
                                     InstanceId id, ForwardConfig cfg,
                                     std::string host, Millis resync)
    : session_(session),
      ex_(ex),
      id_(std::move(id)),
      cfg_(std::move(cfg)),
      host_(std::move(host)),
      resync_(resync),
      publish_timer_(ex),
      retry_timer_(ex) {}

ForwardedInstance::~ForwardedInstance() {
  if (watcher_) watcher_->Stop();
}

void ForwardedInstance::Start() {
  node_ = EphemeralNode::Create(
      session_, paths::ForwarderNode(id_.service, id_.address));
  std::weak_ptr<ForwardedInstance> weak = shared_from_this();
  watcher_ = SwitchWatcher::Create(
      session_, ex_, id_, cfg_, resync_, [weak](const SwitchView& v) {
        if (auto self = weak.lock()) self->OnView(v);
      });
  watcher_->Start();
  if (session_->connected()) LearnAcl();
  LOG(INFO) << id_.ToString() << ": forwarding mode ("
            << forward::ProtocolName(cfg_.protocol) << "), configured backend "
            << cfg_.backend.ToString()
            << "; listening once the switch nodes are read";
}

void ForwardedInstance::Stop() {
  stopped_ = true;
  if (watcher_) watcher_->Stop();
  publish_timer_.cancel();
  retry_timer_.cancel();
  if (forwarder_) {
    LOG(INFO) << id_.ToString() << ": forwarder stopped ("
              << forwarder_->open_connections() << " connection(s) closed)";
  }
  forwarder_.reset();
  if (node_ && session_->connected()) node_->Delete([] {});
}

void ForwardedInstance::OnNewSession() {
  if (stopped_) return;
  node_->Forget();
  dir_ready_ = false;
  acl_.reset();
  LearnAcl();
  watcher_->Invalidate();
  watcher_->Refresh();
}

void ForwardedInstance::OnReconnected() {
  if (stopped_) return;
  watcher_->Refresh();
  PublishSoon();
}

void ForwardedInstance::OnExpired() {
  if (stopped_) return;
  node_->Forget();
  dir_ready_ = false;
  watcher_->Invalidate();
}

std::vector<forward::BackendStats> ForwardedInstance::Stats() const {
  if (!forwarder_) return {};
  return forwarder_->Stats();
}

std::string ForwardedInstance::backend_text() const {
  return decision_ ? decision_->backend.ToString() : "";
}

std::optional<ForwarderCounts> ForwardedInstance::Counts() const {
  if (!forwarder_) return std::nullopt;
  ForwarderCounts c;
  c.active = forwarder_->open_connections();
  for (const forward::BackendStats& b : forwarder_->Stats()) {
    c.connections += b.connections;
  }
  return c;
}

void ForwardedInstance::LearnAcl() {
  // The state node takes the ACL of /forwarders (set by `zkroll init`);
  // nothing is created until it is known, so a secured tree never gets an
  // open node. In an open tree the agent creates the root itself.
  auto self = shared_from_this();
  session_->EnsurePath(paths::kForwardersRoot, OpenAcl(), [self](Status) {
    self->session_->GetAcl(paths::kForwardersRoot, [self](Result<AclList> r) {
      if (self->stopped_) return;
      self->acl_ = (r.ok() && !r->empty()) ? *r : OpenAcl();
      self->PublishSoon();
    });
  });
}

void ForwardedInstance::OnView(const SwitchView& view) {
  if (stopped_) return;
  ForwardDecision d = DecideForward(id_, cfg_, view);
  bool changed = !decision_ || decision_->backend != d.backend ||
                 decision_->fallback != d.fallback ||
                 decision_->generation != d.generation;
  bool newly_refused = !d.error.empty() &&
                       (!decision_ || decision_->error != d.error);
  if (newly_refused) {
    LOG(WARNING) << id_.ToString() << ": " << d.error
                 << "; keeping new connections on " << d.backend.ToString();
  }
  if (!forwarder_) {
    forward::ForwarderOptions o;
    o.listen = id_.address;
    o.protocol = cfg_.protocol;
    o.threads = cfg_.threads;
    std::weak_ptr<ForwardedInstance> weak = shared_from_this();
    auto ex = ex_;
    o.on_change = [weak, ex] {
      boost::asio::post(ex, [weak] {
        if (auto self = weak.lock()) self->OnCounters();
      });
    };
    auto f = std::make_unique<forward::Forwarder>(std::move(o));
    Status s = f->Start(d.backend, d.fallback);
    if (!s.ok()) {
      if (listen_error_ != s.message()) {
        LOG(ERROR) << id_.ToString() << ": cannot listen: " << s.ToString()
                   << "; retrying every 5s (free the port or fix the "
                      "instance address)";
      }
      listen_error_ = s.message();
      listening_ = false;
      decision_ = d;
      retry_timer_.expires_after(std::chrono::seconds(5));
      std::weak_ptr<ForwardedInstance> weak2 = shared_from_this();
      retry_timer_.async_wait([weak2](const boost::system::error_code& ec) {
        auto self = weak2.lock();
        if (ec || !self || self->stopped_) return;
        self->OnView(self->watcher_->view());
      });
      PublishSoon();
      return;
    }
    forwarder_ = std::move(f);
    listening_ = true;
    listen_error_.clear();
    LOG(INFO) << id_.ToString() << ": listening, forwarding to "
              << Describe(d);
  } else if (changed) {
    Status s = forwarder_->SetBackend(d.backend, d.fallback);
    if (!s.ok()) {
      // DecideForward already refuses loops; this is a bug if it happens.
      LOG(ERROR) << id_.ToString() << ": " << s.ToString();
      d.error = s.message();
      d.refused_generation = d.generation;
    } else {
      LOG(INFO) << id_.ToString() << ": new connections now go to "
                << Describe(d) << (decision_ ? "; was " + Describe(*decision_)
                                             : std::string());
    }
  }
  decision_ = d;
  PublishSoon();
}

void ForwardedInstance::OnCounters() {
  if (stopped_ || !forwarder_) return;
  // What a waiting coordinator acts on is published at once: a new
  // failure (verify) or a backend whose last connection closed (drain).
  // Mere traffic is published at most once a second, so a busy forwarder
  // does not turn into a stream of ZooKeeper writes.
  bool urgent = false;
  std::map<std::string, std::pair<uint64_t, uint32_t>> now;
  for (const forward::BackendStats& b : forwarder_->Stats()) {
    uint64_t failures = b.connect_failures + b.http_5xx;
    auto key = b.backend.ToString();
    now[key] = {failures, b.active};
    auto it = published_.find(key);
    uint64_t was_failures = it == published_.end() ? 0 : it->second.first;
    uint32_t was_active = it == published_.end() ? 0 : it->second.second;
    if (failures != was_failures || (b.active == 0 && was_active > 0)) {
      urgent = true;
    }
  }
  PublishSoon(urgent ? std::chrono::milliseconds(50) : std::chrono::seconds(1));
}

void ForwardedInstance::PublishSoon(Millis delay) {
  if (stopped_) return;
  auto when = std::chrono::steady_clock::now() + delay;
  // A pending publication that comes sooner covers this one.
  if (publish_pending_ && publish_timer_.expiry() <= when) return;
  publish_pending_ = true;
  std::weak_ptr<ForwardedInstance> weak = shared_from_this();
  publish_timer_.expires_at(when);
  publish_timer_.async_wait([weak](const boost::system::error_code& ec) {
    auto self = weak.lock();
    // Cancelled: a sooner publication replaced this wait.
    if (!self || ec == boost::asio::error::operation_aborted) return;
    self->publish_pending_ = false;
    if (ec || self->stopped_) return;
    self->Publish();
  });
}

void ForwardedInstance::Publish() {
  if (!session_->connected() || !acl_ || !decision_) return;
  proto::ForwarderState st;
  st.set_host(host_);
  st.set_pid(getpid());
  st.set_listen(id_.address.ToString());
  st.set_protocol(forward::ProtocolName(cfg_.protocol));
  st.set_listening(listening_);
  const ForwardDecision& d = *decision_;
  st.set_backend(d.backend.ToString());
  if (d.fallback) st.set_fallback(d.fallback->ToString());
  st.set_source(d.source);
  st.set_generation(d.generation);
  st.set_stable_backend(d.stable.ToString());
  st.set_local_ip(cfg_.backend.ip());
  st.add_local_ports(cfg_.backend.port());
  for (uint16_t p : cfg_.ports) {
    if (p != cfg_.backend.port()) st.add_local_ports(p);
  }
  st.set_refused_generation(d.refused_generation);
  st.set_error(!listen_error_.empty() ? "cannot listen: " + listen_error_
                                      : d.error);
  if (forwarder_) {
    published_.clear();
    for (const forward::BackendStats& b : forwarder_->Stats()) {
      published_[b.backend.ToString()] = {b.connect_failures + b.http_5xx,
                                          b.active};
      auto* out = st.add_backends();
      out->set_backend(b.backend.ToString());
      out->set_active(b.active);
      out->set_connections(b.connections);
      out->set_connect_failures(b.connect_failures);
      out->set_fallbacks(b.fallbacks);
      out->set_http_responses(b.http_responses);
      out->set_http_5xx(b.http_5xx);
      out->set_http_unparsed(b.http_unparsed);
    }
  }
  *st.mutable_updated_at() = NowTimestamp();
  std::weak_ptr<ForwardedInstance> weak = shared_from_this();
  auto dir = paths::ForwarderDir(id_.service);
  auto json = ToJson(st);
  auto acl = *acl_;
  if (dir_ready_) {
    node_->Publish(json, acl, [weak] {
      if (auto self = weak.lock()) self->PublishSoon();
    });
    return;
  }
  session_->EnsurePath(dir, acl, [weak, json, acl](Status s) {
    auto self = weak.lock();
    if (!self || self->stopped_) return;
    self->dir_ready_ = s.ok();
    if (!s.ok()) {
      LOG(WARNING) << "cannot create " << paths::ForwarderDir(self->id_.service)
                   << ": " << s.ToString();
      return;
    }
    self->node_->Publish(json, acl, [weak] {
      if (auto self = weak.lock()) {
        self->dir_ready_ = false;  // the node (or its parent) went away
        self->PublishSoon();
      }
    });
  });
}

}  // namespace zkroll::agent
