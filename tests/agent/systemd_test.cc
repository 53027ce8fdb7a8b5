// zkroll-agent under systemd's notify protocol, as a real process against a
// real ZooKeeper server. The test plays systemd: it binds the unix datagram
// socket named by NOTIFY_SOCKET and reads what the agent sends (READY=1,
// STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1), and it delivers signals at
// the awkward moments: before the agent's first instruction and while
// ZooKeeper is down.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <sstream>

#include "common/clock.h"
#include "tests/agent/agent_fixture.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

constexpr milliseconds kDeadline(20000);

// The receiving end of sd_notify(3): one datagram per message, each one or
// more "KEY=VALUE" lines.
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    bound_ = fd_ >= 0 && path_.size() < sizeof addr.sun_path &&
             ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  bool bound() const { return bound_; }
  const std::string& path() const { return path_; }

  // Every message received so far, oldest first.
  const std::vector<std::string>& Messages() {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0) break;
      messages_.emplace_back(buf, static_cast<size_t>(n));
    }
    return messages_;
  }
  // Index of the first message from `from` on holding the line `line`, or -1.
  int Find(const std::string& line, size_t from = 0) {
    const auto& m = Messages();
    for (size_t i = from; i < m.size(); ++i) {
      if (!ValueOf(m[i], line).empty() || HasLine(m[i], line)) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  int Count(const std::string& line) {
    int n = 0;
    for (const auto& m : Messages()) n += HasLine(m, line) ? 1 : 0;
    return n;
  }
  // The most recent STATUS= value.
  std::string LastStatus() {
    std::string last;
    for (const auto& m : Messages()) {
      std::string v = ValueOf(m, "STATUS");
      if (!v.empty()) last = v;
    }
    return last;
  }
  std::string Dump() {
    std::string out;
    for (const auto& m : Messages()) out += "[" + m + "]\n";
    return out;
  }

  static bool HasLine(const std::string& message, const std::string& line) {
    std::istringstream in(message);
    for (std::string l; std::getline(in, l);) {
      if (l == line) return true;
    }
    return false;
  }
  static std::string ValueOf(const std::string& message, const std::string& key) {
    std::istringstream in(message);
    for (std::string l; std::getline(in, l);) {
      if (l.rfind(key + "=", 0) == 0) return l.substr(key.size() + 1);
    }
    return "";
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
  std::vector<std::string> messages_;
};

// Checks every 100ms against ports that answer or refuse at once; the long
// timeout keeps a slow machine from turning a pass into a failure (which
// would change what READY reports).
std::vector<std::string> FastChecks(const std::string& host) {
  return {"--host", host, "--interval", "100ms", "--timeout", "5s",
          "--rise", "2", "--fall", "2", "--resync", "200ms",
          "--session-timeout", "4s"};
}

class SystemdTest : public AgentTest {
 protected:
  std::string Instance(int port) const {
    return svc_ + "@127.0.0.1:" + std::to_string(port);
  }
  std::vector<std::string> Args(const std::string& host,
                                const std::vector<int>& ports) const {
    std::vector<std::string> a = FastChecks(host);
    for (int p : ports) {
      a.push_back("--instance");
      a.push_back(Instance(p));
    }
    return a;
  }
};

TEST_F(SystemdTest, ReadyOnlyAfterTheFirstReconcileWithASummary) {
  // Three instances, one of each start-up outcome: healthy (registered),
  // down (a failed check decides it stays out), paused (flag read first).
  int up = PickFreePort(), down = PickFreePort(), held = PickFreePort();
  TinyService a(up), c(held);
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(c.Start());
  proto::PauseFlag flag;
  flag.set_by("test@host");
  flag.set_reason("held for the test");
  *flag.mutable_since() = NowTimestamp();
  // The pause is made the way the coordinator makes it, which needs the
  // service's directory (normally created by an agent).
  ASSERT_TRUE(zk_->EnsurePathSync(
                     paths::ServiceDir(ServiceName::Parse(svc_).value()), OpenAcl())
                  .ok());
  Status paused = Pause(zk_.get(), svc_, held, ToJson(flag), CreateMode::kPersistent);
  ASSERT_TRUE(paused.ok()) << paused.ToString();

  NotifySocket notify(dir_.File("notify.sock"));
  ASSERT_TRUE(notify.bound()) << notify.path() << ": " << strerror(errno);
  // A watchdog request addressed to another process (WATCHDOG_PID) is not
  // ours to answer.
  StartAgent(Args("sd1", {up, down, held}),
             {{"NOTIFY_SOCKET", notify.path()},
              {"WATCHDOG_USEC", "100000"},
              {"WATCHDOG_PID", "1"}});

  ASSERT_TRUE(WaitFor([&] { return notify.Find("READY=1") >= 0; }, kDeadline))
      << notify.Dump();
  // READY's own status is computed when READY is sent, from states the
  // agent only sets on ZooKeeper's answers.
  const int ready = notify.Find("READY=1");
  const std::string& ready_msg = notify.Messages()[ready];
  EXPECT_EQ(NotifySocket::ValueOf(ready_msg, "STATUS"),
            "3 instances: 1 registered, 1 paused, 1 unhealthy; zk connected")
      << notify.Dump();
  EXPECT_TRUE(Registered(svc_, up));
  EXPECT_FALSE(Registered(svc_, held));
  // Before READY: only start-up status lines.
  ASSERT_GE(ready, 1) << notify.Dump();
  for (int i = 0; i < ready; ++i) {
    EXPECT_EQ(NotifySocket::ValueOf(notify.Messages()[i], "STATUS").rfind("starting: ", 0), 0u)
        << notify.Dump();
  }
  EXPECT_EQ(notify.Count("READY=1"), 1);
  // Nobody asked this agent for pings.
  EXPECT_EQ(notify.Count("WATCHDOG=1"), 0) << notify.Dump();
  EXPECT_EQ(AgentLog(0).find("systemd watchdog"), std::string::npos);
}

TEST_F(SystemdTest, WatchdogStatusReloadAndStopping) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  NotifySocket notify(dir_.File("notify.sock"));
  ASSERT_TRUE(notify.bound());
  // WatchdogSec=200ms: a ping every 100ms.
  ChildProcess* agent = StartAgent(
      Args("sd2", {port}),
      {{"NOTIFY_SOCKET", notify.path()}, {"WATCHDOG_USEC", "200000"}});
  ASSERT_TRUE(WaitFor([&] { return notify.Find("READY=1") >= 0; }, kDeadline))
      << notify.Dump() << AgentLog(0);
  EXPECT_NE(AgentLog(0).find("systemd watchdog: pinging every 100ms"),
            std::string::npos);
  const int ready = notify.Find("READY=1");
  ASSERT_TRUE(WaitFor([&] {
    int pings = 0;
    for (size_t i = ready; i < notify.Messages().size(); ++i) {
      pings += NotifySocket::HasLine(notify.Messages()[i], "WATCHDOG=1");
    }
    return pings >= 5;
  }, kDeadline)) << notify.Dump();

  // A state change shows in the status line.
  svc.Stop();
  ASSERT_TRUE(WaitFor([&] {
    return notify.LastStatus() == "1 instance: 0 registered, 1 unhealthy; zk connected";
  }, kDeadline)) << notify.Dump();

  // SIGHUP: RELOADING=1, then READY=1 again once applied.
  agent->Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return notify.Find("RELOADING=1") >= 0; }, kDeadline))
      << notify.Dump();
  const int reloading = notify.Find("RELOADING=1");
  EXPECT_FALSE(NotifySocket::ValueOf(notify.Messages()[reloading], "MONOTONIC_USEC").empty());
  ASSERT_TRUE(WaitFor([&] { return notify.Find("READY=1", reloading) >= 0; }, kDeadline))
      << notify.Dump();

  // SIGTERM: STOPPING=1 first, then a clean exit.
  agent->Signal(SIGTERM);
  auto code = agent->Wait(kDeadline);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  const int stopping = notify.Find("STOPPING=1");
  ASSERT_GT(stopping, notify.Find("READY=1", reloading)) << notify.Dump();
  for (size_t i = stopping; i < notify.Messages().size(); ++i) {
    EXPECT_FALSE(NotifySocket::HasLine(notify.Messages()[i], "READY=1"));
  }
}

