#include "client/http_pool.h"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <optional>
#include <set>
#include <utility>

#include "common/duration.h"

namespace zkroll::client {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;

const char* HttpOutcomeName(HttpOutcome outcome) {
  switch (outcome) {
    case HttpOutcome::kOk:
      return "ok";
    case HttpOutcome::kNon2xx:
      return "non2xx";
    case HttpOutcome::kRefused:
      return "refused";
    case HttpOutcome::kReset:
      return "reset";
    case HttpOutcome::kTimeout:
      return "timeout";
    case HttpOutcome::kOther:
      return "other";
  }
  return "other";
}

HttpOutcome ClassifyError(const error_code& ec) {
  if (ec == asio::error::connection_refused) return HttpOutcome::kRefused;
  if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
      ec == asio::error::connection_aborted || ec == asio::error::eof ||
      ec == http::error::end_of_stream || ec == http::error::partial_message) {
    return HttpOutcome::kReset;
  }
  if (ec == asio::error::timed_out) return HttpOutcome::kTimeout;
  return HttpOutcome::kOther;
}

struct HttpPool::Request {
  std::string target;
  Clock::time_point deadline;
  Callback done;
  std::unique_ptr<asio::steady_timer> queue_timer;  // while queued
};

struct HttpPool::Instance {
  InstanceAddress address;
  tcp::endpoint endpoint;
  std::vector<std::shared_ptr<Connection>> idle;  // most recent last
  size_t open = 0;
  std::list<std::shared_ptr<Request>> queue;
  bool retired = false;
};

// One TCP connection carrying one request at a time.
class HttpPool::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::any_io_executor ex, std::weak_ptr<HttpPool> pool,
             InstanceAddress address, tcp::endpoint endpoint,
             const Options& options)
      : pool_(std::move(pool)),
        address_(std::move(address)),
        endpoint_(endpoint),
        max_body_bytes_(options.max_body_bytes),
        user_agent_(options.user_agent),
        socket_(ex),
        timer_(ex) {}

  const InstanceAddress& address() const { return address_; }

  // False if the server closed the connection while it was idle (a FIN or
  // RST is waiting) or sent something unasked. Never blocks.
  bool LooksAlive() {
    if (!socket_.is_open()) return false;
    char c;
    ssize_t n = ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0) return false;  // 0: orderly close; >0: bytes nobody asked for
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }

  void Run(std::shared_ptr<Request> req, bool reused) {
    req_ = std::move(req);
    reused_ = reused;
    finished_ = false;
    timed_out_ = false;
    const uint64_t seq = ++seq_;
    timer_.expires_at(req_->deadline);
    timer_.async_wait([self = shared_from_this(), seq](error_code ec) {
      self->OnDeadline(seq, ec);
    });
    request_ = {};
    request_.method(http::verb::get);
    request_.target(req_->target);
    request_.version(11);
    request_.set(http::field::host, address_.ToString());
    request_.set(http::field::user_agent, user_agent_);
    if (socket_.is_open()) {
      Write(seq);
      return;
    }
    phase_ = "connecting";
    socket_.async_connect(endpoint_,
                          [self = shared_from_this(), seq](error_code ec) {
                            if (self->Current(seq)) self->OnConnect(seq, ec);
                          });
  }

  void Close() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    timer_.cancel();
  }

 private:
  bool Current(uint64_t seq) const { return seq == seq_ && !finished_; }

  void OnDeadline(uint64_t seq, error_code ec) {
    if (ec || !Current(seq)) return;
    timed_out_ = true;
    // Completes the pending operation with operation_aborted; its handler
    // reports the timeout.
    error_code ignored;
    socket_.close(ignored);
  }

  void OnConnect(uint64_t seq, error_code ec) {
    if (ec) return Fail(ec);
    error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    Write(seq);
  }

  void Write(uint64_t seq) {
    phase_ = "writing";
    http::async_write(socket_, request_,
                      [self = shared_from_this(), seq](error_code ec, size_t) {
                        if (self->Current(seq)) self->OnWrite(seq, ec);
                      });
  }

  void OnWrite(uint64_t seq, error_code ec) {
    if (ec) return Fail(ec);
    phase_ = "reading";
    parser_.emplace();
    parser_->body_limit(max_body_bytes_);
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this(), seq](error_code ec, size_t) {
                       if (self->Current(seq)) self->OnRead(ec);
                     });
  }

  void OnRead(error_code ec) {
    if (ec) return Fail(ec);
    HttpResult result;
    result.reused_connection = reused_;
    result.response = parser_->release();
    const unsigned status = result.response.result_int();
    result.outcome =
        status >= 200 && status < 300 ? HttpOutcome::kOk : HttpOutcome::kNon2xx;
    if (result.outcome == HttpOutcome::kNon2xx) {
      result.error = "HTTP " + std::to_string(status);
    }
    const bool keep_alive = result.response.keep_alive();
    Finish(std::move(result), keep_alive);
  }

  void Fail(error_code ec) {
    HttpResult result;
    result.reused_connection = reused_;
    if (timed_out_) {
      result.outcome = HttpOutcome::kTimeout;
      result.error = "timeout (" + phase_ + ")";
    } else {
      result.outcome = ClassifyError(ec);
      result.error = ec.message() + " (" + phase_ + ")";
    }
    Close();
    Finish(std::move(result), false);
  }

  void Finish(HttpResult result, bool reusable) {
    finished_ = true;
    timer_.cancel();
    parser_.reset();
    std::shared_ptr<Request> req = std::move(req_);
    if (auto pool = pool_.lock()) {
      pool->Release(shared_from_this(), reusable);
    } else {
      Close();
    }
    req->done(std::move(result));
  }

  std::weak_ptr<HttpPool> pool_;
  InstanceAddress address_;
  tcp::endpoint endpoint_;
  const size_t max_body_bytes_;
  const std::string user_agent_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  boost::beast::flat_buffer buffer_;
  http::request<http::empty_body> request_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::shared_ptr<Request> req_;
  uint64_t seq_ = 0;  // tells a stale handler from the current request's
  bool reused_ = false;
  bool finished_ = true;
  bool timed_out_ = false;
  std::string phase_;
};

