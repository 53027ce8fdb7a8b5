// zkroll-agent as a real process against a real ZooKeeper server.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "common/clock.h"
#include "common/version.h"
#include "common/instance_record.h"
#include "tests/agent/agent_fixture.h"
#include "tests/support/zk_reply_dropper.h"

namespace zkroll::testing {
namespace {

constexpr milliseconds kDeadline(20000);

std::vector<std::string> FastChecks(const std::string& host) {
  return {"--host", host, "--interval", "100ms", "--timeout", "200ms",
          "--rise", "2", "--fall", "2", "--resync", "200ms",
          "--session-timeout", "4s"};
}

std::vector<std::string> With(std::vector<std::string> a,
                              const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string PauseJson(const std::string& reason) {
  proto::PauseFlag f;
  f.set_by("test@host");
  f.set_pid(1);
  f.set_reason(reason);
  *f.mutable_since() = NowTimestamp();
  return ToJson(f);
}

TEST_F(AgentTest, RegistersHealthyInstanceWithRecord) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  StartAgent(With(FastChecks("h1"),
                  {"--instance", svc_ + "@127.0.0.1:" + std::to_string(port)}));
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
  auto node = InstanceNode(svc_, port);
  ASSERT_TRUE(node);
  EXPECT_NE(node->stat.ephemeral_owner, 0);
  auto rec = ParsePayload<proto::InstanceRecord>(node->data, "n");
  ASSERT_TRUE(rec.ok()) << node->data;
  EXPECT_EQ(rec->service(), svc_);
  EXPECT_EQ(rec->ip(), "127.0.0.1");
  EXPECT_EQ(rec->port(), static_cast<uint32_t>(port));
  EXPECT_EQ(rec->host(), "h1");
  // Apache Curator's ServiceInstance fields, for Curator callers.
  EXPECT_EQ(rec->name(), svc_);
  EXPECT_EQ(rec->id(), "127.0.0.1_" + std::to_string(port));
  EXPECT_EQ(rec->address(), "127.0.0.1");
  EXPECT_EQ(rec->servicetype(), "DYNAMIC");
  EXPECT_TRUE(rec->enabled());
  EXPECT_GT(rec->registrationtimeutc(), 1.7e12);
  EXPECT_FALSE(rec->has_payload());
  EXPECT_FALSE(rec->has_urispec());
  EXPECT_FALSE(rec->has_sslport());
  EXPECT_NE(node->data.find("\"registrationTimeUTC\": 1"), std::string::npos)
      << node->data;
  ASSERT_TRUE(WaitFor([&] {
    auto v = AgentView("h1", svc_, port);
    return v && v->state() == "registered" && v->healthy();
  }, kDeadline));
}

TEST_F(AgentTest, FallDeregistersAndRiseRegistersAgain) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  StartAgent(With(FastChecks("h2"),
                  {"--instance", svc_ + "@127.0.0.1:" + std::to_string(port)}));
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
  svc.Stop();
  ASSERT_TRUE(WaitFor([&] { return !Registered(svc_, port); }, kDeadline));
  auto v = AgentView("h2", svc_, port);
  ASSERT_TRUE(WaitFor([&] {
    v = AgentView("h2", svc_, port);
    return v && v->state() == "unhealthy";
  }, kDeadline));
  EXPECT_NE(v->last_check().find("refused"), std::string::npos) << v->last_check();
  ASSERT_TRUE(svc.Start());
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
  EXPECT_NE(AgentLog(0).find("deregistered " + svc_ + "@127.0.0.1:" + std::to_string(port)),
            std::string::npos);
}

TEST_F(AgentTest, PauseFlagRemovesAndKeepsOutThenLiftRegistersAtOnce) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  // A long interval and rise 3: after the flag is lifted only the immediate
  // "one pass is enough" check can register the instance within the deadline.
  auto args = std::vector<std::string>{
      "--host", "h3", "--interval", "60s", "--timeout", "500ms", "--rise", "1",
      "--fall", "1", "--resync", "200ms", "--instance",
      svc_ + "@127.0.0.1:" + std::to_string(port)};
  StartAgent(args);
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));

  auto coordinator = Connect();
  ASSERT_TRUE(Pause(coordinator.get(), svc_, port, PauseJson("test"),
                    CreateMode::kEphemeral).ok());
  EXPECT_FALSE(Registered(svc_, port)) << "the pause multi removes the node";
  ASSERT_TRUE(WaitFor([&] {
    auto v = AgentView("h3", svc_, port);
    return v && v->state() == "paused" && v->paused();
  }, kDeadline));
  // Still healthy, still paused: several resyncs later it is still absent.
  ASSERT_TRUE(WaitFor([&] {
    return AgentLog(0).find("paused by test@host: test") != std::string::npos;
  }, kDeadline));
  EXPECT_FALSE(Registered(svc_, port));

  ASSERT_TRUE(coordinator->DeleteSync(FlagPath(svc_, port)).ok());
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
  EXPECT_NE(AgentLog(0).find("pause lifted; checking at once"), std::string::npos);
}

