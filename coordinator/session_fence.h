// SessionFence: stops trusting a ZooKeeper session before the servers may
// already have ended it.
//
// A session is a lease. The coordinator's pause flag and its lock live only
// as long as its session, and the coordinator may be the last to learn that
// the session ended: the servers expire it `timeout` after they last heard
// from the client, while a partitioned client hears nothing. A SessionFence
// watches one session (`owner`) while a COMMAND runs and falls, once, as
// soon as
//   - the session is no longer `owner` (expired, or replaced by a new one),
//   - or the client has been disconnected for longer than `limit` (by
//     default two thirds of the negotiated timeout): past that, the servers
//     may expire the session without us hearing of it.
// When it falls it calls Request() on signal(), which RunCommand polls to
// stop the COMMAND's process group (command.h), and reason() says why.
//
// It watches from a thread of its own that sleeps on `wake` (the
// coordinator's AbortSignal, which every session event wakes:
// connection.h); it never polls ZooKeeper. A stop requested on `wake` only
// ends the watch (RunCommand stops the COMMAND for that itself).
//
// Thread-safety: signal() and reason() may be used from any thread; the
// destructor joins the thread.
#ifndef ZKROLL_COORDINATOR_SESSION_FENCE_H_
#define ZKROLL_COORDINATOR_SESSION_FENCE_H_

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

#include "common/duration.h"
#include "common/zk_session.h"
#include "coordinator/abort_signal.h"

namespace zkroll::coordinator {

class SessionFence {
 public:
  // `limit` <= 0: two thirds of session->negotiated_timeout().
  SessionFence(ZkSession* session, AbortSignal* wake, int64_t owner,
               Millis limit = Millis(0));
  ~SessionFence();
  SessionFence(const SessionFence&) = delete;
  SessionFence& operator=(const SessionFence&) = delete;

  AbortSignal* signal() { return &fallen_; }
  bool fallen() const { return fallen_.requested(); }
  // Why it fell ("" while it stands).
  std::string reason() const;

 private:
  void Watch();
  void Fall(const std::string& why);

  ZkSession* session_;
  AbortSignal* wake_;
  const int64_t owner_;
  Millis limit_;
  AbortSignal fallen_;
  std::atomic<bool> done_{false};
  mutable std::mutex mu_;
  std::string reason_;
  std::thread thread_;
};

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_SESSION_FENCE_H_
