#include "agent/config.h"

#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace zkroll::agent {
namespace {

using zkroll::testing::TempDir;

TEST(AgentConfigTest, FileWithDefaultsAndOverrides) {
  TempDir d;
  std::string f = d.Write("agent.conf",
                          "zk = 10.0.0.1:2181/zkroll-prod\nhost = web-1\n"
                          "session_timeout = 6s\n\n"
                          "[instance.level]\nservice = level\nip = 192.168.1.10\n"
                          "port = 9000\n\n"
                          "[instance.api]\nservice = api\nip = ::1\nport = 8080\n"
                          "check = http:/healthz\ninterval = 5s\nrise = 3\n");
  CommandLine cl;
  cl.config_file = f;
  auto c = LoadConfig(cl);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->zk, "10.0.0.1:2181/zkroll-prod");
  EXPECT_EQ(c->host, "web-1");
  EXPECT_EQ(c->session_timeout, Millis(6000));
  ASSERT_EQ(c->instances.size(), 2u);
  const auto& level = c->instances[0];
  EXPECT_EQ(level.id.ToString(), "level@192.168.1.10:9000");
  EXPECT_EQ(level.check_text, "tcp");
  EXPECT_EQ(level.interval, Millis(2000));
  EXPECT_EQ(level.timeout, Millis(1000));
  EXPECT_EQ(level.rise, 2);
  EXPECT_EQ(level.fall, 3);
  const auto& api = c->instances[1];
  EXPECT_EQ(api.id.ToString(), "api@[::1]:8080");
  EXPECT_EQ(api.check.kind, health::CheckSpec::Kind::kHttp);
  EXPECT_EQ(api.rise, 3);

  cl.zk = "127.0.0.1:2181";  // the command line wins over the file
  cl.instances = {"extra@10.1.1.1:1"};
  c = LoadConfig(cl);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->zk, "127.0.0.1:2181");
  EXPECT_EQ(c->instances.size(), 3u);
}

TEST(AgentConfigTest, DurationsTakeFractionsAndCombinedUnits) {
  TempDir d;
  std::string f = d.Write("agent.conf",
                          "zk = 10.0.0.1:2181\nsession_timeout = 7.5s\nresync = 1m30s\n"
                          "[instance.level]\nservice = level\nip = 192.168.1.10\n"
                          "port = 9000\ninterval = 1.5s\ntimeout = 250ms\n"
                          "check = tcp:connect<0.2s\n");
  CommandLine cl;
  cl.config_file = f;
  auto c = LoadConfig(cl);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->session_timeout, Millis(7500));
  EXPECT_EQ(c->resync, Millis(90000));
  EXPECT_EQ(c->instances[0].interval, Millis(1500));
  EXPECT_EQ(c->instances[0].timeout, Millis(250));
  EXPECT_EQ(c->instances[0].check.max_connect_time, Millis(200));

  d.Write("agent.conf", "zk = 10.0.0.1:2181\n[instance.level]\nservice = level\n"
                        "ip = 192.168.1.10\nport = 9000\ninterval = 2.5.s\n");
  c = LoadConfig(cl);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("instance.level.interval"), std::string::npos)
      << c.status().message();
  EXPECT_NE(c.status().message().find("'2.5.s'"), std::string::npos)
      << c.status().message();

  CommandLine flags;
  flags.zk = "10.0.0.1:2181";
  flags.instances = {"level@10.1.1.1:1"};
  flags.interval = "0.5s";
  flags.timeout = "0.25s";
  c = LoadConfig(flags);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->instances[0].interval, Millis(500));
  EXPECT_EQ(c->instances[0].timeout, Millis(250));
}

struct BadCase {
  std::string content;
  std::string expect;
};

