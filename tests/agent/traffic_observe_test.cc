// Traffic observation end to end: a real ZooKeeper server, a real
// zkroll-agent, a real instance (zkroll-demo-service) and a real caller
// process (zkroll-test-caller). The test writes /drain/<service>/<ip>_<port>
// as a coordinator would and reads the agent's /traffic report.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <sstream>

#include "common/clock.h"
#include "tests/agent/agent_fixture.h"

namespace zkroll::testing {
namespace {

constexpr milliseconds kDeadline(20000);

bool Accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

class TrafficObserveTest : public AgentTest {
 protected:
  // Started through this (e.g. setpriv), if not empty.
  virtual std::vector<std::string> AgentWrapper() { return {}; }

  // Forwarding mode: the agent listens on port_ and forwards to the
  // service on backend_port_.
  virtual bool Forwarded() { return false; }

  void SetUp() override {
    AgentTest::SetUp();
    port_ = PickFreePort();
    int service_port = port_;
    if (Forwarded()) {
      do {
        backend_port_ = PickFreePort();
      } while (backend_port_ == port_);
      service_port = backend_port_;
    }
    ASSERT_TRUE(service_
                    .Start({ZKROLL_DEMO_SERVICE_BIN, "--port",
                            std::to_string(service_port), "--version", "v1"},
                           dir_.File("service.log"))
                    .ok());
    ASSERT_TRUE(WaitFor([&] { return Accepts(service_port); }, kDeadline));
    // Checks every 100 ms: the agent's own connections must not count.
    std::vector<std::string> args = {
        "--host", "h1", "--resync", "500ms", "--session-timeout", "4s"};
    if (Forwarded()) {
      std::ostringstream c;
      c << "[instance.fwd]\nservice = " << svc_
        << "\nip = 127.0.0.1\nport = " << port_ << "\ncheck = " << check_
        << "\ninterval = 100ms\ntimeout = 200ms\nrise = 1\nfall = 2\n"
        << "forward_backend = 127.0.0.1:" << backend_port_ << "\n";
      args.push_back("--config");
      args.push_back(dir_.Write("agent.conf", c.str()));
    } else {
      for (const std::string& a :
           {std::string("--interval"), std::string("100ms"),
            std::string("--timeout"), std::string("200ms"),
            std::string("--rise"), std::string("1"), std::string("--fall"),
            std::string("2"), std::string("--check"), check_,
            std::string("--instance"),
            svc_ + "@127.0.0.1:" + std::to_string(port_)}) {
        args.push_back(a);
      }
    }
    StartAgent(args, {}, AgentWrapper());
    ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port_); }, kDeadline));
    address_ = InstanceAddress::FromParts("127.0.0.1", port_).value();
    service_name_ = ServiceName::Parse(svc_).value();
  }

  void TearDown() override {
    if (caller_) caller_->Signal(SIGKILL);
    service_.Signal(SIGKILL);
    AgentTest::TearDown();
  }

  // Starts the caller and returns once it is connected.
  void StartCaller() {
    caller_ = std::make_unique<ChildProcess>();
    ASSERT_TRUE(
        caller_
            ->Start({ZKROLL_TEST_CALLER_BIN, "--connect",
                     "127.0.0.1:" + std::to_string(port_), "--every-ms", "20"},
                    dir_.File("caller.log"))
            .ok());
    ASSERT_TRUE(WaitFor(
        [&] {
          return caller_->Output().find("connected") != std::string::npos;
        },
        kDeadline))
        << caller_->Output();
  }

  std::string RequestPath() const {
    return paths::DrainRequestNode(service_name_, address_);
  }
  std::string TrafficPath() const {
    return paths::TrafficNode(service_name_, address_);
  }

  // Writes a drain request as the coordinator does: ephemeral, owned by
  // `who`.
  void Request(ZkSession* who, const std::string& payload) {
    ASSERT_TRUE(
        who->EnsurePathSync(paths::DrainDir(service_name_), OpenAcl()).ok());
    auto r = who->CreateSync(RequestPath(), payload, CreateMode::kEphemeral,
                             OpenAcl());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }

  static std::string RequestJson(const std::string& deploy_id) {
    proto::DrainRequest q;
    q.set_deploy_id(deploy_id);
    q.set_by("test@host");
    q.set_pid(getpid());
    *q.mutable_since() = NowTimestamp();
    q.set_interval_ms(100);
    return ToJson(q);
  }

  std::optional<proto::TrafficReport> Report() {
    auto d = zk_->GetSync(TrafficPath());
    if (!d.ok()) return std::nullopt;
    auto r = ParsePayload<proto::TrafficReport>(d->data, TrafficPath());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return std::nullopt;
    return *r;
  }

  bool TrafficNodeExists() {
    auto e = zk_->ExistsSync(TrafficPath());
    return e.ok() && e->has_value();
  }

  // Waits until the agent's report satisfies `f`; the last report read is
  // kept in seen_ for the assertions and failure messages that follow.
  bool WaitForReport(
      const std::function<bool(const proto::TrafficReport&)>& f) {
    return WaitForValue<proto::TrafficReport>([&] { return Report(); }, f,
                                              &seen_, kDeadline);
  }

  static const proto::TrafficReport::Peer* PeerWithPid(
      const proto::TrafficReport& r, int64_t pid) {
    for (const auto& p : r.peers()) {
      if (p.pid() == pid) return &p;
    }
    return nullptr;
  }

  int port_ = 0;
  int backend_port_ = 0;
  std::string check_ = "tcp";
  InstanceAddress address_;
  ServiceName service_name_;
  ChildProcess service_;
  std::unique_ptr<ChildProcess> caller_;
  proto::TrafficReport seen_;
};

