// Connection: the coordinator's I/O thread, its ZooKeeper session and its
// handling of SIGINT/SIGTERM.
//
// The session renews itself on expiry (ZkOptions::renew_on_expiry), so a
// deploy must compare session ids itself to notice that the session that
// owned its pause flag is gone (see deploy.h). Every session event wakes
// the AbortSignal's waiters, so waits re-read ZooKeeper after a reconnect.
//
// Thread-safety: session() may be used from any thread (ZkSession's sync
// calls block only the caller). Open() and the destructor are called from
// the main thread. Destruction closes the session first, which removes the
// coordinator's ephemeral nodes (pause flags of deploys, locks) at once.
#ifndef ZKROLL_COORDINATOR_CONNECTION_H_
#define ZKROLL_COORDINATOR_CONNECTION_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/duration.h"
#include "common/retry.h"
#include "common/status.h"
#include "common/zk_session.h"
#include "common/zk_types.h"
#include "coordinator/abort_signal.h"

namespace zkroll::coordinator {

struct ConnectOptions {
  std::string connect_string;
  Millis connect_timeout{10000};
  Millis session_timeout{10000};
  std::optional<Credential> credential;
};

// The retry context of the coordinator's threads (common/retry.h): it
// sleeps on the AbortSignal, which every session event wakes (Open
// subscribes it), so a reconnect or a renewed session ends the wait at
// once; stop_requested() is the AbortSignal's. Thread-safe: any number of
// threads may retry through one context.
class SessionRetryContext : public RetryContext {
 public:
  SessionRetryContext(ZkSession* session, AbortSignal* abort)
      : session_(session), abort_(abort) {}
  const SteadyClock& clock() const override { return SteadyClock::Real(); }
  SessionState session() const override;
  void WaitForChange(const SessionState& seen,
                     SteadyClock::TimePoint until) override;
  bool stop_requested() const override { return abort_->requested(); }

 private:
  ZkSession* session_;
  AbortSignal* abort_;
};

// The coordinator's retry options: its session renews itself on expiry
// (Connection::Open), so expiry is transient (RetryIn::kAnySession) and a
// call whose meaning depends on the session binds it (bound_session).
inline RetryOptions CoordinatorRetry(Millis window) {
  RetryOptions o;
  o.window = window;
  o.scope = Status::RetryIn::kAnySession;
  return o;
}

class Connection {
 public:
  // Starts the I/O thread and begins catching SIGINT/SIGTERM (which then
  // call abort->Request instead of killing the process).
  explicit Connection(AbortSignal* abort);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects, waiting at most options.connect_timeout. DeadlineExceeded
  // names the servers; InvalidArgument for a malformed connect string.
  Status Open(const ConnectOptions& options);

  ZkSession* session() { return session_.get(); }
  boost::asio::any_io_executor executor() { return io_.get_executor(); }
  // ACL for the nodes the coordinator creates under `root` (/pause,
  // /deploys or /locks): copied from the root, as `zkroll init` set it up
  // (init.h). If the root does not exist yet: with a credential, all rights
  // for it and read for everyone (agents only read /pause); without,
  // world:anyone. Read once per root and cached.
  AclList AclFor(const std::string& root);
  Millis connect_timeout() const { return options_.connect_timeout; }

 private:
  AbortSignal* abort_;
  ConnectOptions options_;
  AclList default_acl_;
  std::mutex acl_mu_;
  std::map<std::string, AclList> root_acls_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::signal_set> signals_;
  std::thread thread_;
  std::unique_ptr<ZkSession> session_;
};

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_CONNECTION_H_
