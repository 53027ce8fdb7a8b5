#include "agent/traffic_observer.h"

#include <glog/logging.h>

#include "common/clock.h"
#include "common/paths.h"
#include "common/payload.h"

namespace zkroll::agent {
namespace {

// A report without the fields that move with the clock alone: two reports
// equal here differ only in how much time has passed.
std::string Shown(proto::TrafficReport r) {
  r.clear_observed_ms();
  r.clear_quiet_ms();
  r.clear_samples();
  r.clear_sampled_at();
  r.clear_sequence();
  for (auto& peer : *r.mutable_peers()) peer.clear_idle_ms();
  return ToJson(r);
}

}  // namespace

std::shared_ptr<TrafficObserver> TrafficObserver::Create(
    ZkSession* session, boost::asio::any_io_executor ex,
    TrafficObserverOptions options) {
  return std::shared_ptr<TrafficObserver>(
      new TrafficObserver(session, ex, std::move(options)));
}

TrafficObserver::TrafficObserver(ZkSession* session,
                                 boost::asio::any_io_executor ex,
                                 TrafficObserverOptions options)
    : session_(session),
      options_(std::move(options)),
      timer_(ex),
      aggregator_(options_.now()),
      started_(options_.now()) {}

TrafficObserver::~TrafficObserver() { timer_.cancel(); }

void TrafficObserver::Start() {
  node_ = EphemeralNode::Create(
      session_, paths::TrafficNode(options_.id.service, options_.id.address));
  const proto::DrainRequest& q = options_.request;
  LOG(INFO) << "observing the traffic of " << options_.id.ToString()
            << " for deploy " << q.deploy_id() << " (requested by "
            << (q.by().empty() ? "?" : q.by()) << ", pid " << q.pid()
            << "), one sample every " << q.interval_ms() << "ms";
  if (session_->connected()) LearnAcl();
  Tick();
}

void TrafficObserver::Stop(const std::string& why) {
  if (stopped_) return;
  stopped_ = true;
  timer_.cancel();
  LOG(INFO) << "stopped observing the traffic of " << options_.id.ToString()
            << " for deploy " << deploy_id() << " (" << why << ") after "
            << report_.observed_ms() << "ms: " << report_.connections_total()
            << " new connection(s), " << report_.bytes_received()
            << " byte(s) received, quiet for " << report_.quiet_ms() << "ms";
  if (node_) node_->Delete([] {});
}

void TrafficObserver::OnNewSession() {
  if (stopped_) return;
  publish_next_ = true;
  node_->Forget();
  dir_ready_ = false;
  in_flight_ = false;
  acl_.reset();
  LearnAcl();
}

void TrafficObserver::OnExpired() {
  if (stopped_) return;
  publish_next_ = true;
  node_->Forget();
  dir_ready_ = false;
}

void TrafficObserver::LearnAcl() {
  // As for /forwarders: the report takes the ACL of its root.
  auto self = shared_from_this();
  session_->EnsurePath(paths::kTrafficRoot, OpenAcl(), [self](Status) {
    self->session_->GetAcl(paths::kTrafficRoot, [self](Result<AclList> r) {
      if (self->stopped_) return;
      if (!r.ok() && r.status().code() != StatusCode::kNotFound) {
        LOG(WARNING) << "cannot read the ACL of " << paths::kTrafficRoot << " ("
                     << r.status().ToString()
                     << "); publishing traffic reports with an open ACL";
      }
      self->acl_ = (r.ok() && !r->empty()) ? *r : OpenAcl();
    });
  });
}

void TrafficObserver::ArmTick() {
  std::weak_ptr<TrafficObserver> weak = shared_from_this();
  timer_.expires_after(
      std::chrono::milliseconds(options_.request.interval_ms()));
  timer_.async_wait([weak](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopped_) return;
    self->Tick();
  });
}

void TrafficObserver::Tick() {
  Sample();
  Publish();
  ArmTick();
}