TEST_F(TrafficObserveTest, ReportsCallerPidBytesAndQuietThenStops) {
  StartCaller();
  Request(zk_.get(), RequestJson("d-1"));

  // The caller's process, its bytes, and its established connection.
  ASSERT_TRUE(WaitForReport([&](const proto::TrafficReport& r) {
    const auto* p = PeerWithPid(r, caller_->pid());
    return p && p->bytes_received() > 0 && p->connections() == 1;
  })) << "last report: "
      << ToJson(seen_) << "\n"
      << AgentLog(0);
  EXPECT_EQ(seen_.deploy_id(), "d-1");
  EXPECT_EQ(seen_.source(), "sock_diag");
  EXPECT_TRUE(seen_.pids_known()) << seen_.error();
  EXPECT_EQ(seen_.host(), "h1");
  EXPECT_FALSE(seen_.hostname().empty());
  EXPECT_EQ(seen_.interval_ms(), 100u);
  EXPECT_GT(seen_.bytes_received(), 0u);
  EXPECT_EQ(seen_.connections(), 1u)
      << "the agent's own checks are left out: " << ToJson(seen_);
  const auto* peer = PeerWithPid(seen_, caller_->pid());
  EXPECT_EQ(peer->ip(), "127.0.0.1");
  uint64_t first_sequence = seen_.sequence();

  // The caller goes silent but keeps its connection: quiet grows past a
  // second although the agent checks the port every 100 ms.
  caller_->Signal(SIGUSR1);
  ASSERT_TRUE(WaitFor(
      [&] { return caller_->Output().find("silent") != std::string::npos; },
      kDeadline));
  ASSERT_TRUE(WaitForReport([&](const proto::TrafficReport& r) {
    return r.quiet_ms() >= 1000;
  })) << "last report: "
      << ToJson(seen_);
  EXPECT_GT(seen_.sequence(), first_sequence);
  EXPECT_EQ(seen_.connections(), 1u) << "silent, still established";
  peer = PeerWithPid(seen_, caller_->pid());
  ASSERT_NE(peer, nullptr);
  EXPECT_EQ(peer->connections(), 1u);
  EXPECT_GE(peer->idle_ms(), 1000u);
  // No new connection was counted for the agent's own checks.
  EXPECT_EQ(seen_.connections_total(), 0u) << ToJson(seen_);

  // The request goes: the report goes, and sampling stops.
  ASSERT_TRUE(zk_->DeleteSync(RequestPath(), -1).ok());
  ASSERT_TRUE(WaitFor([&] { return !TrafficNodeExists(); }, kDeadline));
  ASSERT_TRUE(WaitFor(
      [&] {
        return AgentLog(0).find("stopped observing the traffic of " + svc_) !=
               std::string::npos;
      },
      kDeadline))
      << AgentLog(0);
  EXPECT_NE(AgentLog(0).find("the drain request is gone"), std::string::npos);
  EXPECT_FALSE(TrafficNodeExists()) << "nothing publishes after the stop";
}

