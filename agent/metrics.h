// AgentMetrics: every Prometheus series the agent exports, in one place
// (prometheus-cpp's registry; the list with PromQL examples is in
// docs/agent.md, "Metrics").
//
// The agent's code reports events where they already happen: a check
// result, a health transition, a registration written, and, through the
// ZkObserver it hands to its ZkSession, every ZooKeeper call, watch event
// and session event. State (healthy, registered, paused, forwarding) and
// the forwarder's counters are copied in by Agent::RefreshMetrics(), which
// runs before every scrape and whenever the agent publishes its record, so
// a scrape always sees the state of that moment and a change of state is
// counted once even between two scrapes.
//
// Names follow Prometheus conventions: the zkroll_agent_ prefix, base units
// (seconds, bytes), _total on counters. Per-instance series carry the
// labels service and address ("10.0.0.5:9000"); the label is not called
// `instance`, which Prometheus itself sets to the scraped target.
//
// Thread-safety: AddInstance, RemoveInstance and the InstanceSeries
// methods keep per-instance bookkeeping without a lock: call them on one
// thread (the agent's executor). The observer from zk_observer(), the
// registration counters and Serialize() may be called from any thread (the
// series are prometheus-cpp atomics and locks).
#ifndef ZKROLL_AGENT_METRICS_H_
#define ZKROLL_AGENT_METRICS_H_

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/forward/forwarder.h"
#include "common/names.h"
#include "common/zk_session.h"

namespace zkroll::agent {

// An instance's state as /agents/<host> publishes it.
struct InstanceMetricsState {
  bool healthy = false;
  bool registered = false;
  bool paused = false;
  bool forwarding = false;
};

class AgentMetrics {
 public:
  class InstanceSeries;

  AgentMetrics();
  ~AgentMetrics();
  AgentMetrics(const AgentMetrics&) = delete;
  AgentMetrics& operator=(const AgentMetrics&) = delete;

  // Counts the session's calls, watch events and session states. It shares
  // the registry, so it may outlive this object (a session destroyed later).
  std::shared_ptr<ZkObserver> zk_observer() const;

  // The series of one instance; created on first use, the same object for
  // the same id until RemoveInstance(id), which deletes every series with
  // its labels (an instance removed by a reload must vanish from scrapes).
  InstanceSeries& AddInstance(const InstanceId& id);
  void RemoveInstance(const InstanceId& id);

  // A registration was written (the guarded multi succeeded) / a
  // registration was deleted by the agent.
  void OnRegistrationWritten();
  void OnDeregistrationWritten();

  // Every series in the text exposition format (version 0.0.4).
  std::string Serialize() const;

  // The content type of Serialize()'s output, for the HTTP answer.
  static const char* ContentType();

  struct Families;  // prometheus-cpp types stay in metrics.cc

 private:
  std::shared_ptr<Families> families_;
  std::map<InstanceId, std::unique_ptr<InstanceSeries>> instances_;
};

class AgentMetrics::InstanceSeries {
 public:
  InstanceSeries(std::shared_ptr<Families> families, const InstanceId& id);
  ~InstanceSeries();  // removes every series of this instance
  InstanceSeries(const InstanceSeries&) = delete;
  InstanceSeries& operator=(const InstanceSeries&) = delete;

  void OnCheckResult(bool pass, std::chrono::microseconds elapsed);
  void OnHealthTransition(bool healthy);
  // Sets the state gauges; a change of the published state (paused,
  // registered, healthy, unhealthy, in that precedence) counts one
  // transition, labelled with the state entered.
  void SetState(const InstanceMetricsState& state);
  // The forwarder's cumulative counters (forwarding mode). A counter that
  // went down belongs to a new forwarder (a reload changed its settings)
  // and counts from zero again.
  void SetForwardStats(const std::vector<forward::BackendStats>& stats);

  struct Series;

 private:
  std::shared_ptr<Families> families_;
  std::unique_ptr<Series> s_;
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_METRICS_H_
