#include "agent/agent.h"

#include <glog/logging.h>

#include <unistd.h>

#include <algorithm>
#include <set>

#include "agent/reload_plan.h"
#include "agent/traffic_observer.h"
#include "agent/metrics.h"
#include "common/clock.h"
#include "common/instance_record.h"
#include "common/paths.h"
#include "common/payload.h"
#include "common/states.h"
#include "common/version.h"
#include "zkroll.pb.h"

namespace zkroll::agent {

struct Agent::Instance {
  InstanceConfig cfg;
  std::shared_ptr<health::HealthMonitor> monitor;
  std::shared_ptr<Registration> reg;  // handed over on a changed reload
  bool healthy = false;
  bool was_paused = false;
  bool stopped = false;
  bool failed_check = false;     // a check failed (start-up readiness)
  std::string last_check;
  WallTime last_check_at{};
  std::shared_ptr<ForwardedInstance> forward;  // forwarding mode only
  std::shared_ptr<TrafficObserver> observer;   // while a drain request exists
  int64_t observer_owner = 0;                  // session of that request
  AgentMetrics::InstanceSeries* metrics = nullptr;  // null: no metrics
};

Agent::Agent(boost::asio::io_context& io, AgentConfig config,
             std::vector<Credential> credentials, AgentMetrics* metrics)
    : io_(io),
      config_(std::move(config)),
      session_(io.get_executor(),
               ZkOptions{config_.zk, config_.session_timeout,
                         std::move(credentials), true,
                         metrics ? metrics->zk_observer() : nullptr}),
      observe_timer_(io),
      resync_timer_(io),
      connect_log_timer_(io),
      tree_(&session_),
      metrics_(metrics) {
  started_at_ = NowTimestamp();
  start_time_ = std::chrono::steady_clock::now();
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) == 0) hostname_ = name;
}

Agent::~Agent() {
  for (auto& reg : retiring_) reg->Stop();
  for (auto& [id, inst] : instances_) {
    inst->reg->Stop();
    if (inst->monitor) inst->monitor->Stop();
    if (inst->forward) inst->forward->Stop();
    if (inst->observer) inst->observer->Stop("agent stopped");
  }
  for (auto& [s, w] : pauses_) w->Stop();
  for (auto& [s, w] : drains_) w->Stop();
}

Status Agent::Start() {
  session_.AddListener([this](const SessionEvent& e) { OnSessionEvent(e); });
  record_ = AgentRecordPublisher::Create(
      &session_, io_.get_executor(), HostId::Parse(config_.host).value(),
      [this] { return BuildAgentRecord(); });
  ZKROLL_RETURN_IF_ERROR(session_.Start());
  LOG(INFO) << "zkroll-agent " << ZKROLL_VERSION_TEXT << " host " << config_.host
            << " managing " << config_.instances.size()
            << " instance(s); connecting to ZooKeeper at " << config_.zk;
  for (const auto& cfg : config_.instances) StartInstance(cfg, false);
  ArmResync();
  ArmConnectLog();
  return Status::Ok();
}

void Agent::ArmConnectLog() {
  connect_log_timer_.expires_after(std::chrono::seconds(10));
  connect_log_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || shutting_down_) return;
    if (!session_.connected()) {
      auto waited = std::chrono::duration_cast<std::chrono::seconds>(
          std::chrono::steady_clock::now() - start_time_);
      LOG(WARNING) << "still not connected to ZooKeeper at " << config_.zk
                   << " (" << waited.count()
                   << "s since start); the client keeps retrying. Nothing is "
                      "registered until it connects.";
    }
    ArmConnectLog();
  });
}

