// Port switching end to end (docs/design.md, "Port switching"): a real
// ZooKeeper server, a real zkroll-agent forwarding an instance's public
// port, zkroll-tiny-service backends (each answers "ok <its port>", so a
// request through the public port tells which backend served it) and the
// real `zkroll deploy --switch`. COMMANDs that must hold still block on a
// FIFO (Handshake); every wait is for a condition with a deadline.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "tests/coordinator/coordinator_fixture.h"
#include "tests/support/files.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

// One HTTP request to 127.0.0.1:port; the body ("ok <backend port>\n"
// from a tiny service), or "" if the connection failed.
std::string Fetch(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    if (::write(fd, req, sizeof req - 1) == static_cast<ssize_t>(sizeof req - 1)) {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, n);
    }
  }
  ::close(fd);
  size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? "" : out.substr(body + 4);
}

std::string Ok(int port) { return "ok " + std::to_string(port) + "\n"; }

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

class SwitchTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    CoordinatorTest::SetUp();
    public_port_ = PickFreePort();
    v1_ = std::make_unique<TinyService>(PickFreePort());
    backup_ = std::make_unique<TinyService>(PickFreePort());
    new_port_ = PickFreePort();
    ASSERT_TRUE(v1_->Start());
    ASSERT_TRUE(backup_->Start());
  }

  void TearDown() override {
    // Services COMMAND started in their own session.
    for (const std::string& pidfile : started_pidfiles_) {
      std::ifstream in(pidfile);
      pid_t pid = 0;
      if (in >> pid && pid > 0) ::kill(pid, SIGKILL);
    }
    CoordinatorTest::TearDown();
  }

  // The agent config: the forwarded instance and the plain backup.
  std::string WriteConfig(const std::string& protocol) {
    std::ostringstream c;
    c << "session_timeout = 2s\nresync = 1s\n"
      << "[instance.fwd]\nservice = " << svc_
      << "\nip = 127.0.0.1\nport = " << public_port_
      << "\ncheck = tcp\ninterval = 100ms\ntimeout = 500ms\nrise = 1\nfall = 2\n"
      << "forward_backend = 127.0.0.1:" << v1_->port()
      << "\nforward_ports = " << new_port_
      << "\nforward_protocol = " << protocol << "\n"
      << "[instance.backup]\nservice = " << svc_
      << "\nip = 127.0.0.1\nport = " << backup_->port()
      << "\ncheck = tcp\ninterval = 100ms\ntimeout = 500ms\nrise = 1\nfall = 1\n";
    std::string path = dir_.File("agent-" + protocol + ".conf");
    std::ofstream(path) << c.str();
    return path;
  }

  ChildProcess* StartForwardingAgent(const std::string& protocol = "tcp") {
    ChildProcess* a =
        StartAgent("host-a", {}, {"--config", WriteConfig(protocol)});
    EXPECT_TRUE(WaitFor(
        [&] {
          auto st = State();
          return Registered(public_port_) && Registered(backup_->port()) &&
                 st && st->listening();
        },
        milliseconds(20000)))
        << AgentLogs();
    return a;
  }

  std::string StatePath() const {
    return paths::ForwarderNode(ServiceName::Parse(svc_).value(),
                                InstanceAddress::FromParts("127.0.0.1", public_port_).value());
  }
  std::string SwitchPath() const {
    return paths::SwitchNode(ServiceName::Parse(svc_).value(),
                             InstanceAddress::FromParts("127.0.0.1", public_port_).value());
  }
  std::optional<proto::ForwarderState> State() {
    auto d = Get(StatePath());
    if (!d) return std::nullopt;
    auto st = ParsePayload<proto::ForwarderState>(d->data, StatePath());
    if (!st.ok()) return std::nullopt;
    return *st;
  }

  // COMMAND: optionally hold on `hs`, then start a tiny service on
  // $ZKROLL_NEW_PORT in its own session (it outlives COMMAND, as a real
  // new version does) answering `status`. The coordinator's health check
  // waits for it to listen.
  std::vector<std::string> StartNewVersion(const Handshake* hs, int status = 200) {
    std::string pidfile = dir_.File("new-" + std::to_string(started_pidfiles_.size()) + ".pid");
    started_pidfiles_.push_back(pidfile);
    std::string script = (hs ? hs->Snippet() + "; " : std::string()) +
                         "echo \"$ZKROLL_OLD_PORT $ZKROLL_NEW_PORT $ZKROLL_BACKUP\" > " +
                         dir_.File("command-env") + "; setsid " +
                         ZKROLL_TINY_SERVICE_BIN +
                         " --port \"$ZKROLL_NEW_PORT\" --status " +
                         std::to_string(status) + " --pidfile " + pidfile +
                         " </dev/null >/dev/null 2>&1 &";
    return {"/bin/sh", "-c", script};
  }

  // Starts a switch whose COMMAND holds on `hs`, and waits until it does;
  // by then the public port must forward to the backup. Null (with the
  // failure recorded) if either did not happen.
  ChildProcess* StartSwitchHeldInCommand(const Handshake& hs) {
    ChildProcess* z = StartZkroll(
        Deploy(public_port_, SwitchArgs({}), StartNewVersion(&hs)));
    if (!hs.WaitStarted(milliseconds(20000))) {
      ADD_FAILURE() << "COMMAND did not start\n" << z->Output();
      return nullptr;
    }
    std::string answer = Fetch(public_port_);
    if (answer != Ok(backup_->port())) {
      ADD_FAILURE() << "while COMMAND runs the public port answered \""
                    << answer << "\", not the backup's answer\n"
                    << AgentLogs();
      return nullptr;
    }
    return z;
  }

  std::vector<std::string> SwitchArgs(std::vector<std::string> extra) {
    std::vector<std::string> base = {"--switch", "--verify-window", "1s",
                                     "--health-attempts", "50",
                                     "--drain-wait", "5s"};
    base.insert(base.end(), extra.begin(), extra.end());
    return base;
  }

  int public_port_ = 0;
  int new_port_ = 0;
  std::unique_ptr<TinyService> v1_;
  std::unique_ptr<TinyService> backup_;
  std::vector<std::string> started_pidfiles_;
};

