// The forwarder's shape: one io_context per io thread, each connection
// pinned to one of them for its whole life. Both directions of a connection,
// its connect timer and its HTTP scanner therefore run on one thread: a
// connection needs no strand and no lock, and its request bytes are always
// scanned before its response bytes can arrive. The acceptor, the change
// timer and the accept-retry timer live on the first io_context; accepted
// sockets are handed out round robin.
//
// Hot path (per read): one read, one write, no allocation (the two buffers
// are allocated with the session), no lock, no shared counter. Counters are
// atomics of the backend touched at connect, close and per HTTP response.
#include "agent/forward/forwarder.h"

#include <glog/logging.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "agent/forward/http_scanner.h"

namespace zkroll::forward {

const char* ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kTcp:
      return "tcp";
    case Protocol::kHttp:
      return "http";
  }
  return "unknown";
}

Result<Protocol> ParseProtocol(std::string_view text) {
  if (text == "tcp") return Protocol::kTcp;
  if (text == "http") return Protocol::kHttp;
  return InvalidArgument("unknown forwarding protocol " +
                         QuoteForMessage(text) + ": expected tcp or http");
}

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

// Sockets and timers bound to a concrete io_context executor rather than
// the type-erased any_io_executor: every operation on the hot path would
// otherwise pay for the erasure.
using Executor = asio::io_context::executor_type;
using Socket = tcp::socket::rebind_executor<Executor>::other;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;
using Timer =
    asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, Executor>;

constexpr Millis kChangeInterval{50};
// After an accept error that is about us (out of fds, out of memory) the
// pending connection stays in the backlog and the acceptor is readable at
// once: retrying at once would spin a core.
constexpr Millis kAcceptRetryDelay{100};
constexpr std::chrono::seconds kLogPeriod{10};
constexpr int kMaxThreads = 16;
// Reads a connection may pass on in one go before yielding its thread.
constexpr int kInlineRounds = 8;

// A connection adds its byte counts to its backend's counters when it
// closes and whenever this much has passed since the last time: no shared
// counter per read on the hot path, and a long transfer still shows up
// while it runs.
constexpr uint64_t kByteFlushThreshold = 1 << 20;
constexpr size_t kMinBufferBytes = 1024;

// Lets one message through per period and counts the ones held back, so a
// backend refusing thousands of connections a second costs one log line.
class LogLimiter {
 public:
  // True if a message may be logged now; `suppressed` is set to the number
  // of messages held back since the previous one.
  bool Allow(uint64_t* suppressed) {
    int64_t now = Clock::now().time_since_epoch().count();
    int64_t next = next_.load(std::memory_order_relaxed);
    if (now < next ||
        !next_.compare_exchange_strong(
            next, now + std::chrono::duration_cast<Clock::duration>(kLogPeriod)
                            .count())) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    *suppressed = dropped_.exchange(0, std::memory_order_relaxed);
    return true;
  }

 private:
  std::atomic<int64_t> next_{0};
  std::atomic<uint64_t> dropped_{0};
};

std::string Suppressed(uint64_t n) {
  return n == 0 ? "" : " (" + std::to_string(n) + " similar suppressed)";
}

// One backend's counters. Sessions hold a shared_ptr to it, so they update
// it without looking it up and without a lock.
struct Backend {
  Backend(InstanceAddress a, tcp::endpoint e)
      : address(std::move(a)), endpoint(e) {}

  bool Used() const {
    return active.load() != 0 || connections.load() != 0 ||
           connect_failures.load() != 0;
  }

  const InstanceAddress address;
  const tcp::endpoint endpoint;
  std::atomic<uint32_t> active{0};
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> connect_failures{0};
  std::atomic<uint64_t> fallbacks{0};
  std::atomic<uint64_t> http_responses{0};
  std::atomic<uint64_t> http_5xx{0};
  std::atomic<uint64_t> http_unparsed{0};
  std::atomic<uint64_t> bytes_to_backend{0};
  std::atomic<uint64_t> bytes_from_backend{0};
};

// Where a new connection goes, fixed at accept time.
struct Route {
  std::shared_ptr<Backend> backend;
  std::shared_ptr<Backend> fallback;  // null: none, or same as backend
};

