// HealthMonitor against real loopback listeners that the tests open and
// close, on virtual time: the monitor's schedule and its checks' timeouts run
// on a ManualTimeSource, so a check is due, or times out, only when the test
// moves time, and the assertions are about order and virtual time, never
// about how fast this machine is. The real-time limits below only bound how
// long a broken test hangs.
#include "common/health/monitor.h"

#include <glog/logging.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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

// Accepts and never answers; appends "accept" to `events` for each
// connection and notices when the client goes away.
class SilentServer {
 public:
  SilentServer(asio::io_context& io, std::vector<std::string>* events)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        events_(events) {
    Accept();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int accepted() const { return accepted_; }
  int client_closed() const { return client_closed_; }

 private:
  void Accept() {
    acceptor_.async_accept(
        [this](boost::system::error_code ec, tcp::socket socket) {
          if (ec) return;
          ++accepted_;
          events_->push_back("accept");
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
  std::vector<std::string>* events_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  int accepted_ = 0;
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

MonitorOptions TcpOptions(uint16_t port, TimeSource* time) {
  MonitorOptions options;
  options.time = time;
  options.spec.kind = CheckSpec::Kind::kTcp;
  options.target = {"127.0.0.1", port};
  options.interval = Millis(50);
  options.timeout = Millis(500);
  options.rise = 2;
  options.fall = 2;
  options.jitter = 0.1;
  return options;
}

// What a monitor reported, for assertions, with the virtual time of each
// result. With `events`, each result also appends "result" there.
struct Recorder {
  explicit Recorder(const TimeSource& time,
                    std::vector<std::string>* events = nullptr)
      : time(time), events(events) {}

  const TimeSource& time;
  std::vector<std::string>* events;
  std::vector<HealthTransition> transitions;
  std::vector<CheckResult> results;
  std::vector<MonoTime> result_times;

  HealthMonitor::TransitionCallback OnTransition() {
    return [this](const HealthTransition& t) { transitions.push_back(t); };
  }
  HealthMonitor::ResultCallback OnResult() {
    return [this](const CheckResult& r) {
      results.push_back(r);
      result_times.push_back(time.Now());
      if (events != nullptr) events->push_back("result");
    };
  }
};

// Moves virtual time to the monitor's next scheduled check and runs the loop
// until that check has completed (a loopback connect needs no virtual time).
::testing::AssertionResult RunNextCheck(asio::io_context& io,
                                        ManualTimeSource& clock,
                                        const HealthMonitor& monitor) {
  const int64_t before = monitor.checks_run();
  // No pending wait: the schedule's timer was due at once (a first check
  // drawn at 0 ms on a clock standing on the 16 ms grid fires like an Asio
  // timer set in the past), so its handler is already posted; a missing
  // schedule then shows as the check not completing below.
  if (clock.pending_waits() > 1) {
    return ::testing::AssertionFailure()
           << "expected at most the schedule's timer, found "
           << clock.pending_waits() << " pending waits";
  }
  if (clock.pending_waits() == 1 && !clock.AdvanceToNextExpiry()) {
    return ::testing::AssertionFailure() << "no check is scheduled";
  }
  if (!RunUntil(io, [&] { return monitor.checks_run() == before + 1; })) {
    return ::testing::AssertionFailure()
           << "check " << before + 1 << " did not complete";
  }
  return ::testing::AssertionSuccess();
}

TEST(HealthMonitorTest, ReportsEachTransitionOnce) {
  asio::io_context io;
  ManualTimeSource clock;
  Listener listener(io);
  Recorder rec(clock);
  LogCapture logs;
  const std::string name = "127.0.0.1:" + std::to_string(listener.port());
  auto monitor = HealthMonitor::Create(io.get_executor(),
                                       TcpOptions(listener.port(), &clock),
                                       rec.OnTransition(), rec.OnResult());
  EXPECT_FALSE(monitor->healthy());
  EXPECT_EQ(monitor->checks_run(), 0);
  const MonoTime start = clock.Now();
  monitor->Start();
  // The first check is due within the interval (50ms), rounded up to the
  // 16ms wake-up grid.
  // (None pending: it was due at once, see RunNextCheck.)
  if (auto next = clock.NextExpiry()) {
    EXPECT_LT(*next - start, 50ms + 16ms);
  }

  // Unknown (unhealthy) -> healthy after `rise` passes, not before.
  ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  EXPECT_TRUE(rec.transitions.empty());
  ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  ASSERT_EQ(rec.transitions.size(), 1u);
  EXPECT_TRUE(rec.transitions[0].healthy);
  EXPECT_EQ(rec.transitions[0].consecutive, 2);
  EXPECT_THAT(rec.transitions[0].reason, ::testing::StartsWith("ok (connect "));
  EXPECT_TRUE(monitor->healthy());

  // The instance goes away: unhealthy after `fall` failures.
  listener.Close();
  ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  EXPECT_EQ(rec.transitions.size(), 1u);
  EXPECT_TRUE(monitor->healthy()) << "one failure is not `fall` failures";
  ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  ASSERT_EQ(rec.transitions.size(), 2u);
  EXPECT_FALSE(rec.transitions[1].healthy);
  EXPECT_EQ(rec.transitions[1].consecutive, 2);
  EXPECT_EQ(rec.transitions[1].reason, "connection refused");
  EXPECT_FALSE(monitor->healthy());
  EXPECT_EQ(monitor->last_result().reason, "connection refused");

  // It comes back.
  listener.Open();
  ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  ASSERT_EQ(rec.transitions.size(), 3u);
  EXPECT_TRUE(rec.transitions[2].healthy);
  EXPECT_EQ(rec.transitions[2].consecutive, 2);

  // Steady state: more checks, no more transitions.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  EXPECT_EQ(rec.transitions.size(), 3u);
  EXPECT_EQ(monitor->checks_run(), 11);
  EXPECT_EQ(static_cast<int64_t>(rec.results.size()), monitor->checks_run());

  EXPECT_EQ(logs.Count(name + " became healthy after 2 passed checks: ok"), 2);
  EXPECT_EQ(
      logs.Count(name + " became unhealthy after 2 failed checks: connection "
                        "refused [check tcp]"),
      1);

  // Stop: nothing left scheduled, and no callback afterwards however far
  // time moves.
  monitor->Stop();
  EXPECT_EQ(clock.pending_waits(), 0u);
  const size_t results_at_stop = rec.results.size();
  clock.Advance(10s);
  listener.Close();
  EXPECT_TRUE(RunUntilIdle(io));
  EXPECT_EQ(rec.results.size(), results_at_stop);
  EXPECT_EQ(rec.transitions.size(), 3u);
}

TEST(HealthMonitorTest, InitiallyHealthyNeedsTheFullFall) {
  asio::io_context io;
  ManualTimeSource clock;
  Listener listener(io);
  Recorder rec(clock);
  MonitorOptions options = TcpOptions(listener.port(), &clock);
  options.initially_healthy = true;
  options.fall = 3;
  auto monitor = HealthMonitor::Create(io.get_executor(), options,
                                       rec.OnTransition(), rec.OnResult());
  EXPECT_TRUE(monitor->healthy());
  monitor->Start();
  // Passing checks confirm the state: nothing to report.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  EXPECT_TRUE(rec.transitions.empty());

  listener.Close();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  EXPECT_TRUE(rec.transitions.empty()) << "two failures of fall=3";
  ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  ASSERT_EQ(rec.transitions.size(), 1u);
  EXPECT_FALSE(rec.transitions[0].healthy);
  EXPECT_EQ(rec.transitions[0].consecutive, 3);
  monitor->Stop();
}

// Formerly measured real gaps between results (80ms..400ms), which a loaded
// machine could stretch; in virtual time the schedule itself is asserted.
TEST(HealthMonitorTest, ChecksFollowTheJitteredIntervalOnTheGrid) {
  asio::io_context io;
  ManualTimeSource clock;
  Listener listener(io);
  Recorder rec(clock);
  MonitorOptions options = TcpOptions(listener.port(), &clock);
  options.interval = Millis(100);
  options.jitter = 0.2;
  auto monitor = HealthMonitor::Create(io.get_executor(), options,
                                       rec.OnTransition(), rec.OnResult());
  monitor->Start();
  ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  constexpr int kChecks = 20;
  for (int i = 1; i < kChecks; ++i) {
    // Nothing is due before the shortest jittered interval has passed.
    EXPECT_EQ(clock.Advance(79ms), 0) << "check " << i + 1 << " came early";
    EXPECT_EQ(monitor->checks_run(), i);
    ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  }
  std::vector<milliseconds> gaps;
  for (size_t i = 0; i < rec.result_times.size(); ++i) {
    // Every check starts on the 16ms grid of the clock.
    EXPECT_EQ(std::chrono::duration_cast<milliseconds>(
                  rec.result_times[i].time_since_epoch())
                      .count() %
                  16,
              0)
        << "check " << i + 1;
    if (i == 0) continue;
    auto gap = std::chrono::duration_cast<milliseconds>(
        rec.result_times[i] - rec.result_times[i - 1]);
    // 100ms +-20% jitter, rounded up to the grid: 80, 96, 112 or 128ms.
    EXPECT_GE(gap, 80ms) << "gap " << i;
    EXPECT_LE(gap, 128ms) << "gap " << i;
    gaps.push_back(gap);
  }
  // The jitter really varies the interval (19 equal gaps out of four
  // possible values would be a broken random source).
  std::sort(gaps.begin(), gaps.end());
  EXPECT_NE(gaps.front(), gaps.back());
  monitor->Stop();
}

TEST(HealthMonitorTest, CheckNowPassIsEnoughFlipsOnTheFirstPass) {
  asio::io_context io;
  ManualTimeSource clock;
  Listener listener(io);
  Recorder rec(clock);
  LogCapture logs;
  MonitorOptions options = TcpOptions(listener.port(), &clock);
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

  // Without Start() there is no schedule: nothing else runs, however far
  // time moves.
  EXPECT_EQ(clock.pending_waits(), 0u);
  EXPECT_EQ(clock.Advance(1h), 0);
  listener.Close();
  EXPECT_TRUE(RunUntilIdle(io));
  EXPECT_EQ(monitor->checks_run(), 1);
}

TEST(HealthMonitorTest, CheckNowWithoutPassIsEnoughNeedsTheFullRise) {
  asio::io_context io;
  ManualTimeSource clock;
  Listener listener(io);
  Recorder rec(clock);
  MonitorOptions options = TcpOptions(listener.port(), &clock);
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
  ManualTimeSource clock;
  Listener listener(io);
  Recorder rec(clock);
  MonitorOptions options = TcpOptions(listener.port(), &clock);
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
  ManualTimeSource clock;
  std::vector<std::string> events;
  SilentServer server(io, &events);
  Recorder rec(clock, &events);
  MonitorOptions options;
  options.spec = ParseCheckSpec("http:/").value();
  options.target = {"127.0.0.1", server.port()};
  options.timeout = Millis(150);
  options.time = &clock;
  auto monitor = HealthMonitor::Create(io.get_executor(), options,
                                       rec.OnTransition(), rec.OnResult());
  const MonoTime start = clock.Now();
  monitor->CheckNow(false);
  monitor->CheckNow(true);
  ASSERT_TRUE(RunUntil(io, [&] { return server.accepted() == 1; }));
  // The first check hangs until its timeout, which only virtual time
  // brings: the second waits for it.
  EXPECT_EQ(clock.Advance(149ms), 0);
  io.poll();
  EXPECT_EQ(monitor->checks_run(), 0);
  EXPECT_EQ(clock.Advance(1ms), 1);
  ASSERT_TRUE(RunUntil(io, [&] { return monitor->checks_run() == 1; }));
  ASSERT_TRUE(RunUntil(io, [&] { return server.accepted() == 2; }));
  EXPECT_EQ(clock.Advance(150ms), 1);
  ASSERT_TRUE(RunUntil(io, [&] { return monitor->checks_run() == 2; }));
  // The second connection was made only after the first check had ended.
  EXPECT_EQ(events, (std::vector<std::string>{"accept", "result", "accept",
                                              "result"}));
  ASSERT_EQ(rec.results.size(), 2u);
  EXPECT_THAT(rec.results[0].reason,
              ::testing::StartsWith("timeout after 150ms"))
      << rec.results[0].reason;
  EXPECT_THAT(rec.results[1].reason,
              ::testing::StartsWith("timeout after 150ms"))
      << rec.results[1].reason;
  EXPECT_EQ(rec.result_times[0] - start, 150ms);
  EXPECT_EQ(rec.result_times[1] - start, 300ms);
  EXPECT_EQ(rec.results[0].elapsed, 150ms);
}

TEST(HealthMonitorTest, DroppingTheMonitorCancelsItsCheck) {
  asio::io_context io;
  ManualTimeSource clock;
  std::vector<std::string> events;
  SilentServer server(io, &events);
  Recorder rec(clock);
  MonitorOptions options;
  options.spec = ParseCheckSpec("http:/").value();
  options.target = {"127.0.0.1", server.port()};
  options.timeout = Millis(30000);
  options.time = &clock;
  auto monitor = HealthMonitor::Create(io.get_executor(), options,
                                       rec.OnTransition(), rec.OnResult());
  monitor->Start();
  monitor->CheckNow(false);
  ASSERT_TRUE(RunUntil(io, [&] { return server.accepted() == 1; }));
  monitor.reset();
  // The in-flight check is cancelled, not left to run for its timeout
  // (which virtual time never reaches here).
  EXPECT_TRUE(RunUntil(io, [&] { return server.client_closed() == 1; }));
  io.poll();
  EXPECT_EQ(clock.pending_waits(), 0u) << "a timer outlived the monitor";
  EXPECT_TRUE(rec.results.empty());
  EXPECT_TRUE(rec.transitions.empty());
}

TEST(HealthMonitorTest, StopInsideTheTransitionCallback) {
  asio::io_context io;
  ManualTimeSource clock;
  Listener listener(io);
  Recorder rec(clock);
  MonitorOptions options = TcpOptions(listener.port(), &clock);
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
  ASSERT_TRUE(RunNextCheck(io, clock, *monitor));
  EXPECT_EQ(transitions, 1);
  EXPECT_EQ(clock.pending_waits(), 0u) << "a stopped monitor scheduled more";
  EXPECT_EQ(clock.Advance(1h), 0);
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
