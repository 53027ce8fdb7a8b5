// The coordinator against a real ZooKeeper server, with the agent's part
// played by the test itself (it declares and registers instances from its
// own session). These tests pin down the coordinator's own decisions: the
// pause transaction, the verify step, the lock, the journal, manual pauses.
// The flows with a real agent are in agent_flow_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/clock.h"
#include "tests/coordinator/coordinator_fixture.h"
#include "tests/coordinator/event_check.h"
#include "tests/support/files.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

bool FileExists(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

class CoordinatorZkTest : public CoordinatorTest {
 protected:
  std::string LockDir() const {
    return paths::LockDir(*ServiceName::Parse(svc_));
  }
};

TEST_F(CoordinatorZkTest, DeployTakesTheInstanceOutBeforeCommandAndBackAfter) {
  const int port = PickFreePort();
  TinyService service(port);
  ASSERT_TRUE(service.Start());
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);

  Handshake hs(dir_, "cmd");
  const std::string env_file = dir_.File("env");
  ChildProcess* z = StartZkroll(Deploy(
      port, {"--reason", "ticket 42"},
      {"/bin/sh", "-c",
       "env > " + env_file + "; echo hello-from-command; " + hs.Snippet()}));
  ASSERT_TRUE(hs.WaitStarted(milliseconds(20000))) << z->Output();

  // While COMMAND runs: out of the registry, flag present and ephemeral.
  EXPECT_FALSE(Registered(port));
  auto flag_node = Get(FlagPath(port));
  ASSERT_TRUE(flag_node.has_value());
  EXPECT_NE(flag_node->stat.ephemeral_owner, 0);
  EXPECT_NE(flag_node->stat.ephemeral_owner, zk_->session_id());
  auto flag = Flag(port);
  ASSERT_TRUE(flag.has_value());
  EXPECT_EQ(flag->reason(), "ticket 42");
  EXPECT_EQ(flag->pid(), z->pid());
  EXPECT_NE(flag->by().find('@'), std::string::npos);
  EXPECT_TRUE(flag->has_since());
  EXPECT_FALSE(flag->has_expires_at()) << "a deploy's flag never expires";
  EXPECT_FALSE(flag->deploy_id().empty());
  EXPECT_EQ(Children(LockDir()).size(), 1u) << "the deploy holds the lock";

  ASSERT_TRUE(hs.Release());
  // Play the agent: register again once the flag is gone.
  ASSERT_TRUE(WaitFor([&] { return !Paused(port); }, milliseconds(20000)))
      << z->Output();
  Register(zk_.get(), port);
  auto code = z->Wait(milliseconds(30000));
  ASSERT_EQ(code, 0) << z->Output();

  const std::string env = ReadFile(env_file);
  EXPECT_NE(env.find("ZKROLL_SERVICE=" + svc_ + "\n"), std::string::npos)
      << env;
  EXPECT_NE(env.find("ZKROLL_IP=127.0.0.1\n"), std::string::npos);
  EXPECT_NE(env.find("ZKROLL_PORT=" + std::to_string(port) + "\n"),
            std::string::npos);
  EXPECT_NE(
      env.find("ZKROLL_INSTANCE=127.0.0.1_" + std::to_string(port) + "\n"),
      std::string::npos);
  EXPECT_NE(env.find("ZKROLL_DEPLOY_ID=" + flag->deploy_id() + "\n"),
            std::string::npos);
  const std::string out = z->Output();
  EXPECT_NE(out.find("[" + svc_ + "@127.0.0.1:" + std::to_string(port) +
                     "] hello-from-command"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("succeeded"), std::string::npos) << out;

  auto journal = LastJournal();
  ASSERT_TRUE(journal.has_value());
  EXPECT_EQ(journal->deploy_id(), flag->deploy_id());
  EXPECT_EQ(journal->outcome(), "succeeded");
  EXPECT_EQ(journal->kind(), "deploy");
  EXPECT_FALSE(journal->ended_at().empty());
  EXPECT_EQ(journal->parameters().at("reason"), "ticket 42");
  std::vector<std::string> want = {"pause:ok",     "drain:ok",  "verify:ok",
                                   "command:ok",   "health:ok", "resume:ok",
                                   "registered:ok"};
  EXPECT_EQ(StepNames(*journal), want);
  EXPECT_TRUE(Children(LockDir()).empty()) << "lock released";
}

TEST_F(CoordinatorZkTest, FlagLostBeforeCommandMeansCommandNeverRuns) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  const std::string marker = dir_.File("ran");
  ChildProcess* z = StartZkroll(Deploy(port, {"--drain-wait", "3s"},
                                       {"/bin/sh", "-c", "touch " + marker}));
  ASSERT_TRUE(WaitFor([&] { return Paused(port); }, milliseconds(20000)))
      << z->Output();
  // What a session expiry does to the flag, as seen by the coordinator: it
  // is gone, and a flag of another session may stand in its place.
  ASSERT_TRUE(zk_->DeleteSync(FlagPath(port)).ok());
  ASSERT_TRUE(
      zk_->CreateSync(FlagPath(port), "{}", CreateMode::kEphemeral, OpenAcl())
          .ok());
  auto code = z->Wait(milliseconds(30000));
  ASSERT_EQ(code, 4) << z->Output();
  EXPECT_FALSE(FileExists(marker)) << "COMMAND ran without our flag";
  EXPECT_NE(z->Output().find("COMMAND was not run"), std::string::npos)
      << z->Output();
  auto other = Get(FlagPath(port));
  ASSERT_TRUE(other.has_value()) << "a flag that is not ours was deleted";
  EXPECT_EQ(other->stat.ephemeral_owner, zk_->session_id());
  auto journal = LastJournal();
  ASSERT_TRUE(journal.has_value());
  EXPECT_EQ(journal->outcome(), "aborted");
}

