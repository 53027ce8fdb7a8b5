// Retry: repeating a ZooKeeper call while it fails transiently. The one
// retry loop of the project; every caller that repeats a call after
// connection loss goes through it.
//
// Retry(context, options, call) runs `call` (returning Status, Result<T> or
// MultiResult) and repeats it while its failure is transient by the one
// rule, Status::IsTransient(options.scope) (common/status.h): connection
// loss and operation timeout always; session expiry only with
// RetryIn::kAnySession, for a session that renews itself (the
// coordinator's). It stops at the first answer (success or any other
// error), when `options.window` has passed since the first attempt, when a
// stop was requested (only with options.stop_on_abort: cleanup calls keep
// retrying after a Ctrl-C), or when the session a call is bound to is no
// longer the current one. It returns the last attempt's result.
//
// Between attempts it waits until the session changes (a reconnect, a new
// session) or a backoff passes, whichever is first: options.first_backoff,
// doubling up to options.max_backoff. A reconnect is used at once; an
// operation timeout on a connected session does not spin.
//
// Session awareness: with kAnySession an attempt may run in a later session
// than the first. A call whose meaning depends on the session (deleting an
// ephemeral node we created) must not be repeated there: it goes out
// through ZkSession::DeleteInSessionSync / MultiInSessionSync (which send
// nothing from another session) and sets options.bound_session, so Retry
// stops as soon as that session is not the current one instead of
// repeating a call that cannot be sent.
//
// A call that may have applied although its answer was lost (a create, a
// multi) is repeated blindly only where a repeat is harmless; otherwise the
// caller reads back what is there (registry::Pause does).
//
// Thread-safety: Retry blocks the calling thread (never a ZooKeeper callback
// thread, nor the session's executor). A RetryContext is used by one thread
// at a time unless its implementation says otherwise.
#ifndef ZKROLL_COMMON_RETRY_H_
#define ZKROLL_COMMON_RETRY_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <type_traits>

#include "common/clock.h"
#include "common/duration.h"
#include "common/status.h"
#include "common/zk_types.h"

namespace zkroll {

class ZkSession;

// What Retry watches of the session between attempts.
struct SessionState {
  int64_t id = 0;
  bool connected = false;
  bool operator==(const SessionState& o) const {
    return id == o.id && connected == o.connected;
  }
  bool operator!=(const SessionState& o) const { return !(*this == o); }
};

// Where Retry reads the time and the session and how it sleeps.
class RetryContext {
 public:
  virtual ~RetryContext() = default;
  virtual const SteadyClock& clock() const = 0;
  virtual SessionState session() const = 0;
  // Blocks until session() differs from `seen` or `until` passes. May
  // return earlier (Retry then just tries again).
  virtual void WaitForChange(const SessionState& seen,
                             SteadyClock::TimePoint until) = 0;
  // Whether a stop was requested (honoured with stop_on_abort).
  virtual bool stop_requested() const { return false; }
};

// A context for a plain ZkSession without a stop request: while
// disconnected it waits for the reconnect (ZkSession::WaitConnected),
// otherwise it sleeps until `until`. The session must outlive it. It keeps
// no state of its own, so any number of threads may share one.
class ZkRetryContext : public RetryContext {
 public:
  explicit ZkRetryContext(ZkSession* session) : session_(session) {}
  const SteadyClock& clock() const override { return SteadyClock::Real(); }
  SessionState session() const override;
  void WaitForChange(const SessionState& seen,
                     SteadyClock::TimePoint until) override;

 private:
  ZkSession* session_;
};

struct RetryOptions {
  Millis window{10000};  // no attempt starts later than this after the first
  Status::RetryIn scope = Status::RetryIn::kSameSession;
  // Calls bound to this session: no attempt once it is not the current one.
  std::optional<int64_t> bound_session;
  bool stop_on_abort = false;
  Millis first_backoff{50};
  Millis max_backoff{1000};
};

namespace retry_internal {
inline const Status& StatusOf(const Status& s) { return s; }
inline const Status& StatusOf(const MultiResult& m) { return m.status; }
template <typename T>
Status StatusOf(const Result<T>& r) {
  return r.ok() ? Status::Ok() : r.status();
}
// Whether another attempt may start now: no stop (with stop_on_abort) and
// the bound session, if any, is the current one.
bool MayAttempt(const RetryOptions& options, const RetryContext& context);
}  // namespace retry_internal

template <typename Call>
auto Retry(RetryContext& context, const RetryOptions& options, Call&& call)
    -> decltype(call()) {
  const auto deadline = context.clock().Now() + options.window;
  Millis backoff = options.first_backoff;
  while (true) {
    auto r = call();
    if (!retry_internal::StatusOf(r).IsTransient(options.scope)) return r;
    const auto now = context.clock().Now();
    if (now >= deadline || !retry_internal::MayAttempt(options, context)) {
      return r;
    }
    context.WaitForChange(context.session(), std::min(deadline, now + backoff));
    backoff = std::min(options.max_backoff, backoff * 2);
    // Checked again after the wait: the session may have changed in it.
    if (!retry_internal::MayAttempt(options, context)) return r;
  }
}

}  // namespace zkroll

#endif  // ZKROLL_COMMON_RETRY_H_
