#include "common/retry.h"

#include <thread>

#include "common/zk_session.h"

namespace zkroll {
namespace retry_internal {

bool MayAttempt(const RetryOptions& options, const RetryContext& context) {
  if (options.stop_on_abort && context.stop_requested()) return false;
  // A bound call cannot be sent from another session: repeating it would
  // only return SessionExpired again until the window ends.
  return !options.bound_session ||
         context.session().id == *options.bound_session;
}

}  // namespace retry_internal

SessionState ZkRetryContext::session() const {
  return SessionState{session_->session_id(), session_->connected()};
}

void ZkRetryContext::WaitForChange(const SessionState& seen,
                                   SteadyClock::TimePoint until) {
  const auto now = clock().Now();
  if (now >= until) return;
  if (!seen.connected) {
    // Returns at the reconnect (or a new session's connect), or at `until`.
    (void)session_->WaitConnected(
        std::chrono::duration_cast<Millis>(until - now));
    return;
  }
  // Connected (an operation timeout): nothing to wait for but the backoff.
  std::this_thread::sleep_until(until);
}

}  // namespace zkroll