TEST_F(AgentTest, RestartedAgentHonoursExistingPause) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  auto args = With(FastChecks("h4"),
                   {"--instance", svc_ + "@127.0.0.1:" + std::to_string(port)});
  ChildProcess* first = StartAgent(args);
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
  auto coordinator = Connect();
  ASSERT_TRUE(Pause(coordinator.get(), svc_, port, PauseJson("restart"),
                    CreateMode::kEphemeral).ok());
  first->Signal(SIGKILL);
  first->Wait(kDeadline);
  StartAgent(args);
  // The new agent is up, checking, and sees the pause...
  ASSERT_TRUE(WaitFor([&] {
    auto v = AgentView("h4", svc_, port);
    return v && v->paused() && v->healthy();
  }, kDeadline));
  ASSERT_TRUE(WaitForChecks("h4", svc_, port, 5, kDeadline));
  // ...and has not registered the instance through all those checks.
  EXPECT_FALSE(Registered(svc_, port));
  ASSERT_TRUE(coordinator->DeleteSync(FlagPath(svc_, port)).ok());
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
}

TEST_F(AgentTest, MalformedPauseFlagCountsAsPause) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  StartAgent(With(FastChecks("h5"),
                  {"--instance", svc_ + "@127.0.0.1:" + std::to_string(port)}));
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
  auto coordinator = Connect();
  ASSERT_TRUE(Pause(coordinator.get(), svc_, port, "{not json \xff",
                    CreateMode::kPersistent).ok());
  ASSERT_TRUE(WaitFor([&] {
    auto v = AgentView("h5", svc_, port);
    return v && v->paused();
  }, kDeadline));
  ASSERT_TRUE(WaitForChecks("h5", svc_, port, 5, kDeadline));
  EXPECT_FALSE(Registered(svc_, port));
  EXPECT_NE(AgentLog(0).find("cannot be parsed; treating it as a pause"),
            std::string::npos);
  EXPECT_TRUE(agents_[0]->running());
  ASSERT_TRUE(coordinator->DeleteSync(FlagPath(svc_, port)).ok());
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
}

TEST_F(AgentTest, ExpiredManualPauseIsIgnored) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  auto coordinator = Connect();
  proto::PauseFlag f;
  f.set_by("ops@host");
  f.set_reason("maintenance");
  *f.mutable_since() = NowTimestamp();
  *f.mutable_expires_at() =
      ToTimestamp(std::chrono::system_clock::now() + std::chrono::seconds(2));
  ASSERT_TRUE(Pause(coordinator.get(), svc_, port, ToJson(f),
                    CreateMode::kPersistent).ok());
  StartAgent(With(FastChecks("h6"),
                  {"--instance", svc_ + "@127.0.0.1:" + std::to_string(port)}));
  ASSERT_TRUE(WaitFor([&] {
    auto v = AgentView("h6", svc_, port);
    return v && v->paused();
  }, kDeadline));
  EXPECT_FALSE(Registered(svc_, port));
  // Once expires_at passes, the flag no longer forbids registration.
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
  EXPECT_TRUE(zk_->ExistsSync(FlagPath(svc_, port))->has_value())
      << "the agent must not delete flags (it has read-only access)";
}

