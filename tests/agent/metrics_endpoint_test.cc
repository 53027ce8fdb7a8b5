// The agent's metrics, end to end: a real zkroll-agent with a real
// ZooKeeper and a real zkroll-tiny-service serves /metrics (checked with a
// plain HTTP GET and with promtool when installed), refuses a metrics
// address it cannot bind before touching ZooKeeper, drops the series of an
// instance removed by a reload, and is scraped by a real Prometheus server
// (Debian's /usr/bin/prometheus) whose query API must show the series and
// their change when the instance goes down.
#include <arpa/inet.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fstream>
#include <regex>

#include "common/version.h"
#include "tests/agent/agent_fixture.h"
#include "tests/support/wait.h"
#include "tests/support/zk_server.h"

namespace zkroll::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

constexpr milliseconds kDeadline(30000);
const char kPrometheus[] = "/usr/bin/prometheus";
const char kPromtool[] = "/usr/bin/promtool";

struct HttpAnswer {
  int status = 0;  // 0: no answer
  std::string content_type;
  std::string body;
};

// GET http://127.0.0.1:port/target, at most 5s per socket read or write.
HttpAnswer Get(int port, const std::string& target) {
  HttpAnswer out;
  boost::asio::io_context io;
  tcp::socket sock(io);
  beast::error_code ec;
  sock.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                             static_cast<uint16_t>(port)),
               ec);
  if (ec) return out;
  timeval tv{5, 0};
  setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(sock.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::connection, "close");
  http::write(sock, req, ec);
  if (ec) return out;
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  http::read(sock, buf, parser, ec);
  if (ec) return out;
  out.status = parser.get().result_int();
  out.content_type = std::string(parser.get()[http::field::content_type]);
  out.body = parser.get().body();
  return out;
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char b[4];
      snprintf(b, sizeof b, "%%%02X", c);
      out += b;
    }
  }
  return out;
}

class MetricsEndpointTest : public AgentTest {
 protected:
  // The port the agent's log says it serves metrics on (0 until it says).
  int MetricsPort(size_t agent) {
    static const std::regex re(
        R"(serving Prometheus metrics at http://127\.0\.0\.1:([0-9]+)/metrics)");
    std::smatch m;
    std::string log = AgentLog(agent);
    return std::regex_search(log, m, re) ? std::stoi(m[1]) : 0;
  }

  // One sample's value from the exposition text, by its exact series text.
  static std::optional<double> Sample(const std::string& text,
                                      const std::string& series) {
    size_t at = 0;
    while ((at = text.find(series + " ", at)) != std::string::npos) {
      if (at == 0 || text[at - 1] == '\n') {
        return std::stod(text.substr(at + series.size() + 1));
      }
      ++at;
    }
    return std::nullopt;
  }

  std::string Labels(int port) const {
    return "{address=\"127.0.0.1:" + std::to_string(port) + "\",service=\"" +
           svc_ + "\"}";
  }
};

TEST_F(MetricsEndpointTest, ServesTheTextFormatOverHttp) {
  TinyService svc(PickFreePort());
  ASSERT_TRUE(svc.Start());
  StartAgent({"--host", "m1", "--instance",
              svc_ + "@127.0.0.1:" + std::to_string(svc.port()), "--interval",
              "100ms", "--rise", "1", "--fall", "1"});
  ASSERT_TRUE(WaitFor([&] { return MetricsPort(0) != 0; }, kDeadline))
      << AgentLog(0);
  const int port = MetricsPort(0);
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, svc.port()); }, kDeadline));

  HttpAnswer a;
  ASSERT_TRUE(WaitFor(
      [&] {
        a = Get(port, "/metrics");
        return Sample(a.body, "zkroll_agent_instance_registered" +
                                  Labels(svc.port())) == 1.0;
      },
      kDeadline))
      << a.body;
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(
      Sample(a.body, "zkroll_agent_instance_healthy" + Labels(svc.port())),
      1.0);
  EXPECT_EQ(Sample(a.body,
                   "zkroll_agent_zookeeper_session_state{state=\"connected\"}"),
            1.0);
  EXPECT_GE(*Sample(a.body, "zkroll_agent_registrations_total"), 1.0);
  EXPECT_GE(*Sample(a.body,
                    "zkroll_agent_zookeeper_operation_duration_seconds_count{"
                    "operation=\"multi\"}"),
            1.0);

  // promtool's own lint of the exposition (names, units, types, HELP).
  if (access(kPromtool, X_OK) == 0) {
    std::string file = dir_.Write("metrics.txt", a.body);
    auto r = RunCommand(
        {"/bin/sh", "-c", std::string(kPromtool) + " check metrics < " + file},
        kDeadline);
    EXPECT_EQ(r.exit_code, 0) << r.output;
  } else {
    std::cerr << "note: " << kPromtool
              << " is not installed; the text format was not linted\n";
  }

  EXPECT_EQ(Get(port, "/").status, 404);
  EXPECT_EQ(Get(port, "/metrics?x=1").status, 200);
}

