#include "agent/forward/http_scanner.h"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <utility>

namespace zkroll::forward {
namespace {

namespace http = boost::beast::http;
using boost::beast::string_view;
using boost::system::error_code;

// What a response needs to know about its request.
enum class Method : uint8_t { kOther, kHead, kConnect };

// Shared setup of both parsers. Bodies pass through and are never stored,
// so their size is none of our business: the body limit is the largest
// value (not boost::none, which Beast 1.74 compares as smaller than any
// Content-Length). Eager parsing lets one put() run through a header, its
// body and into the next message, so a read of many small pipelined
// messages costs one loop.
template <bool isRequest>
class ParserBase : public http::basic_parser<isRequest> {
 protected:
  explicit ParserBase(size_t header_limit) {
    this->header_limit(static_cast<uint32_t>(header_limit));
    this->body_limit(std::numeric_limits<uint64_t>::max());
    this->eager(true);
  }

  // The scanner needs nothing from fields, bodies or chunks: beast tracks
  // the framing (Content-Length, Transfer-Encoding) itself.
  void on_field_impl(http::field, string_view, string_view,
                     error_code&) override {}
  void on_body_init_impl(const boost::optional<uint64_t>&,
                         error_code&) override {}
  size_t on_body_impl(string_view body, error_code&) override {
    return body.size();
  }
  void on_chunk_header_impl(uint64_t, string_view, error_code&) override {}
  size_t on_chunk_body_impl(uint64_t, string_view body, error_code&) override {
    return body.size();
  }
  void on_finish_impl(error_code&) override {}
};

class RequestParser final : public ParserBase<true> {
 public:
  explicit RequestParser(size_t header_limit) : ParserBase(header_limit) {}
  Method method() const { return method_; }

 private:
  void on_request_impl(http::verb verb, string_view, string_view, int,
                       error_code&) override {
    method_ = verb == http::verb::head      ? Method::kHead
              : verb == http::verb::connect ? Method::kConnect
                                            : Method::kOther;
  }
  void on_response_impl(int, string_view, int, error_code&) override {}
  void on_header_impl(error_code&) override {}

  Method method_ = Method::kOther;
};

}  // namespace

class HttpScanner::Impl {
 public:
  Impl(ResponseCallback on_response, size_t header_limit)
      : on_response_(std::move(on_response)), header_limit_(header_limit) {}

  void OnRequestBytes(const char* data, size_t size) {
    Feed(request_pending_, data, size, &Impl::ParseRequests);
  }
  void OnResponseBytes(const char* data, size_t size) {
    Feed(response_pending_, data, size, &Impl::ParseResponses);
  }

  State state() const { return state_; }
  const std::string& failure() const { return failure_; }

 private:
  class ResponseParser final : public ParserBase<false> {
   public:
    ResponseParser(Impl* owner, size_t header_limit)
        : ParserBase(header_limit), owner_(owner) {}

   private:
    void on_request_impl(http::verb, string_view, string_view, int,
                         error_code&) override {}
    void on_response_impl(int status, string_view, int, error_code&) override {
      status_ = status;
    }
    // Reported once the whole header parsed, so a response whose header
    // turns out to be garbage is not counted.
    void on_header_impl(error_code& ec) override {
      owner_->OnResponseHeader(status_, ec);
    }

    Impl* owner_;
    int status_ = 0;
  };

  using ParseFn = size_t (Impl::*)(const char*, size_t);

  // Parses what it can of `data` and keeps the rest (an incomplete header
  // or chunk line) in `pending` for the next call. When nothing is pending,
  // which is the common case, the bytes are parsed where they lie.
  void Feed(std::string& pending, const char* data, size_t size,
            ParseFn parse) {
    if (state_ != State::kScanning || size == 0) return;
    if (pending.empty()) {
      size_t used = (this->*parse)(data, size);
      if (state_ == State::kScanning && used < size) {
        pending.assign(data + used, size - used);
      }
    } else {
      pending.append(data, size);
      size_t used = (this->*parse)(pending.data(), pending.size());
      if (state_ == State::kScanning) pending.erase(0, used);
    }
    // Beast bounds a message header by header_limit, but not a chunk-size
    // line or the trailers: this bound covers both, so a hostile stream
    // cannot make us buffer without end.
    if (state_ == State::kScanning && pending.size() > header_limit_) {
      GiveUp("incomplete header or chunk line longer than " +
             std::to_string(header_limit_) + " bytes");
    }
    // Only here, with no parser running and no pointer into `pending` left,
    // is it safe to free what a stopped scanner no longer needs.
    if (state_ != State::kScanning) Release();
  }

