// TrafficObserver: observes one instance's inbound traffic while a
// coordinator's DrainRequest for it exists, and publishes what it sees as
// /traffic/<service>/<ip>_<port> (TrafficReport, ephemeral; docs/design.md,
// "Traffic observation").
//
// Start() takes the baseline sample at once, then one sample every
// interval on the executor. Each sample goes into a TrafficAggregator and
// a report is built after it. It is written, with at most one write in
// flight (so at most once per interval), when it is worth a ZooKeeper
// write: the first one, one that shows something new (connections, bytes,
// peers, source, error: everything but the clock-driven fields
// observed_ms, quiet_ms, samples, sampled_at and the peers' idle_ms), the
// first whose quiet_ms reaches the request's quiet_ms (the coordinator's
// --drain-quiet, all its decision compares quiet_ms with), and, when the
// last one written already reached it, the next one after PausedChanged().
// With a request that has no quiet_ms (an older
// coordinator) every report is written. A report that could not be
// written is written again at the next tick. The report's source:
//   "sock_diag"            the kernel's socket tables (normal case);
//   "sock_diag+forwarder"  the same, plus the forwarder's counters, for an
//                          instance in forwarding mode;
//   "forwarder"            the dump failed but the forwarder's counters
//                          are there: connections only, no bytes, no peers;
//   "none"                 the dump failed and there is nothing else.
// Whenever the dump fails, `error` says why (e.g. the errno of the netlink
// socket) and quiet_ms is 0: nothing seen is not the same as quiet.
//
// Stop() ends sampling and deletes the node (also when its creation is
// still in flight). Session rules: on expiry the node is gone with the
// session and sampling goes on (the aggregates stay valid); on the new
// session the node is published again.
//
// The node takes the ACL of /traffic (set by `zkroll init`); nothing is
// written until that ACL is known. In an open tree the agent creates
// /traffic and /traffic/<service>.
//
// Threading: executor only. Hold by shared_ptr (Create).
#ifndef ZKROLL_AGENT_TRAFFIC_OBSERVER_H_
#define ZKROLL_AGENT_TRAFFIC_OBSERVER_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/ephemeral_node.h"
#include "agent/observe/traffic_aggregator.h"
#include "agent/observe/traffic_sampler.h"
#include "common/names.h"
#include "common/zk_session.h"
#include "zkroll.pb.h"

namespace zkroll::agent {

// A forwarder's counters, summed over its backends.
struct ForwarderCounts {
  uint32_t active = 0;
  uint64_t connections = 0;  // ever accepted and spliced
};

struct TrafficObserverOptions {
  InstanceId id;
  std::string host;             // the agent's host id
  std::string hostname;         // gethostname()
  proto::DrainRequest request;  // validated (agent/drain_watcher.h)
  // One sample of the instance's connections (normally a TrafficSampler).
  std::function<Result<observe::TrafficSample>()> sample;
  // The forwarder's counters; empty, or nullopt, for a plain instance.
  std::function<std::optional<ForwarderCounts>()> forwarder;
  // Monotonic time for the aggregates (tests drive it).
  std::function<observe::MonoTime()> now = [] {
    return std::chrono::steady_clock::now();
  };
  size_t max_peers = 100;
};

class TrafficObserver : public std::enable_shared_from_this<TrafficObserver> {
 public:
  static std::shared_ptr<TrafficObserver> Create(
      ZkSession* session, boost::asio::any_io_executor ex,
      TrafficObserverOptions options);
  ~TrafficObserver();
  TrafficObserver(const TrafficObserver&) = delete;
  TrafficObserver& operator=(const TrafficObserver&) = delete;

  void Start();
  // `why` goes into the log line ("request gone", "instance removed").
  void Stop(const std::string& why);
  void OnNewSession();
  void OnExpired();
  // The agent saw the instance's pause change. A coordinator waits for a
  // report written after its pause; if the last one written already showed
  // the instance quiet (so no later report is sure to come), the latest
  // report (or, with a write in flight, the next one) is written whatever
  // it shows.
  void PausedChanged();

  const std::string& deploy_id() const { return options_.request.deploy_id(); }
  // The report last built (for tests and the debug log).
  const proto::TrafficReport& last_report() const { return report_; }

 private:
  TrafficObserver(ZkSession* session, boost::asio::any_io_executor ex,
                  TrafficObserverOptions options);
  void Tick();
  void ArmTick();
  void Sample();
  void Publish();
  // Whether report_ is worth a write (see the top of this file).
  bool WorthWriting() const;
  void LearnAcl();

  ZkSession* session_;
  TrafficObserverOptions options_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<EphemeralNode> node_;
  observe::TrafficAggregator aggregator_;
  observe::MonoTime started_;
  proto::TrafficReport report_;
  uint64_t sequence_ = 0;
  uint64_t samples_ = 0;
  std::optional<ForwarderCounts> forwarder_base_;  // at the first sample
  std::optional<observe::MonoTime> forwarder_activity_;
  uint64_t forwarder_last_total_ = 0;
  std::string degraded_;  // the error last logged, to log each change once
  bool stopped_ = false;
  bool in_flight_ = false;
  bool dir_ready_ = false;  // /traffic/<service> exists (this session)
  bool publish_next_ = true;  // write the next report whatever it shows
  // The last report written, without its clock-driven fields, and its
  // quiet_ms.
  std::string published_shown_;
  uint64_t published_quiet_ms_ = 0;
  std::optional<AclList> acl_;
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_TRAFFIC_OBSERVER_H_
