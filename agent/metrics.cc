#include "agent/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <ctime>
#include <mutex>

#include "common/states.h"
#include "common/version.h"

namespace zkroll::agent {

namespace pm = prometheus;

namespace {

// Health checks: a local TCP connect takes tens of microseconds, an HTTP
// check a few milliseconds, a slow exec check seconds; timeouts are 1s by
// default and rarely above 10s. Fine below 25ms, coarse above: every bucket
// is a series per instance, and with 1,000 instances the histogram is most
// of a scrape (bench/README.md).
const pm::Histogram::BucketBoundaries kCheckBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01,   0.025,   0.1,    0.5,   2.5,    10};
// ZooKeeper calls: sub-millisecond on a quiet LAN ensemble, up to the
// session timeout while a server is away.
const pm::Histogram::BucketBoundaries kZkBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25,   0.5,   1,      2.5,   5,    10,    30};

const char* kSessionStates[] = {"connecting", "connected", "disconnected",
                                "expired", "auth_failed"};

const char* PublishedState(const InstanceMetricsState& s) {
  return WireName(AgentStateOf(s.paused, s.registered, s.healthy)).data();
}

double Seconds(std::chrono::nanoseconds d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

struct AgentMetrics::Families {
  pm::Registry registry;

  pm::Family<pm::Gauge>& build_info =
      pm::BuildGauge()
          .Name("zkroll_agent_build_info")
          .Help("Always 1; the labels say which zkroll-agent build runs")
          .Register(registry);
  pm::Family<pm::Gauge>& start_time =
      pm::BuildGauge()
          .Name("zkroll_agent_start_time_seconds")
          .Help("When the agent started, in seconds since the Unix epoch")
          .Register(registry);
  pm::Family<pm::Gauge>& instances = pm::BuildGauge()
                                         .Name("zkroll_agent_instances")
                                         .Help("Instances this agent manages")
                                         .Register(registry);

  // Per instance.
  pm::Family<pm::Gauge>& healthy =
      pm::BuildGauge()
          .Name("zkroll_agent_instance_healthy")
          .Help("1 while the instance counts as healthy (after rise/fall)")
          .Register(registry);
  pm::Family<pm::Gauge>& registered =
      pm::BuildGauge()
          .Name("zkroll_agent_instance_registered")
          .Help("1 while the agent holds the instance's registration")
          .Register(registry);
  pm::Family<pm::Gauge>& paused =
      pm::BuildGauge()
          .Name("zkroll_agent_instance_paused")
          .Help("1 while a pause flag keeps the instance unregistered")
          .Register(registry);
  pm::Family<pm::Gauge>& forwarding =
      pm::BuildGauge()
          .Name("zkroll_agent_instance_forwarding")
          .Help("1 if the instance is in forwarding mode")
          .Register(registry);
  pm::Family<pm::Counter>& state_transitions =
      pm::BuildCounter()
          .Name("zkroll_agent_instance_state_transitions_total")
          .Help(
              "Changes of the published state (paused, registered, healthy, "
              "unhealthy), by the state entered")
          .Register(registry);
  pm::Family<pm::Counter>& health_transitions =
      pm::BuildCounter()
          .Name("zkroll_agent_health_transitions_total")
          .Help("Health flips after rise/fall, by the state entered")
          .Register(registry);
  pm::Family<pm::Counter>& checks =
      pm::BuildCounter()
          .Name("zkroll_agent_checks_total")
          .Help("Completed health checks, by result (pass, fail)")
          .Register(registry);
  pm::Family<pm::Histogram>& check_duration =
      pm::BuildHistogram()
          .Name("zkroll_agent_check_duration_seconds")
          .Help("Time from the start of a health check to its outcome")
          .Register(registry);

  // Forwarding mode, per instance and backend.
  pm::Family<pm::Counter>& fwd_connections =
      pm::BuildCounter()
          .Name("zkroll_agent_forward_connections_total")
          .Help("Connections the forwarder spliced to the backend")
          .Register(registry);
  pm::Family<pm::Gauge>& fwd_active =
      pm::BuildGauge()
          .Name("zkroll_agent_forward_active_connections")
          .Help("Connections spliced to the backend right now")
          .Register(registry);
  pm::Family<pm::Counter>& fwd_failures =
      pm::BuildCounter()
          .Name("zkroll_agent_forward_connect_failures_total")
          .Help("Connects to the backend that failed")
          .Register(registry);
  pm::Family<pm::Counter>& fwd_fallbacks =
      pm::BuildCounter()
          .Name("zkroll_agent_forward_fallbacks_total")
          .Help("Failed connects to the backend saved by the fallback")
          .Register(registry);
  pm::Family<pm::Counter>& fwd_bytes =
      pm::BuildCounter()
          .Name("zkroll_agent_forward_bytes_total")
          .Help("Bytes passed on, by direction (to_backend, from_backend)")
          .Register(registry);
  pm::Family<pm::Counter>& fwd_http =
      pm::BuildCounter()
          .Name("zkroll_agent_forward_http_responses_total")
          .Help("HTTP responses from the backend (forward_protocol = http)")
          .Register(registry);
  pm::Family<pm::Counter>& fwd_http_5xx =
      pm::BuildCounter()
          .Name("zkroll_agent_forward_http_5xx_responses_total")
          .Help("HTTP 5xx responses from the backend (forward_protocol = http)")
          .Register(registry);

  // Agent-wide ZooKeeper and registration counters.
  pm::Family<pm::Gauge>& session_state =
      pm::BuildGauge()
          .Name("zkroll_agent_zookeeper_session_state")
          .Help("1 for the session's current state, 0 for the others")
          .Register(registry);
  pm::Family<pm::Counter>& sessions =
      pm::BuildCounter()
          .Name("zkroll_agent_zookeeper_sessions_total")
          .Help("ZooKeeper sessions established")
          .Register(registry);
  pm::Family<pm::Counter>& disconnects =
      pm::BuildCounter()
          .Name("zkroll_agent_zookeeper_disconnects_total")
          .Help("Connection losses of an established session")
          .Register(registry);
  pm::Family<pm::Counter>& reconnects =
      pm::BuildCounter()
          .Name("zkroll_agent_zookeeper_reconnects_total")
          .Help("Reconnections that kept the session")
          .Register(registry);
  pm::Family<pm::Counter>& expiries =
      pm::BuildCounter()
          .Name("zkroll_agent_zookeeper_session_expiries_total")
          .Help("Sessions that expired")
          .Register(registry);
  pm::Family<pm::Counter>& watch_events =
      pm::BuildCounter()
          .Name("zkroll_agent_zookeeper_watch_events_total")
          .Help("Watch events delivered, by type")
          .Register(registry);
  pm::Family<pm::Histogram>& op_duration =
      pm::BuildHistogram()
          .Name("zkroll_agent_zookeeper_operation_duration_seconds")
          .Help(
              "Time from submitting a ZooKeeper call to its answer, by "
              "operation")
          .Register(registry);
  pm::Family<pm::Counter>& op_errors =
      pm::BuildCounter()
          .Name("zkroll_agent_zookeeper_operation_errors_total")
          .Help("ZooKeeper calls that failed, by operation and code")
          .Register(registry);
  pm::Family<pm::Counter>& registrations =
      pm::BuildCounter()
          .Name("zkroll_agent_registrations_total")
          .Help("Registrations written to ZooKeeper")
          .Register(registry);
  pm::Family<pm::Counter>& deregistrations =
      pm::BuildCounter()
          .Name("zkroll_agent_deregistrations_total")
          .Help("Registrations the agent deleted (unhealthy or paused)")
          .Register(registry);

  pm::Counter& registrations_total = registrations.Add({});
  pm::Counter& deregistrations_total = deregistrations.Add({});
  pm::Counter& sessions_total = sessions.Add({});
  pm::Counter& disconnects_total = disconnects.Add({});
  pm::Counter& reconnects_total = reconnects.Add({});
  pm::Counter& expiries_total = expiries.Add({});
  pm::Gauge& instances_now = instances.Add({});

  // The per-operation children, made once: the observer runs on the
  // ZooKeeper thread for every call, and a Family::Add looks up by labels
  // under a lock.
  std::map<ZkOperation, pm::Histogram*> op_histograms;
  std::mutex errors_mu;  // guards op_error_counters (filled lazily)
  std::map<std::pair<ZkOperation, std::string>, pm::Counter*> op_error_counters;

  void SetSessionState(const char* state) {
    for (const char* s : kSessionStates) {
      session_state.Add({{"state", s}}).Set(std::string(s) == state ? 1 : 0);
    }
  }

  Families() {
    build_info
        .Add({{"version", ZKROLL_VERSION}, {"revision", ZKROLL_GIT_REVISION}})
        .Set(1);
    start_time.Add({}).Set(static_cast<double>(std::time(nullptr)));
    for (ZkOperation op :
         {ZkOperation::kCreate, ZkOperation::kDelete, ZkOperation::kExists,
          ZkOperation::kGet, ZkOperation::kGetChildren, ZkOperation::kSet,
          ZkOperation::kMulti, ZkOperation::kSync, ZkOperation::kGetAcl,
          ZkOperation::kSetAcl}) {
      op_histograms[op] =
          &op_duration.Add({{"operation", ZkOperationName(op)}}, kZkBuckets);
    }
    SetSessionState("connecting");
  }
};

namespace {

class Observer : public ZkObserver {
 public:
  explicit Observer(std::shared_ptr<AgentMetrics::Families> f)
      : f_(std::move(f)) {}

  void OnOperation(ZkOperation op, const char* code,
                   std::chrono::nanoseconds latency) override {
    f_->op_histograms.at(op)->Observe(Seconds(latency));
    if (std::string_view(code) == "ok") return;
    pm::Counter* c;
    {
      std::lock_guard<std::mutex> l(f_->errors_mu);
      auto& slot = f_->op_error_counters[{op, code}];
      if (slot == nullptr) {
        slot = &f_->op_errors.Add(
            {{"operation", ZkOperationName(op)}, {"code", code}});
      }
      c = slot;
    }
    c->Increment();
  }

  void OnWatchEvent(WatchEvent::Type type) override {
    f_->watch_events.Add({{"type", WatchEventTypeName(type)}}).Increment();
  }

  void OnSessionEvent(SessionEvent::Kind kind) override {
    switch (kind) {
      case SessionEvent::Kind::kNewSession:
        f_->sessions_total.Increment();
        f_->SetSessionState("connected");
        break;
      case SessionEvent::Kind::kReconnected:
        f_->reconnects_total.Increment();
        f_->SetSessionState("connected");
        break;
      case SessionEvent::Kind::kDisconnected:
        f_->disconnects_total.Increment();
        f_->SetSessionState("disconnected");
        break;
      case SessionEvent::Kind::kExpired:
        f_->expiries_total.Increment();
        f_->SetSessionState("expired");
        break;
      case SessionEvent::Kind::kAuthFailed:
        f_->SetSessionState("auth_failed");
        break;
    }
  }

 private:
  std::shared_ptr<AgentMetrics::Families> f_;
};

}  // namespace

AgentMetrics::AgentMetrics() : families_(std::make_shared<Families>()) {}

AgentMetrics::~AgentMetrics() = default;

std::shared_ptr<ZkObserver> AgentMetrics::zk_observer() const {
  return std::make_shared<Observer>(families_);
}

AgentMetrics::InstanceSeries& AgentMetrics::AddInstance(const InstanceId& id) {
  auto& slot = instances_[id];
  if (!slot) slot = std::make_unique<InstanceSeries>(families_, id);
  families_->instances_now.Set(static_cast<double>(instances_.size()));
  return *slot;
}

void AgentMetrics::RemoveInstance(const InstanceId& id) {
  instances_.erase(id);
  families_->instances_now.Set(static_cast<double>(instances_.size()));
}

void AgentMetrics::OnRegistrationWritten() {
  families_->registrations_total.Increment();
}

void AgentMetrics::OnDeregistrationWritten() {
  families_->deregistrations_total.Increment();
}

std::string AgentMetrics::Serialize() const {
  return pm::TextSerializer().Serialize(families_->registry.Collect());
}

const char* AgentMetrics::ContentType() {
  return "text/plain; version=0.0.4; charset=utf-8";
}

// --- per instance -----------------------------------------------------------

struct AgentMetrics::InstanceSeries::Series {
  pm::Labels labels;
  pm::Gauge* healthy;
  pm::Gauge* registered;
  pm::Gauge* paused;
  pm::Gauge* forwarding;
  pm::Counter* pass;
  pm::Counter* fail;
  pm::Histogram* duration;
  // Made on first use (most instances never see most of them).
  std::map<std::string, pm::Counter*> state_transitions;
  std::map<std::string, pm::Counter*> health_transitions;
  const char* state = nullptr;  // published state last seen
  // Forwarding: per backend, the counters last copied and their series.
  struct Backend {
    forward::BackendStats last;
    pm::Labels labels;
    pm::Counter* connections;
    pm::Gauge* active;
    pm::Counter* failures;
    pm::Counter* fallbacks;
    pm::Counter* bytes_to;
    pm::Counter* bytes_from;
    pm::Counter* http;
    pm::Counter* http_5xx;
  };
  std::map<std::string, Backend> backends;
};

AgentMetrics::InstanceSeries::InstanceSeries(std::shared_ptr<Families> f,
                                             const InstanceId& id)
    : families_(std::move(f)), s_(std::make_unique<Series>()) {
  Families& F = *families_;
  s_->labels = {{"service", id.service.str()},
                {"address", id.address.ToString()}};
  const pm::Labels& l = s_->labels;
  s_->healthy = &F.healthy.Add(l);
  s_->registered = &F.registered.Add(l);
  s_->paused = &F.paused.Add(l);
  s_->forwarding = &F.forwarding.Add(l);
  pm::Labels pass = l, fail = l;
  pass["result"] = "pass";
  fail["result"] = "fail";
  s_->pass = &F.checks.Add(pass);
  s_->fail = &F.checks.Add(fail);
  s_->duration = &F.check_duration.Add(l, kCheckBuckets);
}

AgentMetrics::InstanceSeries::~InstanceSeries() {
  Families& F = *families_;
  F.healthy.Remove(s_->healthy);
  F.registered.Remove(s_->registered);
  F.paused.Remove(s_->paused);
  F.forwarding.Remove(s_->forwarding);
  F.checks.Remove(s_->pass);
  F.checks.Remove(s_->fail);
  F.check_duration.Remove(s_->duration);
  for (auto& [to, c] : s_->state_transitions) F.state_transitions.Remove(c);
  for (auto& [to, c] : s_->health_transitions) F.health_transitions.Remove(c);
  for (auto& [name, b] : s_->backends) {
    F.fwd_connections.Remove(b.connections);
    F.fwd_active.Remove(b.active);
    F.fwd_failures.Remove(b.failures);
    F.fwd_fallbacks.Remove(b.fallbacks);
    F.fwd_bytes.Remove(b.bytes_to);
    F.fwd_bytes.Remove(b.bytes_from);
    F.fwd_http.Remove(b.http);
    F.fwd_http_5xx.Remove(b.http_5xx);
  }
}

void AgentMetrics::InstanceSeries::OnCheckResult(
    bool pass, std::chrono::microseconds elapsed) {
  (pass ? s_->pass : s_->fail)->Increment();
  s_->duration->Observe(Seconds(elapsed));
}

void AgentMetrics::InstanceSeries::OnHealthTransition(bool healthy) {
  const char* to =
      WireName(healthy ? AgentState::kHealthy : AgentState::kUnhealthy).data();
  auto& c = s_->health_transitions[to];
  if (c == nullptr) {
    pm::Labels l = s_->labels;
    l["to"] = to;
    c = &families_->health_transitions.Add(l);
  }
  c->Increment();
}

void AgentMetrics::InstanceSeries::SetState(const InstanceMetricsState& st) {
  s_->healthy->Set(st.healthy ? 1 : 0);
  s_->registered->Set(st.registered ? 1 : 0);
  s_->paused->Set(st.paused ? 1 : 0);
  s_->forwarding->Set(st.forwarding ? 1 : 0);
  const char* state = PublishedState(st);
  // The first state is where the instance starts, not a transition.
  if (s_->state != nullptr && std::string_view(state) != s_->state) {
    auto& c = s_->state_transitions[state];
    if (c == nullptr) {
      pm::Labels l = s_->labels;
      l["to"] = state;
      c = &families_->state_transitions.Add(l);
    }
    c->Increment();
  }
  s_->state = state;
}

void AgentMetrics::InstanceSeries::SetForwardStats(
    const std::vector<forward::BackendStats>& stats) {
  Families& F = *families_;
  for (const auto& now : stats) {
    const std::string name = now.backend.ToString();
    auto it = s_->backends.find(name);
    if (it == s_->backends.end()) {
      Series::Backend b;
      b.labels = s_->labels;
      b.labels["backend"] = name;
      b.connections = &F.fwd_connections.Add(b.labels);
      b.active = &F.fwd_active.Add(b.labels);
      b.failures = &F.fwd_failures.Add(b.labels);
      b.fallbacks = &F.fwd_fallbacks.Add(b.labels);
      pm::Labels to = b.labels, from = b.labels;
      to["direction"] = "to_backend";
      from["direction"] = "from_backend";
      b.bytes_to = &F.fwd_bytes.Add(to);
      b.bytes_from = &F.fwd_bytes.Add(from);
      b.http = &F.fwd_http.Add(b.labels);
      b.http_5xx = &F.fwd_http_5xx.Add(b.labels);
      it = s_->backends.emplace(name, std::move(b)).first;
    }
    Series::Backend& b = it->second;
    auto add = [](pm::Counter* c, uint64_t last, uint64_t now) {
      c->Increment(static_cast<double>(now >= last ? now - last : now));
    };
    add(b.connections, b.last.connections, now.connections);
    add(b.failures, b.last.connect_failures, now.connect_failures);
    add(b.fallbacks, b.last.fallbacks, now.fallbacks);
    add(b.bytes_to, b.last.bytes_to_backend, now.bytes_to_backend);
    add(b.bytes_from, b.last.bytes_from_backend, now.bytes_from_backend);
    add(b.http, b.last.http_responses, now.http_responses);
    add(b.http_5xx, b.last.http_5xx, now.http_5xx);
    b.active->Set(now.active);
    b.last = now;
  }
}

}  // namespace zkroll::agent