TEST(AgentConfigTest, ErrorsNameFileLineAndKey) {
  TempDir d;
  BadCase cases[] = {
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 0\n",
       "bad.conf:5 (key 'instance.x.port')"},
      {"zk = a:1\n[instance.x]\nservice = x y\nip = 1.2.3.4\nport = 1\n",
       "bad.conf:3 (key 'instance.x.service')"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\nrise = 0\n",
       "instance.x.rise"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\ninterval = 5\n",
       "missing unit"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\ncolour = red\n",
       "unknown key"},
      {"zk = a:1\n[instance.x]\nservice = x\n", "needs service, ip and port"},
      {"zk = a:1\nbogus = 1\n", "bad.conf:2 (key 'bogus')"},
      {"zk = a:1\nthis line is not ini\n", "bad.conf:2"},
      // Found by the config fuzzer: Boost loops on this line's error.
      {"zoption '%%invalid_line%on%'.1z1", "bad.conf:1: expected 'key = value'"},
      {"zk = a:1\n[instance.x\n", "bad.conf:2"},
      {"zk = nope\n", "bad ZooKeeper connect string"},
      {"zk = a:1\nsession_timeout = 1ms\n", "between 400ms and 10m"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "[instance.y]\nservice = x\nip = 1.2.3.4\nport = 1\n",
       "declared twice"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "metadata = novalue\n", "KEY=VALUE"},
      // Curator's fields: the line, the key and the refused value.
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "payload = [1, 2]\n", "bad.conf:6 (key 'instance.x.payload'): payload '[1, 2]' must be a JSON object"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "payload = {\"zone\": }\n", "bad.conf:6 (key 'instance.x.payload'): payload '{\"zone\": }' is not a valid JSON object"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "uri_spec = {scheme}://{address}:{port\n",
       "bad.conf:6 (key 'instance.x.uri_spec'): URI template '{scheme}://{address}:{port' has a '{' that is never closed"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "ssl_port = 70000\n", "bad.conf:6 (key 'instance.x.ssl_port'): ssl_port '70000'"},
      // Forwarding mode.
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "forward_ports = 2\n", "need forward_backend"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "forward_backend = 1.2.3.4:1\n", "the instance's public address"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "forward_backend = 1.2.3.4:2\nforward_ports = 3, 1\n",
       "the instance's public port"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "forward_backend = localhost:2\n", "instance.x.forward_backend"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "forward_backend = 1.2.3.4:2\nforward_ports = 3,3\n", "listed twice"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "forward_backend = 1.2.3.4:2\nforward_ports = 70000\n", "forward_ports"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "forward_backend = 1.2.3.4:2\nforward_protocol = udp\n", "udp"},
      {"zk = a:1\n[instance.x]\nservice = x\nip = 1.2.3.4\nport = 1\n"
       "forward_backend = 1.2.3.4:2\nforward_threads = 0\n", "forward_threads"},
  };
  for (const auto& c : cases) {
    std::string f = d.Write("bad.conf", c.content);
    CommandLine cl;
    cl.config_file = f;
    auto r = LoadConfig(cl);
    ASSERT_FALSE(r.ok()) << c.content;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << "content:\n" << c.content << "message: " << r.status().message();
  }
}

TEST(AgentConfigTest, CuratorKeysFillTheRecord) {
  TempDir d;
  std::string f = d.Write("agent.conf",
                          "zk = a:1\n[instance.web]\nservice = web\n"
                          "ip = 10.0.0.5\nport = 8080\n"
                          "payload = {\"zone\": \"a\", \"rack\": 3}\n"
                          "uri_spec = {scheme}://{address}:{port}/api\n"
                          "ssl_port = 8443\n"
                          "[instance.plain]\nservice = web\nip = 10.0.0.5\n"
                          "port = 8081\n");
  CommandLine cl;
  cl.config_file = f;
  auto c = LoadConfig(cl);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->instances.size(), 2u);
  EXPECT_EQ(c->instances[0].payload, "{\"zone\": \"a\", \"rack\": 3}");
  EXPECT_EQ(c->instances[0].uri_spec, "{scheme}://{address}:{port}/api");
  EXPECT_EQ(c->instances[0].ssl_port, 8443u);
  EXPECT_EQ(c->instances[1].payload, "");
  EXPECT_EQ(c->instances[1].uri_spec, "");
  EXPECT_EQ(c->instances[1].ssl_port, 0u);
  // A changed key is a changed instance for a SIGHUP reload.
  InstanceConfig changed = c->instances[0];
  changed.uri_spec = "{scheme}://{address}:{port}/v2";
  EXPECT_FALSE(changed.SameSettings(c->instances[0]));
  changed = c->instances[0];
  changed.payload = "{}";
  EXPECT_FALSE(changed.SameSettings(c->instances[0]));
}