void Agent::OnSessionEvent(const SessionEvent& e) {
  if (shutting_down_) return;
  switch (e.kind) {
    case SessionEvent::Kind::kNewSession:
      had_session_ = true;
      LOG(INFO) << "ZooKeeper session 0x" << std::hex << e.session_id
                << std::dec << " established (timeout "
                << FormatDuration(session_.negotiated_timeout()) << ")";
      OnNewSession();
      break;
    case SessionEvent::Kind::kReconnected:
      LOG(INFO) << "reconnected to ZooKeeper; session and registrations "
                   "survived; re-reading pause flags";
      for (auto& [s, w] : pauses_) w->Refresh();
      for (auto& [s, w] : drains_) w->Refresh();
      SweepTrafficReports();
      for (auto& [id, inst] : instances_) {
        if (inst->forward) inst->forward->OnReconnected();
        inst->reg->OnReconnected();
      }
      for (auto& reg : retiring_) reg->OnReconnected();
      break;
    case SessionEvent::Kind::kDisconnected:
      LOG(WARNING) << "lost the connection to ZooKeeper; keeping every "
                      "registration and state while the client reconnects";
      break;
    case SessionEvent::Kind::kExpired:
      LOG(WARNING) << "ZooKeeper session expired: our registrations and "
                      "/agents/" << config_.host
                   << " are gone; re-registering healthy, unpaused instances "
                      "on the new session";
      record_->Forget();
      tree_.Forget();
      for (auto& [id, inst] : instances_) {
        if (inst->forward) inst->forward->OnExpired();
        inst->reg->OnExpired();
        if (inst->observer) inst->observer->OnExpired();
      }
      for (auto& reg : retiring_) reg->OnExpired();
      PruneRetiring();
      for (auto& [s, w] : pauses_) w->Invalidate();
      // Requests may have gone with their coordinators' sessions; the new
      // session reads them again and stops what is no longer asked for.
      for (auto& [s, w] : drains_) w->Invalidate();
      break;
    case SessionEvent::Kind::kAuthFailed:
      LOG(ERROR) << "ZooKeeper refused our credentials; check --auth-file";
      break;
  }
  StateChanged();
}

void Agent::OnNewSession() {
  tree_.Start(
      [this] {
        // The pause guard may have been missing a moment ago.
        for (auto& [svc, w] : pauses_) w->Refresh();
      },
      [this] {
        std::set<std::string> done;
        for (const auto& [id, inst] : instances_) {
          if (done.insert(id.service.str()).second) {
            EnsureServiceDir(id.service);
          }
        }
        record_->SetAcl(tree_.agents_acl());
        PublishSoon(AgentRecordPublisher::Change::kDeclaration);
      });
  for (auto& [s, w] : pauses_) {
    w->Invalidate();
    w->Refresh();
  }
  for (auto& [s, w] : drains_) {
    w->Invalidate();
    w->Refresh();
  }
  for (auto& [id, inst] : instances_) {
    if (inst->forward) inst->forward->OnNewSession();
    if (inst->observer) inst->observer->OnNewSession();
  }
  PublishSoon(AgentRecordPublisher::Change::kDeclaration);
}

void Agent::EnsureServiceDir(const ServiceName& service) {
  tree_.EnsureServiceDir(service, [this, service] {
    for (auto& [id, inst] : instances_) {
      if (id.service == service) inst->reg->Reconcile();
    }
  });
}

std::shared_ptr<PauseWatcher> Agent::PauseFor(const ServiceName& service) {
  auto it = pauses_.find(service.str());
  if (it != pauses_.end()) return it->second;
  auto w = PauseWatcher::Create(
      &session_, io_.get_executor(), service, config_.resync,
      [this, service](const PauseSnapshot& snap) {
        OnPauseUpdate(service, snap);
      });
  pauses_[service.str()] = w;
  w->Start();
  return w;
}

bool Agent::Paused(const Instance& inst) const {
  auto it = pauses_.find(inst.cfg.id.service.str());
  if (it == pauses_.end() || !it->second->snapshot().known) return true;
  return it->second->snapshot().Forbids(inst.cfg.id.address,
                                        std::chrono::system_clock::now());
}