Result<tcp::endpoint> ToEndpoint(const InstanceAddress& a) {
  error_code ec;
  asio::ip::address ip = asio::ip::make_address(a.ip(), ec);
  if (ec) {
    return InvalidArgument("bad address " + QuoteForMessage(a.ToString()) +
                           ": " + ec.message());
  }
  return tcp::endpoint(ip, a.port());
}

// A connection to `target` reaches our own listener: the same address, or
// a loopback/unspecified address on our port while we listen on all
// addresses.
bool IsLoop(const InstanceAddress& target, const tcp::endpoint& target_ep,
            const InstanceAddress& listen, const tcp::endpoint& listen_ep) {
  if (target == listen) return true;
  if (target.port() != listen.port()) return false;
  const asio::ip::address& t = target_ep.address();
  return listen_ep.address().is_unspecified() &&
         (t.is_loopback() || t.is_unspecified() ||
          (t.is_v6() && t.to_v6().is_v4_mapped() &&
           asio::ip::make_address_v4(asio::ip::v4_mapped, t.to_v6())
               .is_loopback()));
}

// Accept errors that concern only the connection being accepted (it was
// reset before we took it, a firewall refused it): the next accept may
// succeed at once.
bool IsPerConnectionAcceptError(const error_code& ec) {
  return ec == asio::error::connection_aborted ||
         ec == asio::error::connection_reset || ec == asio::error::try_again ||
         ec == asio::error::would_block || ec == asio::error::interrupted ||
         ec == error_code(EPROTO, boost::system::system_category()) ||
         ec == error_code(EPERM, boost::system::system_category());
}

}  // namespace

class Forwarder::Impl {
 public:
  explicit Impl(ForwarderOptions options);

  Status Start(const InstanceAddress& backend,
               const std::optional<InstanceAddress>& fallback);
  // Stops the threads and destroys every connection. Once only, from the
  // Forwarder's destructor.
  void Shutdown();
  Status SetBackend(const InstanceAddress& backend,
                    const std::optional<InstanceAddress>& fallback);
  InstanceAddress backend() const;
  std::optional<InstanceAddress> fallback() const;
  std::vector<BackendStats> Stats() const;
  uint32_t open_connections() const { return open_.load(); }

  // For sessions.
  const ForwarderOptions& options() const { return options_; }
  // Something a reader of Stats() may care about changed.
  void NoteChange();
  void ConnectionClosed();
  LogLimiter& connect_log() { return connect_log_; }
  LogLimiter& http_log() { return http_log_; }

 private:
  class Session;
  struct Worker {
    asio::io_context io{1};  // run by exactly one thread
    // Asio opens an io_context's epoll, eventfd and timerfd with its first
    // socket or timer. This timer is never armed; it makes that happen now,
    // so the forwarder's own fds are all open once it is constructed and
    // not one more is opened by its first connection.
    Timer open_reactor{io};
    std::optional<asio::executor_work_guard<Executor>> work;
    std::thread thread;
  };

  std::shared_ptr<Backend> BackendFor(const InstanceAddress& a,
                                      const tcp::endpoint& ep);
  void Accept();
  void OnAccept(error_code ec, Socket socket, Worker& worker);
  void OnChangePending();
  void FireChange(Clock::time_point now);

  const ForwarderOptions options_;
  std::mutex start_mu_;   // one Start() at a time
  bool started_ = false;  // guarded by start_mu_
  // Set once the destructor runs: nothing may be posted any more.
  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> open_{0};
  LogLimiter connect_log_;
  LogLimiter http_log_;
  LogLimiter accept_log_;

  std::vector<std::unique_ptr<Worker>> workers_;
  mutable std::mutex mu_;
  InstanceAddress backend_address_;                           // guarded by mu_
  std::optional<InstanceAddress> fallback_address_;           // guarded by mu_
  Route route_;                                               // guarded by mu_
  std::map<std::string, std::shared_ptr<Backend>> backends_;  // by mu_

  // On workers_[0], its thread only.
  std::optional<Acceptor> acceptor_;
  std::optional<Timer> accept_retry_timer_;
  size_t next_worker_ = 0;
  std::optional<Timer> change_timer_;
  bool change_timer_armed_ = false;
  Clock::time_point last_change_call_{};
  // Set by NoteChange until the callback ran, so a burst of changes posts
  // once.
  std::atomic<bool> change_pending_{false};
};

