// Forwarder over real loopback sockets: test backends run in this process on
// their own io thread, clients are plain blocking sockets whose every read
// has a deadline (poll), so a broken forwarder fails a test instead of
// hanging it.
#include "agent/forward/forwarder.h"

#include <glog/logging.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/wait.h"
#include "tests/support/zk_server.h"

namespace zkroll::forward {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using std::chrono::milliseconds;
using testing::PickFreePort;
using testing::WaitFor;

constexpr milliseconds kDeadline{10000};

InstanceAddress AddrOf(const std::string& ip, int port) {
  auto a = InstanceAddress::FromParts(ip, port);
  CHECK(a.ok()) << a.status().ToString();
  return *a;
}

int CountOpenFds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the directory stream's own fd
}

// A raw socket address for `a`.
socklen_t ToSockaddr(const InstanceAddress& a, sockaddr_storage* out) {
  std::memset(out, 0, sizeof *out);
  if (a.is_v6()) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(out);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(a.port());
    CHECK_EQ(::inet_pton(AF_INET6, a.ip().c_str(), &s6->sin6_addr), 1);
    return sizeof *s6;
  }
  auto* s4 = reinterpret_cast<sockaddr_in*>(out);
  s4->sin_family = AF_INET;
  s4->sin_port = htons(a.port());
  CHECK_EQ(::inet_pton(AF_INET, a.ip().c_str(), &s4->sin_addr), 1);
  return sizeof *s4;
}

// A port on `ip` that was free a moment ago (bound, read, closed); 0 if
// `ip` cannot be bound at all. Nothing listens there now. On 127.0.0.1 the
// shared picker's, so that a test's "dead" backend port and its listen
// port are never the same one.
int FreePort(const std::string& ip) {
  if (ip == "127.0.0.1") return PickFreePort();
  InstanceAddress probe = AddrOf(ip, 1);
  sockaddr_storage ss;
  socklen_t len = ToSockaddr(probe, &ss);
  reinterpret_cast<sockaddr_in*>(&ss)->sin_port = 0;  // same offset in v6
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  ::close(fd);
  return port;
}

// Bytes in which a lost, duplicated or reordered block shows.
std::string Pattern(size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 7919) >> 5);
  return s;
}

// A blocking client socket; every read waits at most until a deadline.
class Client {
 public:
  // `receive_buffer` > 0 fixes SO_RCVBUF (no autotuning): a slow reader.
  explicit Client(const InstanceAddress& to, int receive_buffer = 0) {
    sockaddr_storage ss;
    socklen_t len = ToSockaddr(to, &ss);
    fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ >= 0 && receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer,
                   sizeof receive_buffer);
    }
    if (fd_ >= 0 &&
        ::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (fd_ >= 0) {
      int one = 1;
      ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  }
  ~Client() { Close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return fd_ >= 0; }

  bool Send(const std::string& s) { return SendAll(s.data(), s.size()); }
  bool SendAll(const char* p, size_t n) {
    while (n > 0) {
      ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return false;
      p += k;
      n -= static_cast<size_t>(k);
    }
    return true;
  }

  // Exactly n bytes; nullopt on EOF, error or deadline.
  std::optional<std::string> Read(size_t n, milliseconds deadline = kDeadline) {
    std::string out;
    out.resize(n);
    size_t got = 0;
    auto end = std::chrono::steady_clock::now() + testing::Scaled(deadline);
    while (got < n) {
      if (!WaitReadable(end)) return std::nullopt;
      ssize_t k = ::recv(fd_, &out[got], n - got, 0);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) return std::nullopt;
      got += static_cast<size_t>(k);
    }
    return out;
  }

  enum class End { kEof, kReset, kTimeout };
  // Reads until the peer closes, at most `chunk` bytes per read; what came
  // before is appended to `data`.
  End ReadToEnd(std::string* data, milliseconds deadline = kDeadline,
                size_t chunk = 4096) {
    auto end = std::chrono::steady_clock::now() + testing::Scaled(deadline);
    char buf[4096];
    chunk = std::min(chunk, sizeof buf);
    while (true) {
      if (!WaitReadable(end)) return End::kTimeout;
      ssize_t k = ::recv(fd_, buf, chunk, 0);
      if (k < 0 && errno == EINTR) continue;
      if (k == 0) return End::kEof;
      if (k < 0) return End::kReset;
      data->append(buf, static_cast<size_t>(k));
    }
  }

  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  bool WaitReadable(std::chrono::steady_clock::time_point end) {
    while (true) {
      auto left = std::chrono::duration_cast<milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left.count() < 0) return false;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
      if (r < 0 && errno == EINTR) continue;
      return r > 0;
    }
  }

  int fd_ = -1;
};

