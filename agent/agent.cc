#include "agent/agent.h"

#include <glog/logging.h>

#include <unistd.h>

#include <set>

#include "agent/registration_txn.h"
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
  bool healthy = false;
  bool registered = false;
  bool was_paused = false;
  bool op_in_flight = false;
  bool dirty = false;        // state changed while an op was in flight
  bool stopped = false;
  std::optional<int32_t> replace_version;  // our previous session's node
  // An exists-watch on `node` is set in the current session. At most one
  // at a time: re-arming on every read would stack watchers that all fire
  // on the next change.
  bool watch_armed = false;
  // A registration multi failed with connection loss: it may have been
  // applied with its reply lost. Until a read of `node` settles it, the
  // instance may be registered, and a later "unhealthy" or "paused" must
  // still remove it.
  bool outcome_unknown = false;
  // Our registration was deleted by someone else: register again only
  // from a pause view read after that (see CheckRegistration).
  bool awaiting_pause_view = false;
  bool conflict_logged = false;
  bool failed_check = false;     // a check failed (start-up readiness)
  bool refused_for_good = false;  // registration cannot succeed as is
  std::string last_check;
  WallTime last_check_at{};
  std::string node;          // /services/<service>/<ip>_<port>
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
  started_at_ = NowRfc3339();
  start_time_ = std::chrono::steady_clock::now();
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) == 0) hostname_ = name;
}

