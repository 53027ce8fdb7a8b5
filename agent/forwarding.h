// ForwardedInstance: one instance in forwarding mode (docs/design.md,
// "Port switching").
//
// It owns the instance's Forwarder (agent/forward/forwarder.h), a
// SwitchWatcher on its switch nodes, and its published state
// /forwarders/<service>/<ip>_<port> (ForwarderState, ephemeral).
//
// The forwarder starts listening once the switch nodes have been read the
// first time, so after a restart it resumes with the backend ZooKeeper
// holds (committed, or in flight), never with a stale configured one. Each
// new view is turned into a backend by DecideForward() and applied to new
// connections; a refused target leaves the backend as it was and is
// published with the reason, so the coordinator waiting for it learns at
// once. The state is republished within 50 ms of a new decision, a new
// failure (failed connect or 5xx) or a backend's last connection closing,
// so the coordinator's verify and drain steps see them as they happen;
// other counter changes (traffic) are published at most once a second.
//
// Session rules follow the agent's: on a lost connection nothing changes
// and traffic keeps flowing to the current backend; on expiry the state
// node is gone and is published again on the new session, after the
// switch nodes were re-read. A ZooKeeper outage never stops forwarding.
//
// Threading: executor only; the forwarder's counters are read on the
// executor when publishing.
#ifndef ZKROLL_AGENT_FORWARDING_H_
#define ZKROLL_AGENT_FORWARDING_H_

#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/config.h"
#include "agent/ephemeral_node.h"
#include "agent/forward/forwarder.h"
#include "agent/switch_watcher.h"
#include "agent/traffic_observer.h"
#include "common/zk_session.h"

namespace zkroll::agent {

class ForwardedInstance
    : public std::enable_shared_from_this<ForwardedInstance> {
 public:
  static std::shared_ptr<ForwardedInstance> Create(
      ZkSession* session, boost::asio::any_io_executor ex, InstanceId id,
      ForwardConfig cfg, std::string host, Millis resync);
  ~ForwardedInstance();

  void Start();
  // Closes the listener and every forwarded connection, deletes the state
  // node (if connected).
  void Stop();
  void OnNewSession();
  void OnReconnected();
  void OnExpired();

  // The backend new connections go to ("" before the first view).
  std::string backend_text() const;
  // The forwarder's counters per backend (empty until it listens).
  std::vector<forward::BackendStats> Stats() const;

  // The forwarder's counters summed over its backends (read only, for the
  // traffic observer); nullopt while it is not listening.
  std::optional<ForwarderCounts> Counts() const;

 private:
  ForwardedInstance(ZkSession* session, boost::asio::any_io_executor ex,
                    InstanceId id, ForwardConfig cfg, std::string host,
                    Millis resync);
  void OnView(const SwitchView& view);
  // Publishes the state after `delay`, or sooner if already due sooner.
  void PublishSoon(Millis delay = Millis(50));
  // The forwarder's counters changed: publish soon if it matters to a
  // waiting coordinator, lazily otherwise.
  void OnCounters();
  void Publish();
  void LearnAcl();

  ZkSession* session_;
  boost::asio::any_io_executor ex_;
  InstanceId id_;
  ForwardConfig cfg_;
  std::string host_;
  Millis resync_;
  std::shared_ptr<SwitchWatcher> watcher_;
  std::unique_ptr<forward::Forwarder> forwarder_;
  std::shared_ptr<EphemeralNode> node_;
  boost::asio::steady_timer publish_timer_;
  boost::asio::steady_timer retry_timer_;
  std::optional<ForwardDecision> decision_;
  std::string listen_error_;
  bool listening_ = false;
  bool publish_pending_ = false;
  bool stopped_ = false;
  bool dir_ready_ = false;  // /forwarders/<service> exists (this session)
  std::optional<AclList> acl_;  // of /forwarders, once read
  // Per backend, the failures and active connections last published.
  std::map<std::string, std::pair<uint64_t, uint32_t>> published_;
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_FORWARDING_H_