void Agent::OnPauseUpdate(const ServiceName& service,
                          const PauseSnapshot& snap) {
  WallTime now = std::chrono::system_clock::now();
  for (auto& [id, inst] : instances_) {
    if (!(id.service == service)) continue;
    inst->reg->OnPauseView();
    bool paused = snap.Forbids(id.address, now);
    if (paused != inst->was_paused) {
      inst->was_paused = paused;
      const PauseFlagInfo* f = snap.Find(id.address);
      if (paused) {
        LOG(INFO) << id.ToString() << " paused"
                  << (f && f->parsed ? " by " + f->by + ": " + f->reason
                                     : std::string(" (unreadable flag)"))
                  << "; it will not be registered until the flag is gone";
      } else {
        LOG(INFO) << id.ToString()
                  << (f ? " pause expired" : " pause lifted")
                  << "; checking at once, registering on the first pass";
        // The seed's fallback: check now; one pass is enough to register.
        if (inst->monitor) inst->monitor->CheckNow(true);
      }
      // A drain waits for a report written after its pause.
      if (inst->observer) inst->observer->PausedChanged();
      PublishSoon();
    }
    inst->reg->Reconcile();
  }
  StateChanged();
}

std::shared_ptr<DrainWatcher> Agent::DrainFor(const ServiceName& service) {
  auto it = drains_.find(service.str());
  if (it != drains_.end()) return it->second;
  auto w = DrainWatcher::Create(
      &session_, io_.get_executor(), service, config_.resync,
      [this, service](const DrainView& view) { OnDrainUpdate(service, view); });
  drains_[service.str()] = w;
  w->Start();
  return w;
}

void Agent::UpdateDrainInstances(const ServiceName& service) {
  std::set<std::string> mine;
  for (const auto& [id, inst] : instances_) {
    if (id.service == service && !inst->stopped) {
      mine.insert(id.address.NodeName());
    }
  }
  DrainFor(service)->SetInstances(std::move(mine));
}

void Agent::OnDrainUpdate(const ServiceName& service, const DrainView& view) {
  if (shutting_down_) return;
  for (auto& [id, inst] : instances_) {
    if (!(id.service == service) || inst->stopped) continue;
    auto it = view.requests.find(id.address.NodeName());
    const DrainRequestView* req =
        it != view.requests.end() && it->second.valid ? &it->second : nullptr;
    if (inst->observer) {
      // Same request (deploy and coordinator session): keep observing.
      if (req && req->request.deploy_id() == inst->observer->deploy_id() &&
          req->owner == inst->observer_owner) {
        continue;
      }
      inst->observer->Stop(req ? "replaced by the request of deploy " +
                                     req->request.deploy_id()
                               : "the drain request is gone");
      inst->observer.reset();
    }
    if (req) StartObserving(inst, *req);
  }
}

void Agent::SweepTrafficReports() {
  // An observation stopped while ZooKeeper was unreachable could not
  // delete its report, which would stay as long as our session lives.
  for (auto& entry : instances_) {
    InstancePtr inst = entry.second;
    if (inst->observer || inst->stopped) continue;
    const std::string path =
        paths::TrafficNode(inst->cfg.id.service, inst->cfg.id.address);
    session_.Exists(path, nullptr,
                    [this, inst, path](Result<std::optional<NodeStat>> r) {
      if (!r.ok() || !r->has_value() || inst->observer) return;
      if ((*r)->ephemeral_owner != session_.session_id()) return;
      session_.Delete(path, (*r)->version, [path](Status s) {
        if (s.ok()) LOG(INFO) << "deleted the stale traffic report " << path;
      });
    });
  }
}

void Agent::StartObserving(const InstancePtr& inst,
                           const DrainRequestView& req) {
  TrafficObserverOptions o;
  o.id = inst->cfg.id;
  o.host = config_.host;
  o.hostname = hostname_;
  o.request = req.request;
  auto sampler = std::make_shared<observe::TrafficSampler>(inst->cfg.id.address);
  o.sample = [sampler] { return sampler->Take(); };
  if (inst->forward) {
    std::weak_ptr<ForwardedInstance> fwd = inst->forward;
    o.forwarder = [fwd]() -> std::optional<ForwarderCounts> {
      auto f = fwd.lock();
      return f ? f->Counts() : std::nullopt;
    };
  }
  inst->observer = TrafficObserver::Create(&session_, io_.get_executor(),
                                           std::move(o));
  inst->observer_owner = req.owner;
  inst->observer->Start();
}