// A backend in this process, on its own io thread.
class TestServer {
 public:
  enum class Mode {
    kEcho,            // echoes; on EOF echoes the rest and half-closes
    kTag,             // answers each '\n' with "<tag>\n"
    kCountThenReply,  // reads to EOF, then answers "got <n>" and closes
    kHttp,            // "GET /<status> ..." -> that status, keep-alive
    kBlast,           // sends Pattern(kBlastBytes) at once, then closes
  };
  static constexpr size_t kBlastBytes = 32 << 20;

  explicit TestServer(Mode mode, std::string tag = "",
                      const std::string& ip = "127.0.0.1")
      : mode_(mode), tag_(std::move(tag)), acceptor_(io_) {
    boost::system::error_code ec;
    tcp::endpoint ep(asio::ip::make_address(ip), 0);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    CHECK(!ec) << "test server on " << ip << ": " << ec.message();
    address_ = AddrOf(ip, acceptor_.local_endpoint().port());
    if (mode_ == Mode::kBlast) blast_ = Pattern(kBlastBytes);
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }

  ~TestServer() {
    io_.stop();
    thread_.join();
  }

  const InstanceAddress& address() const { return address_; }
  int accepted() const { return accepted_.load(); }
  int open() const { return open_.load(); }

 private:
  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(TestServer& s, tcp::socket sock) : server(s), socket(std::move(sock)) {
      ++server.open_;
    }
    ~Conn() { --server.open_; }

    void Read() {
      socket.async_read_some(
          asio::buffer(buf),
          [self = shared_from_this()](boost::system::error_code ec, size_t n) {
            self->OnRead(ec, n);
          });
    }

    void OnRead(boost::system::error_code ec, size_t n) {
      if (ec) {
        if (ec == asio::error::eof) OnEof();
        return;  // dropping the last reference closes the socket
      }
      switch (server.mode_) {
        case Mode::kEcho:
          Write(std::string(buf.data(), n));
          return;
        case Mode::kTag: {
          std::string reply;
          for (size_t i = 0; i < n; ++i) {
            if (buf[i] == '\n') reply += server.tag_ + "\n";
          }
          Write(std::move(reply));
          return;
        }
        case Mode::kCountThenReply:
          count += n;
          Read();
          return;
        case Mode::kBlast:
          return;
        case Mode::kHttp: {
          pending.append(buf.data(), n);
          std::string reply;
          size_t end;
          while ((end = pending.find("\r\n\r\n")) != std::string::npos) {
            // "GET /503 HTTP/1.1"
            int status = std::atoi(pending.c_str() + pending.find('/') + 1);
            pending.erase(0, end + 4);
            reply += "HTTP/1.1 " + std::to_string(status) +
                     " Test\r\nContent-Length: 2\r\n\r\nok";
          }
          Write(std::move(reply));
          return;
        }
      }
    }

