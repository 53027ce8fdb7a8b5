// The tcp and http checks against real loopback sockets: small servers on
// 127.0.0.1 (and ::1) port 0, run on the same io_context as the checks.
//
// Checks run on virtual time (a ManualTimeSource): a timeout or connect
// limit happens only when a test moves the clock, so a loaded machine can
// neither turn a pass into a timeout nor stretch a timeout, and the tests
// about timeouts assert the exact virtual time at which the check decided.
// The real-time limits of RunUntil only bound how long a broken test hangs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/health/check.h"
#include "common/health/own_connections.h"
#include "common/timer.h"
#include "tests/support/io_wait.h"

namespace zkroll::health {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using namespace std::chrono_literals;
using zkroll::testing::RunUntil;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return s;
}

// A clock that never moves: checks that must not time out run on it, so
// their timeout is never reached however slow the machine is. Never
// destroyed, so it outlives every check.
ManualTimeSource& StillClock() {
  static ManualTimeSource* clock = new ManualTimeSource;
  return *clock;
}

// Runs one check to completion and checks that `done` ran exactly once.
// Without `clock` the check runs on StillClock(): it cannot time out.
CheckResult Check(asio::io_context& io, const CheckSpec& spec,
                  const CheckTarget& target, Millis timeout,
                  TimeSource* clock = nullptr) {
  int calls = 0;
  std::optional<CheckResult> result;
  RunCheck(
      io.get_executor(), spec, target, timeout,
      [&](CheckResult r) {
        ++calls;
        result = std::move(r);
      },
      clock != nullptr ? *clock : StillClock());
  EXPECT_EQ(calls, 0) << "done must not run inside RunCheck";
  EXPECT_TRUE(RunUntil(io, [&] { return result.has_value(); }))
      << "the check never completed";
  io.poll();  // anything already due, e.g. a second (wrong) call of done
  EXPECT_EQ(calls, 1);
  return result.value_or(CheckResult{false, "no result", Millis(0)});
}

CheckSpec Tcp(std::optional<Millis> max_connect_time = std::nullopt) {
  CheckSpec spec;
  spec.kind = CheckSpec::Kind::kTcp;
  spec.max_connect_time = max_connect_time;
  return spec;
}

CheckSpec Http(const std::string& text) {
  Result<CheckSpec> spec = ParseCheckSpec(text);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return spec.ok() ? *spec : CheckSpec{};
}

// A port on which nothing listens: bound once, then closed.
uint16_t ClosedPort(asio::io_context& io, const char* ip = "127.0.0.1") {
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address(ip), 0));
  return acceptor.local_endpoint().port();
}

std::string Response(int status, const std::string& body,
                     const std::string& extra_headers = "") {
  return "HTTP/1.1 " + std::to_string(status) + " Whatever\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n" +
         extra_headers + "Connection: close\r\n\r\n" + body;
}

// A tiny HTTP responder: reads each request head and answers with a canned
// response, or (silent) accepts and never answers, or (hang_up) closes
// without answering. Runs on the test's io_context.
class TestHttpServer {
 public:
  enum class Mode { kAnswer, kSilent, kHangUp };