TEST_F(CoordinatorZkTest, FlagLostWhileCommandRunsEndsTheDeployUnchecked) {
  const int port = PickFreePort();
  TinyService service(port);
  ASSERT_TRUE(service.Start());
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  Handshake hs(dir_, "cmd");
  ChildProcess* z =
      StartZkroll(Deploy(port, {}, {"/bin/sh", "-c", hs.Snippet()}));
  ASSERT_TRUE(hs.WaitStarted(milliseconds(20000))) << z->Output();
  ASSERT_TRUE(zk_->DeleteSync(FlagPath(port)).ok());
  // Two detections race here, and either is right: the session fence's
  // next read of the flag (session_fence.h) finds it gone and stops
  // COMMAND, or COMMAND, released now, ends first and the check after it
  // finds the flag gone. When the fence won, nobody reads the FIFO any
  // more and Release() fails; that is not this test's concern.
  hs.Release();
  auto code = z->Wait(milliseconds(30000));
  ASSERT_EQ(code, 4) << z->Output();
  const std::string out = z->Output();
  EXPECT_TRUE(out.find("while it ran") != std::string::npos ||
              out.find("COMMAND was stopped") != std::string::npos)
      << out;
  auto journal = LastJournal();
  ASSERT_TRUE(journal.has_value());
  EXPECT_EQ(journal->outcome(), "aborted");
  std::vector<std::string> steps = StepNames(*journal);
  EXPECT_EQ(std::count(steps.begin(), steps.end(), "health:ok"), 0)
      << "health checks after a lost session";
}

TEST_F(CoordinatorZkTest, HeldLockFailsAtOnceNamingTheHolder) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  proto::LockHolder holder;
  holder.set_by("alice@build-7");
  holder.set_pid(4242);
  *holder.mutable_since() =
      ToTimestamp(*ParseRfc3339("2026-11-26T12:00:00.000Z"));
  holder.set_deploy_id("20261126T120000Z-abcdef");
  holder.set_purpose("rollout");
  ASSERT_TRUE(zk_->EnsurePathSync(LockDir(), OpenAcl()).ok());
  auto mine = zk_->CreateSync(LockDir() + "/lock-", ToJson(holder),
                              CreateMode::kEphemeralSequential, OpenAcl());
  ASSERT_TRUE(mine.ok());

  // The holder's node stays for the whole test: a coordinator that waited
  // for it would never return, so returning refused (exit 3) while it is
  // still there is the "fails at once" (no waiting queue), whatever the
  // machine's load.
  RunResult d = Zkroll(Deploy(port, {}, {"/bin/true"}));
  RunResult r = Zkroll({"rollout", "--service", svc_, "--min-healthy", "0",
                        "--drain-wait", "0s", "--", "/bin/true"});
  for (const RunResult* res : {&d, &r}) {
    EXPECT_EQ(res->exit_code, 3) << res->output;
    EXPECT_NE(res->output.find("alice@build-7"), std::string::npos)
        << res->output;
    EXPECT_NE(res->output.find("pid 4242"), std::string::npos) << res->output;
    EXPECT_NE(res->output.find("since 2026-11-26T12:00:00.000Z"),
              std::string::npos)
        << res->output;
  }
  EXPECT_TRUE(Registered(port)) << "nothing may be touched";
  EXPECT_FALSE(Paused(port));
  EXPECT_EQ(Children(LockDir()),
            std::vector<std::string>{mine->substr(LockDir().size() + 1)})
      << "the holder's node is the only one: the refused coordinators "
         "neither waited it out nor left their own lock nodes behind";
}

