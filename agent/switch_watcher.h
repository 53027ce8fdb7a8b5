// SwitchWatcher: the agent's view of the switch nodes of one forwarded
// instance, and the pure rule that turns that view into a backend.
//
//   /switch/<service>/<ip>_<port>         committed backend (persistent)
//   /switch/<service>/<ip>_<port>/deploy  in-flight backend (ephemeral,
//                                         owned by a coordinator's session)
//
// DecideForward() picks, in order: a valid in-flight target, else a valid
// committed target, else the configured forward_backend. So a coordinator
// that dies mid-switch takes its in-flight node with its session, and the
// agent goes back to the committed backend by itself. A target is valid
// when its payload parses, its backend (and fallback, if any) is a literal
// address, is not the public address, and is either a local backend of the
// instance (forward_backend's IP with forward_backend's port or one of
// forward_ports) or a registered instance of the same service. An invalid
// target is refused: the decision keeps the next source down and names the
// refused generation and why, which the agent publishes.
//
// A refresh reads the committed node, then the in-flight node (each with a
// data watch, or an exists watch while missing), then checks that every
// non-local backend named is registered (/services/<service>/<ip>_<port>).
// Refreshes happen on watch events, Refresh() (reconnects) and a slow
// resync. Until the first refresh completes the view is unknown.
//
// Threading: executor only. Hold by shared_ptr (Create).
#ifndef ZKROLL_AGENT_SWITCH_WATCHER_H_
#define ZKROLL_AGENT_SWITCH_WATCHER_H_

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/config.h"
#include "common/names.h"
#include "common/refresh_loop.h"
#include "common/zk_session.h"

namespace zkroll::agent {

struct SwitchView {
  bool known = false;
  std::optional<std::string> committed;  // payload; nullopt: no node
  std::optional<std::string> in_flight;  // payload; nullopt: no node
  std::set<std::string> registered;      // remote backends found registered
};

struct ForwardDecision {
  InstanceAddress backend;
  std::optional<InstanceAddress> fallback;
  InstanceAddress stable;          // committed (or configured) backend
  std::string source;              // config | committed | deploy
  std::string generation;          // of the applied target; "" for config
  std::string refused_generation;  // set with error when a target was refused
  std::string error;
};

// Backends named by `view` that are not local to `cfg` (they must be
// registered instances of `service` to be used).
std::set<std::string> RemoteBackends(const ForwardConfig& cfg,
                                     const SwitchView& view);

ForwardDecision DecideForward(const InstanceId& id, const ForwardConfig& cfg,
                              const SwitchView& view);

class SwitchWatcher : public std::enable_shared_from_this<SwitchWatcher> {
 public:
  using OnUpdate = std::function<void(const SwitchView&)>;
  static std::shared_ptr<SwitchWatcher> Create(ZkSession* session,
                                               boost::asio::any_io_executor ex,
                                               InstanceId id, ForwardConfig cfg,
                                               Millis resync,
                                               OnUpdate on_update);
  void Start();
  void Stop();
  void Refresh();
  // The session expired: watches are gone; read everything again.
  void Invalidate();
  const SwitchView& view() const { return view_; }

 private:
  SwitchWatcher(ZkSession* session, boost::asio::any_io_executor ex,
                InstanceId id, ForwardConfig cfg, Millis resync,
                OnUpdate on_update);
  void Read(uint64_t epoch);
  // Reads one node with a data watch (or an exists watch if it is missing,
  // then reads again if it appeared meanwhile).
  void ReadNode(uint64_t epoch, const std::string& path, bool* armed,
                std::function<void(std::optional<std::string>)> next);
  void CheckRegistered(uint64_t epoch, SwitchView view);
  void Finish(uint64_t epoch, SwitchView view);
  void Fail(uint64_t epoch, const Status& s);
  ZkSession::WatchCallback MakeWatcher(bool* armed);

  ZkSession* session_;
  InstanceId id_;
  ForwardConfig cfg_;
  OnUpdate on_update_;
  RefreshLoop loop_;
  SwitchView view_;
  bool committed_armed_ = false;
  bool deploy_armed_ = false;
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_SWITCH_WATCHER_H_