TEST_F(AgentTest, SessionExpiryReRegistersWithNewSession) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  auto args = std::vector<std::string>{
      "--host", "h7", "--interval", "100ms", "--timeout", "200ms",
      "--rise", "1", "--fall", "2", "--resync", "200ms",
      "--session-timeout", "1s", "--instance",
      svc_ + "@127.0.0.1:" + std::to_string(port)};
  ChildProcess* agent = StartAgent(args);
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
  int64_t old_owner = InstanceNode(svc_, port)->stat.ephemeral_owner;
  // Freeze the agent past its session timeout: the server expires the
  // session and removes its ephemeral registration.
  agent->Signal(SIGSTOP);
  ASSERT_TRUE(WaitFor([&] { return !Registered(svc_, port); }, kDeadline));
  agent->Signal(SIGCONT);
  ASSERT_TRUE(WaitFor([&] {
    auto n = InstanceNode(svc_, port);
    return n && n->stat.ephemeral_owner != old_owner;
  }, kDeadline));
  ASSERT_TRUE(WaitFor([&] {
    return AgentLog(0).find("session expired") != std::string::npos;
  }, kDeadline));
  auto kids = zk_->GetChildrenSync("/services/" + svc_);
  ASSERT_TRUE(kids.ok());
  EXPECT_EQ(std::count(kids->names.begin(), kids->names.end(),
                       "127.0.0.1_" + std::to_string(port)), 1);
}

// A registration deleted by someone else (here the test's own session, as
// an operator or a pause multi that crossed ours would) is registered again
// at once. The resync is 10 minutes, so only the agent's exists-watch on
// its node can explain a re-registration within the deadline.
TEST_F(AgentTest, RegistrationDeletedBySomeoneElseIsRestoredByTheWatch) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  StartAgent({"--host", "h-watch", "--interval", "100ms", "--timeout",
              "200ms", "--rise", "1", "--fall", "2", "--resync", "10m",
              "--session-timeout", "4s", "--instance",
              svc_ + "@127.0.0.1:" + std::to_string(port)});
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
  for (int round = 0; round < 3; ++round) {
    auto before = InstanceNode(svc_, port);
    ASSERT_TRUE(before);
    ASSERT_TRUE(zk_->DeleteSync(InstancePath(svc_, port)).ok());
    const auto deleted_at = std::chrono::steady_clock::now();
    ASSERT_TRUE(WaitFor([&] {
      auto n = InstanceNode(svc_, port);
      return n && n->stat.czxid != before->stat.czxid;
    }, milliseconds(5000))) << "round " << round << "; agent log:\n"
                            << AgentLog(0);
    auto after = InstanceNode(svc_, port);
    ASSERT_TRUE(after);
    EXPECT_EQ(after->stat.ephemeral_owner, before->stat.ephemeral_owner)
        << "re-registered by the agent's own session";
    std::printf("round %d: re-registered %lld ms after the delete\n", round,
                static_cast<long long>(
                    std::chrono::duration_cast<milliseconds>(
                        std::chrono::steady_clock::now() - deleted_at)
                        .count()));
  }
  EXPECT_NE(AgentLog(0).find("was deleted by someone else"), std::string::npos)
      << AgentLog(0);
}

// A registration multi the server applied whose reply never reaches the
// agent (the proxy drops it and cuts the connection), then the instance
// turns unhealthy while the agent cannot reconnect. On reconnecting the
// agent must learn that its node exists and remove it: before it did, it
// believed the instance unregistered and left the node there for as long
// as its session lived.
TEST_F(AgentTest, RegistrationWhoseReplyWasLostIsLearnedAndRemoved) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  ZkReplyDropper proxy(server()->port());
  ASSERT_TRUE(proxy.ok());
  proxy.DropReplyTo(InstancePath(svc_, port));
  agent_zk_ = proxy.connect_string();
  // A session that outlives the disconnection by far: its expiry would
  // also remove the node and must not be what the test sees.
  StartAgent({"--host", "h-lost", "--interval", "100ms", "--timeout",
              "200ms", "--rise", "1", "--fall", "2", "--resync", "10m",
              "--session-timeout", "30s", "--instance",
              svc_ + "@127.0.0.1:" + std::to_string(port)});
  ASSERT_TRUE(WaitFor([&] { return proxy.dropped(); }, kDeadline))
      << proxy.Describe() << "\n" << AgentLog(0);
  ASSERT_EQ(proxy.dropped_error(), 0) << "the server applied the registration";
  auto node = InstanceNode(svc_, port);
  ASSERT_TRUE(node) << "registered at the server, reply lost";
  ASSERT_TRUE(WaitFor([&] {
    return AgentLog(0).find("could not register") != std::string::npos;
  }, kDeadline)) << AgentLog(0);

  // Unhealthy while the agent is still cut off from ZooKeeper.
  svc.Stop();
  ASSERT_TRUE(WaitFor([&] {
    return AgentLog(0).find("became unhealthy") != std::string::npos;
  }, kDeadline)) << AgentLog(0);
  EXPECT_TRUE(Registered(svc_, port));
  proxy.Release();

  ASSERT_TRUE(WaitFor([&] { return !Registered(svc_, port); }, kDeadline))
      << "an unhealthy instance stayed registered; " << proxy.Describe()
      << "; agent log:\n" << AgentLog(0);
  // The agent's own delete removed it (its log line may trail the delete).
  const std::string deregistered =
      "deregistered " + svc_ + "@127.0.0.1:" + std::to_string(port);
  EXPECT_TRUE(WaitFor([&] {
    return AgentLog(0).find(deregistered) != std::string::npos;
  }, kDeadline)) << AgentLog(0);
  const std::string log = AgentLog(0);
  EXPECT_NE(log.find("whose reply was lost: it was applied"),
            std::string::npos) << log;
  EXPECT_EQ(log.find("session expired"), std::string::npos)
      << "the node must go by the agent's delete, not by an expiry:\n" << log;
}

