// Fault: in a three-server ZooKeeper ensemble on loopback, the leader is
// SIGKILLed while `zkroll rollout` runs (during the first instance's
// COMMAND). Clients connected to the leader lose their connection and move
// to a follower once the two survivors have elected a new leader; sessions
// survive if that takes less than their timeout.
//
// Expected outcome: the rollout completes (exit 0, journal `succeeded`),
// every healthy instance is registered at the end (exactly once), no pause
// flag or lock is left. The test prints the election time and the time to
// the end of the rollout.
//
// Why exactly one outcome: the coordinator's session timeout T and its
// --connect-timeout (its retry window) are 60s, the servers' maximum. Its
// session survives the election, its fence (coordinator/session_fence.h)
// would fall only 2T/3 = 40s after its last answered request and its
// retries last 60s, far longer than an election of two servers on
// loopback. With the old 10s timeout the fence's 6.7s could run out during
// an election slowed by a loaded machine, so more than one exit code
// could end the same run.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "common/names.h"
#include "common/paths.h"
#include "common/payload.h"
#include "tests/coordinator/coordinator_fixture.h"
#include "tests/faults/fault_fixture.h"  // FaultClock, MillisSince
#include "tests/support/process.h"
#include "tests/support/wait.h"
#include "tests/support/zk_ensemble.h"
#include "zkroll.pb.h"

namespace zkroll::testing {
namespace {

class EnsembleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ensemble_ = new ZooKeeperEnsemble();
    Status s = ensemble_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  static void TearDownTestSuite() {
    delete ensemble_;
    ensemble_ = nullptr;
  }
  void SetUp() override {
    io_ = std::make_unique<IoThread>();
    ZkOptions o;
    o.connect_string = ensemble_->connect_string();
    zk_ = std::make_unique<ZkSession>(io_->executor(), o);
    ASSERT_TRUE(zk_->Start().ok());
    ASSERT_TRUE(zk_->WaitConnected(milliseconds(20000)).ok());
  }
  void TearDown() override {
    for (auto& c : children_) {
      c->Signal(SIGKILL);
      c->Wait(milliseconds(5000));
    }
    if (HasFailure()) {
      for (auto& c : children_) {
        std::cerr << "---- " << c->log_path() << "\n" << c->Output() << "\n";
      }
    }
    children_.clear();
    zk_.reset();
    io_.reset();
  }

  ChildProcess* Start(std::vector<std::string> argv, const std::string& log) {
    children_.push_back(std::make_unique<ChildProcess>());
    Status s = children_.back()->Start(argv, dir_.File(log));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return children_.back().get();
  }
  std::string Addr(int port) { return "127.0.0.1:" + std::to_string(port); }
  std::string Node(const std::string& dir, int port) {
    return dir + "/127.0.0.1_" + std::to_string(port);
  }
  bool Exists(const std::string& path) {
    auto r = zk_->ExistsSync(path);
    return r.ok() && r->has_value();
  }
  std::vector<std::string> Children(const std::string& path) {
    auto r = zk_->GetChildrenSync(path);
    return r.ok() ? r->names : std::vector<std::string>{};
  }