TEST(AgentConfigTest, ForwardingKeys) {
  TempDir d;
  std::string f = d.Write("agent.conf",
                          "zk = a:1\n[instance.web]\nservice = web\n"
                          "ip = 10.0.0.5\nport = 8080\n"
                          "forward_backend = 127.0.0.1:18080\n"
                          "forward_ports = 18081, 18082\n"
                          "forward_protocol = http\nforward_threads = 2\n"
                          "[instance.plain]\nservice = web\nip = 10.0.0.5\n"
                          "port = 8081\n");
  CommandLine cl;
  cl.config_file = f;
  auto c = LoadConfig(cl);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->instances.size(), 2u);
  ASSERT_TRUE(c->instances[0].forward.has_value());
  const ForwardConfig& fw = *c->instances[0].forward;
  EXPECT_EQ(fw.backend.ToString(), "127.0.0.1:18080");
  EXPECT_EQ(fw.ports, (std::vector<uint16_t>{18081, 18082}));
  EXPECT_EQ(fw.protocol, forward::Protocol::kHttp);
  EXPECT_EQ(fw.threads, 2);
  EXPECT_FALSE(c->instances[1].forward.has_value());
  // Local backends: the configured one and its IP with a listed port.
  EXPECT_TRUE(fw.IsLocalBackend(*InstanceAddress::Parse("127.0.0.1:18080")));
  EXPECT_TRUE(fw.IsLocalBackend(*InstanceAddress::Parse("127.0.0.1:18082")));
  EXPECT_FALSE(fw.IsLocalBackend(*InstanceAddress::Parse("127.0.0.1:18083")));
  EXPECT_FALSE(fw.IsLocalBackend(*InstanceAddress::Parse("10.0.0.5:18081")));
  // A changed forward key is a changed instance (the forwarder restarts).
  InstanceConfig changed = c->instances[0];
  EXPECT_TRUE(changed.SameSettings(c->instances[0]));
  changed.forward->ports.push_back(18083);
  EXPECT_FALSE(changed.SameSettings(c->instances[0]));
}

TEST(AgentConfigTest, CommandLineErrors) {
  CommandLine cl;
  EXPECT_NE(LoadConfig(cl).status().message().find("--zk"), std::string::npos);
  cl.zk = "127.0.0.1:2181";
  cl.instances = {"level@1.2.3.4:5", "level@1.2.3.4:5"};
  EXPECT_NE(LoadConfig(cl).status().message().find("declared twice"),
            std::string::npos);
  cl.instances = {"level@1.2.3.4:5"};
  cl.check = "smtp";
  EXPECT_NE(LoadConfig(cl).status().message().find("--check"), std::string::npos);
  cl.check = "tcp";
  cl.interval = "1x";
  EXPECT_NE(LoadConfig(cl).status().message().find("--interval"), std::string::npos);
  cl.interval = "1s";
  cl.host = "bad/host";
  EXPECT_NE(LoadConfig(cl).status().message().find("--host"), std::string::npos);
}

TEST(AgentConfigTest, ConfigDirFilesMayNotSetAgentOptions) {
  TempDir d;
  d.Write("a.conf", "[instance.a]\nservice = a\nip = 1.1.1.1\nport = 1\n");
  d.Write("b.conf", "zk = other:1\n");
  CommandLine cl;
  cl.zk = "127.0.0.1:2181";
  cl.config_dir = d.path();
  auto r = LoadConfig(cl);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("b.conf"), std::string::npos);
  std::remove(d.File("b.conf").c_str());
  r = LoadConfig(cl);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->instances.size(), 1u);
}

TEST(AgentConfigTest, SameSettingsDetectsChanges) {
  CommandLine cl;
  cl.zk = "127.0.0.1:2181";
  cl.instances = {"a@1.1.1.1:1"};
  auto one = LoadConfig(cl).value();
  auto two = LoadConfig(cl).value();
  EXPECT_TRUE(one.instances[0].SameSettings(two.instances[0]));
  cl.rise = 5;
  auto three = LoadConfig(cl).value();
  EXPECT_FALSE(one.instances[0].SameSettings(three.instances[0]));
}

}  // namespace
}  // namespace zkroll::agent