TEST_F(AgentTest, QuickRestartReplacesOwnStaleNodeWithoutGap) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  auto args = With(FastChecks("h8"),
                   {"--instance", svc_ + "@127.0.0.1:" + std::to_string(port)});
  ChildProcess* first = StartAgent(args);
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
  auto before = InstanceNode(svc_, port);
  // An exists-watch fires on any delete; count the events the replacement
  // causes: a delete+create in one multi shows no moment of absence.
  first->Signal(SIGKILL);
  first->Wait(kDeadline);
  StartAgent(args);
  ASSERT_TRUE(WaitFor([&] {
    auto n = InstanceNode(svc_, port);
    return n && n->stat.ephemeral_owner != before->stat.ephemeral_owner;
  }, kDeadline)) << "the new agent must take over the node of the old session";
  // The agent logs the replacement after its multi's reply: the line may
  // trail the node (it did under AddressSanitizer).
  EXPECT_TRUE(WaitFor([&] {
    return AgentLog(1).find("replaced the node of our previous session") !=
           std::string::npos;
  }, kDeadline)) << AgentLog(1);
}

TEST_F(AgentTest, SighupAddsAndRemovesInstances) {
  int port_a = PickFreePort(), port_b = PickFreePort();
  TinyService a(port_a), b(port_b);
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  auto write_config = [&](int port) {
    return dir_.Write("agent.conf",
                      "host = h9\nresync = 200ms\n\n[instance.one]\nservice = " + svc_ + "\n"
                      "ip = 127.0.0.1\nport = " + std::to_string(port) +
                          "\ninterval = 100ms\ntimeout = 200ms\nrise = 1\nfall = 1\n");
  };
  std::string cfg = write_config(port_a);
  ChildProcess* agent = StartAgent({"--config", cfg});
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port_a); }, kDeadline));
  write_config(port_b);
  agent->Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port_b); }, kDeadline));
  ASSERT_TRUE(WaitFor([&] { return !Registered(svc_, port_a); }, kDeadline));

  // A bad reload is refused and the running configuration keeps working.
  dir_.Write("agent.conf", "host = h9\n[instance.one]\nservice = bad name\n");
  agent->Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] {
    return AgentLog(0).find("reload refused") != std::string::npos;
  }, kDeadline));
  EXPECT_TRUE(agent->running());
  EXPECT_TRUE(Registered(svc_, port_b));
}

