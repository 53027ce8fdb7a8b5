// The tcp check: is the instance accepting connections, and quickly enough?
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <optional>
#include <utility>

#include "common/health/check_session.h"
#include "common/health/own_connections.h"

namespace zkroll::health::internal {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

class TcpCheck final : public SocketCheckSession {
 public:
  TcpCheck(asio::any_io_executor ex, const CheckSpec& spec,
           const CheckTarget& target, Millis timeout, CheckCallback done,
           TimeSource& time)
      : SocketCheckSession(ex, target, timeout, std::move(done), time),
        max_connect_time_(spec.max_connect_time) {}

 private:
  void Begin() override {
    // A connect limit shorter than the timeout is itself the deadline: no
    // need to wait out the whole timeout for an answer that is already too
    // late to pass.
    Millis budget = timeout();
    if (max_connect_time_ && *max_connect_time_ < budget) {
      budget = *max_connect_time_;
      deadline_is_connect_limit_ = true;
    }
    Connect(budget);
  }

  void OnDeadline() override {
    if (finished()) return;
    if (deadline_is_connect_limit_) {
      Finish(false, "connect took longer than limit " +
                        FormatDuration(*max_connect_time_));
    } else {
      Finish(false,
             "timeout after " + FormatDuration(timeout()) + " (connecting)");
    }
    // Closing the socket completes the pending connect with
    // operation_aborted, which releases the last reference to us.
    Close();
  }

  void OnConnect(error_code ec) override {
    if (finished()) return;
    auto took = Elapsed();
    // So a traffic observer does not count the check as a caller.
    if (!ec) RecordOwnConnection(socket());
    if (ec) {
      Finish(false, ErrorText(ec));
    } else if (max_connect_time_ && took > *max_connect_time_) {
      // The connect completed in the same loop iteration as the deadline.
      Finish(false, "connect took " + FormatElapsed(took) + " > limit " +
                        FormatDuration(*max_connect_time_));
    } else {
      Finish(true, "ok (connect " + FormatElapsed(took) + ")");
    }
    Close();
  }

  const std::optional<Millis> max_connect_time_;
  bool deadline_is_connect_limit_ = false;
};

}  // namespace

std::shared_ptr<CheckSession> MakeTcpCheck(asio::any_io_executor ex,
                                           const CheckSpec& spec,
                                           const CheckTarget& target,
                                           Millis timeout, CheckCallback done,
    TimeSource& time) {
  return std::make_shared<TcpCheck>(std::move(ex), spec, target, timeout,
                                    std::move(done), time);
}

}  // namespace zkroll::health::internal
