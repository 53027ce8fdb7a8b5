// zkroll-demo-service as a real process: answers, keep-alive, and the
// SIGTERM drain (refuse new connects at once, finish what is in flight,
// exit 0).
#include <gtest/gtest.h>
#include <signal.h>

#include "demo/loadgen.h"
#include "tests/demo/demo_fixture.h"

namespace zkroll::testing {
namespace {

using client::HttpOutcome;
using client::HttpPool;

class DemoServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = HttpPool::Create(io_.executor(), HttpPool::Options{});
  }
  void TearDown() override {
    OnIo(io_, [&] { pool_->Shutdown(); });
  }
  IoThread io_;
  std::shared_ptr<HttpPool> pool_;
};

TEST_F(DemoServiceTest, AnswersVersionInstanceAndHealth) {
  DemoService svc(PickFreePort(), "v1.2");
  ASSERT_TRUE(svc.Start()) << svc.Output();
  auto root = Get(io_, pool_, svc.address(), "/");
  ASSERT_EQ(root.outcome, HttpOutcome::kOk) << root.error;
  EXPECT_EQ(root.response.body(),
            "{\"version\":\"v1.2\",\"instance\":\"127.0.0.1:" +
                std::to_string(svc.port()) + "\"}\n");
  EXPECT_EQ(demo::VersionOf(root.response), "v1.2");
  EXPECT_TRUE(root.response.keep_alive());

  auto health = Get(io_, pool_, svc.address(), "/healthz");
  ASSERT_EQ(health.outcome, HttpOutcome::kOk) << health.error;
  EXPECT_EQ(health.response.body(), "ok\n");
  EXPECT_TRUE(health.reused_connection) << "keep-alive connection not reused";

  auto missing = Get(io_, pool_, svc.address(), "/nope");
  EXPECT_EQ(missing.outcome, HttpOutcome::kNon2xx);
  EXPECT_EQ(missing.response.result_int(), 404u);
}

TEST_F(DemoServiceTest, SigtermRefusesNewConnectsFinishesInFlightAndExitsZero) {
  DemoService svc(PickFreePort(), "v1");
  ASSERT_TRUE(svc.Start()) << svc.Output();
  // A request held in flight for 3s.
  auto slow = StartGet(io_, pool_, svc.address(), "/?delay_ms=3000",
                       milliseconds(20000));
  // Wait until the service has it, as its own counters say (the /stats
  // request itself is in flight too).
  ASSERT_TRUE(WaitFor(
      [&] {
        auto stats = Get(io_, pool_, svc.address(), "/stats");
        return stats.outcome == HttpOutcome::kOk &&
               stats.response.body().find("\"in_flight\":2,") !=
                   std::string::npos;
      },
      milliseconds(10000)));

  const auto sent_at = std::chrono::steady_clock::now();
  svc.Signal(SIGTERM);
  // New connects are refused at once, while the slow request still runs.
  EXPECT_TRUE(
      WaitFor([&] { return ConnectRefused(svc.port()); }, milliseconds(2000)));
  EXPECT_EQ(slow.wait_for(milliseconds(0)), std::future_status::timeout)
      << "the in-flight request ended before the listener closed";
  EXPECT_TRUE(svc.running());

  ASSERT_EQ(slow.wait_for(milliseconds(15000)), std::future_status::ready);
  auto r = slow.get();
  EXPECT_EQ(r.outcome, HttpOutcome::kOk) << r.error;
  EXPECT_EQ(demo::VersionOf(r.response), "v1");
  EXPECT_FALSE(r.response.keep_alive())
      << "a response during the drain must close its connection";
  auto code = svc.Wait(milliseconds(10000));
  ASSERT_TRUE(code.has_value()) << "still running after the drain";
  EXPECT_EQ(*code, 0) << svc.Output();
  std::cout << "[ measured ] SIGTERM to exit with a 3s request in flight: "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                             sent_at)
                   .count()
            << "s\n";
}