TEST_F(SwitchTest, SwitchMovesTrafficToTheNewPortAndCommitsIt) {
  StartForwardingAgent();
  ASSERT_EQ(Fetch(public_port_), Ok(v1_->port()));
  auto st = State();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->source(), "config");
  EXPECT_EQ(st->stable_backend(), Addr(v1_->port()));

  Handshake hs(dir_, "cmd");
  const std::string stopped = dir_.File("stopped-old");
  ChildProcess* z = StartZkroll(Deploy(
      public_port_,
      SwitchArgs({"--stop-old", "/bin/sh -c 'echo $ZKROLL_OLD_PORT > " + stopped + "'"}),
      StartNewVersion(&hs)));
  ASSERT_TRUE(hs.WaitStarted(milliseconds(20000))) << z->Output();
  // While COMMAND runs, the public port serves from the backup, and the
  // instance was never taken out of the registry.
  EXPECT_EQ(Fetch(public_port_), Ok(backup_->port())) << AgentLogs();
  EXPECT_TRUE(Registered(public_port_));
  st = State();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->source(), "deploy");
  EXPECT_EQ(st->fallback(), Addr(v1_->port()));
  ASSERT_TRUE(hs.Release());

  auto code = z->Wait(milliseconds(60000));
  ASSERT_TRUE(code) << z->Output();
  EXPECT_EQ(*code, 0) << z->Output();
  EXPECT_EQ(Fetch(public_port_), Ok(new_port_)) << AgentLogs();
  EXPECT_EQ(ReadFile(dir_.File("command-env")),
            std::to_string(v1_->port()) + " " + std::to_string(new_port_) +
                " " + Addr(backup_->port()) + "\n");
  EXPECT_EQ(ReadFile(stopped), std::to_string(v1_->port()) + "\n");

  auto committed = Get(SwitchPath());
  ASSERT_TRUE(committed);
  auto target = ParsePayload<proto::ForwardTarget>(committed->data, SwitchPath());
  ASSERT_TRUE(target.ok()) << committed->data;
  EXPECT_EQ(target->backend(), Addr(new_port_));
  EXPECT_EQ(target->phase(), "committed");
  EXPECT_FALSE(Exists(SwitchPath() + "/deploy"));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = State();
        return s && s->source() == "committed" &&
               s->stable_backend() == Addr(new_port_);
      },
      milliseconds(10000)));

  // Operators see it in `zkroll status`.
  RunResult status = Zkroll({"status", "--service", svc_});
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("forwarding:  to " + Addr(new_port_) + " (committed"),
            std::string::npos)
      << status.output;

  auto journal = LastJournal();
  ASSERT_TRUE(journal);
  auto steps = StepNames(*journal);
  for (const char* s : {"prepare:ok", "forward-backup:ok", "command:ok",
                        "health:ok", "forward-new:ok", "verify:ok",
                        "commit:ok", "drain-old:ok", "stop-old:ok"}) {
    EXPECT_TRUE(Contains(steps, s)) << s << " missing from the journal";
  }
  EXPECT_EQ(journal->outcome(), "succeeded");
}