TEST_F(MetricsEndpointTest, UnbindableAddressStopsTheAgentBeforeZooKeeper) {
  // Hold a port so the agent cannot bind it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  const std::string busy = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));

  TinyService svc(PickFreePort());
  ASSERT_TRUE(svc.Start());
  auto r = RunCommand({ZKROLL_AGENT_BIN, "--zk", connect_string(), "--host",
                       "m2", "--metrics-listen", busy, "--instance",
                       svc_ + "@127.0.0.1:" + std::to_string(svc.port()),
                       "--rise", "1", "--interval", "100ms"},
                      kDeadline);
  close(fd);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cannot bind the metrics address " + busy +
                          ": Address already in use"),
            std::string::npos)
      << r.output;
  // Never half-started: no session was opened, nothing was written.
  EXPECT_EQ(r.output.find("connecting to ZooKeeper"), std::string::npos)
      << r.output;
  EXPECT_FALSE(zk_->ExistsSync("/agents/m2").value().has_value());
  EXPECT_FALSE(Registered(svc_, svc.port()));
}

TEST_F(MetricsEndpointTest, ReloadRemovesTheSeriesOfARemovedInstance) {
  TinyService a(PickFreePort()), b(PickFreePort());
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  auto section = [&](const char* name, int port) {
    return std::string("[instance.") + name + "]\nservice = " + svc_ +
           "\nip = 127.0.0.1\nport = " + std::to_string(port) +
           "\ninterval = 100ms\nrise = 1\n";
  };
  std::string conf =
      dir_.Write("agent.conf", "host = m3\n" + section("a", a.port()) +
                                   section("b", b.port()));
  ChildProcess* agent = StartAgent({"--config", conf});
  ASSERT_TRUE(WaitFor([&] { return MetricsPort(0) != 0; }, kDeadline));
  const int port = MetricsPort(0);
  const std::string b_series =
      "zkroll_agent_instance_healthy" + Labels(b.port());
  ASSERT_TRUE(WaitFor(
      [&] { return Sample(Get(port, "/metrics").body, b_series) == 1.0; },
      kDeadline));

  dir_.Write("agent.conf", "host = m3\n" + section("a", a.port()));
  agent->Signal(SIGHUP);
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Get(port, "/metrics").body;
        return !text.empty() &&
               text.find("127.0.0.1:" + std::to_string(b.port())) ==
                   std::string::npos;
      },
      kDeadline))
      << text;
  EXPECT_TRUE(Sample(text, "zkroll_agent_instance_healthy" + Labels(a.port())));
  EXPECT_EQ(Sample(text, "zkroll_agent_instances"), 1.0);
}