    void OnEof() {
      if (server.mode_ == Mode::kCountThenReply) {
        auto reply = std::make_shared<std::string>(
            "got " + std::to_string(count) + "\n");
        asio::async_write(socket, asio::buffer(*reply),
                          [self = shared_from_this(), reply](
                              boost::system::error_code, size_t) {
                            boost::system::error_code ignored;
                            self->socket.shutdown(tcp::socket::shutdown_send,
                                                  ignored);
                          });
        return;
      }
      boost::system::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_send, ignored);
    }

    void Write(std::string data) {
      out = std::move(data);
      if (out.empty()) {
        Read();
        return;
      }
      asio::async_write(
          socket, asio::buffer(out),
          [self = shared_from_this()](boost::system::error_code ec, size_t) {
            if (!ec) self->Read();
          });
    }

    TestServer& server;
    tcp::socket socket;
    std::array<char, 65536> buf;
    std::string out;
    std::string pending;
    size_t count = 0;
  };

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      ++accepted_;
      auto conn = std::make_shared<Conn>(*this, std::move(s));
      if (mode_ == Mode::kBlast) {
        asio::async_write(conn->socket, asio::buffer(blast_),
                          [conn](boost::system::error_code, size_t) {
                            boost::system::error_code ignored;
                            conn->socket.shutdown(tcp::socket::shutdown_send,
                                                  ignored);
                          });
      } else {
        conn->Read();
      }
      Accept();
    });
  }

  const Mode mode_;
  const std::string tag_;
  std::string blast_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  InstanceAddress address_;
  std::atomic<int> accepted_{0};
  std::atomic<int> open_{0};
  std::thread thread_;
};

ForwarderOptions Options(const std::string& ip = "127.0.0.1") {
  ForwarderOptions o;
  o.listen = AddrOf(ip, FreePort(ip));
  return o;
}

// Starts a forwarder, choosing another port (written back to
// options.listen) if a concurrent test took this one.
std::unique_ptr<Forwarder> StartForwarder(
    ForwarderOptions& options, const InstanceAddress& backend,
    const std::optional<InstanceAddress>& fallback = std::nullopt) {
  const std::string ip = options.listen.ip();
  for (int attempt = 0;; ++attempt) {
    auto f = std::make_unique<Forwarder>(options);
    Status s = f->Start(backend, fallback);
    if (s.ok()) return f;
    CHECK(attempt < 5 && s.message().find("in use") != std::string::npos)
        << s.ToString();
    options.listen = AddrOf(ip, FreePort(ip));
  }
}

std::optional<BackendStats> StatsOf(const Forwarder& f,
                                    const InstanceAddress& backend) {
  for (const BackendStats& s : f.Stats()) {
    if (s.backend == backend) return s;
  }
  return std::nullopt;
}

// The counters of `backend` once `pred` holds for them (or the last seen).
BackendStats WaitForStats(
    const Forwarder& f, const InstanceAddress& backend,
    const std::function<bool(const BackendStats&)>& pred) {
  BackendStats last;
  WaitFor(
      [&] {
        auto s = StatsOf(f, backend);
        if (!s) return false;
        last = *s;
        return pred(last);
      },
      kDeadline);
  return last;
}

TEST(ForwarderTest, ProtocolNames) {
  EXPECT_STREQ(ProtocolName(Protocol::kTcp), "tcp");
  EXPECT_STREQ(ProtocolName(Protocol::kHttp), "http");
  EXPECT_EQ(*ParseProtocol("http"), Protocol::kHttp);
  EXPECT_EQ(*ParseProtocol("tcp"), Protocol::kTcp);
  EXPECT_FALSE(ParseProtocol("udp").ok());
}