// One client connection and its backend connection. Every pending handler
// holds a shared_ptr to the session, so it lives exactly as long as an
// operation can still complete; closing both sockets makes them all
// complete (operation_aborted) and releases it. Runs on one thread.
class Forwarder::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& fwd, asio::io_context& io, Socket client, Route route)
      : fwd_(fwd),
        client_(std::move(client)),
        backend_(io),
        connect_timer_(io),
        route_(std::move(route)),
        buffer_bytes_(fwd.options().buffer_bytes),
        // Not value-initialised: the bytes are always written before read.
        buffers_(new char[2 * buffer_bytes_]),
        upstream_{&client_, &backend_, buffers_.get(), true},
        downstream_{&backend_, &client_, buffers_.get() + buffer_bytes_,
                    false} {}

  ~Session() { Release(); }

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void Start() { Connect(route_.backend); }

 private:
  // One direction of the splice.
  struct Pipe {
    Socket* from;
    Socket* to;
    char* buffer;
    bool requests;      // client -> backend
    bool done = false;  // EOF read and passed on as a shutdown(send)
    uint64_t unflushed_bytes = 0;  // read, not yet added to the backend
  };

  void FlushBytes(Pipe& p) {
    if (p.unflushed_bytes == 0 || !target_) return;
    (p.requests ? target_->bytes_to_backend : target_->bytes_from_backend)
        .fetch_add(p.unflushed_bytes, std::memory_order_relaxed);
    p.unflushed_bytes = 0;
  }

  void Connect(std::shared_ptr<Backend> target) {
    target_ = std::move(target);
    connecting_ = true;
    timed_out_ = false;
    // The attempt number tells a stale expiry (queued before the first
    // attempt's cancel) from this attempt's.
    int attempt = ++attempt_;
    // Opened and made non-blocking here, for the connect below and for the
    // reads and writes OnRead makes itself; Asio's own operations then find
    // it so and do not set it again.
    error_code ec;
    backend_.open(target_->endpoint.protocol(), ec);
    if (!ec) backend_.non_blocking(true, ec);
    if (ec) {  // out of fds or memory: fails like a refused connect
      asio::post(connect_timer_.get_executor(),
                 [self = shared_from_this(), ec] { self->OnConnect(ec); });
      return;
    }
    // Connecting by hand rather than with async_connect, which always waits
    // in the event loop and then checks with a poll() of its own.
    const tcp::endpoint& ep = target_->endpoint;
    if (::connect(backend_.native_handle(), ep.data(),
                  static_cast<socklen_t>(ep.size())) == 0) {
      asio::post(connect_timer_.get_executor(),
                 [self = shared_from_this()] { self->OnConnect({}); });
      return;
    }
    if (errno != EINPROGRESS) {
      asio::post(connect_timer_.get_executor(),
                 [self = shared_from_this(),
                  ec = error_code(errno, boost::system::system_category())] {
                   self->OnConnect(ec);
                 });
      return;
    }
    // To a local backend the handshake has mostly finished by now: one
    // zero-timeout poll spares the EPOLLOUT registration and a round
    // through the event loop.
    pollfd pfd{backend_.native_handle(), POLLOUT, 0};
    if (::poll(&pfd, 1, 0) == 1) {
      asio::post(connect_timer_.get_executor(),
                 [self = shared_from_this(), ec = ConnectResult()] {
                   self->OnConnect(ec);
                 });
      return;
    }
    // Still in progress: wait for it, at most connect_timeout.
    connect_timer_.expires_after(fwd_.options().connect_timeout);
    connect_timer_.async_wait(
        [self = shared_from_this(), attempt](error_code ec) {
          if (ec || !self->connecting_ || attempt != self->attempt_) return;
          // Closing the socket completes the pending wait, which then sees
          // timed_out_ (even if it had succeeded in the same loop iteration).
          self->timed_out_ = true;
          error_code ignored;
          self->backend_.close(ignored);
        });
    backend_.async_wait(
        tcp::socket::wait_write, [self = shared_from_this()](error_code ec) {
          self->OnConnect(ec ? ec : self->ConnectResult());
        });
  }

  // The outcome of a finished non-blocking connect.
  error_code ConnectResult() {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(backend_.native_handle(), SOL_SOCKET, SO_ERROR, &err,
                     &len) != 0) {
      err = errno;
    }
    return err == 0 ? error_code()
                    : error_code(err, boost::system::system_category());
  }

  void OnConnect(error_code ec) {
    connecting_ = false;
    connect_timer_.cancel();
    if (closed_) return;
    if (timed_out_) ec = asio::error::timed_out;
    if (ec) {
      OnConnectFailed(ec);
      return;
    }
    if (saved_from_) {
      saved_from_->fallbacks.fetch_add(1, std::memory_order_relaxed);
    }
    target_->connections.fetch_add(1, std::memory_order_relaxed);
    target_->active.fetch_add(1, std::memory_order_relaxed);
    counted_active_ = true;
    fwd_.NoteChange();

    error_code ignored;
    backend_.set_option(tcp::no_delay(true), ignored);
    if (fwd_.options().protocol == Protocol::kHttp) {
      scanner_ = std::make_unique<HttpScanner>(
          [this](int status) { OnHttpResponse(status); });
    }
    auto self = shared_from_this();
    Read(upstream_, self);
    Read(downstream_, std::move(self));
  }

  void OnConnectFailed(const error_code& ec) {
    target_->connect_failures.fetch_add(1, std::memory_order_relaxed);
    fwd_.NoteChange();
    bool retry = !saved_from_ && route_.fallback && route_.fallback != target_;
    uint64_t suppressed = 0;
    if (fwd_.connect_log().Allow(&suppressed)) {
      LOG(WARNING) << "forwarder " << fwd_.options().listen.ToString()
                   << ": connect to " << target_->address.ToString()
                   << " failed: " << ec.message()
                   << (retry ? "; trying fallback " +
                                   route_.fallback->address.ToString()
                             : std::string("; closing the client connection"))
                   << Suppressed(suppressed);
    }
    if (!retry) {
      Close();
      return;
    }
    // The client's bytes are still unread in its socket, so the fallback
    // gets the connection from its first byte.
    saved_from_ = target_;
    error_code ignored;
    backend_.close(ignored);
    Connect(route_.fallback);
  }

  // `self` travels from handler to handler instead of being copied from
  // shared_from_this() on every operation.
  void Read(Pipe& p, std::shared_ptr<Session> self) {
    p.from->async_read_some(
        asio::buffer(p.buffer, buffer_bytes_),
        [this, &p, self = std::move(self)](error_code ec, size_t n) mutable {
          OnRead(p, ec, n, std::move(self));
        });
  }

  // Passes the bytes on at once with a non-blocking write, and after a
  // full buffer (more is probably waiting) reads again at once, instead of
  // a round through the event loop per read and per write (a scheduler
  // dispatch, and mostly an epoll_wait: in a bulk transfer this took us
  // from two epoll_waits per 16 KiB to one per ~100 KiB). Only a write the
  // peer cannot take yet goes async. After a short read the next read is
  // async_read_some, whose first attempt is a recv; when nothing has come
  // yet that recv is wasted (Asio 1.74 has no cheaper way to wait for a
  // registered socket: async_wait costs an epoll_ctl).
  void OnRead(Pipe& p, error_code ec, size_t n, std::shared_ptr<Session> self) {
    for (int round = 1;; ++round) {
      if (ec) {
        if (ec == asio::error::eof) {
          PassOnEof(p);
        } else {
          Close();
        }
        return;
      }
      // Scanned before it is passed on: the backend cannot answer a request
      // the scanner has not seen.
      if (scanner_) Scan(p, n);
      p.unflushed_bytes += n;
      if (p.unflushed_bytes >= kByteFlushThreshold) FlushBytes(p);
      size_t written = p.to->write_some(asio::buffer(p.buffer, n), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        written = 0;
        ec = {};
      }
      if (ec) {
        Close();
        return;
      }
      if (written < n) {
        WriteRest(p, written, n, std::move(self));
        return;
      }
      // The round limit keeps one busy connection from starving the others
      // on this thread.
      if (n < buffer_bytes_ || round == kInlineRounds) {
        Read(p, std::move(self));
        return;
      }
      n = p.from->read_some(asio::buffer(p.buffer, buffer_bytes_), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        Read(p, std::move(self));
        return;
      }
    }
  }

  void WriteRest(Pipe& p, size_t from, size_t to,
                 std::shared_ptr<Session> self) {
    asio::async_write(
        *p.to, asio::buffer(p.buffer + from, to - from),
        [this, &p, self = std::move(self)](error_code ec, size_t) mutable {
          if (ec) {
            Close();
          } else {
            Read(p, std::move(self));
          }
        });
  }

  // Half-close: the reader said it will send no more, so tell the other
  // side the same and keep the opposite direction going. When that was the
  // last direction, closing says it (both sockets are read to their end,
  // so close() sends a FIN, not a reset).
  void PassOnEof(Pipe& p) {
    if (closed_) return;
    p.done = true;
    if (upstream_.done && downstream_.done) {
      Close();
      return;
    }
    error_code ec;
    p.to->shutdown(tcp::socket::shutdown_send, ec);
    if (ec) Close();
  }

  void Scan(const Pipe& p, size_t n) {
    if (p.requests) {
      scanner_->OnRequestBytes(p.buffer, n);
    } else {
      scanner_->OnResponseBytes(p.buffer, n);
    }
    if (scanner_->state() == HttpScanner::State::kScanning) return;
    if (scanner_->state() == HttpScanner::State::kGaveUp) {
      target_->http_unparsed.fetch_add(1, std::memory_order_relaxed);
      fwd_.NoteChange();
      uint64_t suppressed = 0;
      if (fwd_.http_log().Allow(&suppressed)) {
        LOG(WARNING) << "forwarder " << fwd_.options().listen.ToString()
                     << ": not counting HTTP responses from "
                     << target_->address.ToString()
                     << " on one connection (still forwarded): "
                     << scanner_->failure() << Suppressed(suppressed);
      }
    }
    scanner_.reset();
  }

  void OnHttpResponse(int status) {
    target_->http_responses.fetch_add(1, std::memory_order_relaxed);
    if (status >= 500 && status <= 599) {
      target_->http_5xx.fetch_add(1, std::memory_order_relaxed);
    }
    fwd_.NoteChange();
  }

  // Closing both sockets completes every pending operation, which drops the
  // last references to the session.
  void Close() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    client_.close(ignored);
    backend_.close(ignored);
    connect_timer_.cancel();
    Release();
  }

  // The counters' side of closing; also run by the destructor when the
  // forwarder is destroyed with the connection open.
  void Release() {
    if (released_) return;
    released_ = true;
    FlushBytes(upstream_);
    FlushBytes(downstream_);
    if (counted_active_) {
      target_->active.fetch_sub(1, std::memory_order_relaxed);
    }
    fwd_.ConnectionClosed();
  }

  Impl& fwd_;
  Socket client_;
  Socket backend_;
  Timer connect_timer_;
  const Route route_;
  const size_t buffer_bytes_;
  std::unique_ptr<char[]> buffers_;
  Pipe upstream_;
  Pipe downstream_;
  std::unique_ptr<HttpScanner> scanner_;  // kHttp only, until it stops

  std::shared_ptr<Backend> target_;      // being connected to, or spliced to
  std::shared_ptr<Backend> saved_from_;  // set once we went to the fallback
  int attempt_ = 0;
  bool connecting_ = false;
  bool timed_out_ = false;
  bool counted_active_ = false;
  bool closed_ = false;
  bool released_ = false;
};