TEST_F(DemoServiceTest, IdleKeepAliveConnectionsCloseOnSigterm) {
  DemoService svc(PickFreePort(), "v1");
  ASSERT_TRUE(svc.Start()) << svc.Output();
  ASSERT_EQ(Get(io_, pool_, svc.address(), "/").outcome, HttpOutcome::kOk);
  size_t open = 0;
  OnIo(io_, [&] { open = pool_->OpenConnections(svc.address()); });
  ASSERT_EQ(open, 1u);
  svc.Signal(SIGTERM);
  auto code = svc.Wait(milliseconds(10000));
  ASSERT_TRUE(code.has_value()) << "an idle connection held up the exit";
  EXPECT_EQ(*code, 0);
  // The pool finds its idle connection closed and does not use it: the
  // next request is refused at connect, not reset.
  auto r = Get(io_, pool_, svc.address(), "/");
  EXPECT_EQ(r.outcome, HttpOutcome::kRefused) << r.error;
  HttpPool::Stats stats;
  OnIo(io_, [&] { stats = pool_->stats(); });
  EXPECT_EQ(stats.discarded_dead, 1u);
}

// The race a drain must not lose: a client sends its next request on an
// idle keep-alive connection just as the service starts draining (behind a
// forwarder the request is still on its way). The connection is kept for
// --drain-idle-grace, so the request is answered, with "Connection: close",
// instead of failing on a closed connection.
TEST_F(DemoServiceTest,
       RequestOnIdleConnectionDuringDrainIsAnsweredThenClosed) {
  DemoService svc(PickFreePort(), "v1", {"--drain-idle-grace", "5s"});
  ASSERT_TRUE(svc.Start()) << svc.Output();
  ASSERT_EQ(Get(io_, pool_, svc.address(), "/").outcome, HttpOutcome::kOk);
  svc.Signal(SIGTERM);
  // The drain has begun once the listener is closed.
  ASSERT_TRUE(
      WaitFor([&] { return ConnectRefused(svc.port()); }, milliseconds(5000)));
  auto r = Get(io_, pool_, svc.address(), "/");
  ASSERT_EQ(r.outcome, HttpOutcome::kOk) << r.error;
  EXPECT_TRUE(r.reused_connection) << "the idle connection was closed";
  EXPECT_EQ(demo::VersionOf(r.response), "v1");
  EXPECT_FALSE(r.response.keep_alive())
      << "an answer during the drain must close its connection";
  // That was its last connection: the service exits well before the grace.
  const auto answered = std::chrono::steady_clock::now();
  auto code = svc.Wait(milliseconds(4000));
  ASSERT_TRUE(code.has_value()) << "still running after its last answer";
  EXPECT_EQ(*code, 0) << svc.Output();
  std::cout << "[ measured ] last answer to exit: "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                             answered)
                   .count()
            << "s\n";
}

TEST(DemoServiceBadVersionTest, RootStatusAndCrashAfterPlayBadVersions) {
  IoThread io;
  auto pool = HttpPool::Create(io.executor(), HttpPool::Options{});
  DemoService broken(PickFreePort(), "v3", {"--root-status", "500"});
  ASSERT_TRUE(broken.Start()) << broken.Output();
  auto root = Get(io, pool, broken.address(), "/");
  EXPECT_EQ(root.outcome, HttpOutcome::kNon2xx);
  EXPECT_EQ(root.response.result_int(), 500u);
  EXPECT_EQ(demo::VersionOf(root.response), "v3");
  EXPECT_EQ(Get(io, pool, broken.address(), "/healthz").outcome,
            HttpOutcome::kOk);

  DemoService crash(PickFreePort(), "v4", {"--crash-after", "1"});
  ASSERT_TRUE(crash.Start()) << crash.Output();
  EXPECT_EQ(Get(io, pool, crash.address(), "/healthz").outcome,
            HttpOutcome::kOk);
  auto code = crash.Wait(milliseconds(10000));
  ASSERT_TRUE(code.has_value()) << "still running after its first answer";
  EXPECT_EQ(*code, 3);
  EXPECT_TRUE(ConnectRefused(crash.port()));
  OnIo(io, [&] { pool->Shutdown(); });
}