void Agent::StartInstance(const InstanceConfig& cfg, bool initially_healthy,
                          std::shared_ptr<ForwardedInstance> forward,
                          std::shared_ptr<Registration> reg) {
  auto inst = std::make_shared<Instance>();
  inst->cfg = cfg;
  inst->healthy = initially_healthy;
  if (!reg) {
    // Removed by an earlier reload and declared again before its node was
    // deleted: the same node, so the same registration (two would undo
    // each other).
    auto it = std::find_if(retiring_.begin(), retiring_.end(),
                           [&](const std::shared_ptr<Registration>& r) {
                             return r->id() == cfg.id;
                           });
    if (it != retiring_.end()) {
      reg = *it;
      retiring_.erase(it);
    }
  }
  if (reg) {
    reg->Attach(RegistrationOwner(inst));
    inst->reg = std::move(reg);
  } else {
    inst->reg = Registration::Create(
        Registration::Env{&session_, &tree_, metrics_, config_.host}, cfg.id,
        RegistrationOwner(inst));
  }
  health::MonitorOptions mo;
  mo.spec = cfg.check;
  mo.target = health::CheckTarget{cfg.id.address.ip(), cfg.id.address.port()};
  mo.interval = cfg.interval;
  mo.timeout = cfg.timeout;
  mo.rise = cfg.rise;
  mo.fall = cfg.fall;
  mo.initially_healthy = initially_healthy;
  std::weak_ptr<Instance> weak = inst;
  inst->monitor = health::HealthMonitor::Create(
      io_.get_executor(), mo,
      [this, weak](const health::HealthTransition& t) {
        auto inst = weak.lock();
        if (!inst || inst->stopped) return;
        inst->healthy = t.healthy;
        if (inst->metrics) inst->metrics->OnHealthTransition(t.healthy);
        PublishSoon();
        inst->reg->Reconcile();
      },
      [this, weak](const health::CheckResult& r) {
        auto inst = weak.lock();
        if (!inst || inst->stopped) return;
        if (inst->metrics) inst->metrics->OnCheckResult(r.healthy, r.elapsed);
        inst->last_check = r.reason;
        inst->last_check_at = std::chrono::system_clock::now();
        if (!r.healthy) inst->failed_check = true;
        StateChanged();
        // Retry a registration that failed for a transient reason.
        inst->reg->Reconcile();
      });
  if (metrics_) inst->metrics = &metrics_->AddInstance(cfg.id);
  instances_[cfg.id] = inst;
  UpdateDrainInstances(cfg.id.service);
  auto watcher = PauseFor(cfg.id.service);
  inst->was_paused = watcher->snapshot().known &&
                     watcher->snapshot().Forbids(cfg.id.address,
                                                 std::chrono::system_clock::now());
  if (session_.connected()) EnsureServiceDir(cfg.id.service);  // no-op until ACLs known
  inst->monitor->Start();
  if (forward) {
    inst->forward = std::move(forward);
  } else if (cfg.forward) {
    inst->forward = ForwardedInstance::Create(&session_, io_.get_executor(),
                                              cfg.id, *cfg.forward,
                                              config_.host, config_.resync);
    inst->forward->Start();
  }
  LOG(INFO) << "managing " << cfg.id.ToString() << " (" << cfg.origin
            << "): check " << cfg.check_text << " every "
            << FormatDuration(cfg.interval) << ", timeout "
            << FormatDuration(cfg.timeout) << ", rise " << cfg.rise
            << ", fall " << cfg.fall;
}

void Agent::StopInstance(const InstancePtr& inst) {
  inst->stopped = true;
  if (inst->monitor) inst->monitor->Stop();
  if (inst->forward) inst->forward->Stop();
  if (inst->observer) {
    inst->observer->Stop("the instance is no longer managed");
    inst->observer.reset();
  }
}