TEST_F(MetricsEndpointTest, ForwardedInstanceShowsTheForwardersCounters) {
  // The health check itself goes through the forwarder, so its connections
  // are counted against the backend.
  TinyService backend(PickFreePort());
  ASSERT_TRUE(backend.Start());
  const int public_port = PickFreePort();
  std::string conf =
      dir_.Write("agent.conf",
                 "host = m5\n[instance.f]\nservice = " + svc_ +
                     "\nip = 127.0.0.1\nport = " + std::to_string(public_port) +
                     "\ninterval = 100ms\nrise = 1\nforward_backend = "
                     "127.0.0.1:" +
                     std::to_string(backend.port()) + "\n");
  StartAgent({"--config", conf});
  ASSERT_TRUE(WaitFor([&] { return MetricsPort(0) != 0; }, kDeadline));
  const int port = MetricsPort(0);
  const std::string fwd =
      "{address=\"127.0.0.1:" + std::to_string(public_port) +
      "\",backend=\"127.0.0.1:" + std::to_string(backend.port()) +
      "\",service=\"" + svc_ + "\"}";
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Get(port, "/metrics").body;
        auto n = Sample(text, "zkroll_agent_forward_connections_total" + fwd);
        return n && *n >= 2;
      },
      kDeadline))
      << text;
  EXPECT_EQ(
      Sample(text, "zkroll_agent_instance_forwarding" + Labels(public_port)),
      1.0);
  EXPECT_EQ(Sample(text, "zkroll_agent_forward_connect_failures_total" + fwd),
            0.0);

  // The backend goes away: the forwarder's failed connects are counted.
  backend.Stop();
  ASSERT_TRUE(WaitFor(
      [&] {
        text = Get(port, "/metrics").body;
        auto n =
            Sample(text, "zkroll_agent_forward_connect_failures_total" + fwd);
        return n && *n >= 1;
      },
      kDeadline))
      << text;
}

TEST_F(MetricsEndpointTest, SessionStateFollowsAZooKeeperRestart) {
  TinyService svc(PickFreePort());
  ASSERT_TRUE(svc.Start());
  StartAgent({"--host", "m6", "--instance",
              svc_ + "@127.0.0.1:" + std::to_string(svc.port()), "--interval",
              "100ms", "--rise", "1", "--session-timeout", "20s"});
  ASSERT_TRUE(WaitFor([&] { return MetricsPort(0) != 0; }, kDeadline));
  const int port = MetricsPort(0);
  auto state_is = [&](const char* state) {
    return WaitFor(
        [&] {
          return Sample(Get(port, "/metrics").body,
                        std::string("zkroll_agent_zookeeper_session_state{"
                                    "state=\"") +
                            state + "\"}") == 1.0;
        },
        kDeadline);
  };
  ASSERT_TRUE(state_is("connected"));
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, svc.port()); }, kDeadline));

  // The server goes away: the session is disconnected, not expired, and
  // the registration is kept.
  server()->Stop();
  EXPECT_TRUE(state_is("disconnected"));
  std::string text = Get(port, "/metrics").body;
  EXPECT_EQ(Sample(text, "zkroll_agent_zookeeper_disconnects_total"), 1.0);
  EXPECT_EQ(
      Sample(text, "zkroll_agent_instance_registered" + Labels(svc.port())),
      1.0);

  ASSERT_TRUE(server()->Start().ok());
  zk_ = Connect();
  EXPECT_TRUE(state_is("connected"));
  text = Get(port, "/metrics").body;
  EXPECT_EQ(Sample(text, "zkroll_agent_zookeeper_reconnects_total"), 1.0);
  EXPECT_EQ(Sample(text, "zkroll_agent_zookeeper_sessions_total"), 1.0);
  EXPECT_EQ(Sample(text, "zkroll_agent_zookeeper_session_expiries_total"), 0.0);
}

