// DecideForward: which backend a forwarded instance uses, from what the
// switch nodes say (pure logic; the ZooKeeper side is in
// tests/coordinator/switch_test.cc).
#include <gtest/gtest.h>

#include "agent/switch_watcher.h"

namespace zkroll::agent {
namespace {

InstanceAddress A(const std::string& text) {
  return InstanceAddress::Parse(text).value();
}

class DecideForwardTest : public ::testing::Test {
 protected:
  DecideForwardTest() {
    id_ = InstanceId{ServiceName::Parse("web").value(), A("10.0.0.5:8080")};
    cfg_.backend = A("127.0.0.1:18080");
    cfg_.ports = {18081};
  }
  static std::string Target(const std::string& backend,
                            const std::string& phase,
                            const std::string& gen,
                            const std::string& fallback = "") {
    return R"({"backend":")" + backend + R"(","fallback":")" + fallback +
           R"(","phase":")" + phase + R"(","generation":")" + gen + R"("})";
  }
  InstanceId id_;
  ForwardConfig cfg_;
};

TEST_F(DecideForwardTest, ConfiguredBackendWithoutSwitchNodes) {
  SwitchView v;
  ForwardDecision d = DecideForward(id_, cfg_, v);
  EXPECT_EQ(d.backend.ToString(), "127.0.0.1:18080");
  EXPECT_EQ(d.source, "config");
  EXPECT_FALSE(d.fallback);
  EXPECT_TRUE(d.error.empty());
  v.committed = "";  // the node exists, with no data yet
  d = DecideForward(id_, cfg_, v);
  EXPECT_EQ(d.source, "config");
  EXPECT_TRUE(d.error.empty());
}

TEST_F(DecideForwardTest, InFlightWinsOverCommittedWhichWinsOverConfig) {
  SwitchView v;
  v.committed = Target("127.0.0.1:18081", "committed", "c1");
  ForwardDecision d = DecideForward(id_, cfg_, v);
  EXPECT_EQ(d.backend.ToString(), "127.0.0.1:18081");
  EXPECT_EQ(d.stable.ToString(), "127.0.0.1:18081");
  EXPECT_EQ(d.source, "committed");
  EXPECT_EQ(d.generation, "c1");

  v.in_flight = Target("10.0.0.6:8080", "backup", "d1", "127.0.0.1:18081");
  v.registered = {"10.0.0.6:8080"};
  d = DecideForward(id_, cfg_, v);
  EXPECT_EQ(d.backend.ToString(), "10.0.0.6:8080");
  ASSERT_TRUE(d.fallback);
  EXPECT_EQ(d.fallback->ToString(), "127.0.0.1:18081");
  EXPECT_EQ(d.stable.ToString(), "127.0.0.1:18081");
  EXPECT_EQ(d.source, "deploy");
  EXPECT_EQ(d.generation, "d1");
}

TEST_F(DecideForwardTest, RemoteBackendMustBeARegisteredInstance) {
  SwitchView v;
  v.in_flight = Target("10.0.0.6:8080", "backup", "d1");
  EXPECT_EQ(RemoteBackends(cfg_, v), std::set<std::string>{"10.0.0.6:8080"});
  ForwardDecision d = DecideForward(id_, cfg_, v);
  EXPECT_EQ(d.backend.ToString(), "127.0.0.1:18080");  // unchanged
  EXPECT_EQ(d.refused_generation, "d1");
  EXPECT_NE(d.error.find("registered instance of service web"),
            std::string::npos)
      << d.error;
}

TEST_F(DecideForwardTest, RefusalsKeepTheNextSourceDown) {
  struct Case {
    std::string payload;
    std::string why;
  };
  const std::vector<Case> cases = {
      {Target("10.0.0.5:8080", "backup", "g"), "loop"},
      {Target("127.0.0.1:18081", "backup", "g", "10.0.0.5:8080"), "fallback"},
      {Target("127.0.0.1:18081", "committed", "g"), "not backup or verify"},
      {Target("127.0.0.1:99999", "verify", "g"), "backend"},
      {Target("web.example:80", "verify", "g"), "backend"},
      {"{\"backend\": 5}", "/switch/web/10.0.0.5_8080/deploy"},
      {"[]", "/switch/web/10.0.0.5_8080/deploy"},
  };
  for (const Case& c : cases) {
    SwitchView v;
    v.committed = Target("127.0.0.1:18081", "committed", "c1");
    v.in_flight = c.payload;
    ForwardDecision d = DecideForward(id_, cfg_, v);
    EXPECT_EQ(d.backend.ToString(), "127.0.0.1:18081") << c.payload;
    EXPECT_EQ(d.source, "committed") << c.payload;
    EXPECT_NE(d.error.find(c.why), std::string::npos)
        << c.payload << " -> " << d.error;
  }
  // A bad committed target falls back to the configured backend.
  SwitchView v;
  v.committed = Target("127.0.0.1:1", "committed", "c2");
  ForwardDecision d = DecideForward(id_, cfg_, v);
  EXPECT_EQ(d.backend.ToString(), "127.0.0.1:18080");
  EXPECT_EQ(d.source, "config");
  EXPECT_EQ(d.refused_generation, "c2");
}

}  // namespace
}  // namespace zkroll::agent
