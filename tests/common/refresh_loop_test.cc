// RefreshLoop: one read at a time, abandoned reads dropped, periodic resync
// (pure scheduling; the watchers' ZooKeeper side is covered by
// zk_session_test, agent_test, switch_test and the fault tests).
#include "common/refresh_loop.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <vector>

namespace zkroll {
namespace {

struct Owner {
  Owner(boost::asio::io_context& io, Millis resync) : loop(io.get_executor(), resync) {}
  RefreshLoop loop;
  std::vector<uint64_t> reads;  // the epoch of each read started
};

std::shared_ptr<Owner> StartOwner(boost::asio::io_context& io, Millis resync) {
  auto owner = std::make_shared<Owner>(io, resync);
  Owner* o = owner.get();
  owner->loop.Start(owner, [o](uint64_t epoch) { o->reads.push_back(epoch); });
  return owner;
}

TEST(RefreshLoopTest, RefreshesDuringAReadCostOneMoreRead) {
  boost::asio::io_context io;
  auto o = StartOwner(io, Millis(0));
  ASSERT_EQ(o->reads.size(), 1u);  // Start reads at once
  o->loop.Refresh();
  o->loop.Refresh();
  o->loop.Refresh();
  EXPECT_EQ(o->reads.size(), 1u);
  ASSERT_TRUE(o->loop.End(o->reads[0]));
  o->loop.Next();
  ASSERT_EQ(o->reads.size(), 2u);
  ASSERT_TRUE(o->loop.End(o->reads[1]));
  o->loop.Next();
  EXPECT_EQ(o->reads.size(), 2u);  // nothing asked for since
  o->loop.Refresh();               // idle: reads at once
  EXPECT_EQ(o->reads.size(), 3u);
}

TEST(RefreshLoopTest, InvalidateAbandonsTheRunningRead) {
  boost::asio::io_context io;
  auto o = StartOwner(io, Millis(0));
  uint64_t first = o->reads.at(0);
  o->loop.Invalidate();
  EXPECT_FALSE(o->loop.Current(first));
  o->loop.Refresh();  // does not wait for the abandoned read
  ASSERT_EQ(o->reads.size(), 2u);
  EXPECT_NE(o->reads[1], first);
  EXPECT_TRUE(o->loop.Current(o->reads[1]));
  EXPECT_FALSE(o->loop.End(first));  // its result is dropped
  EXPECT_TRUE(o->loop.End(o->reads[1]));
}

TEST(RefreshLoopTest, RestartStartsOverInANewEpoch) {
  boost::asio::io_context io;
  auto o = StartOwner(io, Millis(0));
  o->loop.Refresh();  // asked for during the read; Restart covers it
  o->loop.Restart();
  ASSERT_EQ(o->reads.size(), 2u);
  EXPECT_FALSE(o->loop.Current(o->reads[0]));
  ASSERT_TRUE(o->loop.End(o->reads[1]));
  o->loop.Next();
  EXPECT_EQ(o->reads.size(), 2u);
}

TEST(RefreshLoopTest, StopEndsEverything) {
  boost::asio::io_context io;
  auto o = StartOwner(io, Millis(5));
  o->loop.Stop();
  EXPECT_FALSE(o->loop.running());
  EXPECT_FALSE(o->loop.End(o->reads.at(0)));
  o->loop.Refresh();
  o->loop.Restart();
  EXPECT_EQ(o->reads.size(), 1u);
  // The resync timer was cancelled: nothing is left to run.
  io.run_for(std::chrono::seconds(5));
  EXPECT_TRUE(io.stopped());
  EXPECT_EQ(o->reads.size(), 1u);
}

TEST(RefreshLoopTest, ResyncReadsAgainPeriodically) {
  boost::asio::io_context io;
  auto o = StartOwner(io, Millis(5));
  ASSERT_TRUE(o->loop.End(o->reads.at(0)));
  o->loop.Next();
  // Each resync read ends at once; wait (bounded) for two more of them.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  size_t ended = 1;
  while (o->reads.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    io.run_one_for(std::chrono::milliseconds(100));
    for (; ended < o->reads.size(); ++ended) {
      ASSERT_TRUE(o->loop.End(o->reads[ended]));
      o->loop.Next();
    }
  }
  EXPECT_GE(o->reads.size(), 3u);
  o->loop.Stop();
}

TEST(RefreshLoopTest, ResyncAfterTheOwnerIsGoneTouchesNothing) {
  boost::asio::io_context io;
  auto o = StartOwner(io, Millis(1));
  o.reset();  // destroys the loop and its armed timer
  io.run_for(std::chrono::seconds(5));
  EXPECT_TRUE(io.stopped());
}

}  // namespace
}  // namespace zkroll
