// Agent: owns every registration of the instances declared on this host.
//
// For each instance it runs a HealthMonitor (common/health) and keeps
//   registered  <=>  healthy (rise/fall) && not paused && session alive
// by creating or deleting the ephemeral /services/<service>/<ip>_<port>
// (agent/registration.h: the guarded multi, a lost reply learnt, the
// exists-watch on a registration we own, our previous session's node
// replaced in one step).
//
// Session rules: on connection loss nothing is deleted and nothing is
// re-created; on expiry every registration is gone with the session and the
// pause views are forgotten; on the new session the agent re-reads the
// pause flags and re-registers only healthy, unpaused instances.
//
// Reload: an added instance starts; a removed one ends deregistered, also
// when its registration was in flight or its outcome unknown at the
// reload (the agent keeps its Registration until then); a changed one
// restarts its checks and keeps its registration, with whatever is in
// flight.
//
// /agents/<host> (ephemeral, AgentRecord) lists every instance with its
// state; it is written once a change of what it shows has settled for a
// second (at most 5 s after it), and on every resync (agent/agent_record.h).
//
// An instance with forward_backend is in forwarding mode: the agent also
// runs its forwarder (agent/forwarding.h). Registration rules do not
// change; the health check reaches the backend through the forwarder.
//
// Drain on evidence: while a coordinator's request
// /drain/<service>/<ip>_<port> exists for one of its instances, the agent
// observes that instance's inbound traffic and publishes
// /traffic/<service>/<ip>_<port> (agent/drain_watcher.h,
// agent/traffic_observer.h). A request that vanishes (its coordinator
// finished, or its session ended) stops the observation and removes the
// report.
//
// Threading: everything runs on the io_context given at construction.
#ifndef ZKROLL_AGENT_AGENT_H_
#define ZKROLL_AGENT_AGENT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/agent_record.h"
#include "agent/agent_tree.h"
#include "agent/config.h"
#include "agent/drain_watcher.h"
#include "agent/ephemeral_node.h"
#include "agent/forwarding.h"
#include "agent/pause_watcher.h"
#include "agent/registration.h"
#include "agent/summary.h"
#include "common/clock.h"
#include "common/health/monitor.h"
#include "common/zk_session.h"

namespace zkroll::agent {

class AgentMetrics;

class Agent {
 public:
  // `metrics` (may be null) must outlive the agent; the agent reports its
  // events to it (agent/metrics.h).
  Agent(boost::asio::io_context& io, AgentConfig config,
        std::vector<Credential> credentials, AgentMetrics* metrics = nullptr);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Starts connecting; the C client retries until a server answers, and the
  // agent logs while it waits.
  Status Start();

  // Applies a new, already validated configuration: added instances start,
  // removed ones are deregistered, changed ones restart their checks.
  void Reload(AgentConfig config);

  // Deregisters every instance, deletes /agents/<host>, then calls `done`
  // (at most `deadline` later even if ZooKeeper does not answer).
  void Shutdown(Millis deadline, std::function<void()> done);

  // The agent's state for its supervisor (agent/systemd_notify.h).
  // `started` latches once the session is up (connected, the ACLs of the
  // roots read) and the first reconcile is done: every instance has
  // settled, i.e. its service's pause flags were read and either it is
  // paused, or it is healthy and registered, or a check failed before it
  // was ever healthy (it stays unregistered until `rise` passes), or its
  // registration was refused for good (another owner, no permission).
  AgentSummary Summary() const;

  // `listener` runs on the io_context after anything that may change
  // Summary(): often, so it should coalesce.
  void SetStateListener(std::function<void()> listener);

  // Copies every instance's state and forwarder counters into the metrics
  // (no-op without them). Runs before each scrape.
  void RefreshMetrics();

 private:
  struct Instance;
  using InstancePtr = std::shared_ptr<Instance>;

  void OnSessionEvent(const SessionEvent& e);
  void OnNewSession();
  // `forward`: a running forwarder to keep (a reload that changed only
  // the checks must not drop forwarded connections).
  // `reg`: the registration of the instance this one replaces (a reload
  // that changed its settings), kept with whatever is in flight. Without
  // it, a removed registration of the same instance still retiring is
  // taken over; else a new one is made.
  void StartInstance(const InstanceConfig& cfg, bool initially_healthy,
                     std::shared_ptr<ForwardedInstance> forward = nullptr,
                     std::shared_ptr<Registration> reg = nullptr);
  // Stops its checks, forwarder and observation (not its registration).
  void StopInstance(const InstancePtr& inst);
  // Reload steps (agent/reload_plan.h).
  void RemoveInstance(const InstanceId& id);
  void ChangeInstance(const InstanceConfig& cfg);
  std::shared_ptr<PauseWatcher> PauseFor(const ServiceName& service);
  void OnPauseUpdate(const ServiceName& service, const PauseSnapshot& snap);
  std::shared_ptr<DrainWatcher> DrainFor(const ServiceName& service);
  // Tells the service's drain watcher which instances are ours.
  void UpdateDrainInstances(const ServiceName& service);
  void OnDrainUpdate(const ServiceName& service, const DrainView& view);
  void StartObserving(const InstancePtr& inst, const DrainRequestView& req);
  // Deletes reports of ours that no observation owns (after a reconnect).
  void SweepTrafficReports();
  // The registration's view of `inst` (agent/registration.h).
  Registration::Owner RegistrationOwner(const InstancePtr& inst);
  // Drops the removed instances' registrations that are done.
  void PruneRetiring();
  std::string RecordFor(const Instance& inst) const;
  // Something /agents/<host> shows changed: counts it for the metrics
  // (coalesced, 50 ms) and has the record written (agent/agent_record.h).
  void PublishSoon(AgentRecordPublisher::Change change =
                       AgentRecordPublisher::Change::kState);
  proto::AgentRecord BuildAgentRecord() const;
  // Creates /services/<service> if needed, then reconciles its instances.
  void EnsureServiceDir(const ServiceName& service);
  void ArmResync();
  void ArmConnectLog();
  bool Paused(const Instance& inst) const;
  bool Settled(const Instance& inst) const;
  void StateChanged();
  void ObserveStates();

  boost::asio::io_context& io_;
  AgentConfig config_;
  ZkSession session_;
  std::map<InstanceId, InstancePtr> instances_;
  // Registrations of removed instances until they end deregistered.
  std::vector<std::shared_ptr<Registration>> retiring_;
  std::map<std::string, std::shared_ptr<PauseWatcher>> pauses_;
  std::map<std::string, std::shared_ptr<DrainWatcher>> drains_;
  std::string hostname_;  // gethostname(), for traffic reports
  boost::asio::steady_timer observe_timer_;  // metrics: ObserveStates()
  boost::asio::steady_timer resync_timer_;
  boost::asio::steady_timer connect_log_timer_;
  bool observe_pending_ = false;
  std::shared_ptr<AgentRecordPublisher> record_;  // /agents/<host>
  bool shutting_down_ = false;
  AgentTree tree_;  // the roots and their ACLs, per session
  google::protobuf::Timestamp started_at_;
  std::chrono::steady_clock::time_point start_time_;
  bool had_session_ = false;
  bool started_ = false;  // see Summary()
  std::function<void()> state_listener_;
  AgentMetrics* metrics_;
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_AGENT_H_