Registration::Owner Agent::RegistrationOwner(const InstancePtr& inst) {
  std::weak_ptr<Instance> weak = inst;
  const ServiceName service = inst->cfg.id.service;
  Registration::Owner o;
  o.desire = [this, weak] {
    RegistrationDesire d;
    auto inst = weak.lock();
    if (!inst || inst->stopped || shutting_down_) return d;
    auto it = pauses_.find(inst->cfg.id.service.str());
    if (it == pauses_.end() || !it->second->snapshot().known) return d;
    const PauseSnapshot& snap = it->second->snapshot();
    const bool paused = snap.Forbids(inst->cfg.id.address,
                                     std::chrono::system_clock::now());
    d.known = true;
    d.want = inst->healthy && !paused;
    d.why_not = paused ? "paused" : "unhealthy: " + inst->last_check;
    d.guard = snap.guard;
    return d;
  };
  o.record_json = [this, weak] {
    auto inst = weak.lock();
    return inst ? RecordFor(*inst) : std::string();
  };
  o.refresh_pause = [this, service] { PauseFor(service)->Refresh(); };
  o.ensure_service_dir = [this, service] { EnsureServiceDir(service); };
  o.published_changed = [this] { PublishSoon(); };
  o.settled_changed = [this] { StateChanged(); };
  return o;
}

void Agent::PruneRetiring() {
  retiring_.erase(std::remove_if(retiring_.begin(), retiring_.end(),
                                 [](const std::shared_ptr<Registration>& r) {
                                   return r->finished();
                                 }),
                  retiring_.end());
}

std::string Agent::RecordFor(const Instance& inst) const {
  proto::InstanceRecord r =
      NewInstanceRecord(inst.cfg.id.service, inst.cfg.id.address,
                        std::chrono::system_clock::now());
  r.set_host(config_.host);
  r.set_weight(inst.cfg.weight);
  for (const auto& [k, v] : inst.cfg.metadata) (*r.mutable_metadata())[k] = v;
  r.set_check(inst.cfg.check_text);
  // The config loader validated these; a failure here is a bug of ours.
  if (!inst.cfg.payload.empty()) {
    *r.mutable_payload() = ParseRecordPayload(inst.cfg.payload).value();
  }
  if (!inst.cfg.uri_spec.empty()) {
    *r.mutable_urispec() = ParseUriSpec(inst.cfg.uri_spec).value();
  }
  if (inst.cfg.ssl_port != 0) r.set_sslport(inst.cfg.ssl_port);
  return ToJson(r);
}

void Agent::PublishSoon(AgentRecordPublisher::Change change) {
  StateChanged();  // every state change that is published passes here
  if (shutting_down_) return;
  record_->Changed(change);
  if (observe_pending_) return;
  observe_pending_ = true;
  // Coalesce bursts of state changes into one count.
  observe_timer_.expires_after(std::chrono::milliseconds(50));
  observe_timer_.async_wait([this](const boost::system::error_code& ec) {
    observe_pending_ = false;
    if (ec) return;
    ObserveStates();  // counts each change of state the record shows
  });
}

proto::AgentRecord Agent::BuildAgentRecord() const {
  proto::AgentRecord rec;
  rec.set_host(config_.host);
  rec.set_pid(getpid());
  rec.set_version(ZKROLL_VERSION);
  *rec.mutable_started_at() = started_at_;
  *rec.mutable_updated_at() = NowTimestamp();
  for (const auto& [id, inst] : instances_) {
    auto* out = rec.add_instances();
    out->set_service(id.service.str());
    out->set_ip(id.address.ip());
    out->set_port(id.address.port());
    bool paused = Paused(*inst);
    out->set_healthy(inst->healthy);
    out->set_paused(paused);
    out->set_registered(inst->reg->registered());
    out->set_state(WireString(
        AgentStateOf(paused, inst->reg->registered(), inst->healthy)));
    out->set_last_check(inst->last_check);
    if (inst->last_check_at != WallTime{}) {
      *out->mutable_last_check_at() = ToTimestamp(inst->last_check_at);
    }
    out->set_check(inst->cfg.check_text);
    if (inst->forward) out->set_forward_backend(inst->forward->backend_text());
  }
  return rec;
}

