// The status line the agent shows in `systemctl status`.
#include <gtest/gtest.h>

#include "agent/summary.h"

namespace zkroll::agent {
namespace {

TEST(StatusLineTest, StartUpNamesProgressAndTheZooKeeperItWaitsFor) {
  AgentSummary s;
  s.zk_address = "10.0.0.1:2181/prod";
  s.instances = 3;
  s.settled = 1;
  EXPECT_EQ(StatusLine(s),
            "starting: 1 of 3 instances settled; zk connecting to 10.0.0.1:2181/prod");
  s.zk = AgentSummary::Zk::kConnected;
  EXPECT_EQ(StatusLine(s), "starting: 1 of 3 instances settled; zk connected");
}

TEST(StatusLineTest, RunningCountsEachStateLeavingOutZeros) {
  AgentSummary s;
  s.started = true;
  s.zk = AgentSummary::Zk::kConnected;
  s.instances = 12;
  s.registered = 11;
  s.paused = 1;
  EXPECT_EQ(StatusLine(s), "12 instances: 11 registered, 1 paused; zk connected");
  s.instances = 1;
  s.registered = 0;
  s.paused = 0;
  s.unhealthy = 1;
  EXPECT_EQ(StatusLine(s), "1 instance: 0 registered, 1 unhealthy; zk connected");
  s.instances = 4;
  s.registered = 1;
  s.paused = 1;
  s.healthy = 1;
  s.unhealthy = 1;
  s.zk = AgentSummary::Zk::kDisconnected;
  s.zk_address = "zk1:2181";
  EXPECT_EQ(StatusLine(s),
            "4 instances: 1 registered, 1 paused, 1 healthy (not registered), "
            "1 unhealthy; zk disconnected, reconnecting to zk1:2181");
  s = AgentSummary{};
  s.started = true;
  s.zk = AgentSummary::Zk::kConnected;
  EXPECT_EQ(StatusLine(s), "0 instances: 0 registered; zk connected");
}

}  // namespace
}  // namespace zkroll::agent