  // Returns how many bytes were consumed; the rest need more data.
  size_t ParseRequests(const char* p, size_t n) {
    size_t used = 0;
    while (used < n) {
      if (!request_) {
        // RFC 7230 3.5: ignore empty lines before a request line (some
        // clients send a CRLF after a POST body).
        while (used < n && (p[used] == '\r' || p[used] == '\n')) ++used;
        if (used == n) break;
        request_.emplace(header_limit_);
      }
      error_code ec;
      size_t k = request_->put(boost::asio::buffer(p + used, n - used), ec);
      used += k;
      if (ec == http::error::need_more) break;
      if (ec) {
        GiveUp("request: " + ec.message());
        return used;
      }
      if (request_->is_done()) {
        if (waiting_.size() >= kMaxPipelined) {
          GiveUp("more than " + std::to_string(kMaxPipelined) +
                 " requests waiting for a response");
          return used;
        }
        waiting_.push_back(request_->method());
        request_.reset();
      } else if (k == 0) {
        break;  // no progress without an error: wait for more bytes
      }
    }
    return used;
  }

  size_t ParseResponses(const char* p, size_t n) {
    size_t used = 0;
    while (used < n) {
      if (!response_) {
        // Created at the first byte of a response, not when the previous
        // one ended: only now is its request certain to have been scanned.
        response_.emplace(this, header_limit_);
        if (!waiting_.empty() && waiting_.front() == Method::kHead) {
          response_->skip(true);
        }
      }
      error_code ec;
      size_t k = response_->put(boost::asio::buffer(p + used, n - used), ec);
      used += k;
      if (state_ != State::kScanning) return used;  // tunnel
      if (ec == http::error::need_more) break;
      if (ec) {
        GiveUp("response: " + ec.message());
        return used;
      }
      if (response_->is_done()) {
        response_.reset();
      } else if (k == 0) {
        break;
      }
    }
    return used;
  }

  void OnResponseHeader(int status, error_code& ec) {
    // Interim responses precede the real answer to the same request.
    if (status < 200 && status != 101) return;
    Method method = Method::kOther;
    // Empty when a server answers before the request was complete (e.g. an
    // early 400/408): there is nothing to pair it with.
    if (!waiting_.empty()) {
      method = waiting_.front();
      waiting_.pop_front();
    }
    on_response_(status);
    if (status == 101 || (method == Method::kConnect && status / 100 == 2)) {
      Stop(State::kTunnel, "");
      // Any error stops beast after this header; ParseResponses checks the
      // state before the error, so this is not taken for a parse failure.
      ec = http::error::end_of_stream;
    }
  }

  void GiveUp(std::string why) { Stop(State::kGaveUp, std::move(why)); }

  // Called while a parser may still be running (OnResponseHeader), so it
  // only records the verdict; Feed releases the memory afterwards.
  void Stop(State state, std::string why) {
    state_ = state;
    failure_ = std::move(why);
  }

  // A stopped scanner only answers state() and failure().
  void Release() {
    request_.reset();
    response_.reset();
    std::string().swap(request_pending_);
    std::string().swap(response_pending_);
    std::deque<Method>().swap(waiting_);
  }

  ResponseCallback on_response_;
  const size_t header_limit_;
  State state_ = State::kScanning;
  std::string failure_;
  std::optional<RequestParser> request_;
  std::optional<ResponseParser> response_;
  std::string request_pending_;
  std::string response_pending_;
  // Methods of the requests scanned and not yet answered, oldest first.
  std::deque<Method> waiting_;
};

HttpScanner::HttpScanner(ResponseCallback on_response, size_t header_limit)
    : impl_(std::make_unique<Impl>(std::move(on_response), header_limit)) {}

HttpScanner::~HttpScanner() = default;

void HttpScanner::OnRequestBytes(const char* data, size_t size) {
  impl_->OnRequestBytes(data, size);
}

void HttpScanner::OnResponseBytes(const char* data, size_t size) {
  impl_->OnResponseBytes(data, size);
}

HttpScanner::State HttpScanner::state() const { return impl_->state(); }

const std::string& HttpScanner::failure() const { return impl_->failure(); }

}  // namespace zkroll::forward