void TrafficObserver::Sample() {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  const observe::MonoTime now = options_.now();
  auto ms_since = [&now](observe::MonoTime t) -> uint64_t {
    auto d = duration_cast<milliseconds>(now - t).count();
    return d < 0 ? 0 : static_cast<uint64_t>(d);
  };
  proto::TrafficReport r;
  r.set_host(options_.host);
  r.set_hostname(options_.hostname);
  r.set_deploy_id(options_.request.deploy_id());
  r.set_interval_ms(options_.request.interval_ms());

  std::optional<ForwarderCounts> fwd;
  if (options_.forwarder) fwd = options_.forwarder();
  uint64_t fwd_total = 0;
  if (fwd) {
    if (!forwarder_base_) {
      forwarder_base_ = fwd;
    } else if (fwd->connections > forwarder_last_total_) {
      forwarder_activity_ = now;
    }
    forwarder_last_total_ = fwd->connections;
    fwd_total = fwd->connections >= forwarder_base_->connections
                    ? fwd->connections - forwarder_base_->connections
                    : 0;
    r.set_forwarder_active(fwd->active);
    r.set_forwarder_connections_total(fwd_total);
  }

  auto sample = options_.sample();
  if (sample.ok()) {
    aggregator_.Add(sample->connections, now);
    ++samples_;
    aggregator_.Fill(now, options_.max_peers, &r);
    r.set_source(fwd ? "sock_diag+forwarder" : "sock_diag");
    r.set_pids_known(sample->pids_known);
    if (!sample->pids_known) r.set_error(sample->pid_error);
  } else {
    r.set_observed_ms(ms_since(started_));
    r.set_pids_known(false);
    r.set_error("cannot read the kernel's socket table: " +
                sample.status().ToString());
    if (fwd) {
      // Connections only: an open forwarded connection may carry bytes we
      // cannot see, so it keeps quiet at 0.
      r.set_source("forwarder");
      r.set_connections(fwd->active);
      r.set_connections_total(fwd_total);
      observe::MonoTime since = started_;
      if (forwarder_activity_ && *forwarder_activity_ > since) {
        since = *forwarder_activity_;
      }
      r.set_quiet_ms(fwd->active > 0 ? 0 : ms_since(since));
    } else {
      r.set_source("none");
      r.set_quiet_ms(0);
    }
  }
  r.set_samples(samples_);
  *r.mutable_sampled_at() = NowTimestamp();
  if (r.error() != degraded_) {
    if (r.error().empty()) {
      LOG(INFO) << "traffic of " << options_.id.ToString()
                << ": observing fully again (source " << r.source() << ")";
    } else {
      LOG(WARNING) << "traffic of " << options_.id.ToString()
                   << " observed in part (source " << r.source()
                   << "): " << r.error();
    }
    degraded_ = r.error();
  }
  r.set_sequence(sequence_);
  report_ = std::move(r);
}

void TrafficObserver::PausedChanged() {
  if (stopped_) return;
  // A report still below the quiet threshold is written again when it
  // reaches it, after the pause: nothing to do. One that reached it may
  // never change again: write it now.
  const uint64_t quiet = options_.request.quiet_ms();
  if (quiet != 0 && published_quiet_ms_ < quiet && !published_shown_.empty()) {
    return;
  }
  publish_next_ = true;
  Publish();  // Start() built the first report already
}

bool TrafficObserver::WorthWriting() const {
  const uint64_t quiet = options_.request.quiet_ms();
  if (publish_next_ || quiet == 0) return true;
  if (Shown(report_) != published_shown_) return true;
  return published_quiet_ms_ < quiet && report_.quiet_ms() >= quiet;
}

void TrafficObserver::Publish() {
  if (stopped_ || in_flight_ || !acl_ || !session_->connected()) return;
  if (!WorthWriting()) return;
  in_flight_ = true;
  publish_next_ = false;
  published_shown_ = Shown(report_);
  published_quiet_ms_ = report_.quiet_ms();
  report_.set_sequence(++sequence_);
  std::weak_ptr<TrafficObserver> weak = shared_from_this();
  const std::string json = ToJson(report_);
  const AclList acl = *acl_;
  auto done = [weak] {
    auto self = weak.lock();
    if (!self) return;
    self->in_flight_ = false;
    // Not ours after the attempt: it was not written; write the next one.
    if (!self->stopped_ && !self->node_->ours()) self->publish_next_ = true;
  };
  auto retry = [weak] {
    if (auto self = weak.lock()) self->dir_ready_ = false;
  };
  if (dir_ready_) {
    node_->Publish(json, acl, retry, done);
    return;
  }
  const std::string dir = paths::TrafficDir(options_.id.service);
  session_->EnsurePath(dir, acl, [weak, json, acl, dir, retry, done](Status s) {
    auto self = weak.lock();
    if (!self) return;
    if (self->stopped_) return done();
    if (!s.ok()) {
      LOG_EVERY_N(WARNING, 50)
          << "cannot create " << dir << ": " << s.ToString();
      return done();
    }
    self->dir_ready_ = true;
    self->node_->Publish(json, acl, retry, done);
  });
}

}  // namespace zkroll::agent
