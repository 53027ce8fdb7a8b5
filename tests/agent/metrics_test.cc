// The metrics module as a unit: which series exist with which labels and
// values after the events the agent reports, and how metrics_listen is
// read and refused.
#include "agent/metrics.h"

#include <gtest/gtest.h>

#include <sstream>

#include "agent/config.h"
#include "agent/metrics_server.h"
#include "common/version.h"
#include "tests/support/process.h"

namespace zkroll::agent {
namespace {

using zkroll::testing::TempDir;

InstanceId Id(const std::string& text) {
  return InstanceId::Parse(text).value();
}

// The sample lines of the exposition, without comments.
std::vector<std::string> Samples(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') out.push_back(line);
  }
  return out;
}

// The value of the one sample line that starts with `series` (name and
// labels exactly as the text format writes them: labels sorted by name).
std::optional<double> Value(const std::string& text,
                            const std::string& series) {
  std::optional<double> found;
  for (const auto& line : Samples(text)) {
    if (line.rfind(series + " ", 0) == 0) {
      EXPECT_FALSE(found) << "two samples for " << series;
      found = std::stod(line.substr(series.size() + 1));
    }
  }
  return found;
}

bool Mentions(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST(AgentMetricsTest, BuildInfoAndSessionStartAsConnecting) {
  AgentMetrics m;
  std::string t = m.Serialize();
  EXPECT_EQ(
      Value(t, std::string("zkroll_agent_build_info{revision=\"") +
                   ZKROLL_GIT_REVISION + "\",version=\"" ZKROLL_VERSION "\"}"),
      1);
  EXPECT_EQ(
      Value(t, "zkroll_agent_zookeeper_session_state{state=\"connecting\"}"),
      1);
  EXPECT_EQ(
      Value(t, "zkroll_agent_zookeeper_session_state{state=\"connected\"}"), 0);
  EXPECT_EQ(Value(t, "zkroll_agent_instances"), 0);
  EXPECT_GT(*Value(t, "zkroll_agent_start_time_seconds"), 1.6e9);
}

TEST(AgentMetricsTest, InstanceChecksStateAndTransitions) {
  AgentMetrics m;
  auto& s = m.AddInstance(Id("web@10.0.0.5:9000"));
  EXPECT_EQ(&s, &m.AddInstance(Id("web@10.0.0.5:9000")));  // same series
  const std::string l = "{address=\"10.0.0.5:9000\",service=\"web\"}";

  s.OnCheckResult(true, std::chrono::microseconds(300));
  s.OnCheckResult(true, std::chrono::microseconds(700));
  s.OnCheckResult(false, std::chrono::milliseconds(1500));
  s.SetState({/*healthy=*/false, false, false, false});  // where it starts
  s.SetState({true, false, false, false});
  s.SetState({true, true, false, false});
  s.SetState({true, true, false, false});  // no change
  s.SetState({true, false, true, false});  // paused
  s.OnHealthTransition(true);
  s.OnHealthTransition(false);
  s.OnHealthTransition(true);

  std::string t = m.Serialize();
  EXPECT_EQ(Value(t, "zkroll_agent_instances"), 1);
  EXPECT_EQ(Value(t,
                  "zkroll_agent_checks_total{address=\"10.0.0.5:9000\",result="
                  "\"pass\",service=\"web\"}"),
            2);
  EXPECT_EQ(Value(t,
                  "zkroll_agent_checks_total{address=\"10.0.0.5:9000\",result="
                  "\"fail\",service=\"web\"}"),
            1);
  EXPECT_EQ(Value(t, "zkroll_agent_check_duration_seconds_count" + l), 3);
  EXPECT_NEAR(*Value(t, "zkroll_agent_check_duration_seconds_sum" + l), 1.501,
              1e-9);
  EXPECT_EQ(Value(t,
                  "zkroll_agent_check_duration_seconds_bucket{address=\"10.0.0."
                  "5:9000\",service=\"web\",le=\"0.0005\"}"),
            1);
  EXPECT_EQ(Value(t,
                  "zkroll_agent_check_duration_seconds_bucket{address=\"10.0.0."
                  "5:9000\",service=\"web\",le=\"0.001\"}"),
            2);
  EXPECT_EQ(Value(t,
                  "zkroll_agent_check_duration_seconds_bucket{address=\"10.0.0."
                  "5:9000\",service=\"web\",le=\"2.5\"}"),
            3);
  EXPECT_EQ(Value(t, "zkroll_agent_instance_healthy" + l), 1);
  EXPECT_EQ(Value(t, "zkroll_agent_instance_registered" + l), 0);
  EXPECT_EQ(Value(t, "zkroll_agent_instance_paused" + l), 1);
  EXPECT_EQ(Value(t, "zkroll_agent_instance_forwarding" + l), 0);
  // unhealthy -> healthy -> registered -> paused: three transitions.
  for (const char* to : {"healthy", "registered", "paused"}) {
    EXPECT_EQ(Value(t, std::string(
                           "zkroll_agent_instance_state_transitions_total{"
                           "address=\"10.0.0.5:9000\",service=\"web\",to=\"") +
                           to + "\"}"),
              1)
        << to;
  }
  EXPECT_FALSE(Value(t,
                     "zkroll_agent_instance_state_transitions_total{address="
                     "\"10.0.0.5:9000\",service=\"web\",to=\"unhealthy\"}"));
  EXPECT_EQ(Value(t,
                  "zkroll_agent_health_transitions_total{address=\"10.0.0.5:"
                  "9000\",service=\"web\",to=\"healthy\"}"),
            2);
  EXPECT_EQ(Value(t,
                  "zkroll_agent_health_transitions_total{address=\"10.0.0.5:"
                  "9000\",service=\"web\",to=\"unhealthy\"}"),
            1);
}

TEST(AgentMetricsTest, RemovedInstanceLeavesNoSeries) {
  AgentMetrics m;
  auto& gone = m.AddInstance(Id("web@10.0.0.5:9000"));
  m.AddInstance(Id("web@10.0.0.6:9000")).OnCheckResult(true, {});
  gone.OnCheckResult(true, {});
  gone.SetState({true, true, false, true});
  gone.SetState({false, false, false, true});
  gone.OnHealthTransition(false);
  forward::BackendStats b;
  b.backend = InstanceAddress::Parse("127.0.0.1:18081").value();
  b.connections = 3;
  gone.SetForwardStats({b});
  ASSERT_TRUE(Mentions(m.Serialize(), "10.0.0.5:9000"));

  m.RemoveInstance(Id("web@10.0.0.5:9000"));
  std::string t = m.Serialize();
  EXPECT_FALSE(Mentions(t, "10.0.0.5:9000")) << t;
  EXPECT_TRUE(Mentions(t, "10.0.0.6:9000"));
  EXPECT_EQ(Value(t, "zkroll_agent_instances"), 1);
}

TEST(AgentMetricsTest, ForwarderCountersAreCopiedAsDifferences) {
  AgentMetrics m;
  auto& s = m.AddInstance(Id("web@10.0.0.5:80"));
  forward::BackendStats b;
  b.backend = InstanceAddress::Parse("127.0.0.1:18081").value();
  b.connections = 10;
  b.active = 2;
  b.connect_failures = 1;
  b.bytes_to_backend = 1000;
  b.bytes_from_backend = 5000;
  s.SetForwardStats({b});
  b.connections = 15;
  b.active = 0;
  b.bytes_from_backend = 9000;
  s.SetForwardStats({b});
  const std::string l = "{address=\"10.0.0.5:80\",backend=\"127.0.0.1:18081\",";
  std::string t = m.Serialize();
  EXPECT_EQ(Value(t, "zkroll_agent_forward_connections_total" + l +
                         "service=\"web\"}"),
            15);
  EXPECT_EQ(Value(t, "zkroll_agent_forward_active_connections" + l +
                         "service=\"web\"}"),
            0);
  EXPECT_EQ(Value(t, "zkroll_agent_forward_connect_failures_total" + l +
                         "service=\"web\"}"),
            1);
  EXPECT_EQ(Value(t, "zkroll_agent_forward_bytes_total" + l +
                         "direction=\"from_backend\",service=\"web\"}"),
            9000);
  EXPECT_EQ(Value(t, "zkroll_agent_forward_bytes_total" + l +
                         "direction=\"to_backend\",service=\"web\"}"),
            1000);

  // A new forwarder (a reload changed its settings) starts from zero: its
  // counts add on, the counter never goes down.
  b.connections = 4;
  s.SetForwardStats({b});
  EXPECT_EQ(Value(m.Serialize(), "zkroll_agent_forward_connections_total" + l +
                                     "service=\"web\"}"),
            19);
}

TEST(AgentMetricsTest, ZooKeeperObserver) {
  AgentMetrics m;
  auto obs = m.zk_observer();
  obs->OnSessionEvent(SessionEvent::Kind::kNewSession);
  obs->OnSessionEvent(SessionEvent::Kind::kDisconnected);
  std::string t = m.Serialize();
  EXPECT_EQ(
      Value(t, "zkroll_agent_zookeeper_session_state{state=\"disconnected\"}"),
      1);
  EXPECT_EQ(
      Value(t, "zkroll_agent_zookeeper_session_state{state=\"connected\"}"), 0);
  obs->OnSessionEvent(SessionEvent::Kind::kReconnected);
  obs->OnSessionEvent(SessionEvent::Kind::kExpired);
  obs->OnSessionEvent(SessionEvent::Kind::kNewSession);
  obs->OnOperation(ZkOperation::kMulti, "ok", std::chrono::milliseconds(2));
  obs->OnOperation(ZkOperation::kMulti, "bad_version",
                   std::chrono::milliseconds(3));
  obs->OnOperation(ZkOperation::kMulti, "bad_version",
                   std::chrono::milliseconds(1));
  obs->OnOperation(ZkOperation::kExists, "connection_loss",
                   std::chrono::seconds(4));
  obs->OnWatchEvent(WatchEvent::Type::kDeleted);
  t = m.Serialize();
  EXPECT_EQ(
      Value(t, "zkroll_agent_zookeeper_session_state{state=\"connected\"}"), 1);
  EXPECT_EQ(Value(t, "zkroll_agent_zookeeper_session_state{state=\"expired\"}"),
            0);
  EXPECT_EQ(Value(t, "zkroll_agent_zookeeper_sessions_total"), 2);
  EXPECT_EQ(Value(t, "zkroll_agent_zookeeper_reconnects_total"), 1);
  EXPECT_EQ(Value(t, "zkroll_agent_zookeeper_disconnects_total"), 1);
  EXPECT_EQ(Value(t, "zkroll_agent_zookeeper_session_expiries_total"), 1);
  EXPECT_EQ(Value(t,
                  "zkroll_agent_zookeeper_operation_duration_seconds_count{"
                  "operation=\"multi\"}"),
            3);
  EXPECT_EQ(Value(t,
                  "zkroll_agent_zookeeper_operation_duration_seconds_count{"
                  "operation=\"exists\"}"),
            1);
  EXPECT_EQ(Value(t,
                  "zkroll_agent_zookeeper_operation_errors_total{code=\"bad_"
                  "version\",operation=\"multi\"}"),
            2);
  EXPECT_EQ(Value(t,
                  "zkroll_agent_zookeeper_operation_errors_total{code="
                  "\"connection_loss\",operation=\"exists\"}"),
            1);
  EXPECT_FALSE(Mentions(t, "code=\"ok\""));
  EXPECT_EQ(
      Value(t, "zkroll_agent_zookeeper_watch_events_total{type=\"deleted\"}"),
      1);
  // The observer shares the registry: it may outlive the metrics object.
  std::weak_ptr<ZkObserver> weak = obs;
  obs.reset();
  EXPECT_TRUE(weak.expired());
}

TEST(AgentMetricsTest, RegistrationCounters) {
  AgentMetrics m;
  m.OnRegistrationWritten();
  m.OnRegistrationWritten();
  m.OnDeregistrationWritten();
  std::string t = m.Serialize();
  EXPECT_EQ(Value(t, "zkroll_agent_registrations_total"), 2);
  EXPECT_EQ(Value(t, "zkroll_agent_deregistrations_total"), 1);
}

TEST(MetricsListenTest, ParsesAddresses) {
  auto a = ParseListenAddress("127.0.0.1:9479");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->ip, "127.0.0.1");
  EXPECT_EQ(a->port, 9479);
  a = ParseListenAddress("[::1]:0");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->ToString(), "[::1]:0");
  for (const char* bad : {"localhost:9479", "127.0.0.1", "127.0.0.1:70000",
                          "127.0.0.1:x", ":9479", "::1:9479", "1.2.3:4"}) {
    auto r = ParseListenAddress(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(std::string("'") + bad + "'"),
              std::string::npos)
        << r.status().message();
  }
}