// A reload that removes or changes an instance while its registration
// multi is on its way, then or later applied: the registration must still
// follow what is declared. A removed instance once stayed registered for
// as long as the agent lived: the removal deleted nothing (not registered
// yet) and the late reply was dropped with the removed instance (found
// under load: a SIGHUP right after start-up).
class AgentReloadDuringRegistrationTest : public AgentTest {
 protected:
  // Starts the agent through `proxy` with one instance at `port`.
  ChildProcess* StartThrough(const ZkReplyDropper& proxy, int port) {
    agent_zk_ = proxy.connect_string();
    config_ = WriteConfig(port);
    return StartAgent({"--config", config_});
  }
  // A session that outlives every wait by far: its expiry would also
  // remove the node and must not be what the test sees.
  std::string WriteConfig(int port, const std::string& interval = "100ms") {
    return dir_.Write("agent.conf",
                      "host = h-removed\nresync = 10m\n"
                      "session_timeout = 30s\n\n[instance.one]\n"
                      "service = " + svc_ + "\nip = 127.0.0.1\nport = " +
                          std::to_string(port) + "\ninterval = " + interval +
                          "\ntimeout = 200ms\nrise = 1\nfall = 1\n");
  }
  // Declares `port` (checked every `interval`) instead and reloads;
  // returns once the reload applied.
  ::testing::AssertionResult ReloadWith(ChildProcess* agent, int port,
                                        const std::string& interval = "100ms") {
    const size_t before = Count(AgentLog(0), "reload applied");
    WriteConfig(port, interval);
    agent->Signal(SIGHUP);
    if (!WaitFor([&] {
          return Count(AgentLog(0), "reload applied") > before;
        }, kDeadline)) {
      return ::testing::AssertionFailure() << "no reload:\n" << AgentLog(0);
    }
    return ::testing::AssertionSuccess();
  }
  static size_t Count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos;
         at = text.find(what, at + 1)) {
      ++n;
    }
    return n;
  }
  std::string config_;
};

// The reply is held by the proxy until the reload has removed the
// instance: the registration is in flight at the removal, applied, and
// answered after it.
TEST_F(AgentReloadDuringRegistrationTest, ReplyArrivingAfterTheRemoval) {
  int port_a = PickFreePort(), port_b = PickFreePort();
  TinyService a(port_a), b(port_b);
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  ZkReplyDropper proxy(server()->port());
  ASSERT_TRUE(proxy.ok());
  proxy.HoldReplyTo(InstancePath(svc_, port_a));
  ChildProcess* agent = StartThrough(proxy, port_a);
  ASSERT_TRUE(WaitFor([&] { return proxy.held(); }, kDeadline))
      << proxy.Describe() << "\n" << AgentLog(0);
  ASSERT_TRUE(Registered(svc_, port_a)) << "applied at the server";
  ASSERT_TRUE(ReloadWith(agent, port_b));
  EXPECT_EQ(AgentLog(0).find("registered " + svc_), std::string::npos)
      << "the reply must still be on its way:\n" << AgentLog(0);
  proxy.Release();

  ASSERT_TRUE(WaitFor([&] { return !Registered(svc_, port_a); }, kDeadline))
      << "a removed instance stayed registered; " << proxy.Describe()
      << "; agent log:\n" << AgentLog(0);
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port_b); }, kDeadline))
      << AgentLog(0);
  const std::string log = AgentLog(0);
  EXPECT_NE(log.find("deregistered " + svc_ + "@127.0.0.1:" +
                     std::to_string(port_a)),
            std::string::npos) << log;
  EXPECT_EQ(log.find("session expired"), std::string::npos) << log;
}

// Removed while its registration is in flight, then declared again before
// the reply comes: the new declaration takes the same registration over.
// Two registrations of one node would undo each other: the removed one's
// delete would take the node from under the new one.
TEST_F(AgentReloadDuringRegistrationTest, DeclaredAgainBeforeTheReply) {
  int port_a = PickFreePort(), port_b = PickFreePort();
  TinyService a(port_a), b(port_b);
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  ZkReplyDropper proxy(server()->port());
  ASSERT_TRUE(proxy.ok());
  proxy.HoldReplyTo(InstancePath(svc_, port_a));
  ChildProcess* agent = StartThrough(proxy, port_a);
  ASSERT_TRUE(WaitFor([&] { return proxy.held(); }, kDeadline))
      << proxy.Describe() << "\n" << AgentLog(0);
  auto first = InstanceNode(svc_, port_a);
  ASSERT_TRUE(first) << "applied at the server";
  // b replaces a; b's registration is applied too, its reply held behind
  // a's (requests pass, replies wait).
  ASSERT_TRUE(ReloadWith(agent, port_b));
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port_b); }, kDeadline))
      << AgentLog(0);
  // a is declared again (b removed, in flight in its turn); its checks pass
  // before the replies come, so it wants to be registered when they do.
  const std::string healthy =
      "127.0.0.1:" + std::to_string(port_a) + " became healthy";
  const size_t healthy_before = Count(AgentLog(0), healthy);
  ASSERT_TRUE(ReloadWith(agent, port_a));
  ASSERT_TRUE(WaitFor([&] {
    return Count(AgentLog(0), healthy) > healthy_before;
  }, kDeadline)) << AgentLog(0);
  proxy.Release();

  // b's delete is issued after its reply, which follows a's: once b is
  // gone, a delete of a's node issued on a's reply would be applied too.
  ASSERT_TRUE(WaitFor([&] { return !Registered(svc_, port_b); }, kDeadline))
      << "a removed instance stayed registered; " << proxy.Describe()
      << "; agent log:\n" << AgentLog(0);
  auto kept = InstanceNode(svc_, port_a);
  ASSERT_TRUE(kept) << AgentLog(0);
  EXPECT_EQ(kept->stat.czxid, first->stat.czxid)
      << "a's node was deleted and made again:\n" << AgentLog(0);
  const std::string log = AgentLog(0);
  EXPECT_EQ(log.find("deregistered " + svc_ + "@127.0.0.1:" +
                     std::to_string(port_a)),
            std::string::npos) << log;
}