Forwarder::Impl::Impl(ForwarderOptions options) : options_(std::move(options)) {
  int n = std::clamp(options_.threads, 1, kMaxThreads);
  for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>());
  asio::io_context& io = workers_[0]->io;
  accept_retry_timer_.emplace(io);
  change_timer_.emplace(io);
}

Status Forwarder::Impl::Start(const InstanceAddress& backend,
                              const std::optional<InstanceAddress>& fallback) {
  const std::string where = options_.listen.ToString();
  if (options_.threads < 1 || options_.threads > kMaxThreads) {
    return InvalidArgument("forwarder " + where + ": threads " +
                           std::to_string(options_.threads) +
                           " is outside 1.." + std::to_string(kMaxThreads));
  }
  if (options_.buffer_bytes < kMinBufferBytes) {
    return InvalidArgument("forwarder " + where + ": buffer_bytes " +
                           std::to_string(options_.buffer_bytes) +
                           " is below " + std::to_string(kMinBufferBytes));
  }
  if (options_.connect_timeout <= Millis(0)) {
    return InvalidArgument("forwarder " + where +
                           ": connect_timeout must be positive");
  }
  auto listen_ep = ToEndpoint(options_.listen);
  if (!listen_ep.ok()) return listen_ep.status();
  std::lock_guard<std::mutex> start_lock(start_mu_);
  if (started_) {
    return FailedPrecondition("forwarder " + where + " is already started");
  }
  ZKROLL_RETURN_IF_ERROR(SetBackend(backend, fallback));

  // No io thread runs yet, so the acceptor may be set up from here.
  acceptor_.emplace(workers_[0]->io);
  error_code ec;
  acceptor_->open(listen_ep->protocol(), ec);
  if (!ec) acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_->bind(*listen_ep, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acceptor_.reset();
    return Unavailable(where + ": " + ec.message());
  }
  started_ = true;

  try {
    for (auto& w : workers_) {
      w->work.emplace(w->io.get_executor());
      w->thread = std::thread([io = &w->io] { io->run(); });
    }
  } catch (const std::system_error& e) {
    // Shutdown() joins the threads that did start.
    return Internal("forwarder " + where +
                    ": cannot start io threads: " + e.what());
  }
  asio::post(workers_[0]->io, [this] { Accept(); });
  return Status::Ok();
}

