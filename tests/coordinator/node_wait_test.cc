// WaitForNode (coordinator/node_wait.h) against a real ZooKeeper server: a
// wait ends on the watch of the change it waits for (the resync is set far
// beyond the test, so only the watch can end it), on its deadline, and on a
// stop request unless it is a cleanup's, which keeps waiting; a
// NodeWatchSet names the node that changed; a watch firing after its wait
// returned wakes nobody.
#include "coordinator/node_wait.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <future>
#include <set>
#include <thread>

#include "tests/support/wait.h"
#include "tests/support/zk_fixture.h"

namespace zkroll::testing {
namespace {

using coordinator::AbortSignal;
using coordinator::NodeRead;
using coordinator::NodeWaitOptions;
using coordinator::NodeWaitResult;
using coordinator::NodeWatch;
using std::chrono::milliseconds;

constexpr milliseconds kDeadline(30000);

class NodeWaitTest : public ZooKeeperTest {
 protected:
  void SetUp() override {
    ZooKeeperTest::SetUp();
    zk_ = Connect();
    base_ = "/nodewait-" + std::string(::testing::UnitTest::GetInstance()
                                           ->current_test_info()
                                           ->name());
    ASSERT_TRUE(zk_->EnsurePathSync(base_, OpenAcl()).ok());
  }
  // Options whose only way to end early is an event: no resync in time.
  NodeWaitOptions Options(NodeWatch watch) {
    NodeWaitOptions o;
    o.watch = watch;
    o.deadline = AbortSignal::Clock::now() + kDeadline;
    o.resync = Millis(3600 * 1000);
    return o;
  }
  // Runs the wait on a thread; `reads` counts the reads it made.
  std::future<NodeWaitResult> Start(const std::string& path,
                                    NodeWaitOptions options,
                                    std::function<bool(const NodeRead&)> done) {
    return std::async(std::launch::async, [this, path, options, done] {
      return coordinator::WaitForNode(zk_.get(), &abort_, path, options,
                                      [&](const NodeRead& r) {
                                        ++reads_;
                                        return done(r);
                                      });
    });
  }