TEST_F(TrafficObserveTest, ExpiredRequesterStopsObservation) {
  auto coordinator = Connect();
  Request(coordinator.get(), RequestJson("d-2"));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = Report();
        return r && r->deploy_id() == "d-2" && r->samples() >= 2;
      },
      kDeadline))
      << AgentLog(0);
  // The coordinator's session ends: its request goes with it.
  ASSERT_TRUE(server()
                  ->ExpireSession(coordinator->session_id(),
                                  coordinator->session_password())
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return !TrafficNodeExists(); }, kDeadline))
      << AgentLog(0);
  EXPECT_NE(AgentLog(0).find("stopped observing the traffic of " + svc_),
            std::string::npos);
}

TEST_F(TrafficObserveTest, AgentSessionExpiryRepublishesTheReport) {
  Request(zk_.get(), RequestJson("d-8"));
  std::optional<proto::TrafficReport> before;
  ASSERT_TRUE(WaitFor(
      [&] {
        before = Report();
        return before && before->samples() >= 2;
      },
      kDeadline))
      << AgentLog(0);
  // Frozen past its session timeout (4 s): the server expires the agent's
  // session, and the report, an ephemeral of that session, goes with it.
  agents_[0]->Signal(SIGSTOP);
  bool gone = WaitFor([&] { return !TrafficNodeExists(); }, kDeadline);
  agents_[0]->Signal(SIGCONT);
  ASSERT_TRUE(gone);
  // Back on a new session: the request is read again and the report comes
  // back, continuing the same observation.
  std::optional<proto::TrafficReport> after;
  ASSERT_TRUE(WaitFor(
      [&] {
        after = Report();
        return after && after->deploy_id() == "d-8";
      },
      kDeadline))
      << AgentLog(0);
  EXPECT_GT(after->observed_ms(), before->observed_ms() + 3000)
      << "observation went on across the expiry";
  EXPECT_NE(AgentLog(0).find("session expired"), std::string::npos);
}

TEST_F(TrafficObserveTest, HostileRequestsAreSkippedAndAgentKeepsRunning) {
  const std::vector<std::string> hostile = {
      "{not json",
      R"({"deploy_id": 7, "interval_ms": "fast"})",
      R"({"deploy_id": ""})",
      "{\"deploy_id\": \"" + std::string(70 * 1024, 'x') + "\"}",
      std::string("\xff\xfe\x00\x01", 4),
  };
  size_t skipped_before = 0;
  for (const std::string& payload : hostile) {
    Request(zk_.get(), payload);
    ASSERT_TRUE(WaitFor(
        [&] {
          std::string log = AgentLog(0);
          size_t n = 0;
          for (size_t at = log.find("is not valid; not observing");
               at != std::string::npos;
               at = log.find("is not valid; not observing", at + 1)) {
            ++n;
          }
          return n > skipped_before;
        },
        kDeadline))
        << "payload " << payload.substr(0, 60) << "\n"
        << AgentLog(0);
    ++skipped_before;
    EXPECT_FALSE(TrafficNodeExists());
    ASSERT_TRUE(zk_->DeleteSync(RequestPath(), -1).ok());
  }
  EXPECT_TRUE(agents_[0]->running());
  // Still serving: a good request is observed.
  Request(zk_.get(), RequestJson("d-3"));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = Report();
        return r && r->deploy_id() == "d-3";
      },
      kDeadline))
      << AgentLog(0);
  EXPECT_TRUE(Registered(svc_, port_));
}

class TrafficObserveHttpCheckTest : public TrafficObserveTest {
 protected:
  TrafficObserveHttpCheckTest() { check_ = "http:/"; }
};

TEST_F(TrafficObserveHttpCheckTest, OwnHttpChecksAreNotTraffic) {
  Request(zk_.get(), RequestJson("d-4"));
  ASSERT_TRUE(WaitForReport([&](const proto::TrafficReport& r) {
    return r.quiet_ms() >= 1000;
  })) << "last report: "
      << ToJson(seen_) << "\n"
      << AgentLog(0);
  EXPECT_EQ(seen_.connections_total(), 0u) << ToJson(seen_);
  EXPECT_EQ(seen_.bytes_received(), 0u) << ToJson(seen_);
  // A caller that connects now is seen as a new connection.
  StartCaller();
  ASSERT_TRUE(WaitForReport([&](const proto::TrafficReport& r) {
    const auto* p = PeerWithPid(r, caller_->pid());
    return p && p->connections_total() == 1 && r.quiet_ms() < 1000;
  })) << "last report: "
      << ToJson(seen_);
}