void Forwarder::Impl::Shutdown() {
  stopping_.store(true);
  for (auto& w : workers_) w->io.stop();
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  // No io thread runs from here on. Objects of the first io_context go
  // before it; then each io_context, destroyed, destroys its pending
  // handlers and with them the sessions and their sockets. The first one
  // goes first: its pending accept may hold a socket of another one.
  acceptor_.reset();
  accept_retry_timer_.reset();
  change_timer_.reset();
  for (auto& w : workers_) {
    w->work.reset();
    w.reset();
  }
}

Status Forwarder::Impl::SetBackend(
    const InstanceAddress& backend,
    const std::optional<InstanceAddress>& fallback) {
  if (backend.empty()) return InvalidArgument("forwarder: empty backend");
  auto backend_ep = ToEndpoint(backend);
  if (!backend_ep.ok()) return backend_ep.status();
  std::optional<tcp::endpoint> fallback_ep;
  if (fallback) {
    if (fallback->empty()) return InvalidArgument("forwarder: empty fallback");
    auto ep = ToEndpoint(*fallback);
    if (!ep.ok()) return ep.status();
    fallback_ep = *ep;
  }
  auto listen_ep = ToEndpoint(options_.listen);
  if (!listen_ep.ok()) return listen_ep.status();
  const std::string listen = options_.listen.ToString();
  if (IsLoop(backend, *backend_ep, options_.listen, *listen_ep)) {
    return InvalidArgument("forwarder " + listen + ": backend " +
                           backend.ToString() +
                           " is the forwarder itself (a loop)");
  }
  if (fallback &&
      IsLoop(*fallback, *fallback_ep, options_.listen, *listen_ep)) {
    return InvalidArgument("forwarder " + listen + ": fallback " +
                           fallback->ToString() +
                           " is the forwarder itself (a loop)");
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    backend_address_ = backend;
    fallback_address_ = fallback;
    route_.backend = BackendFor(backend, *backend_ep);
    route_.fallback = fallback && *fallback != backend
                          ? BackendFor(*fallback, *fallback_ep)
                          : nullptr;
  }
  NoteChange();  // Stats() lists the new backend
  return Status::Ok();
}

