// PauseWatcher: the agent's view of the pause flags of one service, and the
// guard version its registrations check (see common/registry.h).
//
// A refresh reads, in this order: the data version of /pause, then the
// children of /pause/<service> with their parent's stat (arming a children
// watch, or an exists watch if the node is missing), then each flag's
// payload. Reading /pause first makes "no /pause/<service> at version v of
// /pause" safe: creating /pause/<service> later bumps /pause.
//
// A flag counts as a pause unless its payload parses and carries an
// `expires_at` in the past (manual maintenance that ran out). A flag that
// cannot be parsed counts as a pause (fail safe) and is logged once.
//
// Refreshes happen on watch events, on Refresh() (reconnects, failed
// registrations), on a slow periodic resync and when the earliest manual
// pause expires. Until the first refresh completes the snapshot is
// unknown, and the agent neither registers nor deregisters.
//
// Threading: executor only. Hold by shared_ptr (Create).
#ifndef ZKROLL_AGENT_PAUSE_WATCHER_H_
#define ZKROLL_AGENT_PAUSE_WATCHER_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/clock.h"
#include "common/names.h"
#include "common/refresh_loop.h"
#include "common/registry.h"
#include "common/zk_session.h"

namespace zkroll::agent {

struct PauseFlagInfo {
  bool parsed = false;
  std::string by;
  std::string reason;
  std::string since;
  std::optional<WallTime> expires_at;
  std::string error;  // why it could not be parsed
};

struct PauseSnapshot {
  bool known = false;
  registry::GuardVersion guard;
  std::map<std::string, PauseFlagInfo> flags;  // by node name <ip>_<port>
  uint64_t read = 0;  // the number of the read that made it (1, 2, ...)

  // True if a flag forbids registering `address` at `now`.
  bool Forbids(const InstanceAddress& address, WallTime now) const;
  const PauseFlagInfo* Find(const InstanceAddress& address) const;
};

class PauseWatcher : public std::enable_shared_from_this<PauseWatcher> {
 public:
  using OnUpdate = std::function<void(const PauseSnapshot&)>;
  static std::shared_ptr<PauseWatcher> Create(ZkSession* session,
                                              boost::asio::any_io_executor ex,
                                              ServiceName service,
                                              Millis resync, OnUpdate on_update);
  void Start();
  void Stop();
  // Reads now, or once the running read ends. Returns the number of the
  // first read that starts after this call: a snapshot whose `read` is at
  // least that shows the nodes as they are now or later.
  uint64_t Refresh();
  // Forget the view (session expired: watches are gone, versions unknown).
  void Invalidate();
  const PauseSnapshot& snapshot() const { return snapshot_; }

 private:
  PauseWatcher(ZkSession* session, boost::asio::any_io_executor ex,
               ServiceName service, Millis resync, OnUpdate on_update);
  void Read(uint64_t epoch);
  void Finish(uint64_t epoch, PauseSnapshot snap);
  void Fail(uint64_t epoch, const Status& s);
  void ReadFlags(uint64_t epoch, PauseSnapshot snap,
                 std::vector<std::string> names);
  ZkSession::WatchCallback MakeWatcher();
  void ArmExpiry();

  ZkSession* session_;
  ServiceName service_;
  OnUpdate on_update_;
  RefreshLoop loop_;
  boost::asio::steady_timer expiry_timer_;
  PauseSnapshot snapshot_;
  bool armed_ = false;  // a watch on the children (or existence) is set
  // Reads started so far; at most one runs, so the one that finishes is
  // always the last one started.
  uint64_t reads_started_ = 0;
  std::set<std::string> reported_bad_;  // flags already logged as unparsable
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_PAUSE_WATCHER_H_
