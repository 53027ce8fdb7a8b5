// Faults of the agent process itself: SIGKILL while one of its instances is
// paused (then a restart), and SIGSTOP past its session timeout (then
// SIGCONT). The tests print the measured recovery times.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/registry.h"
#include "tests/faults/fault_fixture.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

// Every creation and deletion of one node, seen through an exists-watch
// that is re-armed on each event. A watch armed before the node is created
// fires for that creation however briefly the node lives, so a registration
// that exists for a moment cannot slip between two polls.
class NodeChangeLog : public std::enable_shared_from_this<NodeChangeLog> {
 public:
  // Arms the first watch before returning.
  static std::shared_ptr<NodeChangeLog> Start(ZkSession* zk,
                                              const std::string& path) {
    auto log = std::shared_ptr<NodeChangeLog>(new NodeChangeLog(zk, path));
    std::weak_ptr<NodeChangeLog> weak = log;
    auto armed = zk->ExistsSync(path, [weak](const WatchEvent& e) {
      if (auto self = weak.lock()) self->OnEvent(e);
    });
    EXPECT_TRUE(armed.ok()) << armed.status().ToString();
    return log;
  }

  // "created" / "deleted", in the order the watches fired.
  std::vector<std::string> changes() const {
    std::lock_guard<std::mutex> l(mu_);
    return changes_;
  }
  int Count(const std::string& change) const {
    std::lock_guard<std::mutex> l(mu_);
    return static_cast<int>(
        std::count(changes_.begin(), changes_.end(), change));
  }

 private:
  NodeChangeLog(ZkSession* zk, std::string path)
      : zk_(zk), path_(std::move(path)) {}

  // Runs on the session's executor: record, then re-arm asynchronously.
  void OnEvent(const WatchEvent& e) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (e.type == WatchEvent::Type::kCreated) changes_.push_back("created");
      if (e.type == WatchEvent::Type::kDeleted) changes_.push_back("deleted");
    }
    std::weak_ptr<NodeChangeLog> weak = weak_from_this();
    zk_->Exists(
        path_,
        [weak](const WatchEvent& next) {
          if (auto self = weak.lock()) self->OnEvent(next);
        },
        [](const Result<std::optional<NodeStat>>&) {});
  }

  ZkSession* zk_;
  const std::string path_;
  mutable std::mutex mu_;
  std::vector<std::string> changes_;
};

class AgentFaultTest : public FaultTest {
 protected:
  // Pauses svc_@127.0.0.1:port the way a deploy does, with an ephemeral
  // flag of the test's own session.
  void PauseFromTest(int port) {
    ASSERT_TRUE(zk_->EnsurePathSync(paths::kPauseRoot, OpenAcl()).ok());
    proto::PauseFlag flag;
    flag.set_by("fault-test");
    flag.set_reason("fault injection");
    flag.set_pid(::getpid());
    auto r = registry::Pause(*zk_, *ServiceName::Parse(svc_),
                             *InstanceAddress::FromParts("127.0.0.1", port),
                             ToJson(flag), CreateMode::kEphemeral, OpenAcl());
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  }
  // The pid in /agents/<host>, 0 if the node is missing or unreadable.
  int64_t AgentPid(const std::string& host) {
    auto node = Get(paths::AgentNode(*HostId::Parse(host)));
    if (!node) return 0;
    auto rec = ParsePayload<proto::AgentRecord>(node->data, "agent");
    return rec.ok() ? rec->pid() : 0;
  }
  int64_t Owner(const std::string& path) {
    auto node = Get(path);
    return node ? node->stat.ephemeral_owner : 0;
  }
};