std::shared_ptr<Backend> Forwarder::Impl::BackendFor(const InstanceAddress& a,
                                                     const tcp::endpoint& ep) {
  auto& slot = backends_[a.ToString()];
  if (!slot) slot = std::make_shared<Backend>(a, ep);
  return slot;
}

InstanceAddress Forwarder::Impl::backend() const {
  std::lock_guard<std::mutex> l(mu_);
  return backend_address_;
}

std::optional<InstanceAddress> Forwarder::Impl::fallback() const {
  std::lock_guard<std::mutex> l(mu_);
  return fallback_address_;
}

std::vector<BackendStats> Forwarder::Impl::Stats() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<BackendStats> out;
  for (const auto& entry : backends_) {
    const Backend& b = *entry.second;
    if (&b != route_.backend.get() && &b != route_.fallback.get() &&
        !b.Used()) {
      continue;  // named once, replaced before any connection went to it
    }
    BackendStats s;
    s.backend = b.address;
    s.active = b.active.load();
    s.connections = b.connections.load();
    s.connect_failures = b.connect_failures.load();
    s.fallbacks = b.fallbacks.load();
    s.http_responses = b.http_responses.load();
    s.http_5xx = b.http_5xx.load();
    s.http_unparsed = b.http_unparsed.load();
    s.bytes_to_backend = b.bytes_to_backend.load();
    s.bytes_from_backend = b.bytes_from_backend.load();
    out.push_back(std::move(s));
  }
  return out;
}