Agent::~Agent() {
  for (auto& [id, inst] : instances_) {
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
        // A delete made while we were away may have fired nothing we saw.
        CheckRegistration(inst);
        Reconcile(inst);
      }
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
        inst->registered = false;
        inst->outcome_unknown = false;  // ephemerals went with the session
        inst->op_in_flight = false;
        inst->replace_version.reset();
        inst->watch_armed = false;  // watches went with the session
        if (inst->observer) inst->observer->OnExpired();
      }
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
      if (id.service == service) Reconcile(inst);
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
    inst->awaiting_pause_view = false;
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
    Reconcile(inst);
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
                          std::shared_ptr<ForwardedInstance> forward) {
  auto inst = std::make_shared<Instance>();
  inst->cfg = cfg;
  inst->healthy = initially_healthy;
  inst->node = paths::InstanceNode(cfg.id.service, cfg.id.address);
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
        Reconcile(inst);
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
        Reconcile(inst);
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

void Agent::StopInstance(const InstancePtr& inst, bool deregister) {
  inst->stopped = true;
  if (inst->monitor) inst->monitor->Stop();
  if (inst->forward) inst->forward->Stop();
  if (inst->observer) {
    inst->observer->Stop("the instance is no longer managed");
    inst->observer.reset();
  }
  if (deregister && inst->registered) {
    session_.Delete(inst->node, -1, [id = inst->cfg.id](Status s) {
      if (s.ok() || s.code() == StatusCode::kNotFound) {
        LOG(INFO) << "deregistered " << id.ToString();
      } else {
        LOG(WARNING) << "could not deregister " << id.ToString() << ": "
                     << s.ToString();
      }
    });
  }
}

void Agent::Reconcile(const InstancePtr& inst) {
  if (inst->stopped || shutting_down_) return;
  if (inst->op_in_flight) {
    inst->dirty = true;
    return;
  }
  if (!session_.connected() || !tree_.acls_known()) return;
  auto it = pauses_.find(inst->cfg.id.service.str());
  // Until the pause flags are known we neither register nor deregister.
  if (it == pauses_.end() || !it->second->snapshot().known) return;
  if (inst->outcome_unknown) {
    LearnRegistration(inst);
    return;
  }
  const PauseSnapshot& snap = it->second->snapshot();
  bool paused = snap.Forbids(inst->cfg.id.address,
                             std::chrono::system_clock::now());
  bool want = inst->healthy && !paused;
  if (want && !inst->registered && !inst->awaiting_pause_view) {
    Register(inst, snap.guard);
  } else if (!want && inst->registered) {
    Deregister(inst);
  }
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

void Agent::Register(const InstancePtr& inst,
                     const registry::GuardVersion& guard) {
  inst->op_in_flight = true;
  inst->dirty = false;
  auto txn = std::make_shared<RegistrationTxn>(RegistrationTxn::Build(
      inst->cfg.id.service, inst->cfg.id.address, RecordFor(*inst), guard,
      inst->replace_version, tree_.services_acl()));
  bool replacing = inst->replace_version.has_value();
  session_.Multi(txn->TakeOps(), [this, inst, replacing, txn](MultiResult r) {
    inst->op_in_flight = false;
    if (inst->stopped) return;
    if (r.status.ok()) {
      if (metrics_) metrics_->OnRegistrationWritten();
      inst->registered = true;
      inst->replace_version.reset();
      inst->conflict_logged = false;
      LOG(INFO) << "registered " << inst->cfg.id.ToString()
                << (replacing ? " (replaced the node of our previous session)"
                              : "");
      CheckRegistration(inst);
      PublishSoon();
    } else {
      OnRegisterFailed(inst, r, txn->Failed(r));
    }
    if (inst->dirty) Reconcile(inst);
  });
}

void Agent::OnRegisterFailed(const InstancePtr& inst, const MultiResult& r,
                             std::optional<RegistrationTxn::Op> failed) {
  using Op = RegistrationTxn::Op;
  const std::string id = inst->cfg.id.ToString();
  if (failed == Op::kPauseGuard) {
    // The guard moved: a pause was made (or lifted) after we looked.
    LOG(INFO) << "registration of " << id
              << " refused by the pause guard (" << r.status.message()
              << "); re-reading pause flags";
    PauseFor(inst->cfg.id.service)->Refresh();
    return;
  }
  StatusCode code = r.status.code();
  if (failed == Op::kRegistryGuard && code == StatusCode::kNotFound) {
    // /services/<service> is missing (deleted by hand, or never made).
    EnsureServiceDir(inst->cfg.id.service);
    return;
  }
  if (code == StatusCode::kAlreadyExists) {
    session_.Get(inst->node, nullptr, [this, inst, id](Result<NodeData> d) {
      if (inst->stopped) return;
      if (!d.ok()) {
        Reconcile(inst);  // gone meanwhile: try again
        return;
      }
      if (d->stat.ephemeral_owner == session_.session_id()) {
        inst->registered = true;
        CheckRegistration(inst);
        PublishSoon();
        return;
      }
      auto rec = ParsePayload<proto::InstanceRecord>(d->data, inst->node);
      if (rec.ok() && rec->host() == config_.host) {
        // Left by our previous session; replace it in one step.
        inst->replace_version = d->stat.version;
        Reconcile(inst);
        return;
      }
      inst->refused_for_good = true;
      StateChanged();
      if (!inst->conflict_logged) {
        inst->conflict_logged = true;
        LOG(ERROR) << inst->node << " is registered by another owner ("
                   << (rec.ok() ? "host " + rec->host()
                                : "unreadable record: " + rec.status().message())
                   << ", session 0x" << std::hex << d->stat.ephemeral_owner
                   << std::dec << "); not touching it. Is " << id
                   << " declared on two hosts?";
      }
    });
    return;
  }
  if (inst->replace_version &&
      (code == StatusCode::kNotFound || code == StatusCode::kBadVersion)) {
    inst->replace_version.reset();  // the old node changed or left
    Reconcile(inst);
    return;
  }
  LOG(WARNING) << "could not register " << id << ": " << r.status.ToString()
               << (r.status.IsRetryable() ? " (will retry)" : "");
  if (r.status.IsRetryable()) inst->outcome_unknown = true;
  if (code == StatusCode::kPermissionDenied) {
    // Our identity may not write there: no retry helps, so start-up must
    // not wait for this instance (the error above says why).
    inst->refused_for_good = true;
    StateChanged();
  }
}

void Agent::LearnRegistration(const InstancePtr& inst) {
  inst->op_in_flight = true;
  inst->dirty = false;
  // Sync first: after a connection loss the client moves to another server,
  // which need not have applied the registration the leader did. A read
  // there would say "no node", and an instance that then turns unhealthy
  // would stay registered.
  session_.Sync(inst->node, [this, inst](Status synced) {
    if (!synced.ok()) {
      // Still unknown; the next check result or reconnect asks again.
      inst->op_in_flight = false;
      return;
    }
    if (inst->stopped) {
      inst->op_in_flight = false;
      return;
    }
    ReadRegistrationOutcome(inst);
  });
}

void Agent::ReadRegistrationOutcome(const InstancePtr& inst) {
  session_.Get(inst->node, nullptr, [this, inst](Result<NodeData> d) {
    inst->op_in_flight = false;
    if (inst->stopped) return;
    if (!d.ok() && d.status().code() != StatusCode::kNotFound) {
      // Still unknown; the next check result or reconnect asks again.
      return;
    }
    inst->outcome_unknown = false;
    inst->registered =
        d.ok() && d->stat.ephemeral_owner == session_.session_id();
    LOG(INFO) << "registration of " << inst->cfg.id.ToString()
              << " whose reply was lost: "
              << (inst->registered ? "it was applied" : "it was not applied");
    if (inst->registered) {
      CheckRegistration(inst);
      PublishSoon();
    }
    Reconcile(inst);
  });
}

void Agent::Deregister(const InstancePtr& inst) {
  inst->op_in_flight = true;
  inst->dirty = false;
  session_.Delete(inst->node, -1, [this, inst](Status s) {
    inst->op_in_flight = false;
    if (s.ok() || s.code() == StatusCode::kNotFound) {
      if (metrics_ && s.ok()) metrics_->OnDeregistrationWritten();
      inst->registered = false;
      LOG(INFO) << "deregistered " << inst->cfg.id.ToString() << " ("
                << (Paused(*inst) ? "paused"
                                  : "unhealthy: " + inst->last_check)
                << ")";
      PublishSoon();
    } else {
      LOG(WARNING) << "could not deregister " << inst->cfg.id.ToString()
                   << ": " << s.ToString() << " (will retry)";
    }
    if (inst->dirty) Reconcile(inst);
  });
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
  rec.set_started_at(started_at_);
  rec.set_updated_at(NowRfc3339());
  for (const auto& [id, inst] : instances_) {
    auto* out = rec.add_instances();
    out->set_service(id.service.str());
    out->set_ip(id.address.ip());
    out->set_port(id.address.port());
    bool paused = Paused(*inst);
    out->set_healthy(inst->healthy);
    out->set_paused(paused);
    out->set_registered(inst->registered);
    out->set_state(
        WireString(AgentStateOf(paused, inst->registered, inst->healthy)));
    out->set_last_check(inst->last_check);
    if (inst->last_check_at != WallTime{}) {
      out->set_last_check_at(FormatRfc3339(inst->last_check_at));
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
    for (auto& entry : instances_) CheckRegistration(entry.second);
    StateChanged();
    record_->Refresh();  // also brings the last checks' times up to date
    ArmResync();
  });
}

void Agent::CheckRegistration(const InstancePtr& inst) {
  if (!inst->registered || inst->op_in_flight || inst->stopped ||
      shutting_down_ || !session_.connected()) {
    return;
  }
  ZkSession::WatchCallback watcher;
  const bool arming = !inst->watch_armed;
  if (arming) {
    inst->watch_armed = true;
    // Fires once: on the delete of our node (or on its re-creation, if it
    // was already gone when set). Events of an expired session are dropped
    // by ZkSession; the watch is re-armed by the read below.
    watcher = [this, inst](const WatchEvent& e) {
      inst->watch_armed = false;
      if (inst->stopped || shutting_down_) return;
      VLOG(1) << inst->node << ": " << WatchEventTypeName(e.type);
      CheckRegistration(inst);
    };
  }
  session_.Exists(
      inst->node, std::move(watcher),
      [this, inst, arming](Result<std::optional<NodeStat>> r) {
        if (!r.ok()) {
          // The watch was not set (connection trouble); the reconnect
          // calls us again.
          if (arming) inst->watch_armed = false;
          return;
        }
        if (inst->stopped || !inst->registered || inst->op_in_flight) return;
        if (r->has_value() &&
            (*r)->ephemeral_owner == session_.session_id()) {
          return;  // still ours
        }
        // Deleted by someone else (an operator, or a pause whose multi
        // crossed our registration): register again through the guard, as
        // soon as the instance is healthy and unpaused.
        LOG(WARNING) << inst->node
                     << (r->has_value() ? " now belongs to another session"
                                        : " was deleted by someone else")
                     << "; registering again if healthy and not paused";
        inst->registered = false;
        PublishSoon();
        // Usually a pause deleted it, whose flag's watch event may not have
        // reached us yet: a registration from the pause view we hold would
        // be refused by the guard, a transaction for nothing. Read the
        // flags first; their update reconciles.
        inst->awaiting_pause_view = true;
        PauseFor(inst->cfg.id.service)->Refresh();
      });
}

void Agent::Reload(AgentConfig config) {
  if (config.zk != config_.zk || config.host != config_.host ||
      config.session_timeout != config_.session_timeout ||
      config.auth_file != config_.auth_file ||
      (config.metrics_listen ? config.metrics_listen->ToString() : "") !=
          (config_.metrics_listen ? config_.metrics_listen->ToString() : "")) {
    LOG(WARNING) << "reload: zk, host, session_timeout, auth_file and "
                    "metrics_listen changes need a restart; keeping the "
                    "running values";
  }
  std::map<InstanceId, InstanceConfig> wanted;
  for (const auto& c : config.instances) wanted[c.id] = c;
  int added = 0, removed = 0, changed = 0;
  for (auto it = instances_.begin(); it != instances_.end();) {
    auto w = wanted.find(it->first);
    if (w == wanted.end()) {
      LOG(INFO) << "reload: " << it->first.ToString()
                << " removed; deregistering";
      StopInstance(it->second, true);
      // Its series go with it: a scrape must not show it any more.
      it->second->metrics = nullptr;
      if (metrics_) metrics_->RemoveInstance(it->first);
      it = instances_.erase(it);
      ++removed;
      continue;
    }
    if (!w->second.SameSettings(it->second->cfg)) {
      LOG(INFO) << "reload: " << it->first.ToString()
                << " changed; restarting its checks";
      InstancePtr old = it->second;
      // A forwarder whose settings did not change keeps running.
      std::shared_ptr<ForwardedInstance> keep;
      if (old->forward && old->cfg.forward == w->second.forward) {
        keep = std::move(old->forward);
      }
      // An observation under way keeps its aggregates, unless the
      // forwarder it reads is replaced (then the watcher starts it anew).
      std::shared_ptr<TrafficObserver> observer;
      if (keep || (!old->forward && !w->second.forward)) {
        observer = std::move(old->observer);
      }
      StopInstance(old, false);
      // Keep the registration and the health verdict; the new checks
      // continue from it rather than from "unknown".
      StartInstance(w->second, old->healthy, keep);
      instances_[w->first]->registered = old->registered;
      instances_[w->first]->observer = std::move(observer);
      instances_[w->first]->observer_owner = old->observer_owner;
      ++changed;
    }
    ++it;
  }
  for (const auto& [id, cfg] : wanted) {
    if (!instances_.count(id)) {
      StartInstance(cfg, false);
      ++added;
    }
  }
  config_.instances = config.instances;
  for (auto& [svc, w] : drains_) {
    UpdateDrainInstances(ServiceName::Parse(svc).value());
    w->Refresh();
  }
  LOG(INFO) << "reload applied: " << added << " added, " << removed
            << " removed, " << changed << " changed, " << instances_.size()
            << " managed";
  PublishSoon(AgentRecordPublisher::Change::kDeclaration);
}

bool Agent::Settled(const Instance& inst) const {
  if (inst.refused_for_good) return true;
  auto it = pauses_.find(inst.cfg.id.service.str());
  if (it == pauses_.end() || !it->second->snapshot().known) return false;
  if (Paused(inst)) return !inst.registered;
  return inst.healthy ? inst.registered : inst.failed_check;
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
        inst->healthy, inst->registered, paused, inst->forward != nullptr});
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
    } else if (inst->registered) {
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
  for (auto& [id, inst] : instances_) {
    inst->stopped = true;
    if (inst->monitor) inst->monitor->Stop();
    if (inst->observer) {
      // Its report node goes with the session, which closes next.
      inst->observer->Stop("shutting down");
    }
    if (!inst->registered) continue;
    ++*remaining;
    session_.Delete(inst->node, -1, [id = id, finish](Status s) {
      if (s.ok() || s.code() == StatusCode::kNotFound) {
        LOG(INFO) << "deregistered " << id.ToString() << " (shutting down)";
      } else {
        LOG(WARNING) << "could not deregister " << id.ToString() << ": "
                     << s.ToString();
      }
      finish();
    });
  }
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