// A real Prometheus server scraping the agent every second.
class Prometheus {
 public:
  Prometheus(const TempDir& dir, int target_port) : port_(PickFreePort()) {
    std::string config = dir.Write(
        "prometheus.yml",
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: zkroll-agent\n    static_configs:\n"
        "      - targets: ['127.0.0.1:" +
            std::to_string(target_port) + "']\n");
    Status s =
        proc_.Start({kPrometheus, "--config.file=" + config,
                     "--storage.tsdb.path=" + dir.File("prometheus-data"),
                     "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                     "--log.level=warn"},
                    dir.File("prometheus.log"));
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

  bool WaitReady() {
    return WaitFor([&] { return Get(port_, "/-/ready").status == 200; },
                   kDeadline);
  }

  // The value of the query's single result; nullopt if the result is not
  // exactly one sample (series not scraped yet, or ambiguous).
  std::optional<double> Query(const std::string& promql) {
    HttpAnswer a = Get(port_, "/api/v1/query?query=" + UrlEncode(promql));
    if (a.status != 200) return std::nullopt;
    google::protobuf::Struct doc;
    if (!google::protobuf::util::JsonStringToMessage(a.body, &doc).ok()) {
      return std::nullopt;
    }
    const auto& result = doc.fields()
                             .at("data")
                             .struct_value()
                             .fields()
                             .at("result")
                             .list_value();
    if (result.values_size() != 1) return std::nullopt;
    const auto& value =
        result.values(0).struct_value().fields().at("value").list_value();
    return std::stod(value.values(1).string_value());
  }

  std::string Log() const { return proc_.Output(); }

 private:
  int port_;
  ChildProcess proc_;
};

TEST_F(MetricsEndpointTest, RealPrometheusSeesTheSeriesAndTheirChange) {
  if (access(kPrometheus, X_OK) != 0) {
    GTEST_SKIP() << kPrometheus
                 << " is not installed (Debian package 'prometheus'; "
                    "scripts/install-deps.sh installs it)";
  }
  TinyService svc(PickFreePort());
  ASSERT_TRUE(svc.Start());
  StartAgent({"--host", "m4", "--instance",
              svc_ + "@127.0.0.1:" + std::to_string(svc.port()), "--interval",
              "100ms", "--rise", "1", "--fall", "1"});
  ASSERT_TRUE(WaitFor([&] { return MetricsPort(0) != 0; }, kDeadline));
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, svc.port()); }, kDeadline));

  Prometheus prom(dir_, MetricsPort(0));
  ASSERT_TRUE(prom.WaitReady()) << prom.Log();
  const std::string sel = "{service=\"" + svc_ + "\",address=\"127.0.0.1:" +
                          std::to_string(svc.port()) + "\"}";
  auto is = [&](const std::string& q, double want) {
    return WaitFor([&] { return prom.Query(q) == want; }, kDeadline);
  };
  EXPECT_TRUE(is("up{job=\"zkroll-agent\"}", 1)) << prom.Log();
  EXPECT_TRUE(is("zkroll_agent_build_info{version=\"" ZKROLL_VERSION
                 "\",revision=\"" ZKROLL_GIT_REVISION "\"}",
                 1));
  EXPECT_TRUE(is("zkroll_agent_instance_healthy" + sel, 1));
  EXPECT_TRUE(is("zkroll_agent_instance_registered" + sel, 1));
  EXPECT_TRUE(is("zkroll_agent_instance_paused" + sel, 0));
  EXPECT_TRUE(
      is("zkroll_agent_zookeeper_session_state{state=\"connected\"}", 1));
  EXPECT_TRUE(WaitFor(
      [&] {
        auto n =
            prom.Query("zkroll_agent_checks_total{result=\"pass\",service=\"" +
                       svc_ + "\"}");
        return n && *n >= 1;
      },
      kDeadline));
  // No transition yet counts 0 (the series may not exist).
  const std::string transitions =
      "sum(zkroll_agent_instance_state_transitions_total" + sel +
      ") or vector(0)";
  std::optional<double> before = prom.Query(transitions);
  ASSERT_TRUE(before);

  svc.Stop();
  EXPECT_TRUE(is("zkroll_agent_instance_healthy" + sel, 0));
  EXPECT_TRUE(is("zkroll_agent_instance_registered" + sel, 0));
  EXPECT_TRUE(WaitFor(
      [&] {
        auto after = prom.Query(transitions);
        return after && *after > *before;
      },
      kDeadline));
  EXPECT_TRUE(WaitFor(
      [&] {
        auto n =
            prom.Query("zkroll_agent_checks_total{result=\"fail\",service=\"" +
                       svc_ + "\"}");
        return n && *n >= 1;
      },
      kDeadline));
  EXPECT_TRUE(
      is("zkroll_agent_health_transitions_total{to=\"unhealthy\",service=\"" +
             svc_ + "\"}",
         1));
  EXPECT_FALSE(Registered(svc_, svc.port()));
}

}  // namespace
}  // namespace zkroll::testing