TEST(MetricsListenTest, ConfigDefaultOverrideOffAndErrors) {
  TempDir d;
  CommandLine cl;
  cl.zk = "127.0.0.1:2181";
  cl.host = "h";
  auto c = LoadConfig(cl);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->metrics_listen);
  EXPECT_EQ(c->metrics_listen->ToString(), "127.0.0.1:9479");

  cl.config_file =
      d.Write("a.conf", "zk = 127.0.0.1:2181\nmetrics_listen = 0.0.0.0:9100\n");
  c = LoadConfig(cl);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->metrics_listen->ToString(), "0.0.0.0:9100");

  cl.config_file = d.Write("b.conf", "zk = 127.0.0.1:2181\nmetrics_listen =\n");
  c = LoadConfig(cl);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->metrics_listen);

  // The flag wins over the file.
  cl.metrics_listen = "127.0.0.1:0";
  c = LoadConfig(cl);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->metrics_listen->ToString(), "127.0.0.1:0");

  cl.metrics_listen.reset();
  std::string f = d.Write("c.conf",
                          "zk = 127.0.0.1:2181\n# metrics\n"
                          "metrics_listen = web-1:9479\n");
  cl.config_file = f;
  c = LoadConfig(cl);
  ASSERT_FALSE(c.ok());
  const std::string& msg = c.status().message();
  EXPECT_NE(msg.find(f + ":3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("metrics_listen"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'web-1:9479'"), std::string::npos) << msg;

  cl.metrics_listen = "127.0.0.1";
  c = LoadConfig(cl);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("--metrics-listen"), std::string::npos)
      << c.status().message();
}

}  // namespace
}  // namespace zkroll::agent