TEST_F(SystemdTest, SignalsPendingAtTheFirstInstructionAreAppliedNotFatal) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  NotifySocket notify(dir_.File("notify.sock"));
  ASSERT_TRUE(notify.bound());
  std::vector<std::string> argv = {ZKROLL_AGENT_BIN, "--zk", connect_string(),
                                   "--metrics-listen", "127.0.0.1:0"};
  for (const auto& a : Args("sd3", {port})) argv.push_back(a);

  // SIGHUP is pending when the agent's main() starts (its default action
  // would kill it): it must be taken as a reload during start-up.
  ChildProcess hup;
  ASSERT_TRUE(hup.Start(argv, dir_.File("hup.log"),
                        {{"NOTIFY_SOCKET", notify.path()}}, {SIGHUP})
                  .ok());
  ASSERT_TRUE(WaitFor([&] {
    return hup.Output().find("reload applied") != std::string::npos || !hup.running();
  }, kDeadline)) << hup.Output();
  ASSERT_TRUE(hup.running()) << hup.Output();
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, kDeadline)) << hup.Output();
  ASSERT_TRUE(WaitFor([&] { return notify.Find("READY=1") >= 0; }, kDeadline))
      << notify.Dump();
  // A reload before READY is not announced: RELOADING=1 then READY=1 would
  // tell systemd the agent was ready before it was.
  EXPECT_EQ(notify.Find("RELOADING=1"), -1) << notify.Dump();
  hup.Signal(SIGTERM);
  auto code = hup.Wait(kDeadline);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << hup.Output();

  // SIGTERM pending at start: a clean shutdown (exit 0), not death by
  // signal (143) and not a SIGTERM that is never seen.
  ChildProcess term;
  ASSERT_TRUE(term.Start(argv, dir_.File("term.log"), {}, {SIGTERM}).ok());
  code = term.Wait(kDeadline);
  ASSERT_TRUE(code.has_value()) << term.Output();
  EXPECT_EQ(*code, 0) << term.Output();
  EXPECT_NE(term.Output().find("signal 15: deregistering"), std::string::npos)
      << term.Output();
}

