#include "demo/load_io.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <set>

namespace zkroll::demo {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;
using client::HttpOutcome;
using client::HttpResult;

FixedTargets::FixedTargets(ServiceName service,
                           std::vector<InstanceAddress> targets) {
  auto view = std::make_shared<client::ServiceView>();
  view->service = std::move(service);
  for (auto& t : targets) {
    client::DiscoveredInstance i;
    i.address = std::move(t);
    view->instances.push_back(std::move(i));
  }
  view->generation = 1;
  view->loaded = true;
  view->service_exists = true;
  view->stale = false;
  view_ = std::move(view);
}

std::optional<client::Endpoint> FixedTargets::Pick() {
  const auto& instances = view_->instances;
  if (instances.empty()) return std::nullopt;
  client::Endpoint e;
  e.address = instances[next_++ % instances.size()].address;
  return e;
}

Result<std::vector<InstanceAddress>> ParseTargets(std::string_view text) {
  std::vector<InstanceAddress> out;
  std::set<InstanceAddress> seen;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    std::string_view item = text.substr(
        start, comma == std::string_view::npos ? comma : comma - start);
    if (item.empty()) {
      return InvalidArgument(
          "empty entry in " + QuoteForMessage(std::string(text)) +
          "; list addresses as IP:PORT[,IP:PORT...], e.g. 127.0.0.1:8080");
    }
    auto address = InstanceAddress::Parse(item);
    if (!address.ok()) {
      return address.status();
    }
    if (!seen.insert(*address).second) {
      return InvalidArgument(address->ToString() + " is listed twice");
    }
    out.push_back(*address);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

// One request on its own connection: connect, write, read, close.
class ConnectionPerRequest::Call
    : public std::enable_shared_from_this<ConnectionPerRequest::Call> {
 public:
  Call(asio::any_io_executor ex, std::shared_ptr<size_t> open,
       size_t max_body_bytes, client::HttpPool::Callback done)
      : socket_(ex),
        timer_(ex),
        open_(std::move(open)),
        max_body_bytes_(max_body_bytes),
        done_(std::move(done)) {
    ++*open_;
  }
  ~Call() { --*open_; }

  void Run(const tcp::endpoint& endpoint,
           client::HttpPool::Clock::time_point deadline,
           http::request<http::empty_body> request) {
    request_ = std::move(request);
    timer_.expires_at(deadline);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->finished_) return;
      self->timed_out_ = true;
      // Completes the pending operation with operation_aborted; its
      // handler reports the timeout.
      error_code ignored;
      self->socket_.close(ignored);
    });
    phase_ = "connecting";
    socket_.async_connect(endpoint, [self = shared_from_this()](error_code ec) {
      self->OnConnect(ec);
    });
  }

 private:
  void OnConnect(error_code ec) {
    if (ec) return Fail(ec);
    error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    phase_ = "writing";
    http::async_write(socket_, request_,
                      [self = shared_from_this()](error_code ec, size_t) {
                        self->OnWrite(ec);
                      });
  }

  void OnWrite(error_code ec) {
    if (ec) return Fail(ec);
    phase_ = "reading";
    parser_.body_limit(max_body_bytes_);
    http::async_read(socket_, buffer_, parser_,
                     [self = shared_from_this()](error_code ec, size_t) {
                       self->OnRead(ec);
                     });
  }

  void OnRead(error_code ec) {
    if (ec) return Fail(ec);
    HttpResult result;
    result.response = parser_.release();
    const unsigned status = result.response.result_int();
    result.outcome =
        status >= 200 && status < 300 ? HttpOutcome::kOk : HttpOutcome::kNon2xx;
    if (result.outcome == HttpOutcome::kNon2xx) {
      result.error = "HTTP " + std::to_string(status);
    }
    Finish(std::move(result));
  }

  void Fail(error_code ec) {
    HttpResult result;
    if (timed_out_) {
      result.outcome = HttpOutcome::kTimeout;
      result.error = "timeout (" + phase_ + ")";
    } else {
      result.outcome = client::ClassifyError(ec);
      result.error = ec.message() + " (" + phase_ + ")";
    }
    Finish(std::move(result));
  }

  void Finish(HttpResult result) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    error_code ignored;
    socket_.close(ignored);
    done_(std::move(result));
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  std::shared_ptr<size_t> open_;
  const size_t max_body_bytes_;
  client::HttpPool::Callback done_;
  http::request<http::empty_body> request_;
  boost::beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
  std::string phase_;
  bool finished_ = false;
  bool timed_out_ = false;
};

ConnectionPerRequest::ConnectionPerRequest(asio::any_io_executor ex,
                                           std::string user_agent,
                                           size_t max_body_bytes)
    : ex_(std::move(ex)),
      user_agent_(std::move(user_agent)),
      max_body_bytes_(max_body_bytes) {}

void ConnectionPerRequest::Get(const InstanceAddress& instance,
                               std::string target,
                               client::HttpPool::Clock::time_point deadline,
                               client::HttpPool::Callback done) {
  auto fail_later = [this, &done](HttpOutcome outcome, std::string error) {
    asio::post(ex_,
               [done = std::move(done), outcome, error = std::move(error)] {
                 HttpResult r;
                 r.outcome = outcome;
                 r.error = error;
                 done(std::move(r));
               });
  };
  if (deadline <= client::HttpPool::Clock::now()) {
    fail_later(HttpOutcome::kTimeout,
               "timeout (the deadline passed before the request was sent)");
    return;
  }
  error_code ec;
  auto ip = asio::ip::make_address(instance.ip(), ec);
  if (ec) {
    fail_later(HttpOutcome::kOther,
               "bad address " + instance.ip() + ": " + ec.message());
    return;
  }
  http::request<http::empty_body> request;
  request.method(http::verb::get);
  request.target(target);
  request.version(11);
  request.set(http::field::host, instance.ToString());
  request.set(http::field::user_agent, user_agent_);
  request.keep_alive(false);  // "Connection: close"
  ++connects_;
  auto call =
      std::make_shared<Call>(ex_, open_, max_body_bytes_, std::move(done));
  call->Run(tcp::endpoint(ip, instance.port()), deadline, std::move(request));
}

client::HttpPool::Stats ConnectionPerRequest::stats() const {
  client::HttpPool::Stats s;
  s.open = *open_;
  s.connects = connects_;
  return s;
}

}  // namespace zkroll::demo