TEST(ForwarderTest, LargePayloadRoundTripsBothWays) {
  TestServer echo(TestServer::Mode::kEcho);
  std::atomic<int> changes{0};
  ForwarderOptions o = Options();
  o.on_change = [&] { ++changes; };
  auto f = StartForwarder(o, echo.address());

  Client client(o.listen);
  ASSERT_TRUE(client.connected());

  const std::string payload = Pattern(8 << 20);
  std::thread writer([&] {
    EXPECT_TRUE(client.Send(payload));
    client.ShutdownWrite();
  });
  auto back = client.Read(payload.size());
  writer.join();
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(*back == payload) << "echoed bytes differ";
  // The echo server half-closes after our EOF reached it.
  std::string rest;
  EXPECT_EQ(client.ReadToEnd(&rest), Client::End::kEof);
  EXPECT_EQ(rest, "");

  // Every byte is counted once the connection closed, in each direction.
  BackendStats s = WaitForStats(*f, echo.address(), [&](const BackendStats& s) {
    return s.connections == 1 && s.active == 0 &&
           s.bytes_to_backend == payload.size() &&
           s.bytes_from_backend == payload.size();
  });
  EXPECT_EQ(s.connections, 1u);
  EXPECT_EQ(s.active, 0u);
  EXPECT_EQ(s.connect_failures, 0u);
  EXPECT_EQ(s.bytes_to_backend, payload.size());
  EXPECT_EQ(s.bytes_from_backend, payload.size());
  EXPECT_TRUE(WaitFor([&] { return f->open_connections() == 0; }, kDeadline));
  EXPECT_TRUE(WaitFor([&] { return changes.load() > 0; }, kDeadline));
}

TEST(ForwarderTest, SlowReaderGetsEveryByte) {
  // The client drains far slower than the backend sends, so the forwarder
  // finds the client's socket full and must finish its writes later.
  TestServer blast(TestServer::Mode::kBlast);
  ForwarderOptions o = Options();
  auto f = StartForwarder(o, blast.address());
  Client client(o.listen, /*receive_buffer=*/4096);
  ASSERT_TRUE(client.connected());
  std::string got;
  EXPECT_EQ(client.ReadToEnd(&got, kDeadline, /*chunk=*/1024),
            Client::End::kEof);
  EXPECT_EQ(got.size(), TestServer::kBlastBytes);
  EXPECT_TRUE(got == Pattern(TestServer::kBlastBytes)) << "bytes differ";
}

TEST(ForwarderTest, HalfCloseKeepsTheOtherDirection) {
  TestServer server(TestServer::Mode::kCountThenReply);
  ForwarderOptions o = Options();
  auto f = StartForwarder(o, server.address());
  Client client(o.listen);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send("hello world"));
  // The server answers only once it has seen our EOF, through the
  // forwarder, while our receiving side is still open.
  client.ShutdownWrite();
  std::string answer;
  EXPECT_EQ(client.ReadToEnd(&answer), Client::End::kEof);
  EXPECT_EQ(answer, "got 11\n");
  EXPECT_TRUE(WaitFor([&] { return f->open_connections() == 0; }, kDeadline));
}

TEST(ForwarderTest, SetBackendMovesNewConnectionsOnly) {
  TestServer a(TestServer::Mode::kTag, "A");
  TestServer b(TestServer::Mode::kTag, "B");
  ForwarderOptions o = Options();
  auto f = StartForwarder(o, a.address());
  EXPECT_EQ(f->backend(), a.address());

  Client first(o.listen);
  ASSERT_TRUE(first.Send("ping\n"));
  EXPECT_EQ(first.Read(2), "A\n");

  ASSERT_TRUE(f->SetBackend(b.address(), std::nullopt).ok());
  EXPECT_EQ(f->backend(), b.address());
  Client second(o.listen);
  ASSERT_TRUE(second.Send("ping\n"));
  EXPECT_EQ(second.Read(2), "B\n");

  // The connection opened before the switch still talks to A.
  ASSERT_TRUE(first.Send("ping\nping\n"));
  EXPECT_EQ(first.Read(4), "A\nA\n");
  EXPECT_EQ(a.accepted(), 1);
  EXPECT_EQ(b.accepted(), 1);

  auto sa = StatsOf(*f, a.address());
  auto sb = StatsOf(*f, b.address());
  ASSERT_TRUE(sa && sb);
  EXPECT_EQ(sa->active, 1u);
  EXPECT_EQ(sb->active, 1u);
  first.Close();
  // A keeps its counters (and its place in Stats) after its last
  // connection closed.
  BackendStats done = WaitForStats(
      *f, a.address(), [](const BackendStats& s) { return s.active == 0; });
  EXPECT_EQ(done.active, 0u);
  EXPECT_EQ(done.connections, 1u);
  std::vector<BackendStats> all = f->Stats();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(all[0].backend.ToString() < all[1].backend.ToString());
}