std::shared_ptr<HttpPool> HttpPool::Create(asio::any_io_executor ex,
                                           Options options) {
  return std::shared_ptr<HttpPool>(
      new HttpPool(std::move(ex), std::move(options)));
}

HttpPool::HttpPool(asio::any_io_executor ex, Options options)
    : ex_(std::move(ex)), options_(std::move(options)) {
  if (options_.max_connections_per_instance == 0) {
    options_.max_connections_per_instance = 1;
  }
}

HttpPool::~HttpPool() {
  for (auto& [address, inst] : instances_) {
    for (auto& c : inst.idle) c->Close();
  }
}

HttpPool::Instance* HttpPool::FindOrAdd(const InstanceAddress& address,
                                        std::string* error) {
  auto it = instances_.find(address);
  if (it != instances_.end()) return &it->second;
  error_code ec;
  auto ip = asio::ip::make_address(address.ip(), ec);
  if (ec) {
    *error = "bad address " + address.ip() + ": " + ec.message();
    return nullptr;
  }
  Instance inst;
  inst.address = address;
  inst.endpoint = tcp::endpoint(ip, address.port());
  return &instances_.emplace(address, std::move(inst)).first->second;
}

void HttpPool::Get(const InstanceAddress& instance, std::string target,
                   Clock::time_point deadline, Callback done) {
  auto req = std::make_shared<Request>();
  req->target = std::move(target);
  req->deadline = deadline;
  req->done = std::move(done);
  auto fail_later = [this, req](HttpOutcome outcome, std::string error) {
    asio::post(ex_, [req, outcome, error = std::move(error)] {
      HttpResult r;
      r.outcome = outcome;
      r.error = error;
      req->done(std::move(r));
    });
  };
  if (deadline <= Clock::now()) {
    fail_later(HttpOutcome::kTimeout,
               "timeout (the deadline passed before the request was sent)");
    return;
  }
  std::string error;
  Instance* inst = FindOrAdd(instance, &error);
  if (inst == nullptr) {
    fail_later(HttpOutcome::kOther, error);
    return;
  }
  Dispatch(inst, req);
}

void HttpPool::Dispatch(Instance* inst, const std::shared_ptr<Request>& req) {
  while (!inst->idle.empty()) {
    std::shared_ptr<Connection> c = std::move(inst->idle.back());
    inst->idle.pop_back();
    if (c->LooksAlive()) {
      c->Run(req, /*reused=*/true);
      return;
    }
    c->Close();
    --inst->open;
    ++counters_.discarded_dead;
  }
  if (inst->open < options_.max_connections_per_instance) {
    ++inst->open;
    ++counters_.connects;
    auto c = std::make_shared<Connection>(ex_, weak_from_this(), inst->address,
                                          inst->endpoint, options_);
    c->Run(req, /*reused=*/false);
    return;
  }
  Queue(inst, req);
}