TEST_F(CoordinatorZkTest, SecondCoordinatorIsRefusedWhileTheFirstRuns) {
  const int a = PickFreePort();
  const int b = PickFreePort();
  TinyService service(a);
  ASSERT_TRUE(service.Start());
  Declare(zk_.get(), "host-a", {a, b});
  Register(zk_.get(), a);
  Register(zk_.get(), b);
  Handshake hs(dir_, "cmd");
  ChildProcess* first =
      StartZkroll(Deploy(a, {}, {"/bin/sh", "-c", hs.Snippet()}));
  ASSERT_TRUE(hs.WaitStarted(milliseconds(20000))) << first->Output();

  // Another instance of the same service: still refused, naming the first.
  RunResult second = Zkroll(Deploy(b, {}, {"/bin/true"}));
  EXPECT_EQ(second.exit_code, 3) << second.output;
  EXPECT_NE(second.output.find("pid " + std::to_string(first->pid())),
            std::string::npos)
      << second.output;
  EXPECT_NE(second.output.find("deploy"), std::string::npos);
  EXPECT_TRUE(Registered(b)) << "the refused deploy touched its instance";

  ASSERT_TRUE(hs.Release());
  ASSERT_TRUE(WaitFor([&] { return !Paused(a); }, milliseconds(20000)));
  Register(zk_.get(), a);
  EXPECT_EQ(first->Wait(milliseconds(30000)), 0) << first->Output();
  // With the first one done, the lock is free again.
  RunResult third =
      Zkroll(Deploy(b, {"--register-timeout", "0s", "--health-attempts", "1"},
                    {"/bin/true"}));
  EXPECT_NE(third.exit_code, 3) << third.output;
}

TEST_F(CoordinatorZkTest, UnknownInstanceIsRefusedUnlessForced) {
  const int port = PickFreePort();
  TinyService service(port);
  ASSERT_TRUE(service.Start());
  RunResult r = Zkroll(Deploy(port, {}, {"/bin/true"}));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no agent declares"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--force"), std::string::npos) << r.output;
  EXPECT_FALSE(LastJournal().has_value()) << "a journal was written";
  EXPECT_FALSE(Exists(paths::PauseDir(*ServiceName::Parse(svc_))));

  // --force goes through the whole deploy; with no agent to register the
  // instance again it ends at the registration wait.
  RunResult f = Zkroll(
      Deploy(port, {"--force", "--register-timeout", "300ms"}, {"/bin/true"}));
  EXPECT_EQ(f.exit_code, 1) << f.output;
  EXPECT_NE(f.output.find("no agent registered it"), std::string::npos)
      << f.output;
  EXPECT_FALSE(Paused(port));
  auto journal = LastJournal();
  ASSERT_TRUE(journal.has_value());
  EXPECT_EQ(journal->outcome(), "failed");
  EXPECT_EQ(StepNames(*journal).back(), "registered:failed");
}

