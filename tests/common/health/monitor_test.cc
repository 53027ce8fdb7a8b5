// HealthMonitor against real loopback listeners that the tests open and
// close, with short intervals. Time passes only on the event loop.
#include "common/health/monitor.h"

#include <glog/logging.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace zkroll::health {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using namespace std::chrono_literals;

bool RunUntil(asio::io_context& io, const std::function<bool()>& cond,
              milliseconds deadline = 10s) {
  const auto end = steady_clock::now() + deadline;
  while (!cond()) {
    const auto now = steady_clock::now();
    if (now >= end) return false;
    if (io.stopped()) io.restart();
    if (io.run_one_for(end - now) == 0 && io.stopped()) return cond();
  }
  return true;
}

// Runs `io` until it has no work left; false if that takes past `deadline`
// (something keeps re-arming timers or checks).
bool RunUntilIdle(asio::io_context& io, milliseconds deadline = 5s) {
  const auto end = steady_clock::now() + deadline;
  io.restart();
  while (true) {
    const auto now = steady_clock::now();
    if (now >= end) return false;
    if (io.run_one_for(end - now) == 0 && io.stopped()) return true;
  }
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// Accepts and drops connections on 127.0.0.1; can be closed and reopened on
// the same port to make the "instance" go down and come back.
class Listener {
 public:
  explicit Listener(asio::io_context& io) : acceptor_(io) { Open(); }

  void Open() {
    tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port_);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    Accept();
  }
  void Close() { acceptor_.close(); }
  uint16_t port() const { return port_; }

 private:
  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket) {
      if (!ec) Accept();
    });
  }

  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
};

// Accepts and never answers; records when each connection arrived and
// notices when the client goes away.
class SilentServer {
 public:
  explicit SilentServer(asio::io_context& io)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    Accept();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  const std::vector<steady_clock::time_point>& accept_times() const {
    return accept_times_;
  }
  int client_closed() const { return client_closed_; }

 private:
  void Accept() {
    acceptor_.async_accept(
        [this](boost::system::error_code ec, tcp::socket socket) {
          if (ec) return;
          accept_times_.push_back(steady_clock::now());
          auto s = std::make_shared<tcp::socket>(std::move(socket));
          sockets_.push_back(s);
          ReadUntilClosed(s);
          Accept();
        });
  }

  // Reads (and ignores) the request, then counts the client's close.
  void ReadUntilClosed(const std::shared_ptr<tcp::socket>& s) {
    s->async_read_some(asio::buffer(scratch_),
                       [this, s](boost::system::error_code ec, size_t) {
                         if (ec) {
                           ++client_closed_;
                           return;
                         }
                         ReadUntilClosed(s);
                       });
  }

  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::vector<steady_clock::time_point> accept_times_;
  char scratch_[64];
  int client_closed_ = 0;
};

// Collects glog lines so a test can assert that a transition is logged once.
class LogCapture : public google::LogSink {
 public:
  LogCapture() { google::AddLogSink(this); }
  ~LogCapture() override { google::RemoveLogSink(this); }

  using google::LogSink::send;
  void send(google::LogSeverity, const char*, const char*, int,
            const google::LogMessageTime&, const char* message,
            size_t length) override {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.emplace_back(message, length);
  }

  int Count(const std::string& needle) {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const std::string& line : lines_) {
      if (line.find(needle) != std::string::npos) ++n;
    }
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

MonitorOptions TcpOptions(uint16_t port) {
  MonitorOptions options;
  options.spec.kind = CheckSpec::Kind::kTcp;
  options.target = {"127.0.0.1", port};
  options.interval = Millis(50);
  options.timeout = Millis(500);
  options.rise = 2;
  options.fall = 2;
  options.jitter = 0.1;
  return options;
}

// What a monitor reported, for assertions.
struct Recorder {
  std::vector<HealthTransition> transitions;
  std::vector<CheckResult> results;
  std::vector<steady_clock::time_point> result_times;