TEST_F(SystemdTest, NotReadyWhileZooKeeperIsDownAndSighupThenIsHarmless) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  NotifySocket notify(dir_.File("notify.sock"));
  ASSERT_TRUE(notify.bound());
  zk_.reset();
  server()->Stop();
  ChildProcess* agent =
      StartAgent(Args("sd4", {port}), {{"NOTIFY_SOCKET", notify.path()}});
  const std::string waiting =
      "starting: 0 of 1 instance settled; zk connecting to " + connect_string();
  ASSERT_TRUE(WaitFor([&] { return notify.LastStatus() == waiting; }, kDeadline))
      << notify.Dump();
  agent->Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] {
    return AgentLog(0).find("reload applied") != std::string::npos;
  }, kDeadline)) << AgentLog(0);
  EXPECT_TRUE(agent->running());
  EXPECT_EQ(notify.Find("READY=1"), -1) << notify.Dump();

  ASSERT_TRUE(server()->Start().ok());
  zk_ = Connect();
  ASSERT_TRUE(WaitFor([&] { return notify.Find("READY=1") >= 0; }, kDeadline))
      << notify.Dump() << AgentLog(0);
  EXPECT_TRUE(Registered(svc_, port));
  EXPECT_EQ(notify.LastStatus(), "1 instance: 1 registered; zk connected");
}

}  // namespace
}  // namespace zkroll::testing