// Fault: the agent is SIGKILLed while one of its instances is paused, and
// restarted (systemd's Restart=always). Expected: the restarted agent reads
// the flags before it registers anything, so the paused (healthy) instance
// stays unregistered through many passing checks, and is registered on the
// first check after the flag is removed.
TEST_F(AgentFaultTest, KilledWhilePausedRegistersOnlyAfterTheFlagGoes) {
  StartFleet(1);
  if (HasFatalFailure()) return;
  const int port = services_[0]->port();
  PauseFromTest(port);
  if (HasFatalFailure()) return;
  ASSERT_FALSE(Registered(port));

  const auto killed = FaultClock::now();
  children_.back()->Signal(SIGKILL);
  ASSERT_EQ(children_.back()->Wait(milliseconds(10000)), 128 + SIGKILL);
  ChildProcess* agent = StartAgent("host-a", {Instance(port)});
  ASSERT_TRUE(WaitFor(
      [&] {
        auto v = AgentView("host-a", port);
        return AgentPid("host-a") == agent->pid() && v && v->paused();
      },
      milliseconds(20000)))
      << AgentLogs();
  Report("agent SIGKILL while paused, restarted",
         "new agent published the instance as paused", MillisSince(killed));
  // Several passing checks of a healthy, paused instance: still out.
  ASSERT_TRUE(WaitForChecks("host-a", port, 3, milliseconds(20000)))
      << AgentLogs();
  EXPECT_FALSE(Registered(port)) << "registered while paused\n" << AgentLogs();
  EXPECT_TRUE(AgentView("host-a", port)->healthy());

  const auto lifted = FaultClock::now();
  ASSERT_TRUE(zk_->DeleteSync(FlagPath(port)).ok());
  ASSERT_TRUE(WaitFor([&] { return Registered(port); }, milliseconds(20000)))
      << AgentLogs();
  Report("agent SIGKILL while paused, restarted",
         "registered after the flag was removed", MillisSince(lifted));
  EXPECT_EQ(RegistrationCount(port), 1);
  EXPECT_EQ(Owner(InstancePath(port)),
            Owner(paths::AgentNode(*HostId::Parse("host-a"))))
      << "the registration is not the new agent's";
}

// Fault: the agent is frozen (SIGSTOP) past its 2s session timeout, then
// resumed. Expected: its session expired on the server, taking the
// unpaused instance's registration with it; on SIGCONT the agent notices the
// expiry, opens a new session and registers the unpaused instance exactly
// once, owned by the new session, and never the paused one.
TEST_F(AgentFaultTest, FrozenPastSessionTimeoutReRegistersOnceNeverPaused) {
  StartFleet(2);
  if (HasFatalFailure()) return;
  const std::vector<int> ports = Ports();
  const int paused = ports[0], unpaused = ports[1];
  PauseFromTest(paused);
  if (HasFatalFailure()) return;
  ASSERT_FALSE(Registered(paused));
  const int64_t old_owner = Owner(InstancePath(unpaused));
  ASSERT_NE(old_owner, 0);

  ChildProcess* agent = children_.back().get();
  const auto stopped = FaultClock::now();
  agent->Signal(SIGSTOP);
  ASSERT_TRUE(
      WaitFor([&] { return !Registered(unpaused); }, milliseconds(20000)))
      << "the frozen agent's session never expired";
  Report("agent SIGSTOP past session timeout",
         "registration removed by session expiry", MillisSince(stopped));
  EXPECT_FALSE(Registered(paused));

  // Watched from before SIGCONT: any registration of the paused instance,
  // however short-lived, and every change of the unpaused one's.
  auto paused_log = NodeChangeLog::Start(zk_.get(), InstancePath(paused));
  auto unpaused_log = NodeChangeLog::Start(zk_.get(), InstancePath(unpaused));
  const auto resumed = FaultClock::now();
  agent->Signal(SIGCONT);
  ASSERT_TRUE(WaitFor(
      [&] {
        int64_t o = Owner(InstancePath(unpaused));
        return o != 0 && o != old_owner;
      },
      milliseconds(20000)))
      << AgentLogs();
  Report("agent SIGSTOP past session timeout",
         "re-registered on a new session after SIGCONT", MillisSince(resumed));
  // Let the agent run several checks and a resync; the picture must hold.
  ASSERT_TRUE(WaitForChecks("host-a", paused, 3, milliseconds(20000)))
      << AgentLogs();
  ASSERT_TRUE(WaitForChecks("host-a", unpaused, 3, milliseconds(20000)))
      << AgentLogs();
  EXPECT_EQ(paused_log->changes(), std::vector<std::string>{})
      << "the paused instance was registered at some point\n"
      << AgentLogs();
  // Registered again exactly once, and never taken away since.
  EXPECT_EQ(unpaused_log->changes(), std::vector<std::string>{"created"})
      << AgentLogs();
  EXPECT_EQ(RegistrationCount(unpaused), 1);
  EXPECT_EQ(RegistrationCount(paused), 0) << AgentLogs();
  EXPECT_EQ(Owner(InstancePath(unpaused)),
            Owner(paths::AgentNode(*HostId::Parse("host-a"))));
  auto v = AgentView("host-a", paused);
  ASSERT_TRUE(v.has_value());
  EXPECT_TRUE(v->paused());
  EXPECT_FALSE(v->registered());
  EXPECT_TRUE(agent->running());
}

}  // namespace
}  // namespace zkroll::testing