TEST_F(CoordinatorZkTest, InstanceAlreadyPausedIsLeftAlone) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  RunResult p = Zkroll({"pause", "--service", svc_, "--instance", Addr(port),
                        "--reason", "disk swap", "--ttl", "1h"});
  ASSERT_EQ(p.exit_code, 0) << p.output;
  auto before = Get(FlagPath(port));
  ASSERT_TRUE(before.has_value());

  RunResult d = Zkroll(Deploy(port, {}, {"/bin/true"}));
  EXPECT_EQ(d.exit_code, 1) << d.output;
  EXPECT_NE(d.output.find("already paused"), std::string::npos) << d.output;
  EXPECT_NE(d.output.find("disk swap"), std::string::npos) << d.output;
  auto after = Get(FlagPath(port));
  ASSERT_TRUE(after.has_value()) << "the deploy deleted someone else's flag";
  EXPECT_EQ(after->stat.mzxid, before->stat.mzxid);
}

TEST_F(CoordinatorZkTest, ManualPauseIsPersistentExpiresAndCanBeResumed) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  RunResult p = Zkroll({"pause", "--service", svc_, "--instance", Addr(port),
                        "--reason", "disk swap", "--ttl", "1h"});
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_FALSE(Registered(port)) << "pause removes the registration";
  auto node = Get(FlagPath(port));
  ASSERT_TRUE(node.has_value());
  EXPECT_EQ(node->stat.ephemeral_owner, 0) << "a manual pause is persistent";
  auto flag = Flag(port);
  ASSERT_TRUE(flag.has_value());
  ASSERT_TRUE(flag->has_expires_at());
  auto left =
      FromTimestamp(flag->expires_at()) - std::chrono::system_clock::now();
  EXPECT_GT(left, std::chrono::minutes(59));
  EXPECT_LE(left, std::chrono::minutes(60));

  RunResult again = Zkroll({"pause", "--service", svc_, "--instance",
                            Addr(port), "--reason", "x", "--ttl", "1h"});
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("already paused"), std::string::npos);

  RunResult st = Zkroll({"status", "--service", svc_});
  EXPECT_EQ(st.exit_code, 0) << st.output;
  EXPECT_NE(st.output.find("disk swap"), std::string::npos) << st.output;
  EXPECT_NE(st.output.find("registered:  no"), std::string::npos) << st.output;

  RunResult r = Zkroll({"resume", "--service", svc_, "--instance", Addr(port)});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(Paused(port));

  // An expired manual pause is removed by the next command that sees it.
  // Written as the RFC 3339 strings of the earlier schema, which the
  // Timestamp fields still read.
  const std::string old = R"({
 "service": ")" + svc_ + R"(",
 "by": "bob@ops-1",
 "reason": "forgotten",
 "since": "2020-01-01T00:00:00.000Z",
 "expires_at": "2020-01-01T01:00:00.000Z"
})";
  ASSERT_TRUE(
      zk_->CreateSync(FlagPath(port), old, CreateMode::kPersistent, OpenAcl())
          .ok());
  // status shows it and deletes nothing (reading must not delete).
  RunResult st2 = Zkroll({"status", "--service", svc_});
  EXPECT_EQ(st2.exit_code, 0) << st2.output;
  EXPECT_NE(st2.output.find("expired, will be removed"), std::string::npos)
      << st2.output;
  EXPECT_TRUE(Paused(port));
  // The next command that changes something (here a pause of another
  // address) removes it and says so.
  RunResult other = Zkroll({"pause", "--service", svc_, "--instance",
                            "127.0.0.1:1", "--reason", "x", "--ttl", "1m",
                            "--force"});
  EXPECT_EQ(other.exit_code, 0) << other.output;
  EXPECT_NE(other.output.find("removed expired pause flag"), std::string::npos)
      << other.output;
  EXPECT_FALSE(Paused(port));
}

TEST_F(CoordinatorZkTest, ResumeRefusesTheFlagOfARunningDeploy) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  ASSERT_TRUE(
      zk_->EnsurePathSync(paths::PauseDir(*ServiceName::Parse(svc_)), OpenAcl())
          .ok());
  ASSERT_TRUE(zk_->CreateSync(FlagPath(port), "{\"deploy_id\": \"d1\"}",
                              CreateMode::kEphemeral, OpenAcl())
                  .ok());
  RunResult r = Zkroll({"resume", "--service", svc_, "--instance", Addr(port)});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("running deploy"), std::string::npos) << r.output;
  EXPECT_TRUE(Paused(port));
  RunResult f = Zkroll(
      {"resume", "--service", svc_, "--instance", Addr(port), "--force"});
  EXPECT_EQ(f.exit_code, 0) << f.output;
  EXPECT_FALSE(Paused(port));
}

