// TrafficObserver against a real ZooKeeper server, with injected samples and
// clock: what it publishes when the kernel's socket table cannot be read,
// with and without a forwarder's counters.
#include "agent/traffic_observer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <boost/asio/post.hpp>
#include <future>
#include <mutex>

#include "common/paths.h"
#include "common/payload.h"
#include "tests/support/zk_fixture.h"

namespace zkroll::agent {
namespace {

using std::chrono::milliseconds;
using testing::WaitFor;

constexpr milliseconds kDeadline(20000);

class TrafficObserverTest : public testing::ZooKeeperTest {
 protected:
  void SetUp() override {
    ZooKeeperTest::SetUp();
    session_ = Connect();
    id_ = InstanceId::Parse(TestServiceName() + "@127.0.0.1:4000").value();
  }

  void TearDown() override {
    if (observer_) OnIo([&] { observer_->Stop("test over"); });
    observer_.reset();
    session_.reset();
  }

  void OnIo(std::function<void()> f) {
    std::promise<void> done;
    boost::asio::post(io().executor(), [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  TrafficObserverOptions Options() {
    TrafficObserverOptions o;
    o.id = id_;
    o.host = "h1";
    o.hostname = "vm";
    o.request.set_deploy_id("d-1");
    o.request.set_interval_ms(100);
    o.sample = []() -> Result<observe::TrafficSample> {
      return Status(StatusCode::kPermissionDenied,
                    "socket(NETLINK_SOCK_DIAG): Operation not permitted");
    };
    o.now = [this] {
      std::lock_guard<std::mutex> lock(mu_);
      return now_;
    };
    return o;
  }

  void Start(TrafficObserverOptions o) {
    OnIo([&] {
      observer_ = TrafficObserver::Create(session_.get(), io().executor(),
                                          std::move(o));
      observer_->Start();
    });
  }

  void Advance(milliseconds d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

  std::optional<proto::TrafficReport> Report() {
    auto path = paths::TrafficNode(id_.service, id_.address);
    auto d = session_->GetSync(path);
    if (!d.ok()) return std::nullopt;
    auto r = ParsePayload<proto::TrafficReport>(d->data, path);
    if (!r.ok()) return std::nullopt;
    return *r;
  }

  // Waits until the published report satisfies `f`; the last report read
  // is kept in seen_ for the assertions and failure messages that follow.
  bool WaitForReport(
      const std::function<bool(const proto::TrafficReport&)>& f) {
    return testing::WaitForValue<proto::TrafficReport>([&] { return Report(); },
                                                       f, &seen_, kDeadline);
  }

  std::unique_ptr<ZkSession> session_;
  InstanceId id_;
  std::shared_ptr<TrafficObserver> observer_;
  std::mutex mu_;
  observe::MonoTime now_ = observe::MonoTime() + std::chrono::hours(1);
  proto::TrafficReport seen_;
};

TEST_F(TrafficObserverTest, FailedDumpPublishesNoneWithTheError) {
  Start(Options());
  ASSERT_TRUE(WaitForReport([](const auto& r) { return r.sequence() >= 2; }));
  EXPECT_EQ(seen_.source(), "none");
  EXPECT_NE(seen_.error().find("Operation not permitted"), std::string::npos)
      << seen_.error();
  EXPECT_FALSE(seen_.pids_known());
  EXPECT_EQ(seen_.deploy_id(), "d-1");
  EXPECT_EQ(seen_.samples(), 0u);
  // Time passes, nothing is seen: that is not quiet.
  Advance(milliseconds(5000));
  ASSERT_TRUE(
      WaitForReport([](const auto& r) { return r.observed_ms() >= 5000; }));
  EXPECT_EQ(seen_.quiet_ms(), 0u);
  // Stop: the report goes.
  OnIo([&] { observer_->Stop("request gone"); });
  ASSERT_TRUE(WaitFor([&] { return !Report().has_value(); }, kDeadline));
}

TEST_F(TrafficObserverTest, FailedDumpFallsBackToForwarderCounters) {
  auto counts = std::make_shared<std::mutex>();
  auto fwd = std::make_shared<ForwarderCounts>();
  fwd->connections = 10;  // before observation: not counted
  auto o = Options();
  o.forwarder = [counts, fwd]() -> std::optional<ForwarderCounts> {
    std::lock_guard<std::mutex> lock(*counts);
    return *fwd;
  };
  auto set = [&](uint32_t active, uint64_t total) {
    std::lock_guard<std::mutex> lock(*counts);
    fwd->active = active;
    fwd->connections = total;
  };
  Start(std::move(o));
  Advance(milliseconds(700));
  ASSERT_TRUE(WaitForReport([](const auto& r) { return r.quiet_ms() == 700; }))
      << ToJson(seen_);
  EXPECT_EQ(seen_.source(), "forwarder");
  EXPECT_FALSE(seen_.error().empty());
  EXPECT_EQ(seen_.connections_total(), 0u);
  // An open forwarded connection may carry bytes we cannot see.
  set(1, 11);
  ASSERT_TRUE(WaitForReport([](const auto& r) {
    return r.forwarder_active() == 1 && r.quiet_ms() == 0;
  })) << ToJson(seen_);
  EXPECT_EQ(seen_.forwarder_connections_total(), 1u);
  EXPECT_EQ(seen_.connections_total(), 1u);
  // Closed: quiet counts from the last new connection.
  set(0, 11);
  Advance(milliseconds(300));
  ASSERT_TRUE(WaitForReport([](const auto& r) {
    return r.forwarder_active() == 0 && r.quiet_ms() == 300;
  })) << ToJson(seen_);
}

// With the coordinator's --drain-quiet in the request, a report is written
// only when it is worth a write: the first, the first whose quiet_ms
// reaches the threshold, and the next after PausedChanged() once the
// instance was quiet (the agent sees the instance paused). Samples that show only more time passing are not
// written (issue 15, item 9: ZooKeeper writes per rollover).
TEST_F(TrafficObserverTest, WritesOnlyReportsTheDrainDecisionCanUse) {
  auto o = Options();
  o.request.set_quiet_ms(500);
  o.sample = []() -> Result<observe::TrafficSample> {
    return observe::TrafficSample{};  // no connection at all
  };
  Start(std::move(o));
  ASSERT_TRUE(WaitForReport([](const auto& r) { return r.sequence() >= 1; }));
  EXPECT_EQ(seen_.sequence(), 1u);
  EXPECT_EQ(seen_.source(), "sock_diag");
  // Below the threshold: more samples, the same report but for the clock.
  Advance(milliseconds(300));
  uint64_t samples = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        OnIo([&] { samples = observer_->last_report().samples(); });
        return samples >= 5;
      },
      kDeadline));
  auto r = Report();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->sequence(), 1u) << "a sample that shows only time passing "
                                  "was written: "
                               << ToJson(*r);
  // The threshold is reached: written once.
  Advance(milliseconds(300));
  ASSERT_TRUE(WaitForReport([](const auto& r) { return r.quiet_ms() >= 500; }))
      << ToJson(seen_);
  EXPECT_EQ(seen_.sequence(), 2u) << ToJson(seen_);
  EXPECT_EQ(seen_.quiet_ms(), 600u);
  // The agent saw a pause after the instance went quiet: the next report
  // is written whatever it shows (a coordinator waits for one written after
  // its pause).
  OnIo([&] { observer_->PausedChanged(); });
  ASSERT_TRUE(WaitForReport([](const auto& r) { return r.sequence() >= 3; }))
      << ToJson(seen_);
  EXPECT_EQ(seen_.sequence(), 3u) << ToJson(seen_);
}

}  // namespace
}  // namespace zkroll::agent