  std::unique_ptr<ZkSession> zk_;
  std::string base_;
  AbortSignal abort_;
  std::atomic<int> reads_{0};
};

TEST_F(NodeWaitTest, EndsWhenTheNodeAppearsAndWhenItVanishes) {
  const std::string node = base_ + "/a";
  auto appear = Start(node, Options(NodeWatch::kExists),
                      [](const NodeRead& r) { return r.exists(); });
  ASSERT_TRUE(WaitFor([&] { return reads_ >= 1; }, kDeadline));
  ASSERT_TRUE(zk_->CreateSync(node, "x", CreateMode::kPersistent, OpenAcl()).ok());
  ASSERT_EQ(appear.wait_for(kDeadline), std::future_status::ready);
  NodeWaitResult r = appear.get();
  EXPECT_EQ(r.end, NodeWaitResult::End::kDone);
  EXPECT_EQ(reads_, 2) << "one read before the create, one on its watch";

  reads_ = 0;
  auto vanish = Start(node, Options(NodeWatch::kExists),
                      [](const NodeRead& r) {
                        return r.status.code() == StatusCode::kNotFound;
                      });
  ASSERT_TRUE(WaitFor([&] { return reads_ >= 1; }, kDeadline));
  ASSERT_TRUE(zk_->DeleteSync(node).ok());
  ASSERT_EQ(vanish.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(vanish.get().end, NodeWaitResult::End::kDone);
  EXPECT_EQ(reads_, 2);
}

TEST_F(NodeWaitTest, DataAndChildrenOfAMissingNodeAreWatchedFromItsCreation) {
  const std::string dir = base_ + "/dir";
  auto children = Start(dir, Options(NodeWatch::kChildren),
                        [](const NodeRead& r) { return r.children.size() == 2; });
  ASSERT_TRUE(WaitFor([&] { return reads_ >= 1; }, kDeadline));
  // The directory does not exist yet: its creation wakes the wait too.
  ASSERT_TRUE(zk_->CreateSync(dir, "", CreateMode::kPersistent, OpenAcl()).ok());
  ASSERT_TRUE(WaitFor([&] { return reads_ >= 2; }, kDeadline));
  ASSERT_TRUE(zk_->CreateSync(dir + "/1", "", CreateMode::kPersistent, OpenAcl()).ok());
  ASSERT_TRUE(zk_->CreateSync(dir + "/2", "", CreateMode::kPersistent, OpenAcl()).ok());
  ASSERT_EQ(children.wait_for(kDeadline), std::future_status::ready);
  NodeWaitResult c = children.get();
  EXPECT_EQ(c.end, NodeWaitResult::End::kDone);
  EXPECT_EQ(c.last.children, (std::vector<std::string>{"1", "2"}));

  reads_ = 0;
  const std::string node = base_ + "/data";
  auto data = Start(node, Options(NodeWatch::kData),
                    [](const NodeRead& r) { return r.exists() && r.data == "2"; });
  ASSERT_TRUE(WaitFor([&] { return reads_ >= 1; }, kDeadline));
  ASSERT_TRUE(zk_->CreateSync(node, "1", CreateMode::kPersistent, OpenAcl()).ok());
  ASSERT_TRUE(WaitFor([&] { return reads_ >= 2; }, kDeadline));
  ASSERT_TRUE(zk_->SetSync(node, "2").ok());
  ASSERT_EQ(data.wait_for(kDeadline), std::future_status::ready);
  NodeWaitResult d = data.get();
  EXPECT_EQ(d.end, NodeWaitResult::End::kDone);
  EXPECT_EQ(d.last.data, "2");
}

TEST_F(NodeWaitTest, ADeadlineInThePastReadsOnceAndTimesOut) {
  NodeWaitOptions o = Options(NodeWatch::kExists);
  o.deadline = AbortSignal::Clock::now();
  NodeWaitResult r = coordinator::WaitForNode(
      zk_.get(), &abort_, base_ + "/never", o, [&](const NodeRead& read) {
        ++reads_;
        return read.exists();
      });
  EXPECT_EQ(r.end, NodeWaitResult::End::kTimedOut);
  EXPECT_EQ(r.last.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(reads_, 1);
}

TEST_F(NodeWaitTest, AStopEndsAWaitButNotACleanupWait) {
  const std::string node = base_ + "/b";
  auto stoppable = Start(node, Options(NodeWatch::kExists),
                         [](const NodeRead& r) { return r.exists(); });
  NodeWaitOptions cleanup_options = Options(NodeWatch::kExists);
  cleanup_options.stop_on_abort = false;
  auto cleanup = Start(node, cleanup_options,
                       [](const NodeRead& r) { return r.exists(); });
  ASSERT_TRUE(WaitFor([&] { return reads_ >= 2; }, kDeadline));
  abort_.Request(SIGTERM);
  ASSERT_EQ(stoppable.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(stoppable.get().end, NodeWaitResult::End::kAborted);
  // The cleanup wait still ends on the node's creation, well before its
  // deadline.
  ASSERT_TRUE(zk_->CreateSync(node, "", CreateMode::kPersistent, OpenAcl()).ok());
  ASSERT_EQ(cleanup.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(cleanup.get().end, NodeWaitResult::End::kDone);
}

TEST_F(NodeWaitTest, ASetWaitsForAnyOfItsNodesAndNamesTheOneThatChanged) {
  coordinator::NodeWatchSet watches(zk_.get(), &abort_);
  const std::string dir = base_ + "/set", data = base_ + "/set-data";
  ASSERT_TRUE(zk_->CreateSync(data, "1", CreateMode::kPersistent, OpenAcl()).ok());
  EXPECT_EQ(watches.Read("dir", dir, NodeWatch::kChildren).status.code(),
            StatusCode::kNotFound);
  EXPECT_EQ(watches.Read("data", data, NodeWatch::kData).data, "1");
  EXPECT_TRUE(watches.TakeChanged().empty());
  auto waited = std::async(std::launch::async, [&] {
    return watches.Wait(AbortSignal::Clock::now() + kDeadline);
  });
  ASSERT_TRUE(zk_->SetSync(data, "2").ok());
  ASSERT_EQ(waited.wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(waited.get(), AbortSignal::WaitResult::kReady);
  // The exists watch of the missing directory did not fire.
  EXPECT_EQ(watches.TakeChanged(), std::set<std::string>{"data"});
}

TEST_F(NodeWaitTest, AWatchFiringAfterItsWaitReturnedWakesNobody) {
  // A wait that ended at once, leaving the exists watch of its read armed
  // (a watch cannot be cancelled).
  const std::string node = base_ + "/late";
  AbortSignal ended;
  NodeWaitResult r = coordinator::WaitForNode(
      zk_.get(), &ended, node, Options(NodeWatch::kExists),
      [](const NodeRead&) { return true; });
  ASSERT_EQ(r.end, NodeWaitResult::End::kDone);
  ASSERT_EQ(r.last.status.code(), StatusCode::kNotFound);
  // A wait still running on the same node, to see the event arrive.
  coordinator::NodeWatchSet live(zk_.get(), &abort_);
  ASSERT_FALSE(live.Read("late", node, NodeWatch::kExists).exists());
  const uint64_t ended_wakes = ended.wakes();
  const uint64_t live_wakes = abort_.wakes();
  ASSERT_TRUE(zk_->CreateSync(node, "", CreateMode::kPersistent, OpenAcl()).ok());
  ASSERT_TRUE(WaitFor([&] { return abort_.wakes() > live_wakes; }, kDeadline));
  // Both watches fire from the one event: the client's thread posts both
  // callbacks to the session's I/O thread in one go, so once a marker
  // posted after the live one's wake has run there, so has the late one.
  std::promise<void> marker;
  boost::asio::post(io().executor(), [&] { marker.set_value(); });
  ASSERT_EQ(marker.get_future().wait_for(kDeadline), std::future_status::ready);
  EXPECT_EQ(ended.wakes(), ended_wakes)
      << "a watch set by a wait that had returned woke its signal";
}

}  // namespace
}  // namespace zkroll::testing
