#include "agent/metrics_server.h"

#include <glog/logging.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/names.h"

namespace zkroll::agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string ListenAddress::ToString() const {
  bool v6 = ip.find(':') != std::string::npos;
  return (v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

Result<ListenAddress> ParseListenAddress(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("bad metrics address " + QuoteForMessage(text) +
                           ": " + why +
                           " (expected IP:PORT such as 127.0.0.1:9479 or "
                           "[::1]:9479, or an empty value to turn metrics "
                           "off)");
  };
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  // Port 0 (any free port) is fine for a listener but not for an instance
  // address, whose parser checks the rest.
  const bool any_port = text.substr(colon + 1) == "0";
  auto addr =
      InstanceAddress::Parse(any_port ? text.substr(0, colon + 1) + "1" : text);
  if (!addr.ok()) {
    std::string why = addr.status().message();
    size_t sep = why.find(": ");
    return bad(sep == std::string::npos ? why : why.substr(sep + 2));
  }
  return ListenAddress{addr->ip(), any_port ? uint16_t{0} : addr->port()};
}

namespace {

constexpr std::chrono::seconds kIdleTimeout{30};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::function<MetricsServer::Page()> page,
             std::shared_ptr<int> open)
      : stream_(std::move(socket)),
        page_(std::move(page)),
        open_(std::move(open)) {
    ++*open_;
  }
  ~Connection() { --*open_; }

  void Read() {
    request_ = {};
    stream_.expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, request_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (!ec) self->Answer();
                     });
  }

 private:
  void Answer() {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(request_.version());
    res->keep_alive(request_.keep_alive());
    res->set(http::field::server, "zkroll-agent");
    const bool get = request_.method() == http::verb::get ||
                     request_.method() == http::verb::head;
    std::string_view target(request_.target().data(), request_.target().size());
    target = target.substr(0, target.find('?'));
    if (!get) {
      res->result(http::status::method_not_allowed);
      res->set(http::field::allow, "GET, HEAD");
      res->set(http::field::content_type, "text/plain");
      res->body() = "only GET /metrics is served\n";
    } else if (target != "/metrics") {
      res->result(http::status::not_found);
      res->set(http::field::content_type, "text/plain");
      res->body() = "zkroll-agent serves its metrics at /metrics\n";
    } else {
      MetricsServer::Page p = page_();
      res->result(http::status::ok);
      res->set(http::field::content_type, p.content_type);
      res->body() = std::move(p.body);
    }
    res->prepare_payload();
    if (request_.method() == http::verb::head) res->body().clear();
    stream_.expires_after(kIdleTimeout);
    http::async_write(
        stream_, *res,
        [self = shared_from_this(), res](beast::error_code ec, size_t) {
          if (ec) return;
          if (res->keep_alive()) {
            self->Read();
          } else {
            beast::error_code ignored;
            self->stream_.socket().shutdown(tcp::socket::shutdown_send,
                                            ignored);
          }
        });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{8192};
  http::request<http::empty_body> request_;
  std::function<MetricsServer::Page()> page_;
  std::shared_ptr<int> open_;
};

}  // namespace

class MetricsServer::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io, std::function<Page()> page)
      : acceptor_(io), retry_(io), page_(std::move(page)) {}

  Status Open(const ListenAddress& address) {
    beast::error_code ec;
    auto ip = asio::ip::make_address(address.ip, ec);
    tcp::endpoint ep(ip, address.port);
    const char* step = "parse";
    if (!ec) {
      step = "open";
      acceptor_.open(ep.protocol(), ec);
    }
    if (!ec) {
      step = "set SO_REUSEADDR on";
      acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
      step = "bind";
      acceptor_.bind(ep, ec);
    }
    if (!ec) {
      step = "listen on";
      acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
      return Unavailable(std::string("cannot ") + step +
                         " the metrics address " + address.ToString() + ": " +
                         ec.message() +
                         "; set metrics_listen to a free address, or to an "
                         "empty value to turn metrics off");
    }
    return Status::Ok();
  }

  void Accept() {
    acceptor_.async_accept(
        [weak = weak_from_this()](beast::error_code ec, tcp::socket socket) {
          auto self = weak.lock();
          if (!self || ec == asio::error::operation_aborted) return;
          if (!ec) {
            if (*self->open_ >= kMaxConnections) {
              // Prometheus needs one connection; more is a misbehaving client.
              beast::error_code ignored;
              socket.close(ignored);
            } else {
              std::make_shared<Connection>(std::move(socket), self->page_,
                                           self->open_)
                  ->Read();
            }
            self->Accept();
            return;
          }
          // Out of descriptors, typically: retrying at once would spin and
          // flood the log.
          LOG(WARNING) << "metrics: accept failed: " << ec.message()
                       << "; retrying in 1s";
          self->retry_.expires_after(std::chrono::seconds(1));
          self->retry_.async_wait([weak](beast::error_code ec) {
            auto self = weak.lock();
            if (self && !ec) self->Accept();
          });
        });
  }

  void Close() {
    beast::error_code ignored;
    acceptor_.close(ignored);
    retry_.cancel();
  }

  uint16_t port() const {
    beast::error_code ec;
    return acceptor_.local_endpoint(ec).port();
  }

 private:
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
  std::function<Page()> page_;
  std::shared_ptr<int> open_ = std::make_shared<int>(0);
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::Listen(
    asio::io_context& io, const ListenAddress& address,
    std::function<Page()> page) {
  auto impl = std::make_shared<Impl>(io, std::move(page));
  ZKROLL_RETURN_IF_ERROR(impl->Open(address));
  impl->Accept();
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

MetricsServer::MetricsServer(std::shared_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

MetricsServer::~MetricsServer() { impl_->Close(); }

uint16_t MetricsServer::port() const { return impl_->port(); }

}  // namespace zkroll::agent