TEST_F(CoordinatorZkTest, SigintDuringDrainDeletesFlagAndSkipsCommand) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  const std::string marker = dir_.File("ran");
  // A drain far longer than the test's deadlines: exiting 130 at all (and
  // the journal's "drain:aborted" below) shows SIGINT cut the drain short,
  // with no bound on how long the loaded machine took to do it.
  ChildProcess* z = StartZkroll(Deploy(port, {"--drain-wait", "10m"},
                                       {"/bin/sh", "-c", "touch " + marker}));
  ASSERT_TRUE(WaitFor([&] { return Paused(port); }, milliseconds(20000)))
      << z->Output();
  z->Signal(SIGINT);
  auto code = z->Wait(milliseconds(60000));
  ASSERT_EQ(code, 130) << z->Output();
  EXPECT_FALSE(Paused(port));
  EXPECT_FALSE(FileExists(marker));
  auto journal = LastJournal();
  ASSERT_TRUE(journal.has_value());
  EXPECT_EQ(journal->outcome(), "aborted");
  std::vector<std::string> want = {"pause:ok", "drain:aborted", "resume:ok"};
  EXPECT_EQ(StepNames(*journal), want);
  EXPECT_TRUE(Children(LockDir()).empty());
}

TEST_F(CoordinatorZkTest, HistoryAndStatusReportDeploys) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  // A deploy that fails at COMMAND (no agent needed to finish it).
  RunResult d = Zkroll(
      Deploy(port, {"--deploy-id", "manual-1"}, {"/bin/sh", "-c", "exit 3"}));
  ASSERT_EQ(d.exit_code, 1) << d.output;

  RunResult h = Zkroll({"history", "--service", svc_});
  EXPECT_EQ(h.exit_code, 0) << h.output;
  EXPECT_NE(h.output.find("manual-1  deploy  failed"), std::string::npos)
      << h.output;
  RunResult one =
      Zkroll({"history", "--service", svc_, "--deploy-id", "manual-1"});
  EXPECT_EQ(one.exit_code, 0) << one.output;
  EXPECT_NE(one.output.find("command failed"), std::string::npos) << one.output;
  EXPECT_NE(one.output.find("exit status 3"), std::string::npos) << one.output;
  RunResult missing =
      Zkroll({"history", "--service", svc_, "--deploy-id", "nope"});
  EXPECT_EQ(missing.exit_code, 2) << missing.output;

  RunResult js = Zkroll({"--output", "json", "status", "--service", svc_});
  EXPECT_EQ(js.exit_code, 0) << js.output;
  EXPECT_NE(js.output.find("\"event\":\"instance\""), std::string::npos)
      << js.output;
  EXPECT_NE(js.output.find("\"host\":\"host-a\""), std::string::npos);
  EXPECT_NE(js.output.find("\"deploy_id\":\"manual-1\""), std::string::npos)
      << js.output;
  EXPECT_NE(js.output.find("\"outcome\":\"failed\""), std::string::npos);
  EXPECT_THAT(CheckEventLines(js.output), ::testing::IsEmpty());

  // The JSON forms of history, one journal and a failed deploy: typed and
  // within the documented values.
  std::map<std::string, int> seen;
  RunResult hj = Zkroll({"--output", "json", "history", "--service", svc_});
  EXPECT_EQ(hj.exit_code, 0) << hj.output;
  EXPECT_THAT(CheckEventLines(hj.output, &seen), ::testing::IsEmpty());
  EXPECT_NE(hj.output.find("\"instances\":1,\"succeeded\":0,\"failed\":1"),
            std::string::npos)
      << hj.output;
  RunResult oj = Zkroll({"--output", "json", "history", "--service", svc_,
                         "--deploy-id", "manual-1"});
  EXPECT_EQ(oj.exit_code, 0) << oj.output;
  EXPECT_THAT(CheckEventLines(oj.output, &seen), ::testing::IsEmpty());
  std::vector<std::string> failing =
      Deploy(port, {"--deploy-id", "manual-2"}, {"/bin/sh", "-c", "echo out; exit 3"});
  failing.insert(failing.begin(), {"--output", "json"});
  RunResult dj = Zkroll(failing);
  EXPECT_EQ(dj.exit_code, 1) << dj.output;
  EXPECT_THAT(CheckEventLines(dj.output, &seen), ::testing::IsEmpty());
  for (const char* e : {"deploy", "journal", "step", "output", "result"}) {
    EXPECT_GT(seen[e], 0) << e << "\n" << hj.output << oj.output << dj.output;
  }
}

