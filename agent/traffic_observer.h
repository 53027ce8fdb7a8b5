// TrafficObserver: observes one instance's inbound traffic while a
// coordinator's DrainRequest for it exists, and publishes what it sees as
// /traffic/<service>/<ip>_<port> (TrafficReport, ephemeral; docs/design.md,
// "Traffic observation").
//
// Start() takes the baseline sample at once, then one sample every
// interval on the executor. Each sample goes into a TrafficAggregator and
// a report is published after it, with at most one write in flight (a
// sample taken while one is in flight is published by the next tick, so
// the node is written at most once per interval). The report's source:
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
  std::optional<AclList> acl_;
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_TRAFFIC_OBSERVER_H_
