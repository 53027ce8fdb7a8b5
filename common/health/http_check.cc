// The http check: GET a path and judge the status (and optionally the body).
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/health/check_session.h"
#include "common/health/own_connections.h"

namespace zkroll::health::internal {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

// A health endpoint answers with a few bytes; the limit only protects the
// daemon from an endpoint that streams something large.
constexpr size_t kBodyLimit = 64 * 1024;

class HttpCheck final : public SocketCheckSession {
 public:
  HttpCheck(asio::any_io_executor ex, const CheckSpec& spec,
            const CheckTarget& target, Millis timeout, CheckCallback done,
            TimeSource& time)
      : SocketCheckSession(ex, target, timeout, std::move(done), time),
        path_(spec.http_path.empty() ? "/" : spec.http_path),
        expect_status_(spec.expect_status),
        body_contains_(spec.body_contains) {}

 private:
  void Begin() override {
    phase_ = "connecting";
    Connect(timeout());
  }

  void OnDeadline() override {
    if (finished()) return;
    Finish(false,
           "timeout after " + FormatDuration(timeout()) + " (" + phase_ + ")");
    // Closing the socket completes the pending operation with
    // operation_aborted, which releases the last reference to us.
    Close();
  }

  void OnConnect(error_code ec) override {
    if (finished()) return;
    if (ec) return Fail(ErrorText(ec));
    // So a traffic observer does not count the check as a caller.
    RecordOwnConnection(socket());
    request_.method(http::verb::get);
    request_.target(path_);
    request_.version(11);
    request_.set(http::field::host, DescribeTarget(target()));
    request_.set(http::field::user_agent, "zkroll-health");
    request_.set(http::field::accept, "*/*");
    // The check wants exactly one answer; "close" also tells the server not
    // to hold the connection for us.
    request_.set(http::field::connection, "close");
    phase_ = "sending request";
    http::async_write(socket(), request_,
                      [self = SharedAs<HttpCheck>()](error_code ec, size_t) {
                        self->OnWrite(ec);
                      });
  }

  void OnWrite(error_code ec) {
    if (finished()) return;
    if (ec) return Fail("sending request: " + ErrorText(ec));
    parser_.emplace();
    // No limit while reading the header: Beast would refuse a large
    // Content-Length there already, and a status-only check never reads the
    // body. A body check sets the limit in OnHeader. (Not boost::none: Beast
    // 1.74 compares Content-Length against the optional, and every length
    // is "greater" than none.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    phase_ = "reading response";
    http::async_read_header(socket(), buffer_, *parser_,
                            [self = SharedAs<HttpCheck>()](
                                error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(error_code ec) {
    if (finished()) return;
    if (ec) return Fail(ReadError(ec));
    status_ = parser_->get().result_int();
    if (!StatusAccepted(status_)) {
      return Fail("HTTP " + std::to_string(status_));
    }
    if (body_contains_.empty()) {
      // Only the status matters: do not wait for (or pay for) the body.
      return Pass();
    }
    boost::optional<std::uint64_t> length = parser_->content_length();
    if (length && *length > kBodyLimit) return FailBodyTooLarge();
    parser_->body_limit(kBodyLimit);
    phase_ = "reading body";
    http::async_read(socket(), buffer_, *parser_,
                     [self = SharedAs<HttpCheck>()](error_code ec, size_t) {
                       self->OnBody(ec);
                     });
  }

  void OnBody(error_code ec) {
    if (finished()) return;
    if (ec == http::error::body_limit) return FailBodyTooLarge();
    if (ec) return Fail(ReadError(ec));
    if (parser_->get().body().find(body_contains_) == std::string::npos) {
      return Fail("body does not contain '" + body_contains_ + "'");
    }
    Pass();
  }

  void FailBodyTooLarge() {
    Fail("HTTP " + std::to_string(status_) + " but the body is over " +
         std::to_string(kBodyLimit / 1024) + " KiB, too large to look for '" +
         body_contains_ + "'");
  }

  std::string ReadError(error_code ec) const {
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == http::error::partial_message) {
      return std::string("connection closed while ") + phase_;
    }
    return std::string(phase_) + ": " + ErrorText(ec);
  }

  bool StatusAccepted(int status) const {
    if (expect_status_.empty()) return status >= 200 && status <= 299;
    for (const auto& [low, high] : expect_status_) {
      if (status >= low && status <= high) return true;
    }
    return false;
  }

  void Pass() {
    Finish(true, "ok (HTTP " + std::to_string(status_) + " in " +
                     FormatElapsed(Elapsed()) + ")");
    Close();
  }

  void Fail(std::string reason) {
    Finish(false, std::move(reason));
    Close();
  }

  const std::string path_;
  const std::vector<std::pair<int, int>> expect_status_;
  const std::string body_contains_;
  boost::beast::flat_buffer buffer_;
  http::request<http::empty_body> request_;
  std::optional<http::response_parser<http::string_body>> parser_;
  const char* phase_ = "starting";
  int status_ = 0;
};

}  // namespace

std::shared_ptr<CheckSession> MakeHttpCheck(asio::any_io_executor ex,
                                            const CheckSpec& spec,
                                            const CheckTarget& target,
                                            Millis timeout,
                                            CheckCallback done,
    TimeSource& time) {
  return std::make_shared<HttpCheck>(std::move(ex), spec, target, timeout,
                                     std::move(done), time);
}

}  // namespace zkroll::health::internal