  TestHttpServer(asio::io_context& io, std::string response,
                 Mode mode = Mode::kAnswer, const char* ip = "127.0.0.1")
      : acceptor_(io, tcp::endpoint(asio::ip::make_address(ip), 0)),
        response_(std::move(response)),
        mode_(mode) {
    Accept();
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int accepted() const { return accepted_; }
  const std::vector<std::string>& requests() const { return requests_; }
  // Connections whose client has closed (we saw EOF or an error).
  int client_closed() const { return client_closed_; }
  // Bytes a silent server has read (the requests it never answers).
  size_t bytes_received() const { return bytes_received_; }

 private:
  struct Connection {
    explicit Connection(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    asio::streambuf buffer;
  };

  void Accept() {
    acceptor_.async_accept(
        [this](boost::system::error_code ec, tcp::socket socket) {
          if (ec) return;
          ++accepted_;
          auto conn = std::make_shared<Connection>(std::move(socket));
          connections_.push_back(conn);
          if (mode_ == Mode::kSilent) {
            WatchForClose(conn);
          } else {
            Serve(conn);
          }
          Accept();
        });
  }

  void Serve(const std::shared_ptr<Connection>& conn) {
    asio::async_read_until(
        conn->socket, conn->buffer, "\r\n\r\n",
        [this, conn](boost::system::error_code ec, size_t n) {
          if (ec) return;
          auto data = conn->buffer.data();
          requests_.emplace_back(asio::buffers_begin(data),
                                 asio::buffers_begin(data) + n);
          if (mode_ == Mode::kHangUp) {
            conn->socket.close();
            return;
          }
          asio::async_write(conn->socket, asio::buffer(response_),
                            [conn](boost::system::error_code, size_t) {
                              boost::system::error_code ignored;
                              conn->socket.shutdown(tcp::socket::shutdown_send,
                                                    ignored);
                            });
        });
  }

  void WatchForClose(const std::shared_ptr<Connection>& conn) {
    conn->socket.async_read_some(
        asio::buffer(scratch_),
        [this, conn](boost::system::error_code ec, size_t n) {
          if (ec) {
            ++client_closed_;
            return;
          }
          bytes_received_ += n;
          WatchForClose(conn);
        });
  }

  tcp::acceptor acceptor_;
  const std::string response_;
  const Mode mode_;
  std::vector<std::shared_ptr<Connection>> connections_;
  std::vector<std::string> requests_;
  char scratch_[1024];
  int accepted_ = 0;
  int client_closed_ = 0;
  size_t bytes_received_ = 0;
};

// ---------------------------------------------------------------- tcp

TEST(TcpCheckTest, PassesWhenSomethingListens) {
  asio::io_context io;
  tcp::acceptor listener(io,
                         tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  CheckResult r =
      Check(io, Tcp(), {"127.0.0.1", listener.local_endpoint().port()}, 2s);
  EXPECT_TRUE(r.healthy) << r.reason;
  EXPECT_THAT(r.reason, ::testing::StartsWith("ok (connect ")) << r.reason;
}

TEST(TcpCheckTest, RecordsItsOwnConnection) {
  asio::io_context io;
  tcp::acceptor listener(io,
                         tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  CheckResult r =
      Check(io, Tcp(), {"127.0.0.1", listener.local_endpoint().port()}, 2s);
  ASSERT_TRUE(r.healthy) << r.reason;
  // The check's connection waits in the backlog (closed by now).
  tcp::socket accepted = listener.accept();
  auto peer = accepted.remote_endpoint();
  EXPECT_TRUE(IsOwnConnection(peer.address().to_string(), peer.port()));
  // Someone else's connection is not ours.
  tcp::socket other(io);
  other.connect(listener.local_endpoint());
  auto local = other.local_endpoint();
  EXPECT_FALSE(IsOwnConnection(local.address().to_string(), local.port()));
}

TEST(OwnConnectionsTest, RemembersAtMostTheBound) {
  RecordOwnConnection("192.0.2.1", 1);
  for (size_t i = 0; i < kMaxRemembered; ++i) {
    RecordOwnConnection("192.0.2.2", static_cast<uint16_t>(1 + i % 60000));
  }
  EXPECT_FALSE(IsOwnConnection("192.0.2.1", 1)) << "the oldest is forgotten";
  EXPECT_TRUE(IsOwnConnection("192.0.2.2", 1));
}

TEST(TcpCheckTest, RefusedWhenNothingListens) {
  asio::io_context io;
  CheckResult r = Check(io, Tcp(), {"127.0.0.1", ClosedPort(io)}, 2s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "connection refused");
}

TEST(TcpCheckTest, BadAddressFailsTheCheck) {
  asio::io_context io;
  CheckResult r = Check(io, Tcp(), {"not-an-ip", 80}, 2s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "bad address 'not-an-ip'");
}

TEST(TcpCheckTest, PassesWithinConnectLimit) {
  asio::io_context io;
  tcp::acceptor listener(io,
                         tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  CheckResult r = Check(io, Tcp(Millis(5000)),
                        {"127.0.0.1", listener.local_endpoint().port()}, 10s);
  EXPECT_TRUE(r.healthy) << r.reason;
}

// A listener whose accept queue is full: Linux drops further SYNs instead of
// refusing them, so a connect hangs until its first retransmission (1s).
// This is how a slow connect is provoked deterministically on loopback.
class FullBacklogListener {
 public:
  explicit FullBacklogListener(asio::io_context& io)
      : acceptor_(io), filler_(io) {
    tcp::endpoint any(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(any.protocol());
    acceptor_.bind(any);
    acceptor_.listen(0);  // room for exactly one pending connection
    filler_.connect(acceptor_.local_endpoint());
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  tcp::acceptor acceptor_;
  tcp::socket filler_;
};

// Starts a check on `clock`, runs the loop until `ready` (the check is
// stuck where the test wants it), then moves virtual time to just before
// `decides_at` (nothing may happen) and to it (the check must end).
CheckResult CheckDecidedAt(asio::io_context& io, ManualTimeSource& clock,
                           const CheckSpec& spec, const CheckTarget& target,
                           Millis timeout, const std::function<bool()>& ready,
                           Millis decides_at) {
  std::optional<CheckResult> result;
  RunCheck(
      io.get_executor(), spec, target, timeout,
      [&](CheckResult r) { result = std::move(r); }, clock);
  EXPECT_TRUE(RunUntil(io, ready)) << "the check never got stuck";
  EXPECT_EQ(clock.Advance(decides_at - 1ms), 0) << "decided too early";
  io.poll();
  EXPECT_FALSE(result.has_value()) << result->reason;
  EXPECT_EQ(clock.Advance(1ms), 1);
  EXPECT_TRUE(RunUntil(io, [&] { return result.has_value(); }))
      << "the check never completed";
  return result.value_or(CheckResult{false, "no result", Millis(0)});
}

// Formerly bounded the real elapsed time (100ms..900ms); on virtual time the
// check is seen to decide exactly at the limit.
TEST(TcpCheckTest, FailsAtTheConnectLimitWhenConnectIsSlow) {
  asio::io_context io;
  ManualTimeSource clock;
  FullBacklogListener slow(io);
  // Decided at the limit, not at the timeout (5s).
  CheckResult r = CheckDecidedAt(
      io, clock, Tcp(Millis(100)), {"127.0.0.1", slow.port()}, 5s,
      [&] { return clock.pending_waits() == 1; }, 100ms);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "connect took longer than limit 100ms");
  EXPECT_EQ(r.elapsed, Millis(100));
}

TEST(TcpCheckTest, TimesOutWhenConnectHangs) {
  asio::io_context io;
  ManualTimeSource clock;
  FullBacklogListener slow(io);
  CheckResult r = CheckDecidedAt(
      io, clock, Tcp(), {"127.0.0.1", slow.port()}, 200ms,
      [&] { return clock.pending_waits() == 1; }, 200ms);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "timeout after 200ms (connecting)");
  EXPECT_EQ(r.elapsed, Millis(200));
}

TEST(TcpCheckTest, ConnectWithinTheLimitPassesInVirtualTime) {
  // The limit is judged on the check's clock: a connect that completes
  // before the clock reaches the limit passes, however long it took in
  // real time on a loaded machine.
  asio::io_context io;
  ManualTimeSource clock;
  tcp::acceptor listener(io,
                         tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  CheckResult r = Check(io, Tcp(Millis(1)),
                        {"127.0.0.1", listener.local_endpoint().port()}, 2s,
                        &clock);
  EXPECT_TRUE(r.healthy) << r.reason;
  EXPECT_EQ(r.reason, "ok (connect 0.0ms)");
  EXPECT_EQ(clock.pending_waits(), 0u) << "the deadline outlived the check";
}

TEST(TcpCheckTest, Ipv6Loopback) {
  asio::io_context io;
  boost::system::error_code ec;
  tcp::acceptor listener(io);
  tcp::endpoint v6(asio::ip::make_address("::1"), 0);
  listener.open(v6.protocol(), ec);
  if (!ec) listener.bind(v6, ec);
  if (!ec) listener.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) GTEST_SKIP() << "cannot listen on [::1]: " << ec.message();
  CheckResult r =
      Check(io, Tcp(), {"::1", listener.local_endpoint().port()}, 2s);
  EXPECT_TRUE(r.healthy) << r.reason;

  CheckResult refused = Check(io, Tcp(), {"::1", ClosedPort(io, "::1")}, 2s);
  EXPECT_EQ(refused.reason, "connection refused");
}

// ---------------------------------------------------------------- http

TEST(HttpCheckTest, Passes200AndSendsAProperRequest) {
  asio::io_context io;
  TestHttpServer server(io, Response(200, "fine"));
  CheckResult r =
      Check(io, Http("http:/healthz?full=1"), {"127.0.0.1", server.port()}, 2s);
  EXPECT_TRUE(r.healthy) << r.reason;
  EXPECT_THAT(r.reason, ::testing::StartsWith("ok (HTTP 200 in ")) << r.reason;
  ASSERT_EQ(server.requests().size(), 1u);
  std::string request = Lower(server.requests()[0]);
  EXPECT_THAT(request,
              ::testing::StartsWith("get /healthz?full=1 http/1.1\r\n"))
      << request;
  EXPECT_NE(request.find("\r\nhost: 127.0.0.1:" +
                         std::to_string(server.port()) + "\r\n"),
            std::string::npos)
      << request;
  EXPECT_NE(request.find("\r\nconnection: close\r\n"), std::string::npos)
      << request;
}

TEST(HttpCheckTest, Fails503) {
  asio::io_context io;
  TestHttpServer server(io, Response(503, "draining"));
  CheckResult r =
      Check(io, Http("http:/healthz"), {"127.0.0.1", server.port()}, 2s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "HTTP 503");
}

TEST(HttpCheckTest, DefaultAcceptsOnly2xx) {
  asio::io_context io;
  TestHttpServer redirect(io, Response(301, "", "Location: /x\r\n"));
  EXPECT_EQ(
      Check(io, Http("http:/"), {"127.0.0.1", redirect.port()}, 2s).reason,
      "HTTP 301");
  TestHttpServer no_content(io, Response(204, ""));
  EXPECT_TRUE(
      Check(io, Http("http:/"), {"127.0.0.1", no_content.port()}, 2s).healthy);
}

TEST(HttpCheckTest, CustomStatusSet) {
  asio::io_context io;
  CheckSpec spec = Http("http:/|200-299,301");
  TestHttpServer s301(io, Response(301, "", "Location: /x\r\n"));
  TestHttpServer s302(io, Response(302, "", "Location: /x\r\n"));
  TestHttpServer s200(io, Response(200, "ok"));
  EXPECT_TRUE(Check(io, spec, {"127.0.0.1", s301.port()}, 2s).healthy);
  EXPECT_TRUE(Check(io, spec, {"127.0.0.1", s200.port()}, 2s).healthy);
  CheckResult r = Check(io, spec, {"127.0.0.1", s302.port()}, 2s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "HTTP 302");

  // A status set may also accept what is normally a failure.
  TestHttpServer s503(io, Response(503, "maintenance"));
  EXPECT_TRUE(
      Check(io, Http("http:/|503"), {"127.0.0.1", s503.port()}, 2s).healthy);
}

TEST(HttpCheckTest, BodyMatch) {
  asio::io_context io;
  TestHttpServer good(io, Response(200, "{\"status\": \"OK\"}"));
  TestHttpServer bad(io, Response(200, "{\"status\": \"DEGRADED\"}"));
  CheckSpec spec = Http("http:/status|body=OK");
  CheckResult pass = Check(io, spec, {"127.0.0.1", good.port()}, 2s);
  EXPECT_TRUE(pass.healthy) << pass.reason;
  CheckResult fail = Check(io, spec, {"127.0.0.1", bad.port()}, 2s);
  EXPECT_FALSE(fail.healthy);
  EXPECT_EQ(fail.reason, "body does not contain 'OK'");
}

TEST(HttpCheckTest, BodyWithoutContentLengthEndsAtClose) {
  asio::io_context io;
  TestHttpServer server(io,
                        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall OK");
  CheckResult r =
      Check(io, Http("http:/|body=all OK"), {"127.0.0.1", server.port()}, 2s);
  EXPECT_TRUE(r.healthy) << r.reason;
}

TEST(HttpCheckTest, LargeBody) {
  asio::io_context io;
  TestHttpServer server(io, Response(200, std::string(1 << 20, 'x')));
  // Only the status matters: the body is never read.
  CheckResult status_only =
      Check(io, Http("http:/"), {"127.0.0.1", server.port()}, 2s);
  EXPECT_TRUE(status_only.healthy) << status_only.reason;
  // A body check refuses to buffer more than 64 KiB.
  CheckResult body =
      Check(io, Http("http:/|body=y"), {"127.0.0.1", server.port()}, 2s);
  EXPECT_FALSE(body.healthy);
  EXPECT_EQ(body.reason,
            "HTTP 200 but the body is over 64 KiB, too large to look for 'y'");
}

TEST(HttpCheckTest, TimesOutOnASilentServer) {
  asio::io_context io;
  ManualTimeSource clock;
  TestHttpServer server(io, "", TestHttpServer::Mode::kSilent);
  // Stuck once the server has the whole request head: the check is then
  // reading the response (its write completion is already queued, and
  // CheckDecidedAt's poll runs it before the deadline).
  CheckResult r = CheckDecidedAt(
      io, clock, Http("http:/"), {"127.0.0.1", server.port()}, 200ms,
      [&] { return server.bytes_received() > 0; }, 200ms);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "timeout after 200ms (reading response)");
  EXPECT_EQ(r.elapsed, Millis(200));
  // The deadline closed our socket: the server sees the client go away.
  EXPECT_TRUE(RunUntil(io, [&] { return server.client_closed() == 1; }));
}

TEST(HttpCheckTest, ServerHangsUp) {
  asio::io_context io;
  TestHttpServer server(io, "", TestHttpServer::Mode::kHangUp);
  CheckResult r = Check(io, Http("http:/"), {"127.0.0.1", server.port()}, 2s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "connection closed while reading response");
}

TEST(HttpCheckTest, NotHttp) {
  asio::io_context io;
  TestHttpServer server(io, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
  CheckResult r = Check(io, Http("http:/"), {"127.0.0.1", server.port()}, 2s);
  EXPECT_FALSE(r.healthy);
  EXPECT_THAT(r.reason, ::testing::StartsWith("reading response: "))
      << r.reason;
}

TEST(HttpCheckTest, Refused) {
  asio::io_context io;
  CheckResult r = Check(io, Http("http:/"), {"127.0.0.1", ClosedPort(io)}, 2s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "connection refused");
}

TEST(HttpCheckTest, Ipv6HostHeader) {
  asio::io_context io;
  std::unique_ptr<TestHttpServer> server;
  try {
    server = std::make_unique<TestHttpServer>(
        io, Response(200, "ok"), TestHttpServer::Mode::kAnswer, "::1");
  } catch (const boost::system::system_error& e) {
    GTEST_SKIP() << "cannot listen on [::1]: " << e.what();
  }
  CheckResult r = Check(io, Http("http:/"), {"::1", server->port()}, 2s);
  EXPECT_TRUE(r.healthy) << r.reason;
  ASSERT_EQ(server->requests().size(), 1u);
  EXPECT_NE(
      Lower(server->requests()[0])
          .find("\r\nhost: [::1]:" + std::to_string(server->port()) + "\r\n"),
      std::string::npos)
      << server->requests()[0];
}

// ---------------------------------------------------------------- lifetime

TEST(CheckLifetimeTest, CancelEndsTheCheckAtOnce) {
  asio::io_context io;
  TestHttpServer server(io, "", TestHttpServer::Mode::kSilent);
  int calls = 0;
  std::optional<CheckResult> result;
  CheckHandle handle =
      StartCheck(io.get_executor(), Http("http:/"),
                 {"127.0.0.1", server.port()}, 30s, [&](CheckResult r) {
                   ++calls;
                   result = std::move(r);
                 });
  ASSERT_TRUE(RunUntil(io, [&] { return server.accepted() == 1; }));
  // Cancel from a handler, as the monitor does: even on the executor's own
  // thread, done must be deferred rather than run inside Cancel.
  bool cancelled = false;
  asio::post(io, [&] {
    handle.Cancel();
    EXPECT_EQ(calls, 0) << "done must not run inside Cancel";
    cancelled = true;
  });
  ASSERT_TRUE(RunUntil(io, [&] { return cancelled; }));
  ASSERT_TRUE(RunUntil(
      io, [&] { return result.has_value(); }, 2s));
  EXPECT_FALSE(result->healthy);
  EXPECT_EQ(result->reason, "cancelled");
  EXPECT_TRUE(RunUntil(
      io, [&] { return server.client_closed() == 1; }, 2s));
  handle.Cancel();  // a finished check: no effect
  io.poll();
  EXPECT_EQ(calls, 1);
}

TEST(CheckLifetimeTest, CancelBeforeItBegins) {
  asio::io_context io;
  int calls = 0;
  std::optional<CheckResult> result;
  CheckHandle handle =
      StartCheck(io.get_executor(), Tcp(), {"127.0.0.1", ClosedPort(io)}, 2s,
                 [&](CheckResult r) {
                   ++calls;
                   result = std::move(r);
                 });
  handle.Cancel();
  io.run();  // returns once nothing is pending
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->reason, "cancelled");
}

TEST(CheckLifetimeTest, IoContextDestroyedMidCheck) {
  bool called = false;
  CheckHandle handle;
  {
    asio::io_context io;
    TestHttpServer server(io, "", TestHttpServer::Mode::kSilent);
    handle = StartCheck(io.get_executor(), Http("http:/"),
                        {"127.0.0.1", server.port()}, 30s,
                        [&](CheckResult) { called = true; });
    ASSERT_TRUE(RunUntil(io, [&] { return server.accepted() == 1; }));
    io.stop();
  }
  // The check died with its io_context: no callback, and a stale handle is
  // harmless (run under ASan to see the absence of use-after-free).
  EXPECT_FALSE(called);
  handle.Cancel();
}

TEST(CheckLifetimeTest, ManyConcurrentChecksOnOneThread) {
  asio::io_context io;
  TestHttpServer server(io, Response(200, "ok"));
  constexpr int kChecks = 50;
  int passed = 0;
  int completed = 0;
  for (int i = 0; i < kChecks; ++i) {
    RunCheck(
        io.get_executor(), Http("http:/"), {"127.0.0.1", server.port()}, 5s,
        [&](CheckResult r) {
          ++completed;
          if (r.healthy) ++passed;
        },
        StillClock());
  }
  ASSERT_TRUE(RunUntil(io, [&] { return completed == kChecks; }));
  EXPECT_EQ(passed, kChecks);
  EXPECT_EQ(server.accepted(), kChecks);
}

}  // namespace
}  // namespace zkroll::health
