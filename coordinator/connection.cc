#include "coordinator/connection.h"

#include <glog/logging.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <functional>

namespace zkroll::coordinator {
namespace {

void ArmSignals(boost::asio::signal_set* signals, AbortSignal* abort) {
  signals->async_wait(
      [signals, abort](const boost::system::error_code& ec, int signo) {
        if (ec) return;  // operation_aborted: shutting down
        if (abort->requested()) {
          LOG(WARNING) << "signal " << signo
                       << " again: already stopping; cleaning up";
        }
        abort->Request(signo);
        ArmSignals(signals, abort);
      });
}

}  // namespace

AclList Connection::AclFor(const std::string& root) {
  std::lock_guard<std::mutex> l(acl_mu_);
  auto it = root_acls_.find(root);
  if (it != root_acls_.end()) return it->second;
  auto acl = session_->GetAclSync(root);
  if (acl.ok() && !acl->empty()) {
    root_acls_[root] = *acl;
    return *acl;
  }
  if (!acl.ok() && acl.status().code() != StatusCode::kNotFound) {
    LOG(WARNING) << "cannot read the ACL of " << root << " ("
                 << acl.status().ToString()
                 << "); creating nodes with the default ACL";
  }
  return default_acl_;  // not cached: the root may be created meanwhile
}

SessionState SessionRetryContext::session() const {
  return SessionState{session_->session_id(), session_->connected()};
}

void SessionRetryContext::WaitForChange(const SessionState& seen,
                                        SteadyClock::TimePoint until) {
  // The abort is not a reason to stop waiting here: cleanup calls retry
  // after a stop too (RetryOptions::stop_on_abort decides), and the wait is
  // bounded by `until` anyway.
  auto changed = [&] { return session() != seen; };
  if (!abort_->requested()) {
    (void)abort_->WaitUntil(changed, until);
    if (!abort_->requested()) return;
  }
  // After a stop WaitUntil returns at once: wait in short slices instead.
  while (!changed() && clock().Now() < until) {
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(
            until - clock().Now(), Millis(20)));
  }
}

Connection::Connection(AbortSignal* abort) : abort_(abort) {
  signals_ = std::make_unique<boost::asio::signal_set>(io_, SIGINT, SIGTERM);
  ArmSignals(signals_.get(), abort_);
  thread_ = std::thread([this] {
    auto guard = boost::asio::make_work_guard(io_);
    io_.run();
  });
}

Connection::~Connection() {
  session_.reset();  // closes the handle: our ephemerals go now
  boost::asio::post(io_, [this] {
    boost::system::error_code ignored;
    signals_->cancel(ignored);
    io_.stop();
  });
  thread_.join();
}

Status Connection::Open(const ConnectOptions& options) {
  options_ = options;
  ZkOptions zk;
  zk.connect_string = options.connect_string;
  zk.session_timeout = options.session_timeout;
  zk.renew_on_expiry = true;
  if (options.credential) {
    zk.credentials.push_back(*options.credential);
    default_acl_ = {
        AclEntry{perms::kAll, "digest", DigestId(*options.credential)},
        AclEntry{perms::kRead, "world", "anyone"}};
  } else {
    default_acl_ = OpenAcl();
  }
  session_ = std::make_unique<ZkSession>(io_.get_executor(), zk);
  session_->AddListener(
      [abort = abort_](const SessionEvent&) { abort->Wake(); });
  ZKROLL_RETURN_IF_ERROR(session_->Start());
  // Wait in slices so that Ctrl-C while the servers are unreachable ends
  // the wait at once instead of after the whole connect timeout.
  const auto deadline =
      std::chrono::steady_clock::now() + options.connect_timeout;
  while (true) {
    auto left = std::chrono::duration_cast<Millis>(
        deadline - std::chrono::steady_clock::now());
    Status s = session_->WaitConnected(
        std::max(Millis(0), std::min(left, Millis(200))));
    if (s.ok()) return s;
    if (abort_->requested()) {
      return Aborted("stopped while connecting to ZooKeeper");
    }
    if (left <= Millis(200)) {
      return session_->WaitConnected(Millis(0)).ok()
                 ? Status::Ok()
                 : DeadlineExceeded(
                       "could not connect to ZooKeeper at '" +
                       options.connect_string + "' within " +
                       FormatDuration(options.connect_timeout) +
                       "; check that the servers are up and reachable");
    }
  }
}

}  // namespace zkroll::coordinator
