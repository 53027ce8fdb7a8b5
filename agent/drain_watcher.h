// DrainWatcher: the agent's view of the drain requests of one service
// (/drain/<service>/<ip>_<port>, DrainRequest, ephemeral, written by a
// coordinator that wants to see an instance's traffic while it drains; see
// docs/design.md, "Drain on evidence").
//
// A refresh reads the children of /drain/<service> (with a children watch,
// or an exists watch while the node is missing), then the payload of each
// child that names an instance this agent manages (with a data watch).
// Other children are not read: a request belongs to the agent that owns
// the instance. A payload is checked by ValidateDrainRequest(); a bad one
// (unparsable, oversized, wrong types, missing deploy id) is reported in
// the view with its error and logged once per node version, and never
// observed on.
//
// Refreshes happen on watch events, on Refresh() (reconnects), on a slow
// resync, and from scratch after Invalidate() (session expired). Until the
// first refresh completes the view is unknown.
//
// Threading: executor only. Hold by shared_ptr (Create).
#ifndef ZKROLL_AGENT_DRAIN_WATCHER_H_
#define ZKROLL_AGENT_DRAIN_WATCHER_H_

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "common/names.h"
#include "common/refresh_loop.h"
#include "common/zk_session.h"
#include "zkroll.pb.h"

namespace zkroll::agent {

// Bounds on what a request may ask for.
inline constexpr uint32_t kMinObserveIntervalMs = 100;
inline constexpr uint32_t kMaxObserveIntervalMs = 10000;

struct DrainRequestView {
  bool valid = false;
  proto::DrainRequest request;  // interval_ms clamped when valid
  std::string error;            // why it is not valid
  int64_t owner = 0;            // session that holds the request node
};

struct DrainView {
  bool known = false;
  // By node name <ip>_<port>, only for instances of this agent.
  std::map<std::string, DrainRequestView> requests;
};

// Checks a DrainRequest read from `path`: a deploy id of 1..128 printable
// characters, `by` of at most 256; interval_ms is clamped into
// [kMinObserveIntervalMs, kMaxObserveIntervalMs] (0 means the minimum).
DrainRequestView ValidateDrainRequest(const std::string& data,
                                      const std::string& path);

class DrainWatcher : public std::enable_shared_from_this<DrainWatcher> {
 public:
  using OnUpdate = std::function<void(const DrainView&)>;
  // `mine`: the node names of the instances of `service` this agent owns.
  static std::shared_ptr<DrainWatcher> Create(ZkSession* session,
                                              boost::asio::any_io_executor ex,
                                              ServiceName service,
                                              Millis resync,
                                              OnUpdate on_update);
  void SetInstances(std::set<std::string> mine);
  void Start();
  void Stop();
  void Refresh();
  void Invalidate();
  const DrainView& view() const { return view_; }

 private:
  DrainWatcher(ZkSession* session, boost::asio::any_io_executor ex,
               ServiceName service, Millis resync, OnUpdate on_update);
  void Read(uint64_t epoch);
  void ReadRequests(uint64_t epoch, std::vector<std::string> names);
  void Finish(uint64_t epoch, DrainView view);
  void Fail(uint64_t epoch, const Status& s);

  ZkSession* session_;
  ServiceName service_;
  OnUpdate on_update_;
  RefreshLoop loop_;
  DrainView view_;
  std::set<std::string> mine_;
  bool armed_ = false;                // children (or exists) watch set
  std::set<std::string> data_armed_;  // children with a data watch set
  std::set<std::pair<std::string, int64_t>> reported_bad_;  // path, mzxid
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_DRAIN_WATCHER_H_
