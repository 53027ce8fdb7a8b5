// Watching upgraded instances stay in service: a rollout's
// --min-healthy-time (each instance, after it re-registered) and its canary
// soak (the canary batch as a whole, --canary-soak).
//
// An instance is in service while its registration /services/<svc>/<ip>_<port>
// exists and the agent that registered it (the record's `host`) does not
// report it unhealthy in /agents/<host>. The agent's record counts only once
// it shows the instance registered: right after a re-registration the
// agent's record may still describe the instance as it was while paused or
// starting (healthy false), and that is not a flap. A crash shows as the
// registration vanishing (the agent deregisters an instance that fails its
// checks) or as the agent reporting it unhealthy, whichever ZooKeeper shows
// first.
//
// The watch is event-driven: an exists-watch on every registration node and
// a data watch on every agent record; each event (or a session change, or a
// resync every 5 s in case an event was lost while disconnected) makes the
// watcher read everything again. It ends at the first flap, at the end of
// the period, or on a stop request.
//
// Thread-safety: WatchStayInService blocks the calling thread; several may
// run at once on different threads with the same DeployEnvironment.
#ifndef ZKROLL_COORDINATOR_ROLLOUT_WATCH_H_
#define ZKROLL_COORDINATOR_ROLLOUT_WATCH_H_

#include <optional>
#include <string>
#include <vector>

#include "common/duration.h"
#include "common/names.h"
#include "coordinator/deploy.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator {

// What one read of an instance showed.
struct InstanceServiceView {
  bool registered = false;       // the registration node exists
  std::string registered_by;     // its record's `host` ("" if unknown)
  // The registering agent's entry for the instance, when its record was
  // read and lists it.
  std::optional<proto::AgentRecord::Instance> agent;
};

// nullopt if `view` is in service (see the file comment), otherwise why
// not, for the step's detail ("deregistered", "agent h reports it
// unhealthy: <last check>"). Pure.
std::optional<std::string> WhyOutOfService(const InstanceServiceView& view);

struct StayInServiceResult {
  enum class Verdict { kHeld, kFlapped, kAborted };
  Verdict verdict = Verdict::kHeld;
  // kFlapped: the instances that left service, with why ("ip:port: why").
  std::vector<std::string> flaps;
  std::vector<InstanceAddress> flapped;
  std::string error;  // kFlapped because ZooKeeper could not be read
};

// Watches `instances` for `period` from now (see the file comment).
// Returns kHeld at the end of the period if every instance stayed in
// service, kFlapped at the first flap (or when the reads kept failing for
// the ZooKeeper retry window: an instance that cannot be observed does not
// count as healthy), kAborted on a stop request (env.abort).
StayInServiceResult WatchStayInService(
    const DeployEnvironment& env, const std::vector<InstanceAddress>& instances,
    Millis period, Millis zk_retry_window);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_ROLLOUT_WATCH_H_
