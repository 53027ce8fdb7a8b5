// HttpPool against real zkroll-demo-service processes: keep-alive reuse,
// failure causes, the per-instance limit, and following the discovery list
// (connections to a removed instance close once their requests finished).
#include "client/http_pool.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <boost/asio/post.hpp>

#include "client/discovery.h"
#include "common/paths.h"
#include "common/payload.h"
#include "tests/demo/demo_fixture.h"
#include "zkroll.pb.h"

namespace zkroll::client {
namespace {

using std::chrono::milliseconds;
using testing::DemoService;
using testing::Get;
using testing::OnIo;
using testing::StartGet;
using testing::WaitFor;

class HttpPoolTest : public testing::ZooKeeperTest {
 protected:
  void SetUp() override {
    ZooKeeperTest::SetUp();
    pool_ = Make(HttpPool::Options{});
  }
  void TearDown() override {
    for (auto& d : discoveries_) d->Stop();
    OnIo(io(), [&] { pool_->Shutdown(); });
  }
  std::shared_ptr<HttpPool> Make(HttpPool::Options o) {
    return HttpPool::Create(io().executor(), o);
  }
  size_t Open(const std::shared_ptr<HttpPool>& pool, const DemoService& s) {
    size_t n = 0;
    OnIo(io(), [&] { n = pool->OpenConnections(s.address()); });
    return n;
  }
  HttpPool::Stats Stats(const std::shared_ptr<HttpPool>& pool) {
    HttpPool::Stats st;
    OnIo(io(), [&] { st = pool->stats(); });
    return st;
  }

