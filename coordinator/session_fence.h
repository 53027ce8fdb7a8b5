// SessionFence: stops trusting a ZooKeeper session before the servers may
// already have ended it.
//
// A session is a lease. The coordinator's pause flag and its lock live only
// as long as its session, and the coordinator may be the last to learn that
// the session ended: the servers expire it `timeout` (T) after they last
// heard from the client, while a partitioned client hears nothing. The
// client itself is no reliable witness either: the C client only notices a
// silent server after about 2T/3 without a reply. So the fence does not
// time anything from what the client reports; it times from the last
// CONFIRMED contact: the send time of the last request the servers
// answered. The servers received that request after we sent it, so they
// cannot expire the session before that send time + T.
//
// A SessionFence watches one session (`owner`) while a COMMAND runs. It
// starts from `confirmed_at` (the caller's last answered request, e.g. the
// verify just before COMMAND) and confirms contact itself every limit/4
// with an asynchronous read of `ephemeral` (our pause flag, or the in-flight
// switch node), which must still exist and be owned by `owner`. It falls,
// once, as soon as
//   - the session is no longer `owner` (expired, or replaced by a new one),
//   - `ephemeral` is gone or owned by another session (someone deleted it,
//     or it expired with our session),
//   - or now - last confirmed contact >= `limit` (by default two thirds of
//     the negotiated timeout), whether or not the client has noticed a
//     disconnect yet.
// The window that remains: the servers may expire the session T after the
// last confirmed contact; the fence falls at limit = 2T/3 after it, and
// RunCommand then needs up to its kill grace (command.h) to end the group.
// So COMMAND can outlive the flag by at most kill grace - T/3 (none when
// the grace is shorter than T/3) plus scheduling delay, whatever the
// client's own detection does.
//
// When it falls it calls Request() on signal(), which RunCommand polls to
// stop the COMMAND's process group (command.h), and reason() says why.
//
// It watches from a thread of its own that sleeps on `wake` (the
// coordinator's AbortSignal, which every session event and every answer to
// its reads wakes: connection.h) with a deadline, so a read that gets no
// answer never delays the fall. A stop requested on `wake` only ends the
// watch (RunCommand stops the COMMAND for that itself). The reads'
// completions run on the session's executor, which must be running.
//
// Thread-safety: signal(), reason() and the timestamps may be used from any
// thread; the destructor joins the thread. A read may complete after the
// fence is gone; it then touches nothing (its Waker is disarmed).
#ifndef ZKROLL_COORDINATOR_SESSION_FENCE_H_
#define ZKROLL_COORDINATOR_SESSION_FENCE_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/duration.h"
#include "common/zk_session.h"
#include "coordinator/abort_signal.h"

namespace zkroll::coordinator {

class SessionFence {
 public:
  using Clock = AbortSignal::Clock;

  // `limit` <= 0: two thirds of session->negotiated_timeout().
  SessionFence(ZkSession* session, AbortSignal* wake, int64_t owner,
               std::string ephemeral, Clock::time_point confirmed_at,
               Millis limit = Millis(0));
  ~SessionFence();
  SessionFence(const SessionFence&) = delete;
  SessionFence& operator=(const SessionFence&) = delete;

  AbortSignal* signal() { return &fallen_; }
  bool fallen() const { return fallen_.requested(); }
  // Why it fell ("" while it stands).
  std::string reason() const;
  Millis limit() const { return limit_; }
  // The last confirmed contact (send time of the last answered request).
  Clock::time_point last_confirmed() const;
  // When it fell, and the deadline (last confirmed contact + limit) it held
  // then; epoch while it stands.
  Clock::time_point fell_at() const;
  Clock::time_point deadline_at_fall() const;

 private:
  struct Probe;  // shared with the reads in flight
  void Watch();
  void SendProbe(Clock::time_point now);
  void Fall(const std::string& why, Clock::time_point deadline);

  ZkSession* session_;
  AbortSignal* wake_;
  const int64_t owner_;
  const std::string ephemeral_;
  Millis limit_;
  std::shared_ptr<Probe> probe_;
  ScopedWaker waker_;  // wakes wake_ for the reads' completions
  AbortSignal fallen_;
  std::atomic<bool> done_{false};
  mutable std::mutex mu_;
  std::string reason_;
  Clock::time_point fell_at_{};
  Clock::time_point deadline_at_fall_{};
  std::thread thread_;
};

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_SESSION_FENCE_H_
