// WaitForNode: the coordinator's one "wait until a node looks right" loop,
// used to wait for an instance's registration (deploy.cc), for the agent's
// forwarding state (switch_deploy.cc) and for --min-healthy (rollout.cc).
//
// It reads the node with a watch and hands what it read to `done`. It reads
// again when the watch fires, when the session changes (a new session lost
// the watch), on a slow resync in case an event was missed (watches can be
// late, and a change made while we were disconnected fires nothing), and,
// after a read failed, once the connection is back or after a short pause.
// A missing node is watched with an exists watch, so its creation wakes
// the wait as well. The wait ends when `done` accepts a read, the deadline
// passes, a stop is requested (unless the wait is a cleanup's, which runs
// to its deadline), or, with fail_on_error, a read fails with an error that
// is not transient in the same session (common/status.h).
//
// Thread-safety: blocks the calling thread (a deploy thread, never the I/O
// thread); `done` runs on it. The watch callbacks only flag the wait and
// wake the AbortSignal, which every session event wakes too (Connection).
#ifndef ZKROLL_COORDINATOR_NODE_WAIT_H_
#define ZKROLL_COORDINATOR_NODE_WAIT_H_

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/duration.h"
#include "common/status.h"
#include "common/zk_session.h"
#include "common/zk_types.h"
#include "coordinator/abort_signal.h"

namespace zkroll::coordinator {

// What is read of the node.
enum class NodeWatch { kExists, kData, kChildren };

// One read. status: Ok (the node exists), NotFound (it does not; an exists
// watch is set) or the read's error.
struct NodeRead {
  Status status;
  NodeStat stat;                       // when it exists
  std::string data;                    // kData
  std::vector<std::string> children;   // kChildren
  bool exists() const { return status.ok(); }
};

struct NodeWaitOptions {
  NodeWatch watch = NodeWatch::kExists;
  AbortSignal::Clock::time_point deadline;
  bool stop_on_abort = true;   // false: a cleanup wait, runs to the deadline
  bool fail_on_error = false;  // end the wait on a read error (see above)
  Millis resync{5000};         // re-read this often although nothing fired
  Millis retry{250};           // after a failed read
};

struct NodeWaitResult {
  enum class End { kDone, kTimedOut, kAborted, kFailed };
  End end = End::kTimedOut;
  NodeRead last;  // the last read (kFailed: its status says why)
};

NodeWaitResult WaitForNode(ZkSession* session, AbortSignal* abort,
                           const std::string& path,
                           const NodeWaitOptions& options,
                           const std::function<bool(const NodeRead&)>& done);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_NODE_WAIT_H_