// Nodes other writers leave under /services/<service> (Apache Curator's
// own registrations, a record naming another service) are reported as one
// warning each; the instances zkroll knows are listed as usual.
TEST_F(CoordinatorZkTest, StatusWarnsOfForeignRegistrationsAndListsTheRest) {
  const int port = PickFreePort(), foreign = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  const std::string dir = paths::ServiceDir(*ServiceName::Parse(svc_));
  const std::string uuid = "6c1d1f0e-2a4b-4d0e-9f5e-1b2c3d4e5f60";
  // As Curator 5.4's ServiceDiscovery.registerService writes it.
  auto curator = [&](const std::string& name, const std::string& id, int p) {
    return R"({"name":")" + name + R"(","id":")" + id +
           R"(","address":"127.0.0.1","port":)" + std::to_string(p) +
           R"(,"sslPort":null,"payload":null,"registrationTimeUTC":1796029781053,"serviceType":"DYNAMIC","uriSpec":null})";
  };
  ASSERT_TRUE(zk_->CreateSync(dir + "/" + uuid, curator(svc_, uuid, foreign),
                              CreateMode::kEphemeral, OpenAcl())
                  .ok());
  ASSERT_TRUE(zk_->CreateSync(InstancePath(foreign),
                              curator("other", "127.0.0.1_" +
                                                   std::to_string(foreign),
                                      foreign),
                              CreateMode::kEphemeral, OpenAcl())
                  .ok());

  RunResult st = Zkroll({"status", "--service", svc_});
  ASSERT_EQ(st.exit_code, 0) << st.output;
  EXPECT_NE(st.output.find("warning: skipped " + dir + "/'" + uuid + "'"),
            std::string::npos)
      << st.output;
  EXPECT_NE(st.output.find("warning: skipped the record of " +
                           InstancePath(foreign) +
                           ": record names service 'other'"),
            std::string::npos)
      << st.output;
  RunResult js = Zkroll({"--output", "json", "status", "--service", svc_});
  ASSERT_EQ(js.exit_code, 0) << js.output;
  EXPECT_NE(js.output.find("\"host\":\"host-a\""), std::string::npos)
      << js.output;
  EXPECT_NE(js.output.find(Addr(port)), std::string::npos) << js.output;
  // The deploy of the known instance is not held up by them.
  RunResult d = Zkroll(Deploy(port, {}, {"/bin/sh", "-c", "exit 3"}));
  EXPECT_EQ(d.exit_code, 1) << d.output;
  EXPECT_NE(d.output.find("command"), std::string::npos) << d.output;
}

// ACL inheritance after `zkroll init` is tested in init_test.cc (it needs a
// server of its own); here the roots are open, so only the use of the
// credential is visible.
TEST_F(CoordinatorZkTest, AuthFileIsUsedAndItsPasswordNeverPrinted) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  const std::string open_file = dir_.Write("open", "c:s3cret\n", 0644);
  RunResult refused =
      Zkroll({"--auth-file", open_file, "status", "--service", svc_});
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_EQ(refused.output.find("s3cret"), std::string::npos);

  const std::string auth = dir_.Write("auth", "coordinator:s3cret\n", 0600);
  RunResult p =
      Zkroll({"--auth-file", auth, "pause", "--service", svc_, "--instance",
              Addr(port), "--reason", "acl", "--ttl", "1h"});
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_TRUE(Paused(port));
  RunResult r = Zkroll({"--auth-file", auth, "resume", "--service", svc_,
                        "--instance", Addr(port)});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(Paused(port));
  EXPECT_EQ(p.output.find("s3cret"), std::string::npos);
  EXPECT_EQ(r.output.find("s3cret"), std::string::npos);
}

}  // namespace
}  // namespace zkroll::testing