TEST_F(SwitchTest, NewVersionAnswering5xxIsRolledBackWithoutFailedConnections) {
  StartForwardingAgent("http");
  const std::string on_failure = dir_.File("on-failure");
  ChildProcess* z = StartZkroll(Deploy(
      public_port_,
      SwitchArgs({"--verify-window", "20s", "--on-failure",
                  "/bin/sh -c 'echo $ZKROLL_NEW_PORT > " + on_failure + "'"}),
      StartNewVersion(nullptr, 500)));
  // Steady traffic through the public port for the whole deploy: every
  // request must get an answer (a 500 from the bad version is an answer;
  // a refused or reset connection is not).
  int requests = 0, failed = 0, from_new = 0;
  bool ended = WaitFor(
      [&] {
        std::string body = Fetch(public_port_);
        ++requests;
        if (body.empty()) ++failed;
        if (body == Ok(new_port_)) ++from_new;
        return !z->running();
      },
      milliseconds(60000));
  ASSERT_TRUE(ended) << z->Output();
  auto code = z->Wait(milliseconds(5000));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 1) << z->Output() << "\nstate: "
                      << (Get(StatePath()) ? Get(StatePath())->data : "");
  EXPECT_NE(z->Output().find("rolled back"), std::string::npos) << z->Output();
  EXPECT_EQ(failed, 0) << "of " << requests << " requests";
  EXPECT_GT(from_new, 0) << "the bad version never got traffic";
  EXPECT_EQ(Fetch(public_port_), Ok(v1_->port()));
  EXPECT_EQ(ReadFile(on_failure), std::to_string(new_port_) + "\n");
  EXPECT_FALSE(Exists(SwitchPath() + "/deploy"));
  auto st = State();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->backend(), Addr(v1_->port()));
  EXPECT_NE(st->source(), "deploy");
  auto journal = LastJournal();
  ASSERT_TRUE(journal);
  auto steps = StepNames(*journal);
  EXPECT_TRUE(Contains(steps, "verify:failed"));
  EXPECT_TRUE(Contains(steps, "rollback:ok"));
  EXPECT_FALSE(Contains(steps, "commit:ok"));
}

TEST_F(SwitchTest, NewVersionDyingDuringVerifyIsRolledBackWithoutFailedConnections) {
  StartForwardingAgent();
  ChildProcess* z = StartZkroll(Deploy(
      public_port_, SwitchArgs({"--verify-window", "30s"}),
      StartNewVersion(nullptr)));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = State();
        return st && st->source() == "deploy" &&
               st->backend() == Addr(new_port_);
      },
      milliseconds(20000)))
      << z->Output();
  ASSERT_EQ(Fetch(public_port_), Ok(new_port_));
  // The new version crashes. Between two requests, so none is in flight
  // on it: from here every connect to it fails, the forwarder retries on
  // the old port, and the coordinator sees the failures.
  std::ifstream in(started_pidfiles_.back());
  pid_t pid = 0;
  ASSERT_TRUE(in >> pid);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  // kill() returns before the process is gone; a request sent meanwhile
  // would be in flight during the crash, which no proxy can save.
  ASSERT_TRUE(WaitFor([&] { return Fetch(new_port_).empty(); },
                      milliseconds(10000)));
  int requests = 0, failed = 0;
  bool ended = WaitFor(
      [&] {
        std::string body = Fetch(public_port_);
        ++requests;
        if (body != Ok(v1_->port())) ++failed;
        return !z->running();
      },
      milliseconds(60000));
  ASSERT_TRUE(ended) << z->Output();
  auto code = z->Wait(milliseconds(5000));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 1) << z->Output();
  EXPECT_NE(z->Output().find("rolled back"), std::string::npos) << z->Output();
  EXPECT_EQ(failed, 0) << "of " << requests << " requests";
  auto journal = LastJournal();
  ASSERT_TRUE(journal);
  auto steps = StepNames(*journal);
  EXPECT_TRUE(Contains(steps, "verify:failed"));
  EXPECT_TRUE(Contains(steps, "rollback:ok"));
  auto st = State();
  ASSERT_TRUE(st);
  bool counted = false;
  for (const auto& b : st->backends()) {
    if (b.backend() == Addr(new_port_)) {
      counted = b.connect_failures() > 0 && b.fallbacks() == b.connect_failures();
    }
  }
  EXPECT_TRUE(counted) << "failed connects to the dead port, each saved by "
                          "the fallback";
}