  std::shared_ptr<HttpPool> pool_;
  // Sessions lent to discoveries_: ServiceDiscovery borrows its session,
  // which must outlive Stop() (it deletes the caller's node there).
  std::vector<std::unique_ptr<ZkSession>> sessions_;
  std::vector<std::shared_ptr<ServiceDiscovery>> discoveries_;
};

TEST_F(HttpPoolTest, ReusesConnectionsAndNamesFailureCauses) {
  DemoService svc(testing::PickFreePort(), "v1");
  ASSERT_TRUE(svc.Start());
  auto a = Get(io(), pool_, svc.address(), "/");
  auto b = Get(io(), pool_, svc.address(), "/");
  ASSERT_EQ(a.outcome, HttpOutcome::kOk) << a.error;
  ASSERT_EQ(b.outcome, HttpOutcome::kOk) << b.error;
  EXPECT_FALSE(a.reused_connection);
  EXPECT_TRUE(b.reused_connection);
  EXPECT_EQ(Stats(pool_).connects, 1u);

  auto refused =
      Get(io(), pool_, testing::LocalInstance(testing::PickFreePort()), "/");
  EXPECT_EQ(refused.outcome, HttpOutcome::kRefused) << refused.error;

  auto slow =
      Get(io(), pool_, svc.address(), "/?delay_ms=3000", milliseconds(200));
  EXPECT_EQ(slow.outcome, HttpOutcome::kTimeout) << slow.error;
  EXPECT_NE(slow.error.find("reading"), std::string::npos) << slow.error;

  auto missing = Get(io(), pool_, svc.address(), "/missing");
  EXPECT_EQ(missing.outcome, HttpOutcome::kNon2xx);
}

TEST_F(HttpPoolTest, RequestsBeyondTheConnectionLimitWaitAndTimeOut) {
  DemoService svc(testing::PickFreePort(), "v1");
  ASSERT_TRUE(svc.Start());
  HttpPool::Options o;
  o.max_connections_per_instance = 1;
  auto pool = Make(o);
  auto first =
      StartGet(io(), pool, svc.address(), "/?delay_ms=500", milliseconds(5000));
  auto second = StartGet(io(), pool, svc.address(), "/", milliseconds(5000));
  auto third = StartGet(io(), pool, svc.address(), "/", milliseconds(100));
  EXPECT_EQ(third.get().outcome, HttpOutcome::kTimeout)
      << "a request waiting for a connection past its deadline";
  EXPECT_EQ(first.get().outcome, HttpOutcome::kOk);
  auto r = second.get();
  EXPECT_EQ(r.outcome, HttpOutcome::kOk) << r.error;
  EXPECT_TRUE(r.reused_connection) << "ran on the first one's connection";
  EXPECT_EQ(Stats(pool).connects, 1u);
  OnIo(io(), [&] { pool->Shutdown(); });
}

TEST_F(HttpPoolTest, KilledInstanceIsRefusedNotReset) {
  DemoService svc(testing::PickFreePort(), "v1");
  ASSERT_TRUE(svc.Start());
  ASSERT_EQ(Get(io(), pool_, svc.address(), "/").outcome, HttpOutcome::kOk);
  svc.Signal(SIGKILL);
  ASSERT_TRUE(svc.Wait(milliseconds(10000)).has_value());
  // The idle connection the kernel closed for the dead process is noticed
  // before use; the request fails where it really fails, at connect.
  auto r = Get(io(), pool_, svc.address(), "/");
  EXPECT_EQ(r.outcome, HttpOutcome::kRefused) << r.error;
  EXPECT_EQ(Stats(pool_).discarded_dead, 1u);
}

TEST_F(HttpPoolTest, FollowsTheListClosingConnectionsAfterInFlightRequests) {
  DemoService a(testing::PickFreePort(), "v1");
  DemoService b(testing::PickFreePort(), "v1");
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  auto owner = Connect();
  sessions_.push_back(Connect());
  ZkSession* caller = sessions_.back().get();
  ServiceName service = ServiceName::Parse("poolfollows").value();
  ASSERT_TRUE(
      owner->EnsurePathSync(paths::ServiceDir(service), OpenAcl()).ok());
  for (DemoService* s : {&a, &b}) {
    proto::InstanceRecord rec;
    rec.set_ip("127.0.0.1");
    rec.set_port(s->port());
    ASSERT_TRUE(owner
                    ->CreateSync(paths::InstanceNode(service, s->address()),
                                 ToJson(rec), CreateMode::kEphemeral, OpenAcl())
                    .ok());
  }
  ServiceDiscovery::Options o;
  o.service = service;
  auto d = ServiceDiscovery::Create(io().executor(), caller, o);
  discoveries_.push_back(d);
  auto pool = pool_;
  auto ex = io().executor();
  d->AddChangeListener([pool, ex](const std::shared_ptr<const ServiceView>& v) {
    std::vector<InstanceAddress> current;
    for (const auto& i : v->instances) current.push_back(i.address);
    boost::asio::post(ex, [pool, current] { pool->Retain(current); });
  });
  d->Start();
  ASSERT_TRUE(WaitFor([&] { return d->Snapshot()->instances.size() == 2; },
                      milliseconds(10000)));

  // Two connections to a (one busy with a slow request, one idle), one to b.
  auto slow = StartGet(io(), pool_, a.address(), "/?delay_ms=1500",
                       milliseconds(10000));
  ASSERT_EQ(Get(io(), pool_, a.address(), "/").outcome, HttpOutcome::kOk);
  ASSERT_EQ(Get(io(), pool_, b.address(), "/").outcome, HttpOutcome::kOk);
  ASSERT_EQ(Open(pool_, a), 2u);
  ASSERT_EQ(Open(pool_, b), 1u);

  // a leaves the list: its idle connection closes now, the busy one once
  // its response is in.
  ASSERT_TRUE(
      owner->DeleteSync(paths::InstanceNode(service, a.address())).ok());
  EXPECT_TRUE(WaitFor([&] { return Open(pool_, a) == 1; }, milliseconds(5000)));
  EXPECT_EQ(slow.wait_for(milliseconds(0)), std::future_status::timeout)
      << "the slow request should still be in flight";
  auto r = slow.get();
  EXPECT_EQ(r.outcome, HttpOutcome::kOk)
      << "in-flight request was cut: " << r.error;
  EXPECT_TRUE(WaitFor([&] { return Open(pool_, a) == 0; }, milliseconds(5000)));
  EXPECT_EQ(Open(pool_, b), 1u);
  EXPECT_EQ(Stats(pool_).closed_retired, 2u);
  // The service saw its connections go.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto stats =
            Get(io(), Make(HttpPool::Options{}), a.address(), "/stats");
        return stats.response.body().find("\"connections\":1,") !=
               std::string::npos;  // only the /stats connection itself
      },
      milliseconds(5000)));
}

}  // namespace
}  // namespace zkroll::client