void HttpPool::Queue(Instance* inst, const std::shared_ptr<Request>& req) {
  req->queue_timer = std::make_unique<asio::steady_timer>(ex_, req->deadline);
  std::weak_ptr<HttpPool> weak = weak_from_this();
  std::weak_ptr<Request> weak_req = req;
  InstanceAddress address = inst->address;
  req->queue_timer->async_wait([weak, weak_req, address](error_code ec) {
    auto self = weak.lock();
    auto r = weak_req.lock();
    if (ec || !self || !r) return;
    self->OnQueueTimeout(address, r);
  });
  inst->queue.push_back(req);
}

void HttpPool::OnQueueTimeout(const InstanceAddress& address,
                              const std::shared_ptr<Request>& req) {
  auto it = instances_.find(address);
  if (it == instances_.end()) return;
  auto& queue = it->second.queue;
  for (auto q = queue.begin(); q != queue.end(); ++q) {
    if (*q != req) continue;
    queue.erase(q);
    HttpResult r;
    r.outcome = HttpOutcome::kTimeout;
    r.error =
        "timeout (waiting for a free connection to " + address.ToString() + ")";
    req->queue_timer.reset();
    MaybeForget(address);
    req->done(std::move(r));
    return;
  }
}

void HttpPool::Release(const std::shared_ptr<Connection>& conn, bool reusable) {
  auto it = instances_.find(conn->address());
  if (it == instances_.end()) {
    conn->Close();
    return;
  }
  Instance* inst = &it->second;
  // A server that answered with keep-alive may still have closed since.
  if (reusable && !conn->LooksAlive()) reusable = false;
  // Requests that were already waiting for this instance run even if it
  // has been retired meanwhile: they were picked while it was listed.
  if (reusable && !shutdown_ && !inst->queue.empty()) {
    std::shared_ptr<Request> next = std::move(inst->queue.front());
    inst->queue.pop_front();
    next->queue_timer.reset();
    conn->Run(std::move(next), /*reused=*/true);
    return;
  }
  if (reusable && !shutdown_ && !inst->retired) {
    inst->idle.push_back(conn);
    return;
  }
  conn->Close();
  --inst->open;
  if (reusable && inst->retired) ++counters_.closed_retired;
  if (!inst->queue.empty() &&
      inst->open < options_.max_connections_per_instance) {
    std::shared_ptr<Request> next = std::move(inst->queue.front());
    inst->queue.pop_front();
    next->queue_timer.reset();
    Dispatch(inst, next);
    return;
  }
  MaybeForget(inst->address);
}

void HttpPool::CloseIdle(Instance* inst, uint64_t* counter) {
  for (auto& c : inst->idle) {
    c->Close();
    --inst->open;
    if (counter) ++*counter;
  }
  inst->idle.clear();
}

void HttpPool::MaybeForget(const InstanceAddress& address) {
  auto it = instances_.find(address);
  if (it == instances_.end()) return;
  const Instance& inst = it->second;
  if ((inst.retired || shutdown_) && inst.open == 0 && inst.queue.empty()) {
    instances_.erase(it);
  }
}

void HttpPool::Retain(const std::vector<InstanceAddress>& instances) {
  std::set<InstanceAddress> keep(instances.begin(), instances.end());
  std::vector<InstanceAddress> gone;
  for (auto& [address, inst] : instances_) {
    if (keep.count(address) != 0) {
      inst.retired = false;
      continue;
    }
    inst.retired = true;
    CloseIdle(&inst, &counters_.closed_retired);
    gone.push_back(address);
  }
  for (const auto& address : gone) MaybeForget(address);
}

void HttpPool::Shutdown() {
  shutdown_ = true;
  std::vector<InstanceAddress> all;
  for (auto& [address, inst] : instances_) {
    CloseIdle(&inst, nullptr);
    all.push_back(address);
  }
  for (const auto& address : all) MaybeForget(address);
}

HttpPool::Stats HttpPool::stats() const {
  Stats s = counters_;
  s.open = s.idle = s.queued = 0;
  for (const auto& [address, inst] : instances_) {
    s.open += inst.open;
    s.idle += inst.idle.size();
    s.queued += inst.queue.size();
  }
  return s;
}

size_t HttpPool::OpenConnections(const InstanceAddress& instance) const {
  auto it = instances_.find(instance);
  return it == instances_.end() ? 0 : it->second.open;
}

}  // namespace zkroll::client