TEST(ForwarderTest, ConnectFailureGoesToTheFallback) {
  TestServer fallback(TestServer::Mode::kTag, "F");
  const InstanceAddress dead = AddrOf("127.0.0.1", FreePort("127.0.0.1"));
  ForwarderOptions o = Options();
  auto f = StartForwarder(o, dead, fallback.address());
  EXPECT_EQ(f->fallback(), fallback.address());

  Client client(o.listen);
  ASSERT_TRUE(client.Send("ping\n"));
  EXPECT_EQ(client.Read(2), "F\n");

  auto d = StatsOf(*f, dead);
  auto fb = StatsOf(*f, fallback.address());
  ASSERT_TRUE(d && fb);
  EXPECT_EQ(d->connect_failures, 1u);
  EXPECT_EQ(d->fallbacks, 1u);
  EXPECT_EQ(d->connections, 0u);
  EXPECT_EQ(fb->connections, 1u);
  EXPECT_EQ(fb->active, 1u);
  EXPECT_EQ(fb->connect_failures, 0u);
  EXPECT_EQ(fb->fallbacks, 0u);
}

TEST(ForwarderTest, ConnectFailureWithoutFallbackClosesTheClient) {
  const InstanceAddress dead = AddrOf("127.0.0.1", FreePort("127.0.0.1"));
  ForwarderOptions o = Options();
  auto f = StartForwarder(o, dead);
  Client client(o.listen);
  ASSERT_TRUE(client.connected());  // the forwarder accepted
  client.Send("ping\n");
  std::string got;
  Client::End end = client.ReadToEnd(&got);
  EXPECT_NE(end, Client::End::kTimeout);
  EXPECT_EQ(got, "");
  BackendStats s = WaitForStats(
      *f, dead, [](const BackendStats& s) { return s.connect_failures == 1; });
  EXPECT_EQ(s.connect_failures, 1u);
  EXPECT_EQ(s.fallbacks, 0u);
  EXPECT_EQ(s.connections, 0u);
  EXPECT_TRUE(WaitFor([&] { return f->open_connections() == 0; }, kDeadline));
}

// A listener whose accept queue is full: the kernel drops further SYNs, so
// a connect neither succeeds nor fails until the connector gives up.
class BlackHole {
 public:
  BlackHole() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    CHECK_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), len), 0);
    CHECK_EQ(::listen(fd_, 0), 0);
    CHECK_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    address_ = AddrOf("127.0.0.1", ntohs(a.sin_port));
  }
  ~BlackHole() { ::close(fd_); }

  // Fills the accept queue (one connection, with a backlog of 0); true
  // once the kernel reports it full. One only: a second blocking connect
  // would hang.
  bool Fill() {
    filler_ = std::make_unique<Client>(address_);
    return filler_->connected() && WaitFor([&] { return Full(); }, kDeadline);
  }
  const InstanceAddress& address() const { return address_; }

 private:
  // For a listening socket, TCP_INFO reports the accept queue length in
  // tcpi_unacked and its limit in tcpi_sacked.
  bool Full() const {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
      return false;
    }
    return info.tcpi_unacked > info.tcpi_sacked;
  }

  int fd_;
  InstanceAddress address_;
  std::unique_ptr<Client> filler_;
};

