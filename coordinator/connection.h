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
#include <type_traits>

#include "common/duration.h"
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

// True for errors after which the same call may succeed soon: connection
// loss and timeouts (the client reconnects) and session expiry (Connection
// opens a new session). Decisions that depend on *which* session owns a
// node must not be retried blindly; they compare session ids instead.
bool IsTransient(const Status& s);

// Repeats `call` (returning Status or Result<T>) while it fails with a
// transient error, waiting for the session to be connected again between
// attempts, for at most `window`.
template <typename Call>
auto RetryTransient(ZkSession* session, Millis window, Call call)
    -> decltype(call()) {
  const auto deadline = std::chrono::steady_clock::now() + window;
  while (true) {
    auto r = call();
    Status s;
    if constexpr (std::is_same_v<decltype(r), Status>) {
      s = r;
    } else {
      if (!r.ok()) s = r.status();
    }
    auto now = std::chrono::steady_clock::now();
    if (!IsTransient(s) || now >= deadline) return r;
    Status c = session->WaitConnected(
        std::chrono::duration_cast<Millis>(deadline - now));
    if (!c.ok()) return r;
    // The connection came back; if it was up all along (an operation
    // timeout), do not spin.
    if (session->connected()) {
      auto pause = std::min(std::chrono::duration_cast<Millis>(
                                deadline - std::chrono::steady_clock::now()),
                            Millis(50));
      if (pause.count() > 0) std::this_thread::sleep_for(pause);
    }
  }
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