  HealthMonitor::TransitionCallback OnTransition() {
    return [this](const HealthTransition& t) { transitions.push_back(t); };
  }
  HealthMonitor::ResultCallback OnResult() {
    return [this](const CheckResult& r) {
      results.push_back(r);
      result_times.push_back(steady_clock::now());
    };
  }
};

TEST(HealthMonitorTest, ReportsEachTransitionOnce) {
  asio::io_context io;
  Listener listener(io);
  Recorder rec;
  LogCapture logs;
  const std::string name = "127.0.0.1:" + std::to_string(listener.port());
  auto monitor =
      HealthMonitor::Create(io.get_executor(), TcpOptions(listener.port()),
                            rec.OnTransition(), rec.OnResult());
  EXPECT_FALSE(monitor->healthy());
  EXPECT_EQ(monitor->checks_run(), 0);
  monitor->Start();

  // Unknown (unhealthy) -> healthy after `rise` passes.
  ASSERT_TRUE(RunUntil(io, [&] { return rec.transitions.size() == 1; }));
  EXPECT_TRUE(rec.transitions[0].healthy);
  EXPECT_EQ(rec.transitions[0].consecutive, 2);
  EXPECT_TRUE(StartsWith(rec.transitions[0].reason, "ok (connect "));
  EXPECT_TRUE(monitor->healthy());
  EXPECT_EQ(monitor->checks_run(), 2);

  // The instance goes away: unhealthy after `fall` failures.
  listener.Close();
  ASSERT_TRUE(RunUntil(io, [&] { return rec.transitions.size() == 2; }));
  EXPECT_FALSE(rec.transitions[1].healthy);
  EXPECT_EQ(rec.transitions[1].consecutive, 2);
  EXPECT_EQ(rec.transitions[1].reason, "connection refused");
  EXPECT_FALSE(monitor->healthy());
  EXPECT_EQ(monitor->last_result().reason, "connection refused");

  // It comes back.
  listener.Open();
  ASSERT_TRUE(RunUntil(io, [&] { return rec.transitions.size() == 3; }));
  EXPECT_TRUE(rec.transitions[2].healthy);
  EXPECT_EQ(rec.transitions[2].consecutive, 2);

  // Steady state: more checks, no more transitions.
  const int64_t seen = monitor->checks_run();
  ASSERT_TRUE(RunUntil(io, [&] { return monitor->checks_run() >= seen + 5; }));
  EXPECT_EQ(rec.transitions.size(), 3u);
  EXPECT_EQ(static_cast<int64_t>(rec.results.size()), monitor->checks_run());

  EXPECT_EQ(logs.Count(name + " became healthy after 2 passed checks: ok"), 2);
  EXPECT_EQ(
      logs.Count(name + " became unhealthy after 2 failed checks: connection "
                        "refused [check tcp]"),
      1);

  // Stop: no callback afterwards, and nothing left scheduled.
  monitor->Stop();
  const size_t results_at_stop = rec.results.size();
  listener.Close();
  EXPECT_TRUE(RunUntilIdle(io));
  EXPECT_EQ(rec.results.size(), results_at_stop);
  EXPECT_EQ(rec.transitions.size(), 3u);
}

TEST(HealthMonitorTest, InitiallyHealthyNeedsTheFullFall) {
  asio::io_context io;
  Listener listener(io);
  Recorder rec;
  MonitorOptions options = TcpOptions(listener.port());
  options.initially_healthy = true;
  options.fall = 3;
  auto monitor = HealthMonitor::Create(io.get_executor(), options,
                                       rec.OnTransition(), rec.OnResult());
  EXPECT_TRUE(monitor->healthy());
  monitor->Start();
  // Passing checks confirm the state: nothing to report.
  ASSERT_TRUE(RunUntil(io, [&] { return monitor->checks_run() >= 3; }));
  EXPECT_TRUE(rec.transitions.empty());

  listener.Close();
  ASSERT_TRUE(RunUntil(io, [&] { return rec.transitions.size() == 1; }));
  EXPECT_FALSE(rec.transitions[0].healthy);
  EXPECT_EQ(rec.transitions[0].consecutive, 3);
  monitor->Stop();
}

TEST(HealthMonitorTest, IntervalIsKept) {
  asio::io_context io;
  Listener listener(io);
  Recorder rec;
  MonitorOptions options = TcpOptions(listener.port());
  options.interval = Millis(100);
  options.jitter = 0.2;
  auto monitor = HealthMonitor::Create(io.get_executor(), options,
                                       rec.OnTransition(), rec.OnResult());
  monitor->Start();
  ASSERT_TRUE(RunUntil(io, [&] { return rec.results.size() == 6; }));
  for (size_t i = 1; i < rec.result_times.size(); ++i) {
    auto gap = rec.result_times[i] - rec.result_times[i - 1];
    // interval +-20% jitter, plus the (sub-millisecond) check itself.
    EXPECT_GE(gap, 80ms) << "gap " << i;
    EXPECT_LT(gap, 400ms) << "gap " << i;
  }
  monitor->Stop();
}

TEST(HealthMonitorTest, CheckNowPassIsEnoughFlipsOnTheFirstPass) {
  asio::io_context io;
  Listener listener(io);
  Recorder rec;
  LogCapture logs;
  MonitorOptions options = TcpOptions(listener.port());
  options.rise = 3;
  auto monitor = HealthMonitor::Create(io.get_executor(), options,
                                       rec.OnTransition(), rec.OnResult());
  monitor->CheckNow(true);
  ASSERT_TRUE(RunUntil(io, [&] { return monitor->checks_run() == 1; }));
  ASSERT_EQ(rec.transitions.size(), 1u);
  EXPECT_TRUE(rec.transitions[0].healthy);
  EXPECT_EQ(rec.transitions[0].consecutive, 1);
  EXPECT_TRUE(monitor->healthy());
  EXPECT_EQ(logs.Count("became healthy on its first passed check"), 1);

  // Without Start() there is no schedule: nothing else runs.
  listener.Close();
  EXPECT_TRUE(RunUntilIdle(io));
  EXPECT_EQ(monitor->checks_run(), 1);
}

TEST(HealthMonitorTest, CheckNowWithoutPassIsEnoughNeedsTheFullRise) {
  asio::io_context io;
  Listener listener(io);
  Recorder rec;
  MonitorOptions options = TcpOptions(listener.port());
  options.rise = 3;
  auto monitor = HealthMonitor::Create(io.get_executor(), options,
                                       rec.OnTransition(), rec.OnResult());
  for (int i = 1; i <= 3; ++i) {
    monitor->CheckNow(false);
    ASSERT_TRUE(RunUntil(io, [&] { return monitor->checks_run() == i; }));
    EXPECT_EQ(rec.transitions.size(), i == 3 ? 1u : 0u) << "after check " << i;
  }
  EXPECT_TRUE(monitor->healthy());
}

TEST(HealthMonitorTest, CheckNowFailureCountsNormally) {
  asio::io_context io;
  Listener listener(io);
  Recorder rec;
  MonitorOptions options = TcpOptions(listener.port());
  options.rise = 3;
  options.fall = 2;
  auto monitor = HealthMonitor::Create(io.get_executor(), options,
                                       rec.OnTransition(), rec.OnResult());
  monitor->CheckNow(true);
  ASSERT_TRUE(RunUntil(io, [&] { return monitor->checks_run() == 1; }));
  ASSERT_TRUE(monitor->healthy());

  listener.Close();
  monitor->CheckNow(true);
  ASSERT_TRUE(RunUntil(io, [&] { return monitor->checks_run() == 2; }));
  EXPECT_TRUE(monitor->healthy()) << "one failure is not `fall` failures";
  EXPECT_EQ(monitor->last_result().reason, "connection refused");
  monitor->CheckNow(true);
  ASSERT_TRUE(RunUntil(io, [&] { return monitor->checks_run() == 3; }));
  EXPECT_FALSE(monitor->healthy());
  ASSERT_EQ(rec.transitions.size(), 2u);
  EXPECT_FALSE(rec.transitions[1].healthy);
  EXPECT_EQ(rec.transitions[1].consecutive, 2);
}

TEST(HealthMonitorTest, CheckNowWhileACheckIsInFlightRunsAfterIt) {
  asio::io_context io;
  SilentServer server(io);
  Recorder rec;
  MonitorOptions options;
  options.spec = ParseCheckSpec("http:/").value();
  options.target = {"127.0.0.1", server.port()};
  options.timeout = Millis(150);
  auto monitor = HealthMonitor::Create(io.get_executor(), options,
                                       rec.OnTransition(), rec.OnResult());
  monitor->CheckNow(false);
  monitor->CheckNow(true);
  ASSERT_TRUE(RunUntil(io, [&] { return monitor->checks_run() == 2; }));
  ASSERT_EQ(server.accept_times().size(), 2u);
  // The second connection was made only after the first check had ended.
  EXPECT_GE(server.accept_times()[1], rec.result_times[0]);
  EXPECT_EQ(rec.results[0].reason, "timeout after 150ms (reading response)");
  EXPECT_EQ(rec.results[1].reason, "timeout after 150ms (reading response)");
}

TEST(HealthMonitorTest, DroppingTheMonitorCancelsItsCheck) {
  asio::io_context io;
  SilentServer server(io);
  Recorder rec;
  MonitorOptions options;
  options.spec = ParseCheckSpec("http:/").value();
  options.target = {"127.0.0.1", server.port()};
  options.timeout = Millis(30000);
  auto monitor = HealthMonitor::Create(io.get_executor(), options,
                                       rec.OnTransition(), rec.OnResult());
  monitor->Start();
  monitor->CheckNow(false);
  ASSERT_TRUE(RunUntil(io, [&] { return server.accept_times().size() == 1; }));
  monitor.reset();
  // The in-flight check is cancelled, not left to run for its 30s timeout.
  EXPECT_TRUE(RunUntil(
      io, [&] { return server.client_closed() == 1; }, 5s));
  io.poll();
  EXPECT_TRUE(rec.results.empty());
  EXPECT_TRUE(rec.transitions.empty());
}

TEST(HealthMonitorTest, StopInsideTheTransitionCallback) {
  asio::io_context io;
  Listener listener(io);
  Recorder rec;
  MonitorOptions options = TcpOptions(listener.port());
  options.rise = 1;
  options.interval = Millis(20);
  HealthMonitor* raw = nullptr;
  int transitions = 0;
  auto monitor = HealthMonitor::Create(
      io.get_executor(), options,
      [&](const HealthTransition&) {
        ++transitions;
        raw->Stop();
      },
      rec.OnResult());
  raw = monitor.get();
  monitor->Start();
  ASSERT_TRUE(RunUntil(io, [&] { return transitions == 1; }));
  listener.Close();
  EXPECT_TRUE(RunUntilIdle(io));
  EXPECT_EQ(transitions, 1);
  EXPECT_EQ(monitor->checks_run(), 1);
  EXPECT_EQ(rec.results.size(), 1u);
}

TEST(HealthMonitorTest, ValidatesOptions) {
  MonitorOptions good;
  EXPECT_TRUE(ValidateMonitorOptions(good).ok());
  struct Bad {
    std::function<void(MonitorOptions&)> change;
    const char* field;
  };
  const Bad cases[] = {
      {[](MonitorOptions& o) { o.interval = Millis(0); }, "interval"},
      {[](MonitorOptions& o) { o.timeout = Millis(-1); }, "timeout"},
      {[](MonitorOptions& o) { o.rise = 0; }, "rise"},
      {[](MonitorOptions& o) { o.fall = 1001; }, "fall"},
      {[](MonitorOptions& o) { o.jitter = 1.0; }, "jitter"},
      {[](MonitorOptions& o) { o.jitter = -0.1; }, "jitter"},
  };
  for (const Bad& c : cases) {
    MonitorOptions options;
    c.change(options);
    Status s = ValidateMonitorOptions(options);
    ASSERT_FALSE(s.ok()) << c.field;
    EXPECT_NE(s.message().find(c.field), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace zkroll::health