// Unhealthy while its registration is in flight, then changed (other check
// settings) before the reply comes: the new declaration holds the same
// registration, so the late reply is followed by a delete rather than
// forgotten with the old declaration.
TEST_F(AgentReloadDuringRegistrationTest, UnhealthyThenChangedBeforeTheReply) {
  int port_a = PickFreePort();
  TinyService a(port_a);
  ASSERT_TRUE(a.Start());
  ZkReplyDropper proxy(server()->port());
  ASSERT_TRUE(proxy.ok());
  proxy.HoldReplyTo(InstancePath(svc_, port_a));
  ChildProcess* agent = StartThrough(proxy, port_a);
  ASSERT_TRUE(WaitFor([&] { return proxy.held(); }, kDeadline))
      << proxy.Describe() << "\n" << AgentLog(0);
  ASSERT_TRUE(Registered(svc_, port_a)) << "applied at the server";
  a.Stop();
  const std::string unhealthy =
      "127.0.0.1:" + std::to_string(port_a) + " became unhealthy";
  ASSERT_TRUE(WaitFor([&] {
    return AgentLog(0).find(unhealthy) != std::string::npos;
  }, kDeadline)) << AgentLog(0);
  // The new checks start from that verdict: nothing for them to register.
  ASSERT_TRUE(ReloadWith(agent, port_a, "150ms"));
  ASSERT_NE(AgentLog(0).find("1 changed"), std::string::npos) << AgentLog(0);
  proxy.Release();

  ASSERT_TRUE(WaitFor([&] { return !Registered(svc_, port_a); }, kDeadline))
      << "an unhealthy instance stayed registered; " << proxy.Describe()
      << "; agent log:\n" << AgentLog(0);
  EXPECT_EQ(AgentLog(0).find("session expired"), std::string::npos)
      << AgentLog(0);
}

// The reply is lost (the proxy drops it and refuses reconnects) and the
// reload removes the instance before the agent can learn the outcome.
TEST_F(AgentReloadDuringRegistrationTest, OutcomeUnknownAtTheRemoval) {
  int port_a = PickFreePort(), port_b = PickFreePort();
  TinyService a(port_a), b(port_b);
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  ZkReplyDropper proxy(server()->port());
  ASSERT_TRUE(proxy.ok());
  proxy.DropReplyTo(InstancePath(svc_, port_a));
  ChildProcess* agent = StartThrough(proxy, port_a);
  ASSERT_TRUE(WaitFor([&] {
    return AgentLog(0).find("could not register") != std::string::npos;
  }, kDeadline)) << proxy.Describe() << "\n" << AgentLog(0);
  ASSERT_TRUE(proxy.dropped());
  ASSERT_EQ(proxy.dropped_error(), 0) << "the server applied the registration";
  ASSERT_TRUE(Registered(svc_, port_a));
  ASSERT_TRUE(ReloadWith(agent, port_b));
  proxy.Release();

  ASSERT_TRUE(WaitFor([&] { return !Registered(svc_, port_a); }, kDeadline))
      << "a removed instance stayed registered; " << proxy.Describe()
      << "; agent log:\n" << AgentLog(0);
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port_b); }, kDeadline))
      << AgentLog(0);
  const std::string log = AgentLog(0);
  EXPECT_NE(log.find("whose reply was lost: it was applied"),
            std::string::npos) << log;
  EXPECT_EQ(log.find("session expired"), std::string::npos) << log;
}