TEST(DemoServiceBadVersionTest, ErrorRateFailsEveryTenthRequestOfRoot) {
  IoThread io;
  auto pool = HttpPool::Create(io.executor(), HttpPool::Options{});
  DemoService flaky(PickFreePort(), "v5", {"--error-rate", "0.1"});
  ASSERT_TRUE(flaky.Start()) << flaky.Output();
  for (int n = 1; n <= 30; ++n) {
    auto root = Get(io, pool, flaky.address(), "/");
    EXPECT_EQ(root.response.result_int(), n % 10 == 0 ? 500u : 200u)
        << "request " << n;
    EXPECT_EQ(demo::VersionOf(root.response), "v5");
    // Health checks are not requests of GET / and always pass.
    EXPECT_EQ(Get(io, pool, flaky.address(), "/healthz").outcome,
              HttpOutcome::kOk);
  }
  auto stats = Get(io, pool, flaky.address(), "/stats");
  EXPECT_NE(stats.response.body().find("\"root_requests\":30,"),
            std::string::npos)
      << stats.response.body();
  EXPECT_NE(stats.response.body().find("\"root_errors\":3}"), std::string::npos)
      << stats.response.body();
  OnIo(io, [&] { pool->Shutdown(); });
}

TEST(DemoServiceBadVersionTest, ExitAfterCrashesWithStatusOneAfterListening) {
  DemoService crash(PickFreePort(), "v6", {"--exit-after", "500ms"});
  ASSERT_TRUE(crash.Start()) << crash.Output();
  auto code = crash.Wait(milliseconds(20000));
  ASSERT_TRUE(code.has_value()) << crash.Output();
  EXPECT_EQ(*code, 1);
  EXPECT_NE(crash.Output().find("--exit-after 500ms"), std::string::npos)
      << crash.Output();
  EXPECT_TRUE(ConnectRefused(crash.port()));
}

TEST(DemoServiceBadVersionTest, StartDelayListensLateAndStopsOnSigterm) {
  TempDir dir;
  const int port = PickFreePort();
  ChildProcess slow;
  ASSERT_TRUE(
      slow.Start({ZKROLL_DEMO_SERVICE_BIN, "--port", std::to_string(port),
                  "--version", "v7", "--start-delay", "10m"},
                 dir.File("log"))
          .ok());
  // Once it says it waits, it has not bound the port (it binds only after
  // the delay).
  ASSERT_TRUE(WaitFor(
      [&] {
        return slow.Output().find("--start-delay 10m") != std::string::npos;
      },
      milliseconds(10000)))
      << slow.Output();
  EXPECT_TRUE(ConnectRefused(port));
  slow.Signal(SIGTERM);
  auto code = slow.Wait(milliseconds(10000));
  ASSERT_TRUE(code.has_value()) << "SIGTERM did not stop a service that waits";
  EXPECT_EQ(*code, 0);

  DemoService late(PickFreePort(), "v7", {"--start-delay", "300ms"});
  ASSERT_TRUE(late.Start()) << "never listened: " << late.Output();
}

TEST(DemoServiceFlagsTest, BadFlagsExitTwoWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {{}, "--port is required"},
           {{"--port", "8080"}, "--version is required"},
           {{"--port", "0", "--version", "v1"}, "port"},
           {{"--port", "8080", "--version", "v 1"}, "bad --version"},
           {{"--port", "8080", "--version", "v1", "--ip", "nope"}, "nope"},
           {{"--bogus"}, "bogus"},
           {{"--port", "8080", "--version", "v1", "--root-status", "99"},
            "--root-status"},
           {{"--port", "8080", "--version", "v1", "--crash-after", "-1"},
            "--crash-after"},
           {{"--port", "8080", "--version", "v1", "--drain-idle-grace", "x"},
            "--drain-idle-grace"},
           {{"--port", "8080", "--version", "v1", "--error-rate", "1.5"},
            "--error-rate: bad error rate '1.5'"},
           {{"--port", "8080", "--version", "v1", "--error-rate", "10%"},
            "'10%'"},
           {{"--port", "8080", "--version", "v1", "--exit-after", "2"},
            "--exit-after"},
           {{"--port", "8080", "--version", "v1", "--exit-after", "-1s"},
            "'-1s'"},
           {{"--port", "8080", "--version", "v1", "--start-delay", "soon"},
            "--start-delay"},
       }) {
    std::vector<std::string> argv = {ZKROLL_DEMO_SERVICE_BIN};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    RunResult r = RunCommand(argv, milliseconds(10000));
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(c.says), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace zkroll::testing
