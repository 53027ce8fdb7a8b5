// The aggregation of traffic samples, over synthetic samples and a driven
// clock.
#include "agent/observe/traffic_aggregator.h"

#include <gtest/gtest.h>

namespace zkroll::observe {
namespace {

using std::chrono::milliseconds;

ObservedConnection Conn(const std::string& ip, uint16_t port, pid_t pid,
                        uint64_t bytes, uint32_t last_recv_ms = 0,
                        TcpState state = TcpState::kEstablished) {
  ObservedConnection c;
  c.local_ip = "127.0.0.1";
  c.peer_ip = ip;
  c.peer_port = port;
  c.peer_pid = pid;
  c.state = state;
  c.bytes_received = bytes;
  c.last_data_recv_ms = last_recv_ms;
  return c;
}

ObservedConnection TimeWait(const std::string& ip, uint16_t port) {
  ObservedConnection c;
  c.local_ip = "127.0.0.1";
  c.peer_ip = ip;
  c.peer_port = port;
  c.state = TcpState::kTimeWait;
  return c;
}

class AggregatorTest : public ::testing::Test {
 protected:
  MonoTime t0_ = MonoTime() + std::chrono::hours(1);
  MonoTime At(int ms) const { return t0_ + milliseconds(ms); }
  proto::TrafficReport Report(const TrafficAggregator& a, int ms,
                              size_t max_peers = 100) {
    proto::TrafficReport r;
    a.Fill(At(ms), max_peers, &r);
    return r;
  }
  const proto::TrafficReport::Peer* PeerOf(const proto::TrafficReport& r,
                                           const std::string& ip, int pid) {
    for (const auto& p : r.peers()) {
      if (p.ip() == ip && p.pid() == pid) return &p;
    }
    return nullptr;
  }
};

TEST_F(AggregatorTest, BaselineIsNotNewButMakesPeersKnown) {
  TrafficAggregator a(At(0));
  // An established connection idle for 5 s, and a recent closer.
  a.Add({Conn("127.0.0.1", 5000, 42, 900, 5000), TimeWait("10.0.0.9", 6000)},
        At(0));
  auto r = Report(a, 0);
  EXPECT_EQ(r.connections(), 1u);
  EXPECT_EQ(r.connections_total(), 0u);
  EXPECT_EQ(r.bytes_received(), 0u);
  ASSERT_EQ(r.peers_size(), 2);
  const auto* local = PeerOf(r, "127.0.0.1", 42);
  ASSERT_NE(local, nullptr);
  EXPECT_EQ(local->connections(), 1u);
  EXPECT_EQ(local->idle_ms(), 5000u) << "dated by the kernel, before start";
  const auto* closed = PeerOf(r, "10.0.0.9", 0);
  ASSERT_NE(closed, nullptr);
  EXPECT_EQ(closed->connections(), 0u);
  // Nothing seen since start: quiet grows with observation, never beyond.
  EXPECT_EQ(Report(a, 300).quiet_ms(), 300u);
  EXPECT_EQ(Report(a, 300).observed_ms(), 300u);
}

TEST_F(AggregatorTest, NewConnectionsAndBytesResetQuiet) {
  TrafficAggregator a(At(0));
  a.Add({Conn("127.0.0.1", 5000, 42, 100, 10)}, At(0));
  // 100 ms later: 50 more bytes, received 20 ms before the sample.
  a.Add({Conn("127.0.0.1", 5000, 42, 150, 20)}, At(100));
  auto r = Report(a, 100);
  EXPECT_EQ(r.bytes_received(), 50u);
  EXPECT_EQ(r.quiet_ms(), 20u);
  // A new connection from another process at 200 ms.
  a.Add({Conn("127.0.0.1", 5000, 42, 150, 120),
         Conn("127.0.0.1", 5001, 43, 7, 5)},
        At(200));
  r = Report(a, 200);
  EXPECT_EQ(r.connections(), 2u);
  EXPECT_EQ(r.connections_total(), 1u);
  EXPECT_EQ(r.bytes_received(), 57u) << "a new connection counts all its bytes";
  EXPECT_EQ(r.quiet_ms(), 5u);
  ASSERT_GE(r.peers_size(), 2);
  EXPECT_EQ(r.peers(0).pid(), 43) << "most recently active first";
  EXPECT_EQ(r.peers(0).connections_total(), 1u);
  EXPECT_EQ(r.peers(1).pid(), 42);
  EXPECT_EQ(r.peers(1).bytes_received(), 50u);
  // Silence: the same counters for a second; quiet grows, totals do not.
  for (int ms = 300; ms <= 1200; ms += 100) {
    a.Add({Conn("127.0.0.1", 5000, 42, 150, 120 + ms - 200),
           Conn("127.0.0.1", 5001, 43, 7, 5 + ms - 200)},
          At(ms));
  }
  r = Report(a, 1200);
  EXPECT_EQ(r.quiet_ms(), 1005u);
  EXPECT_EQ(r.connections_total(), 1u);
  EXPECT_EQ(r.bytes_received(), 57u);
  EXPECT_EQ(r.connections(), 2u) << "silent connections are still established";
}

TEST_F(AggregatorTest, ConnectionOpenedAndClosedBetweenSamplesCounts) {
  TrafficAggregator a(At(0));
  a.Add({}, At(0));
  // Gone through its whole life between two samples: seen only as TIME_WAIT.
  a.Add({TimeWait("127.0.0.1", 7000)}, At(100));
  auto r = Report(a, 150);
  EXPECT_EQ(r.connections(), 0u);
  EXPECT_EQ(r.connections_total(), 1u);
  EXPECT_EQ(r.quiet_ms(), 50u) << "dated at the sample that found it";
  // Still there (TIME_WAIT lasts a minute): not new again.
  a.Add({TimeWait("127.0.0.1", 7000)}, At(200));
  EXPECT_EQ(Report(a, 200).connections_total(), 1u);
  // Same peer port reused after it vanished: new again.
  a.Add({}, At(300));
  a.Add({Conn("127.0.0.1", 7000, 50, 1, 0)}, At(400));
  EXPECT_EQ(Report(a, 400).connections_total(), 2u);
}

TEST_F(AggregatorTest, ActivityIsNeverDatedBeforeThePreviousSample) {
  TrafficAggregator a(At(0));
  a.Add({Conn("127.0.0.1", 5000, 42, 0, 0)}, At(0));
  // The kernel says "last data 10 s ago" but the bytes grew since the
  // previous sample: the activity happened after that sample.
  a.Add({Conn("127.0.0.1", 5000, 42, 10, 10000)}, At(100));
  EXPECT_EQ(Report(a, 100).quiet_ms(), 100u);
  EXPECT_EQ(Report(a, 100).bytes_received(), 10u);
}

TEST_F(AggregatorTest, NewConnectionMappedLaterMovesItsCounts) {
  TrafficAggregator a(At(0));
  a.Add({}, At(0));
  // New at 100 ms, its process not found yet; found at 200 ms.
  a.Add({Conn("127.0.0.1", 5000, 0, 40, 10)}, At(100));
  a.Add({Conn("127.0.0.1", 5000, 42, 60, 5)}, At(200));
  auto r = Report(a, 200);
  EXPECT_EQ(PeerOf(r, "127.0.0.1", 0), nullptr)
      << "no unknown process left behind: " << r.DebugString();
  const auto* known = PeerOf(r, "127.0.0.1", 42);
  ASSERT_NE(known, nullptr);
  EXPECT_EQ(known->connections_total(), 1u);
  EXPECT_EQ(known->bytes_received(), 60u);
  EXPECT_EQ(known->idle_ms(), 5u);
  EXPECT_EQ(r.connections_total(), 1u);
  EXPECT_EQ(r.bytes_received(), 60u);
}

TEST_F(AggregatorTest, PidLearntLaterMovesTheConnection) {
  TrafficAggregator a(At(0));
  a.Add({Conn("127.0.0.1", 5000, 0, 0, 0)}, At(0));
  a.Add({Conn("127.0.0.1", 5000, 42, 30, 0)}, At(100));
  auto r = Report(a, 100);
  const auto* known = PeerOf(r, "127.0.0.1", 42);
  ASSERT_NE(known, nullptr);
  EXPECT_EQ(known->bytes_received(), 30u);
  EXPECT_EQ(known->connections(), 1u);
}

TEST_F(AggregatorTest, PeersAreBounded) {
  TrafficAggregator a(At(0));
  std::vector<ObservedConnection> sample;
  for (int i = 0; i < 300; ++i) {
    sample.push_back(
        Conn("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250),
             5000, 0, 0, static_cast<uint32_t>(i)));
  }
  a.Add(sample, At(0));
  auto r = Report(a, 0, 100);
  EXPECT_EQ(r.peers_size(), 100);
  EXPECT_TRUE(r.peers_truncated());
  EXPECT_EQ(r.connections(), 300u);
  EXPECT_EQ(r.peers(0).idle_ms(), 0u);
  EXPECT_EQ(r.peers(99).idle_ms(), 99u);
  // Beyond the tracked maximum, totals still count.
  TrafficAggregator b(At(0));
  b.Add({}, At(0));
  std::vector<ObservedConnection> many;
  for (size_t i = 0; i < TrafficAggregator::kMaxPeers + 10; ++i) {
    many.push_back(
        Conn("10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250),
             5000, 0, 1, 0));
  }
  b.Add(many, At(100));
  auto rb = Report(b, 100, 10);
  EXPECT_EQ(rb.connections_total(), TrafficAggregator::kMaxPeers + 10);
  EXPECT_EQ(rb.bytes_received(), TrafficAggregator::kMaxPeers + 10);
  EXPECT_TRUE(rb.peers_truncated());
}

}  // namespace
}  // namespace zkroll::observe