TEST_F(AgentTest, SigtermDeregistersAndExitsZero) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  ChildProcess* agent = StartAgent(With(
      FastChecks("h10"), {"--instance", svc_ + "@127.0.0.1:" + std::to_string(port)}));
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
  agent->Signal(SIGTERM);
  auto code = agent->Wait(kDeadline);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  EXPECT_FALSE(Registered(svc_, port));
  EXPECT_FALSE(zk_->ExistsSync("/agents/h10")->has_value());
}

TEST_F(AgentTest, BadConfigExitsTwoNamingFileAndKey) {
  std::string cfg = dir_.Write(
      "bad.conf", "zk = " + connect_string() +
                      "\n[instance.web]\nservice = web\nip = 10.0.0.300\nport = 80\n");
  auto r = RunCommand({ZKROLL_AGENT_BIN, "--config", cfg}, kDeadline);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(cfg + ":4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("instance.web.ip"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("10.0.0.300"), std::string::npos) << r.output;

  std::string cfg2 = dir_.Write("bad2.conf", "zk = x:1\n[instance.web]\nservice = web\n"
                                             "ip = 10.0.0.1\nport = 80\ncheck = ftp\n");
  r = RunCommand({ZKROLL_AGENT_BIN, "--config", cfg2}, kDeadline);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("instance.web.check"), std::string::npos) << r.output;

  r = RunCommand({ZKROLL_AGENT_BIN, "--zk", connect_string(), "--instance",
                  "level@1.2.3.4"}, kDeadline);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--instance"), std::string::npos) << r.output;

  r = RunCommand({ZKROLL_AGENT_BIN, "--bogus"}, kDeadline);
  EXPECT_EQ(r.exit_code, 2) << r.output;

  std::string open_auth = dir_.Write("auth", "agent:pw\n", 0644);
  r = RunCommand({ZKROLL_AGENT_BIN, "--zk", connect_string(), "--auth-file",
                  open_auth}, kDeadline);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("chmod 600"), std::string::npos) << r.output;
}

TEST_F(AgentTest, HelpAndVersion) {
  auto r = RunCommand({ZKROLL_AGENT_BIN, "--help"}, kDeadline);
  EXPECT_EQ(r.exit_code, 0);
  for (const char* opt : {"--zk", "--config", "--config-dir", "--instance",
                          "--session-timeout", "--auth-file", "SIGHUP"}) {
    EXPECT_NE(r.output.find(opt), std::string::npos) << opt;
  }
  r = RunCommand({ZKROLL_AGENT_BIN, "--version"}, kDeadline);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output,
            "zkroll-agent " ZKROLL_VERSION " (git " ZKROLL_GIT_REVISION ")\n");
}

TEST_F(AgentTest, ConfigDirDeclaresInstances) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  TempDir confd;
  confd.Write("level.conf", "[instance.level]\nservice = " + svc_ + "\nip = 127.0.0.1\nport = " +
                                std::to_string(port) +
                                "\ncheck = http:/healthz\ninterval = 100ms\nrise = 1\n"
                                "weight = 5\nmetadata = zone=a,rack=3\n"
                                "payload = {\"zone\": \"a\"}\n"
                                "uri_spec = {scheme}://{address}:{port}/x\n"
                                "ssl_port = 9443\n");
  confd.Write("ignored.txt", "not a config");
  StartAgent({"--host", "h11", "--config-dir", confd.path()});
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline));
  auto rec = ParsePayload<proto::InstanceRecord>(InstanceNode(svc_, port)->data, "n");
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->weight(), 5u);
  EXPECT_EQ(rec->metadata().at("rack"), "3");
  EXPECT_EQ(rec->check(), "http:/healthz");
  EXPECT_EQ(rec->payload().fields().at("zone").string_value(), "a");
  EXPECT_EQ(FormatUriSpec(rec->urispec()), "{scheme}://{address}:{port}/x");
  EXPECT_EQ(rec->sslport(), 9443u);
}

}  // namespace
}  // namespace zkroll::testing