void Agent::ArmResync() {
  resync_timer_.expires_after(config_.resync);
  resync_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || shutting_down_) return;
    // Catch anything a watch could not tell us: a registration deleted by
    // hand, a change made while we were away.
    for (auto& entry : instances_) entry.second->reg->Check();
    // A removed instance whose delete failed for good is tried again.
    PruneRetiring();
    for (auto& reg : retiring_) reg->Reconcile();
    StateChanged();
    record_->Refresh();  // also brings the last checks' times up to date
    ArmResync();
  });
}

void Agent::Reload(AgentConfig config) {
  const ReloadPlan plan = PlanReload(config_, config);
  if (plan.restart_needed) {
    LOG(WARNING) << "reload: zk, host, session_timeout, auth_file and "
                    "metrics_listen changes need a restart; keeping the "
                    "running values";
  }
  for (const ReloadStep& step : plan.steps) {
    switch (step.kind) {
      case ReloadStep::Kind::kRemove:
        RemoveInstance(step.cfg.id);
        break;
      case ReloadStep::Kind::kChange:
        ChangeInstance(step.cfg);
        break;
      case ReloadStep::Kind::kAdd:
        StartInstance(step.cfg, false);
        break;
    }
  }
  config_.instances = config.instances;
  for (auto& [svc, w] : drains_) {
    UpdateDrainInstances(ServiceName::Parse(svc).value());
    w->Refresh();
  }
  LOG(INFO) << "reload applied: " << plan.added << " added, " << plan.removed
            << " removed, " << plan.changed << " changed, "
            << instances_.size() << " managed";
  PublishSoon(AgentRecordPublisher::Change::kDeclaration);
}

void Agent::RemoveInstance(const InstanceId& id) {
  auto it = instances_.find(id);
  if (it == instances_.end()) return;
  LOG(INFO) << "reload: " << id.ToString() << " removed; deregistering";
  InstancePtr inst = it->second;
  StopInstance(inst);
  // Ends deregistered even if a registration is in flight or its outcome
  // unknown; kept here until then.
  retiring_.push_back(inst->reg);
  inst->reg->Retire();
  PruneRetiring();
  // Its series go with it: a scrape must not show it any more.
  inst->metrics = nullptr;
  if (metrics_) metrics_->RemoveInstance(id);
  instances_.erase(it);
}

void Agent::ChangeInstance(const InstanceConfig& cfg) {
  LOG(INFO) << "reload: " << cfg.id.ToString()
            << " changed; restarting its checks";
  InstancePtr old = instances_.at(cfg.id);
  // A forwarder whose settings did not change keeps running.
  std::shared_ptr<ForwardedInstance> keep;
  if (old->forward && old->cfg.forward == cfg.forward) {
    keep = std::move(old->forward);
  }
  // An observation under way keeps its aggregates, unless the forwarder it
  // reads is replaced (then the watcher starts it anew).
  std::shared_ptr<TrafficObserver> observer;
  if (keep || (!old->forward && !cfg.forward)) {
    observer = std::move(old->observer);
  }
  StopInstance(old);
  // Keep the health verdict (the new checks continue from it rather than
  // from "unknown") and the registration, with whatever is in flight.
  StartInstance(cfg, old->healthy, keep, old->reg);
  instances_[cfg.id]->observer = std::move(observer);
  instances_[cfg.id]->observer_owner = old->observer_owner;
}

bool Agent::Settled(const Instance& inst) const {
  if (inst.reg->refused_for_good()) return true;
  auto it = pauses_.find(inst.cfg.id.service.str());
  if (it == pauses_.end() || !it->second->snapshot().known) return false;
  if (Paused(inst)) return !inst.reg->registered();
  return inst.healthy ? inst.reg->registered() : inst.failed_check;
}

void Agent::StateChanged() {
  if (!started_ && !shutting_down_ && session_.connected() &&
      tree_.acls_known()) {
    bool all = true;
    for (const auto& [id, inst] : instances_) all = all && Settled(*inst);
    if (all) {
      started_ = true;
      LOG(INFO) << "start-up done: session up and every instance settled";
    }
  }
  if (state_listener_) state_listener_();
}