TEST_F(SwitchTest, NewVersionThatNeverListensIsRolledBackAfterItsChecks) {
  StartForwardingAgent();
  ChildProcess* z = StartZkroll(Deploy(
      public_port_, SwitchArgs({"--health-attempts", "3"}), {"/bin/true"}));
  auto code = z->Wait(milliseconds(60000));
  ASSERT_TRUE(code) << z->Output();
  EXPECT_EQ(*code, 1) << z->Output();
  EXPECT_EQ(Fetch(public_port_), Ok(v1_->port()));
  auto journal = LastJournal();
  ASSERT_TRUE(journal);
  auto steps = StepNames(*journal);
  EXPECT_TRUE(Contains(steps, "health:failed"));
  EXPECT_TRUE(Contains(steps, "rollback:ok"));
  EXPECT_FALSE(Contains(steps, "forward-new:ok"));
}

TEST_F(SwitchTest, AgentRestartedMidSwitchResumesFromZooKeeper) {
  ChildProcess* agent = StartForwardingAgent();
  Handshake hs(dir_, "cmd");
  ChildProcess* z = StartSwitchHeldInCommand(hs);
  ASSERT_TRUE(z);

  // A crash: the forwarder dies with the agent. The new agent must read
  // the in-flight target and forward to the backup again, not to its
  // configured backend.
  agent->Signal(SIGKILL);
  ASSERT_TRUE(agent->Wait(milliseconds(10000)));
  EXPECT_EQ(Fetch(public_port_), "");
  StartAgent("host-a", {}, {"--config", WriteConfig("tcp")});
  ASSERT_TRUE(WaitFor([&] { return Fetch(public_port_) == Ok(backup_->port()); },
                      milliseconds(20000)))
      << AgentLogs();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = State();
        return st && st->source() == "deploy" && st->pid() != agent->pid();
      },
      milliseconds(20000)));

  ASSERT_TRUE(hs.Release());
  auto code = z->Wait(milliseconds(60000));
  ASSERT_TRUE(code) << z->Output();
  EXPECT_EQ(*code, 0) << z->Output();
  EXPECT_EQ(Fetch(public_port_), Ok(new_port_));

  // And once committed, a restart resumes on the committed backend.
  children_[children_.size() - 1]->Signal(SIGKILL);
  children_[children_.size() - 1]->Wait(milliseconds(10000));
  StartAgent("host-a", {}, {"--config", WriteConfig("tcp")});
  ASSERT_TRUE(WaitFor([&] { return Fetch(public_port_) == Ok(new_port_); },
                      milliseconds(20000)))
      << AgentLogs();
}

TEST_F(SwitchTest, CoordinatorKilledMidSwitchTheAgentGoesBackToTheOldPort) {
  StartForwardingAgent();
  Handshake hs(dir_, "cmd");
  ChildProcess* z = StartSwitchHeldInCommand(hs);
  ASSERT_TRUE(z);
  z->Signal(SIGKILL);
  ASSERT_TRUE(z->Wait(milliseconds(10000)));
  // The in-flight node dies with the coordinator's session (4s).
  ASSERT_TRUE(WaitFor([&] { return Fetch(public_port_) == Ok(v1_->port()); },
                      milliseconds(30000)))
      << AgentLogs();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = State();
        return st && st->source() == "config";
      },
      milliseconds(10000)));
  EXPECT_FALSE(Exists(SwitchPath() + "/deploy"));
}

