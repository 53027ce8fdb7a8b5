// StartCheck/RunCheck and the session base class shared by all check kinds.
#include "common/health/check.h"

#include <glog/logging.h>

#include <boost/asio/post.hpp>
#include <cctype>
#include <cstdio>
#include <utility>

#include "common/health/check_session.h"

namespace zkroll::health {
namespace internal {

CheckSession::CheckSession(boost::asio::any_io_executor ex, CheckTarget target,
                           Millis timeout, CheckCallback done,
                           TimeSource& time)
    : ex_(std::move(ex)),
      target_(std::move(target)),
      timeout_(timeout),
      done_(std::move(done)),
      time_(time),
      start_(time_.Now()) {}

CheckHandle CheckSession::Launch() {
  boost::asio::post(ex_, [self = shared_from_this()] {
    if (self->finished_) return;  // cancelled before it began
    self->start_ = self->time_.Now();
    self->Begin();
  });
  return CheckHandle(weak_from_this());
}

SocketCheckSession::SocketCheckSession(boost::asio::any_io_executor ex,
                                       CheckTarget target, Millis timeout,
                                       CheckCallback done, TimeSource& time)
    : CheckSession(ex, std::move(target), timeout, std::move(done), time),
      socket_(ex),
      deadline_(MakeTimer()) {}

void SocketCheckSession::Connect(Millis budget) {
  boost::system::error_code ec;
  boost::asio::ip::address address =
      boost::asio::ip::make_address(target().ip, ec);
  if (ec) {
    Finish(false, "bad address '" + target().ip + "'");
    return;
  }
  deadline_->ExpiresAfter(budget);
  deadline_->AsyncWait(
      [self = SharedAs<SocketCheckSession>()](boost::system::error_code ec) {
        if (!ec) self->OnDeadline();
      });
  socket_.async_connect(
      boost::asio::ip::tcp::endpoint(address, target().port),
      [self = SharedAs<SocketCheckSession>()](boost::system::error_code ec) {
        self->OnConnect(ec);
      });
}

void SocketCheckSession::Close() {
  boost::system::error_code ignored;
  socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  deadline_->Cancel();
}

void CheckSession::Cancel() {
  if (finished_) return;
  Finish(false, "cancelled");
  Abort();
}

void CheckSession::Finish(bool healthy, std::string reason) {
  if (finished_) return;
  finished_ = true;
  CheckResult result;
  result.healthy = healthy;
  result.reason = std::move(reason);
  result.elapsed =
      std::chrono::duration_cast<std::chrono::microseconds>(Elapsed());
  // Posted rather than called: Finish runs inside Cancel() and inside our
  // own handlers, and the caller's callback may well start the next check or
  // drop the last reference to whatever owns us.
  boost::asio::post(
      ex_, [done = std::move(done_), result = std::move(result)]() mutable {
        if (done) done(std::move(result));
      });
  done_ = nullptr;
}

std::chrono::steady_clock::duration CheckSession::Elapsed() const {
  return time_.Now() - start_;
}

std::string FormatElapsed(std::chrono::steady_clock::duration d) {
  double ms = std::chrono::duration<double, std::milli>(d).count();
  char buf[32];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%.1fms", ms);
  } else {
    std::snprintf(buf, sizeof buf, "%.2fs", ms / 1000);
  }
  return buf;
}

std::string ErrorText(const boost::system::error_code& ec) {
  std::string text = ec.message();
  if (!text.empty()) {
    text[0] =
        static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  }
  return text;
}

}  // namespace internal

void CheckHandle::Cancel() {
  if (std::shared_ptr<internal::CheckSession> session = session_.lock()) {
    session->Cancel();
  }
  session_.reset();
}

CheckHandle StartCheck(boost::asio::any_io_executor ex, const CheckSpec& spec,
                       const CheckTarget& target, Millis timeout,
                       CheckCallback done, TimeSource& time) {
  std::shared_ptr<internal::CheckSession> session;
  switch (spec.kind) {
    case CheckSpec::Kind::kTcp:
      session = internal::MakeTcpCheck(std::move(ex), spec, target, timeout,
                                       std::move(done), time);
      break;
    case CheckSpec::Kind::kHttp:
      session = internal::MakeHttpCheck(std::move(ex), spec, target, timeout,
                                        std::move(done), time);
      break;
    case CheckSpec::Kind::kExec:
      session = internal::MakeExecCheck(std::move(ex), spec, target, timeout,
                                        std::move(done), time);
      break;
  }
  CHECK(session) << "unhandled check kind " << static_cast<int>(spec.kind);
  return session->Launch();
}

void RunCheck(boost::asio::any_io_executor ex, const CheckSpec& spec,
              const CheckTarget& target, Millis timeout,
              std::function<void(CheckResult)> done, TimeSource& time) {
  StartCheck(std::move(ex), spec, target, timeout, std::move(done), time);
}

}  // namespace zkroll::health