void Agent::ObserveStates() {
  if (!metrics_) return;
  const auto now = std::chrono::system_clock::now();
  for (const auto& [id, inst] : instances_) {
    if (!inst->metrics) continue;
    // Unlike Paused(), flags not read yet do not count as a pause here: a
    // dashboard would show every instance paused at each agent start.
    auto w = pauses_.find(id.service.str());
    const bool paused = w != pauses_.end() && w->second->snapshot().known &&
                        w->second->snapshot().Forbids(id.address, now);
    inst->metrics->SetState(InstanceMetricsState{
        inst->healthy, inst->reg->registered(), paused, inst->forward != nullptr});
  }
}

void Agent::RefreshMetrics() {
  if (!metrics_) return;
  ObserveStates();
  for (const auto& [id, inst] : instances_) {
    if (inst->metrics && inst->forward) {
      inst->metrics->SetForwardStats(inst->forward->Stats());
    }
  }
}

void Agent::SetStateListener(std::function<void()> listener) {
  state_listener_ = std::move(listener);
}

AgentSummary Agent::Summary() const {
  AgentSummary s;
  s.zk = session_.connected() ? AgentSummary::Zk::kConnected
         : had_session_       ? AgentSummary::Zk::kDisconnected
                              : AgentSummary::Zk::kConnecting;
  s.zk_address = config_.zk;
  s.started = started_;
  s.instances = static_cast<int>(instances_.size());
  for (const auto& [id, inst] : instances_) {
    if (Settled(*inst)) ++s.settled;
    // The same precedence as the state in /agents/<host>.
    if (Paused(*inst)) {
      ++s.paused;
    } else if (inst->reg->registered()) {
      ++s.registered;
    } else if (inst->healthy) {
      ++s.healthy;
    } else {
      ++s.unhealthy;
    }
  }
  return s;
}

void Agent::Shutdown(Millis deadline, std::function<void()> done) {
  shutting_down_ = true;
  observe_timer_.cancel();
  resync_timer_.cancel();
  connect_log_timer_.cancel();
  for (auto& [s, w] : pauses_) w->Stop();
  for (auto& [s, w] : drains_) w->Stop();
  auto remaining = std::make_shared<int>(1);
  auto finished = std::make_shared<bool>(false);
  auto timer = std::make_shared<boost::asio::steady_timer>(io_);
  auto finish = [remaining, finished, done, timer]() {
    if (--*remaining > 0 || *finished) return;
    *finished = true;
    timer->cancel();
    done();
  };
  auto deregister = [this, remaining, finish](Registration& reg) {
    reg.Stop();
    if (!reg.registered()) return;
    ++*remaining;
    session_.Delete(reg.node(), -1, [id = reg.id(), finish](Status s) {
      if (s.ok() || s.code() == StatusCode::kNotFound) {
        LOG(INFO) << "deregistered " << id.ToString() << " (shutting down)";
      } else {
        LOG(WARNING) << "could not deregister " << id.ToString() << ": "
                     << s.ToString();
      }
      finish();
    });
  };
  for (auto& [id, inst] : instances_) {
    inst->stopped = true;
    if (inst->monitor) inst->monitor->Stop();
    if (inst->observer) {
      // Its report node goes with the session, which closes next.
      inst->observer->Stop("shutting down");
    }
    deregister(*inst->reg);
  }
  for (auto& reg : retiring_) deregister(*reg);
  ++*remaining;
  record_->Delete(finish);  // stops its writes; deletes the node if ours
  timer->expires_after(deadline);
  timer->async_wait([remaining, finished, done](const boost::system::error_code& ec) {
    if (ec || *finished) return;
    *finished = true;
    LOG(WARNING) << "shutdown: ZooKeeper did not confirm every deletion in "
                    "time; closing the session removes our nodes anyway";
    done();
  });
  finish();  // drops the initial count
}

}  // namespace zkroll::agent