TEST_F(SwitchTest, SigtermDuringCommandRollsBackAndExits143) {
  StartForwardingAgent();
  Handshake hs(dir_, "cmd");
  ChildProcess* z = StartSwitchHeldInCommand(hs);
  ASSERT_TRUE(z);
  z->Signal(SIGTERM);
  auto code = z->Wait(milliseconds(30000));
  ASSERT_TRUE(code) << z->Output();
  EXPECT_EQ(*code, 143) << z->Output();
  // Back on the old port before the coordinator exited, not only once its
  // session expired.
  EXPECT_EQ(Fetch(public_port_), Ok(v1_->port())) << z->Output();
  EXPECT_FALSE(Exists(SwitchPath() + "/deploy"));
  auto journal = LastJournal();
  ASSERT_TRUE(journal);
  auto steps = StepNames(*journal);
  EXPECT_TRUE(Contains(steps, "command:aborted"));
  EXPECT_TRUE(Contains(steps, "rollback:ok"));
  EXPECT_EQ(journal->outcome(), "aborted");
}

TEST_F(SwitchTest, BadBackendsAreRefusedAndTrafficStaysWhereItWas) {
  StartForwardingAgent();
  // On the command line: refused before anything is touched.
  RunResult r = Zkroll(Deploy(public_port_, SwitchArgs({"--backup", "10.0.0.1"}),
                              {"/bin/true"}));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--backup"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("10.0.0.1"), std::string::npos) << r.output;
  r = Zkroll(Deploy(public_port_, SwitchArgs({"--backup", "127.0.0.1:1"}),
                    {"/bin/true"}));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("not a registered instance"), std::string::npos)
      << r.output;
  EXPECT_FALSE(Exists(SwitchPath() + "/deploy"));

  // Written into ZooKeeper by hand (or by a hostile writer): the agent
  // refuses each, says why in its state, and keeps forwarding to v1.
  ASSERT_TRUE(zk_->EnsurePathSync(SwitchPath(), OpenAcl()).ok());
  const std::string deploy = SwitchPath() + "/deploy";
  struct Case {
    std::string payload;
    std::string generation;
    std::string why;
  };
  std::vector<Case> cases = {
      {R"({"backend":"10.9.9.9:80","phase":"backup","generation":"g1"})", "g1",
       "neither a local backend"},
      {R"({"backend":"127.0.0.1:)" + std::to_string(public_port_) +
           R"(","phase":"verify","generation":"g2"})",
       "g2", "loop"},
      {R"({"backend":"127.0.0.1:99999","phase":"backup","generation":"g3"})",
       "g3", "99999"},
      {R"({"backend":"127.0.0.1:)" + std::to_string(new_port_) +
           R"(","fallback":"evil.example:80","phase":"backup","generation":"g4"})",
       "g4", "fallback"},
      {R"({"backend":"127.0.0.1:)" + std::to_string(new_port_) +
           R"(","phase":"sideways","generation":"g5"})",
       "g5", "phase"},
  };
  for (const Case& c : cases) {
    (void)zk_->DeleteSync(deploy);
    ASSERT_TRUE(zk_->CreateSync(deploy, c.payload, CreateMode::kEphemeral, OpenAcl()).ok());
    ASSERT_TRUE(WaitFor(
        [&] {
          auto st = State();
          return st && st->refused_generation() == c.generation;
        },
        milliseconds(10000)))
        << c.payload << "\n" << AgentLogs();
    auto st = State();
    EXPECT_NE(st->error().find(c.why), std::string::npos)
        << c.payload << " -> " << st->error();
    EXPECT_EQ(st->backend(), Addr(v1_->port()));
    EXPECT_EQ(Fetch(public_port_), Ok(v1_->port()));
  }
  // A payload that is not JSON at all has no generation to report; the
  // agent still refuses it and names the node.
  (void)zk_->DeleteSync(deploy);
  ASSERT_TRUE(zk_->CreateSync(deploy, "not json{", CreateMode::kEphemeral, OpenAcl()).ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = State();
        return st && st->error().find(deploy) != std::string::npos;
      },
      milliseconds(10000)))
      << AgentLogs();
  EXPECT_EQ(Fetch(public_port_), Ok(v1_->port()));
  // A valid one is applied: the agent was refusing, not stuck.
  (void)zk_->DeleteSync(deploy);
  ASSERT_TRUE(zk_->CreateSync(deploy,
                              R"({"backend":"127.0.0.1:)" +
                                  std::to_string(backup_->port()) +
                                  R"(","phase":"backup","generation":"g6"})",
                              CreateMode::kEphemeral, OpenAcl())
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return Fetch(public_port_) == Ok(backup_->port()); },
                      milliseconds(10000)))
      << AgentLogs();
  ASSERT_TRUE(zk_->DeleteSync(deploy).ok());
  ASSERT_TRUE(WaitFor([&] { return Fetch(public_port_) == Ok(v1_->port()); },
                      milliseconds(10000)));
}