TEST(ForwarderTest, ConnectTimeoutGoesToTheFallback) {
  BlackHole hole;
  ASSERT_TRUE(hole.Fill()) << "could not fill the accept queue";
  TestServer fallback(TestServer::Mode::kTag, "F");
  ForwarderOptions o = Options();
  o.connect_timeout = Millis(200);
  auto f = StartForwarder(o, hole.address(), fallback.address());

  auto start = std::chrono::steady_clock::now();
  Client client(o.listen);
  ASSERT_TRUE(client.Send("ping\n"));
  EXPECT_EQ(client.Read(2), "F\n");
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(200));
  auto s = StatsOf(*f, hole.address());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->connect_failures, 1u);
  EXPECT_EQ(s->fallbacks, 1u);
}

TEST(ForwarderTest, RefusesALoop) {
  TestServer echo(TestServer::Mode::kEcho);
  ForwarderOptions o = Options();
  auto f = StartForwarder(o, echo.address());

  Status s = f->SetBackend(o.listen, std::nullopt);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(o.listen.ToString()), std::string::npos)
      << s.message();
  s = f->SetBackend(echo.address(), o.listen);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f->backend(), echo.address());
  EXPECT_EQ(f->fallback(), std::nullopt);

  // Listening on every address, our own port on loopback is us too.
  ForwarderOptions any;
  any.listen = AddrOf("0.0.0.0", 4567);
  Forwarder wild(any);
  EXPECT_EQ(wild.Start(AddrOf("127.0.0.1", 4567), std::nullopt).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(wild.SetBackend(AddrOf("127.0.0.1", 4568), std::nullopt).ok());
}

TEST(ForwarderTest, StartOnAPortInUseNamesTheAddress) {
  TestServer taken(TestServer::Mode::kEcho);
  TestServer echo(TestServer::Mode::kEcho);
  ForwarderOptions o;
  o.listen = taken.address();
  Forwarder f(o);
  Status s = f.Start(echo.address(), std::nullopt);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(taken.address().ToString() + ": "),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("in use"), std::string::npos) << s.message();
}

