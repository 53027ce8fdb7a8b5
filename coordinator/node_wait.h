// WaitForNode: the coordinator's one "wait until a node looks right" loop,
// used to wait for an instance's registration (deploy.cc), for the agent's
// forwarding state (switch_deploy.cc), for --min-healthy (rollout.cc) and
// for the agent's first traffic report of a drain (drain_step.cc).
// NodeWatchSet: the same reads and wake-ups for a wait whose condition
// spans several nodes (the auto drain: /callers/<service>, each caller's
// node, the instance's traffic node); WaitForNode is built on it.
//
// A node is read with a watch and what was read is handed to the waiter.
// It is read again when the watch fires, when the session changes (a new
// session lost the watch), on a slow resync in case an event was missed
// (watches can be late, and a change made while we were disconnected fires
// nothing), and, after a read failed, once the connection is back or after
// a short pause. A missing node is watched with an exists watch, so its
// creation wakes the wait as well. WaitForNode ends when `done` accepts a
// read, the deadline passes, a stop is requested (unless the wait is a
// cleanup's, which runs to its deadline), or, with fail_on_error, a read
// fails with an error that is not transient in the same session
// (common/status.h).
//
// A watch cannot be cancelled: it may fire after the wait that set it has
// returned. The callbacks hold only shared state and a Waker
// (abort_signal.h) that is disarmed when the wait ends, so a late watch
// marks a flag nobody reads and wakes nobody.
//
// Thread-safety: blocks the calling thread (a deploy thread, never the I/O
// thread); `done` runs on it. A NodeWatchSet is used by one thread; its
// watch callbacks run on the session's thread, only flag the set and wake
// the AbortSignal, which every session event wakes too (Connection).
#ifndef ZKROLL_COORDINATOR_NODE_WAIT_H_
#define ZKROLL_COORDINATOR_NODE_WAIT_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
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

// Nodes read with watches under caller-chosen keys, and one wait for any of
// them to change (see the file comment).
class NodeWatchSet {
 public:
  using Clock = AbortSignal::Clock;

  NodeWatchSet(ZkSession* session, AbortSignal* abort);
  ~NodeWatchSet();  // disarms the watches' waker
  NodeWatchSet(const NodeWatchSet&) = delete;
  NodeWatchSet& operator=(const NodeWatchSet&) = delete;

  // Reads `path` with a watch of `kind` (an exists watch while it is
  // missing) that marks `key` changed when it fires. The key is known from
  // now on: a session change marks it again.
  NodeRead Read(const std::string& key, const std::string& path,
                NodeWatch kind);
  // A key no longer to be re-read after a session change (its node is
  // gone for good); a watch still armed on it may mark it once more.
  void Forget(const std::string& key);

  // The keys marked since the last call: those whose watch fired, and
  // every known key if the session changed since (its watches are lost).
  std::set<std::string> TakeChanged();

  // Blocks until a watch fires, the session changes, `also` holds (if
  // given), a stop is requested or `deadline` passes. kReady: something
  // changed (read TakeChanged); kTimedOut; kAborted: a stop, unless
  // !stop_on_abort (a cleanup's wait), which then waits for a watch or the
  // deadline in short slices (session changes are not signalled then) and
  // never returns kAborted.
  AbortSignal::WaitResult Wait(Clock::time_point deadline,
                               const std::function<bool()>& also = nullptr,
                               bool stop_on_abort = true);

 private:
  // Shared with the watch callbacks, which may outlive the set.
  struct Fired {
    std::mutex mu;
    std::condition_variable cv;  // for a cleanup's wait after a stop
    std::set<std::string> keys;
  };
  bool AnyFired() const;

  ZkSession* session_;
  AbortSignal* abort_;
  std::shared_ptr<Fired> fired_;
  ScopedWaker waker_;
  std::set<std::string> known_;
  int64_t session_id_;
};

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_NODE_WAIT_H_