TEST_F(SwitchTest, RolloutSwitchesEveryInstanceNeverUsingItsBatchAsBackup) {
  // Two forwarded instances (each with its own old and new port) and the
  // plain backup. With --batch 2 the two are deployed at once, so neither
  // may serve as the other's backup: both must use the plain one.
  const int public2 = PickFreePort();
  TinyService v1b(PickFreePort());
  ASSERT_TRUE(v1b.Start());
  const int new2 = PickFreePort();
  std::string conf = WriteConfig("tcp");
  std::ofstream(conf, std::ios::app)
      << "[instance.fwd2]\nservice = " << svc_
      << "\nip = 127.0.0.1\nport = " << public2
      << "\ncheck = tcp\ninterval = 100ms\ntimeout = 500ms\nrise = 1\nfall = 2\n"
      << "forward_backend = 127.0.0.1:" << v1b.port()
      << "\nforward_ports = " << new2 << "\n";
  StartAgent("host-a", {}, {"--config", conf});
  ASSERT_TRUE(WaitFor(
      [&] {
        return Registered(public_port_) && Registered(public2) &&
               Registered(backup_->port()) && State();
      },
      milliseconds(20000)))
      << AgentLogs();
  const std::string pids = dir_.File("rollout-pids");
  started_pidfiles_.push_back(pids + "-" + std::to_string(new_port_));
  started_pidfiles_.push_back(pids + "-" + std::to_string(new2));
  std::string script = "echo \"$ZKROLL_BACKUP\" >> " + dir_.File("backups") +
                       "; setsid " + ZKROLL_TINY_SERVICE_BIN +
                       " --port \"$ZKROLL_NEW_PORT\" --pidfile " + pids +
                       "-\"$ZKROLL_NEW_PORT\" </dev/null >/dev/null 2>&1 &";
  RunResult r = Zkroll({"rollout", "--service", svc_, "--instances",
                        Addr(public_port_) + "," + Addr(public2), "--batch", "2",
                        "--min-healthy", "1", "--switch", "--verify-window", "500ms",
                        "--health-attempts", "50", "--health-interval", "100ms",
                        "--drain-wait", "5s", "--", "/bin/sh", "-c", script},
                       milliseconds(120000));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Fetch(public_port_), Ok(new_port_));
  EXPECT_EQ(Fetch(public2), Ok(new2));
  EXPECT_EQ(ReadFile(dir_.File("backups")),
            Addr(backup_->port()) + "\n" + Addr(backup_->port()) + "\n");
}

TEST_F(SwitchTest, ReloadChangingOnlyChecksKeepsForwardedConnections) {
  ChildProcess* agent = StartForwardingAgent();
  // A connection accepted before the reload, with its request not sent yet.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(public_port_));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = State();
        if (!st) return false;
        for (const auto& b : st->backends()) {
          if (b.backend() == Addr(v1_->port()) && b.active() > 0) return true;
        }
        return false;
      },
      milliseconds(10000)));
  // Same forwarding keys, other check settings.
  std::string conf = WriteConfig("tcp");
  std::string text = ReadFile(conf);
  size_t at = text.find("interval = 100ms");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 16, "interval = 150ms");
  std::ofstream(conf) << text;
  agent->Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return AgentLogs().find("1 changed") != std::string::npos; },
                      milliseconds(10000)))
      << AgentLogs();
  const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::write(fd, req, sizeof req - 1), static_cast<ssize_t>(sizeof req - 1));
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, n);
  ::close(fd);
  EXPECT_NE(out.find(Ok(v1_->port())), std::string::npos)
      << "the held connection did not survive the reload: " << out;
}

TEST_F(SwitchTest, InstanceWithoutForwarderIsRefusedUntouched) {
  StartAgent("host-a", {svc_ + "@" + Addr(backup_->port())});
  ASSERT_TRUE(WaitFor([&] { return Registered(backup_->port()); },
                      milliseconds(20000)));
  RunResult r = Zkroll(Deploy(backup_->port(), SwitchArgs({}), {"/bin/true"}));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("forward_backend"), std::string::npos) << r.output;
  EXPECT_TRUE(Registered(backup_->port()));
  EXPECT_TRUE(Children(paths::kSwitchRoot).empty() ||
              Children(std::string(paths::kSwitchRoot) + "/" + svc_).empty());
}

}  // namespace
}  // namespace zkroll::testing