TEST(ForwarderTest, HttpCountsResponsesOverKeepAlive) {
  TestServer http(TestServer::Mode::kHttp);
  ForwarderOptions o = Options();
  o.protocol = Protocol::kHttp;
  auto f = StartForwarder(o, http.address());
  const std::string ok = "HTTP/1.1 200 Test\r\nContent-Length: 2\r\n\r\nok";

  Client client(o.listen);
  for (int status : {200, 503, 200, 500}) {
    ASSERT_TRUE(client.Send("GET /" + std::to_string(status) +
                            " HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto reply = client.Read(ok.size());
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->substr(9, 3), std::to_string(status));
  }
  // Three pipelined in one write.
  ASSERT_TRUE(
      client.Send("GET /202 HTTP/1.1\r\n\r\nGET /502 HTTP/1.1\r\n\r\n"
                  "GET /201 HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(client.Read(3 * ok.size()));

  BackendStats s = WaitForStats(*f, http.address(), [](const BackendStats& s) {
    return s.http_responses == 7;
  });
  EXPECT_EQ(s.http_responses, 7u);
  EXPECT_EQ(s.http_5xx, 3u);
  EXPECT_EQ(s.http_unparsed, 0u);
  EXPECT_EQ(s.connections, 1u);
}

TEST(ForwarderTest, HttpModeForwardsWhatItCannotParse) {
  TestServer echo(TestServer::Mode::kEcho);
  ForwarderOptions o = Options();
  o.protocol = Protocol::kHttp;
  auto f = StartForwarder(o, echo.address());
  Client client(o.listen);
  const std::string line = "SSH-2.0-OpenSSH_9.2\r\n";
  ASSERT_TRUE(client.Send(line));
  EXPECT_EQ(client.Read(line.size()), line);
  ASSERT_TRUE(client.Send(line));  // after giving up: still forwarded
  EXPECT_EQ(client.Read(line.size()), line);
  BackendStats s = WaitForStats(*f, echo.address(), [](const BackendStats& s) {
    return s.http_unparsed == 1;
  });
  EXPECT_EQ(s.http_unparsed, 1u);
  EXPECT_EQ(s.http_responses, 0u);
}

// Waits until `n` threads arrived (C++17 has no std::latch).
class Gate {
 public:
  explicit Gate(int n) : left_(n) {}
  void ArriveAndWait() {
    std::unique_lock<std::mutex> l(mu_);
    if (--left_ == 0) cv_.notify_all();
    cv_.wait(l, [&] { return open_; });
  }
  bool WaitAllArrived(milliseconds deadline) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, deadline, [&] { return left_ <= 0; });
  }
  void Open() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int left_;
  bool open_ = false;
};

TEST(ForwarderTest, ManyConcurrentConnectionsReleaseEverything) {
  TestServer server(TestServer::Mode::kTag, "T");
  ForwarderOptions o = Options();
  o.threads = 2;
  auto f = StartForwarder(o, server.address());
  const int baseline = CountOpenFds();
  ASSERT_GT(baseline, 0);

  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  constexpr int kRounds = 3;
  Gate all_open(kThreads);
  std::atomic<int> good_exchanges{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<std::unique_ptr<Client>> clients;
      for (int i = 0; i < kPerThread; ++i) {
        clients.push_back(std::make_unique<Client>(o.listen));
      }
      for (int round = 0; round < kRounds; ++round) {
        for (auto& c : clients) c->Send("a\nb\n");
        for (auto& c : clients) {
          if (c->Read(4) == std::optional<std::string>("T\nT\n")) {
            ++good_exchanges;
          }
        }
        if (round == 0) all_open.ArriveAndWait();
      }
      // Half of them close after a half-close, half at once.
      for (size_t i = 0; i < clients.size(); ++i) {
        if (i % 2 == 0) clients[i]->ShutdownWrite();
        clients[i]->Close();
      }
    });
  }
  bool arrived = all_open.WaitAllArrived(kDeadline);
  EXPECT_TRUE(arrived);
  if (arrived) {
    // Every connection is open at once here.
    EXPECT_EQ(f->open_connections(), uint32_t{kThreads * kPerThread});
    // No ASSERT here: returning would leave the threads at the gate.
    auto s = StatsOf(*f, server.address());
    EXPECT_TRUE(s && s->active == uint32_t{kThreads * kPerThread})
        << (s ? s->active : 0) << " active";
  }
  all_open.Open();
  for (auto& t : threads) t.join();

  EXPECT_EQ(good_exchanges.load(), kThreads * kPerThread * kRounds);
  EXPECT_TRUE(WaitFor([&] { return f->open_connections() == 0; }, kDeadline))
      << f->open_connections() << " still open";
  EXPECT_TRUE(WaitFor([&] { return server.open() == 0; }, kDeadline))
      << server.open() << " backend connections still open";
  int fds = -1;
  EXPECT_TRUE(WaitFor(
      [&] {
        fds = CountOpenFds();
        return fds == baseline;
      },
      kDeadline))
      << fds << " fds open, baseline " << baseline;
  auto s = StatsOf(*f, server.address());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->active, 0u);
  EXPECT_EQ(s->connections, uint64_t{kThreads * kPerThread});
}