class TrafficObserveForwardedTest : public TrafficObserveTest {
 protected:
  bool Forwarded() override { return true; }
};

TEST_F(TrafficObserveForwardedTest, ForwardedInstanceAddsForwarderCounters) {
  StartCaller();
  Request(zk_.get(), RequestJson("d-7"));
  // The caller talks to the agent's forwarder on the public port; its pid
  // is still found, and the forwarder's own counters come along.
  ASSERT_TRUE(WaitForReport([&](const proto::TrafficReport& r) {
    const auto* p = PeerWithPid(r, caller_->pid());
    return p && p->bytes_received() > 0 && r.forwarder_active() >= 1;
  })) << "last report: "
      << ToJson(seen_) << "\n"
      << AgentLog(0);
  EXPECT_EQ(seen_.source(), "sock_diag+forwarder");
  EXPECT_TRUE(seen_.pids_known()) << seen_.error();
  EXPECT_EQ(seen_.connections(), 1u) << ToJson(seen_);
  // Silent caller: the socket view goes quiet although the agent's checks
  // pass through the forwarder every 100 ms.
  caller_->Signal(SIGUSR1);
  ASSERT_TRUE(WaitForReport([&](const proto::TrafficReport& r) {
    return r.quiet_ms() >= 1000;
  })) << "last report: "
      << ToJson(seen_);
  EXPECT_GE(seen_.forwarder_active(), 1u);
  EXPECT_EQ(seen_.connections_total(), 0u) << ToJson(seen_);
}

// Privileges. The packaged agent runs as an unprivileged user; these tests
// run it as `nobody` (setpriv) against a caller of another user (root, the
// test's own user), once without capabilities and once with the ambient
// CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH that docs/agent.md tells systemd
// to grant.
constexpr char kSetpriv[] = "/usr/bin/setpriv";

bool CanChangeUser() { return getuid() == 0 && access(kSetpriv, X_OK) == 0; }

class TrafficObserveUnprivilegedTest : public TrafficObserveTest {
 protected:
  std::vector<std::string> AgentWrapper() override {
    return {kSetpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--"};
  }
  void SetUp() override {
    if (!CanChangeUser()) {
      GTEST_SKIP() << "needs root and " << kSetpriv
                   << " to run the agent as another user";
    }
    TrafficObserveTest::SetUp();
  }
};

TEST_F(TrafficObserveUnprivilegedTest, OtherUsersPeersArePidZeroAndSaySo) {
  StartCaller();
  Request(zk_.get(), RequestJson("d-5"));
  ASSERT_TRUE(WaitForReport([&](const proto::TrafficReport& r) {
    return r.bytes_received() > 0 && r.peers_size() > 0;
  })) << "last report: "
      << ToJson(seen_) << "\n"
      << AgentLog(0);
  // Traffic is still seen; only the process is not.
  EXPECT_EQ(seen_.source(), "sock_diag");
  EXPECT_FALSE(seen_.pids_known());
  EXPECT_NE(seen_.error().find("CAP_SYS_PTRACE"), std::string::npos)
      << seen_.error();
  EXPECT_EQ(PeerWithPid(seen_, caller_->pid()), nullptr);
  EXPECT_NE(PeerWithPid(seen_, 0), nullptr);
  ASSERT_TRUE(WaitFor(
      [&] { return AgentLog(0).find("observed in part") != std::string::npos; },
      kDeadline))
      << AgentLog(0);
}

class TrafficObservePtraceTest : public TrafficObserveUnprivilegedTest {
 protected:
  std::vector<std::string> AgentWrapper() override {
    return {kSetpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+sys_ptrace,+dac_read_search",
            "--ambient-caps=+sys_ptrace,+dac_read_search",
            "--bounding-set=-all,+sys_ptrace,+dac_read_search",
            "--"};
  }
};

TEST_F(TrafficObservePtraceTest, AmbientCapabilitiesMapOtherUsersPeers) {
  StartCaller();
  Request(zk_.get(), RequestJson("d-6"));
  ASSERT_TRUE(WaitForReport([&](const proto::TrafficReport& r) {
    const auto* p = PeerWithPid(r, caller_->pid());
    return p && p->bytes_received() > 0;
  })) << "last report: "
      << ToJson(seen_) << "\n"
      << AgentLog(0);
  EXPECT_TRUE(seen_.pids_known()) << seen_.error();
  EXPECT_TRUE(seen_.error().empty()) << seen_.error();
}

}  // namespace
}  // namespace zkroll::testing