  static ZooKeeperEnsemble* ensemble_;
  const std::string svc_ = "ensemble-svc";
  TempDir dir_;
  std::unique_ptr<IoThread> io_;
  std::unique_ptr<ZkSession> zk_;
  std::vector<std::unique_ptr<ChildProcess>> children_;
};

ZooKeeperEnsemble* EnsembleTest::ensemble_ = nullptr;

TEST_F(EnsembleTest, LeaderKilledDuringRollout) {
  const ServiceName service = *ServiceName::Parse(svc_);
  const std::string sdir = paths::ServiceDir(service);
  const std::string pdir = paths::PauseDir(service);
  std::vector<std::unique_ptr<TinyService>> services;
  std::vector<std::string> agent = {ZKROLL_AGENT_BIN,
                                    "--zk",
                                    ensemble_->connect_string(),
                                    "--metrics-listen",
                                    "127.0.0.1:0",
                                    "--host",
                                    "host-e",
                                    "--check",
                                    "tcp",
                                    "--interval",
                                    "100ms",
                                    "--timeout",
                                    "200ms",
                                    "--rise",
                                    "1",
                                    "--fall",
                                    "1",
                                    "--session-timeout",
                                    "4s",
                                    "--resync",
                                    "1s"};
  std::vector<int> ports;
  for (int i = 0; i < 3; ++i) {
    services.push_back(std::make_unique<TinyService>(PickFreePort()));
    ASSERT_TRUE(services.back()->Start());
    ports.push_back(services.back()->port());
    agent.insert(agent.end(), {"--instance", svc_ + "@" + Addr(ports.back())});
  }
  std::sort(ports.begin(), ports.end());
  Start(agent, "agent.log");
  for (int port : ports) {
    ASSERT_TRUE(
        WaitFor([&] { return Exists(Node(sdir, port)); }, milliseconds(30000)));
  }

  Handshake hs(dir_, "first");
  ChildProcess* z = Start({ZKROLL_COORDINATOR_BIN,
                           "--zk",
                           ensemble_->connect_string(),
                           "--output",
                           "json",
                           "--session-timeout",
                           "60s",
                           "--connect-timeout",
                           "60s",
                           "rollout",
                           "--service",
                           svc_,
                           "--batch",
                           "1",
                           "--min-healthy",
                           "1",
                           "--drain-wait",
                           "0s",
                           "--health-interval",
                           "100ms",
                           "--register-timeout",
                           "30s",
                           "--",
                           "/bin/sh",
                           "-c",
                           "[ \"$ZKROLL_PORT\" != " + std::to_string(ports[0]) +
                               " ] || { " + hs.Snippet() + "; }"},
                          "zkroll.log");
  ASSERT_TRUE(hs.WaitStarted(milliseconds(30000))) << z->Output();
  ASSERT_TRUE(Exists(Node(pdir, ports[0])));

  const int leader = ensemble_->Leader();
  ASSERT_GE(leader, 0);
  const auto killed = FaultClock::now();
  ensemble_->Kill(leader);
  ASSERT_TRUE(ensemble_->WaitForQuorum(milliseconds(60000)))
      << "the two survivors elected no leader";
  const long long election_ms = MillisSince(killed);
  std::cout << "[fault] ensemble leader (server " << leader + 1
            << ") SIGKILLed during COMMAND: new leader after " << election_ms
            << " ms\n";
  ASSERT_TRUE(hs.Release());

  auto code = z->Wait(milliseconds(120000));
  ASSERT_TRUE(code.has_value()) << "rollout hung\n" << z->Output();
  std::cout << "[fault] ensemble leader SIGKILLed during COMMAND: rollout "
               "exited "
            << *code << " after " << MillisSince(killed) << " ms\n";
  const std::string out = z->Output();
  EXPECT_EQ(*code, 0) << out;
  EXPECT_NE(out.find("\"exit_code\":0"), std::string::npos)
      << "no result line with the exit code\n"
      << out;

  // Journal outcome matches the exit code.
  const std::string ddir = paths::DeployDir(service);
  auto ids = Children(ddir);
  ASSERT_EQ(ids.size(), 1u);
  auto data = zk_->GetSync(ddir + "/" + ids[0]);
  ASSERT_TRUE(data.ok());
  auto rec = ParsePayload<proto::DeployRecord>(data->data, ddir);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->outcome(), "succeeded") << out;

  for (int port : ports) {
    ASSERT_TRUE(
        WaitFor([&] { return Exists(Node(sdir, port)); }, milliseconds(30000)))
        << port << " healthy but not registered";
    auto kids = Children(sdir);
    EXPECT_EQ(std::count(kids.begin(), kids.end(),
                         "127.0.0.1_" + std::to_string(port)),
              1);
  }
  std::cout << "[fault] ensemble leader SIGKILLed during COMMAND: every "
               "instance registered after "
            << MillisSince(killed) << " ms\n";
  EXPECT_TRUE(WaitFor(
      [&] {
        return Children(pdir).empty() &&
               Children(paths::LockDir(service)).empty();
      },
      milliseconds(20000)));
  ASSERT_TRUE(ensemble_->StartServer(leader).ok());
}

}  // namespace
}  // namespace zkroll::testing