TEST(ForwarderTest, DestroyingTheForwarderClosesItsConnections) {
  TestServer server(TestServer::Mode::kTag, "T");
  BlackHole hole;
  ASSERT_TRUE(hole.Fill()) << "could not fill the accept queue";
  const int baseline = CountOpenFds();
  ASSERT_GT(baseline, 0);
  std::vector<std::unique_ptr<Client>> clients;
  {
    ForwarderOptions o = Options();
    o.threads = 3;
    o.connect_timeout = Millis(60000);
    auto f = StartForwarder(o, server.address());
    for (int i = 0; i < 6; ++i) {
      clients.push_back(std::make_unique<Client>(o.listen));
      ASSERT_TRUE(clients.back()->Send("x\n"));
      ASSERT_EQ(clients.back()->Read(2), "T\n");
    }
    // One more, stuck connecting to a backend that never answers.
    ASSERT_TRUE(f->SetBackend(hole.address(), std::nullopt).ok());
    clients.push_back(std::make_unique<Client>(o.listen));
    ASSERT_TRUE(WaitFor([&] { return f->open_connections() == 7; }, kDeadline));
  }
  for (auto& c : clients) {
    std::string rest;
    EXPECT_NE(c->ReadToEnd(&rest), Client::End::kTimeout);
    EXPECT_EQ(rest, "");
    c->Close();
  }
  EXPECT_TRUE(WaitFor([&] { return server.open() == 0; }, kDeadline));
  int fds = -1;
  EXPECT_TRUE(WaitFor(
      [&] {
        fds = CountOpenFds();
        return fds == baseline;
      },
      kDeadline))
      << fds << " fds open, baseline " << baseline;
}

TEST(ForwarderTest, ChangeCallbackIsCoalescedAndNeverLosesTheLastChange) {
  TestServer server(TestServer::Mode::kTag, "T");
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> calls;
  std::atomic<Forwarder*> fwd{nullptr};
  // What the callback saw the last time it ran.
  std::atomic<int64_t> seen_open{-1};
  std::atomic<int64_t> seen_connections{-1};
  ForwarderOptions o = Options();
  o.on_change = [&] {
    {
      std::lock_guard<std::mutex> l(mu);
      calls.push_back(std::chrono::steady_clock::now());
    }
    Forwarder* f = fwd.load();
    if (f == nullptr) return;  // a call from inside Start()
    seen_open = f->open_connections();
    auto s = StatsOf(*f, server.address());
    seen_connections = s ? static_cast<int64_t>(s->connections) : -1;
  };
  auto f = StartForwarder(o, server.address());
  fwd = f.get();
  constexpr int kConnections = 30;
  for (int i = 0; i < kConnections; ++i) {
    Client c(o.listen);
    ASSERT_TRUE(c.Send("x\n"));
    ASSERT_EQ(c.Read(2), "T\n");
  }
  // The last change is the last close, after the last connect: a callback
  // has seen it, however the changes were coalesced.
  EXPECT_TRUE(WaitFor(
      [&] {
        return seen_connections.load() == kConnections && seen_open.load() == 0;
      },
      kDeadline))
      << "last seen: " << seen_connections.load() << " connections, "
      << seen_open.load() << " open";
  std::lock_guard<std::mutex> l(mu);
  ASSERT_GE(calls.size(), 2u);
  for (size_t i = 1; i < calls.size(); ++i) {
    // 50 ms apart, less a little for the time between the forwarder's
    // clock reading and ours.
    EXPECT_GE(calls[i] - calls[i - 1], milliseconds(45)) << "call " << i;
  }
}

TEST(ForwarderTest, Ipv6) {
  if (FreePort("::1") == 0) {
    GTEST_SKIP() << "cannot bind [::1] on this host (no IPv6 loopback)";
  }
  TestServer server(TestServer::Mode::kTag, "six", "::1");
  ForwarderOptions o = Options("::1");
  auto f = StartForwarder(o, server.address());
  EXPECT_EQ(o.listen.ToString().front(), '[');
  Client client(o.listen);
  ASSERT_TRUE(client.Send("x\n"));
  EXPECT_EQ(client.Read(4), "six\n");
  auto s = StatsOf(*f, server.address());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->connections, 1u);
  EXPECT_EQ(s->backend.ToString(), server.address().ToString());
}

}  // namespace
}  // namespace zkroll::forward