void Forwarder::Impl::Accept() {
  Worker& worker = *workers_[next_worker_];
  next_worker_ = (next_worker_ + 1) % workers_.size();
  acceptor_->async_accept(worker.io,
                          [this, &worker](error_code ec, Socket socket) {
                            OnAccept(ec, std::move(socket), worker);
                          });
}

void Forwarder::Impl::OnAccept(error_code ec, Socket socket, Worker& worker) {
  if (ec == asio::error::operation_aborted || stopping_.load()) return;
  if (ec) {
    bool transient = IsPerConnectionAcceptError(ec);
    uint64_t suppressed = 0;
    if (accept_log_.Allow(&suppressed)) {
      LOG(WARNING) << "forwarder " << options_.listen.ToString()
                   << ": accept failed: " << ec.message()
                   << (transient ? "" : "; retrying in 100ms")
                   << Suppressed(suppressed);
    }
    if (transient) {
      Accept();
    } else {
      accept_retry_timer_->expires_after(kAcceptRetryDelay);
      accept_retry_timer_->async_wait([this](error_code ec) {
        if (!ec) Accept();
      });
    }
    return;
  }
  error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  // For the reads and writes Session::OnRead makes itself.
  socket.non_blocking(true, ec);
  if (ec) {
    Accept();  // `socket` closes as it goes out of scope
    return;
  }
  Route route;
  {
    std::lock_guard<std::mutex> l(mu_);
    route = route_;
  }
  open_.fetch_add(1);
  NoteChange();
  auto session = std::make_shared<Session>(*this, worker.io, std::move(socket),
                                           std::move(route));
  asio::post(worker.io, [session = std::move(session)] { session->Start(); });
  Accept();
}

void Forwarder::Impl::ConnectionClosed() {
  open_.fetch_sub(1);
  NoteChange();
}

void Forwarder::Impl::NoteChange() {
  if (!options_.on_change || stopping_.load(std::memory_order_relaxed)) return;
  // A change is never lost: if the flag was clear we post; if it was set,
  // our exchange comes before FireChange's in the flag's order, and since
  // exchanges continue each other's release sequence, FireChange's
  // acquire makes our counter write visible to the callback. (A plain load
  // here would not publish the write.)
  if (change_pending_.exchange(true, std::memory_order_acq_rel)) return;
  asio::post(workers_[0]->io, [this] { OnChangePending(); });
}

void Forwarder::Impl::OnChangePending() {
  if (change_timer_armed_) return;  // the timer will call
  Clock::time_point now = Clock::now();
  Clock::time_point next = last_change_call_ + kChangeInterval;
  if (last_change_call_ == Clock::time_point{} || now >= next) {
    FireChange(now);
    return;
  }
  change_timer_armed_ = true;
  change_timer_->expires_at(next);
  change_timer_->async_wait([this](error_code ec) {
    change_timer_armed_ = false;
    if (!ec) FireChange(Clock::now());
  });
}

void Forwarder::Impl::FireChange(Clock::time_point now) {
  // Cleared before the call: a change made while the callback reads the
  // stats posts again and is reported by the next call. See NoteChange.
  change_pending_.exchange(false, std::memory_order_acq_rel);
  last_change_call_ = now;
  options_.on_change();
}

Forwarder::Forwarder(ForwarderOptions options)
    : impl_(std::make_shared<Impl>(std::move(options))) {}

Forwarder::~Forwarder() { impl_->Shutdown(); }

Status Forwarder::Start(const InstanceAddress& backend,
                        const std::optional<InstanceAddress>& fallback) {
  return impl_->Start(backend, fallback);
}

Status Forwarder::SetBackend(const InstanceAddress& backend,
                             const std::optional<InstanceAddress>& fallback) {
  return impl_->SetBackend(backend, fallback);
}

InstanceAddress Forwarder::backend() const { return impl_->backend(); }

std::optional<InstanceAddress> Forwarder::fallback() const {
  return impl_->fallback();
}

std::vector<BackendStats> Forwarder::Stats() const { return impl_->Stats(); }

uint32_t Forwarder::open_connections() const {
  return impl_->open_connections();
}

}  // namespace zkroll::forward
