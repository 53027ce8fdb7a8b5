// The interleavings the protocol model found (issue 18), forced against a
// real ZooKeeper server. Where an interleaving needs a session to expire
// at one precise step, the test drives the coordinator's own code
// (DeployInstance, ServiceLock, the registry transactions) in this process
// with a session it can expire on demand; `zkroll status` runs as the real
// binary.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <future>
#include <sstream>

#include "common/clock.h"
#include "common/registry.h"
#include "coordinator/abort_signal.h"
#include "coordinator/deploy.h"
#include "coordinator/instance_deploy.h"
#include "coordinator/journal.h"
#include "coordinator/lock.h"
#include "coordinator/reporter.h"
#include "coordinator/session_fence.h"
#include "tests/coordinator/coordinator_fixture.h"
#include "tests/support/files.h"
#include "tests/support/wait.h"
#include "tests/support/zk_reply_dropper.h"

namespace zkroll::testing {
namespace {

using coordinator::AbortSignal;
using coordinator::DeployEnvironment;
using coordinator::DeployOptions;
using coordinator::DeployOutcome;
using coordinator::DeployResult;

constexpr milliseconds kDeadline(20000);

bool Alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

std::string ManualFlagJson(const std::string& svc, int port,
                           WallTime expires_at) {
  proto::PauseFlag f;
  f.set_service(svc);
  f.set_ip("127.0.0.1");
  f.set_port(static_cast<uint32_t>(port));
  f.set_by("operator@test");
  f.set_pid(1);
  f.set_reason("maintenance");
  *f.mutable_since() = ToTimestamp(expires_at - std::chrono::minutes(5));
  *f.mutable_expires_at() = ToTimestamp(expires_at);
  return ToJson(f);
}

std::string DeployFlagJson(const std::string& svc, int port,
                           const std::string& deploy_id, int64_t pid) {
  proto::PauseFlag f;
  f.set_service(svc);
  f.set_ip("127.0.0.1");
  f.set_port(static_cast<uint32_t>(port));
  f.set_by("other-coordinator@test");
  f.set_pid(static_cast<int32_t>(pid));
  f.set_reason("deploy");
  *f.mutable_since() = NowTimestamp();
  f.set_deploy_id(deploy_id);
  return ToJson(f);
}

// One coordinator in this process: its own session (renewed on expiry, as
// the real one's is), stop signal and reporter.
class InProcessCoordinator {
 public:
  // `out`: where the reporter writes its text (stdout by default).
  InProcessCoordinator(std::unique_ptr<ZkSession> session,
                       boost::asio::any_io_executor executor,
                       const std::string& service, std::FILE* out = stdout)
      : session_(std::move(session)),
        reporter_(coordinator::OutputFormat::kText, out, stderr),
        env_(*ServiceName::Parse(service),
             *DeployId::Parse("20261130T100000Z-test01")) {
    session_->AddListener([this](const SessionEvent&) { abort_.Wake(); });
    env_.session = session_.get();
    env_.executor = executor;
    env_.abort = &abort_;
    env_.reporter = &reporter_;
    env_.acl = OpenAcl();
    env_.switch_acl = OpenAcl();
  }

  ZkSession* session() { return session_.get(); }
  DeployEnvironment& env() { return env_; }

  // Runs the deploy of 127.0.0.1:port on a thread of its own.
  std::future<DeployResult> Start(int port, DeployOptions options) {
    options_ = std::move(options);
    auto address = *InstanceAddress::FromParts("127.0.0.1", port);
    return std::async(std::launch::async, [this, address] {
      return coordinator::DeployInstance(env_, options_, address);
    });
  }

 private:
  AbortSignal abort_;  // outlives the session, whose listener wakes it
  std::unique_ptr<ZkSession> session_;
  coordinator::Reporter reporter_;
  DeployEnvironment env_;
  DeployOptions options_;
};

// A stdio stream that hands every line written to it to `on_line` (on
// the writer's thread, while it writes) and copies it to stdout: the test
// acts at the exact moment the coordinator reports a step.
class LineTap {
 public:
  explicit LineTap(std::function<void(const std::string&)> on_line)
      : on_line_(std::move(on_line)) {
    cookie_io_functions_t io{};
    io.write = [](void* self, const char* buf, size_t n) -> ssize_t {
      auto* tap = static_cast<LineTap*>(self);
      std::fwrite(buf, 1, n, stdout);
      tap->on_line_(std::string(buf, n));
      return static_cast<ssize_t>(n);
    };
    file_ = ::fopencookie(this, "w", io);
    if (file_ != nullptr) std::setvbuf(file_, nullptr, _IONBF, 0);
  }
  ~LineTap() {
    if (file_ != nullptr) std::fclose(file_);
  }
  std::FILE* file() const { return file_; }

 private:
  std::function<void(const std::string&)> on_line_;
  std::FILE* file_ = nullptr;
};

class ProtocolRaceTest : public CoordinatorTest {
 protected:
  // `connect_string` empty: the test server directly.
  std::unique_ptr<InProcessCoordinator> NewCoordinator(
      const std::string& connect_string = "", std::FILE* out = stdout) {
    ZkOptions o;
    o.connect_string = connect_string;
    o.session_timeout = milliseconds(4000);
    o.renew_on_expiry = true;
    return std::make_unique<InProcessCoordinator>(Connect(o), io().executor(),
                                                  svc_, out);
  }
  ServiceName Service() const { return *ServiceName::Parse(svc_); }
  InstanceAddress Address(int port) const {
    return *InstanceAddress::FromParts("127.0.0.1", port);
  }
  DeployOptions FastOptions(std::vector<std::string> command) {
    DeployOptions o;
    o.command = std::move(command);
    o.drain_wait = Millis(0);
    o.exec_timeout = Millis(60000);
    o.health_attempts = 1;
    o.health_interval = Millis(100);
    o.register_timeout = Millis(1000);
    o.zk_retry_window = Millis(5000);
    o.check = *health::ParseCheckSpec("tcp");
    return o;
  }
  // Expires `s`'s current session at the server and waits until the
  // session has been replaced by a new, connected one.
  int64_t ExpireAndRenew(ZkSession* s) {
    const int64_t old_id = s->session_id();
    EXPECT_TRUE(server()->ExpireSession(old_id, s->session_password()).ok());
    EXPECT_TRUE(WaitFor(
        [&] { return s->session_id() != old_id && s->connected(); },
        kDeadline));
    return old_id;
  }
};

// (a, at the session layer) The delete a coordinator's Resume uses is bound
// to the session that created the flag: after that session expired and
// another coordinator paused the instance again (same path, data version 0
// again), it deletes nothing. A plain versioned delete in the new session
// would have deleted the other coordinator's flag: that is the hole.
TEST_F(ProtocolRaceTest, DeleteBoundToTheCreatingSessionCannotHitANewFlag) {
  const int port = PickFreePort();
  auto a = NewCoordinator();
  auto b = Connect();
  const std::string flag = FlagPath(port);
  ASSERT_TRUE(a->session()
                  ->EnsurePathSync(paths::PauseDir(Service()), OpenAcl())
                  .ok());
  ASSERT_TRUE(a->session()
                  ->CreateSync(flag, "a", CreateMode::kEphemeral, OpenAcl())
                  .ok());
  const int64_t a_old = ExpireAndRenew(a->session());
  ASSERT_TRUE(WaitFor([&] { return !Exists(flag); }, kDeadline));
  ASSERT_TRUE(b->CreateSync(flag, "b", CreateMode::kEphemeral, OpenAcl()).ok());

  Status s = a->session()->DeleteInSessionSync(flag, 0, a_old);
  EXPECT_EQ(s.code(), StatusCode::kSessionExpired) << s.ToString();
  auto still = Get(flag);
  ASSERT_TRUE(still) << "B's flag was deleted by A's retry";
  EXPECT_EQ(still->stat.ephemeral_owner, b->session_id());
  EXPECT_EQ(still->stat.version, 0) << "same version as A's flag had: ABA";

  // The hazard is real: the unbound delete at "the version we read"
  // deletes B's flag.
  EXPECT_TRUE(a->session()->DeleteSync(flag, 0).ok());
  EXPECT_FALSE(Exists(flag));
}

// (a, the deploy) A's session expires after its COMMAND failed, while its
// --on-failure runs; B then pauses the same instance with a fresh flag. A's
// resume must leave B's flag alone.
TEST_F(ProtocolRaceTest, ResumeAfterSessionChangeLeavesAnotherCoordinatorsFlag) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  auto a = NewCoordinator();
  Handshake on_failure(dir_, "on-failure");
  DeployOptions opt = FastOptions({"/bin/sh", "-c", "exit 3"});
  opt.on_failure = {"/bin/sh", "-c", on_failure.Snippet()};
  auto result = a->Start(port, opt);
  ASSERT_TRUE(on_failure.WaitStarted(kDeadline));
  ASSERT_TRUE(Exists(FlagPath(port)));

  ExpireAndRenew(a->session());
  ASSERT_TRUE(WaitFor([&] { return !Exists(FlagPath(port)); }, kDeadline));
  auto b = Connect();
  registry::PauseOutcome paused = registry::Pause(
      *b, Service(), Address(port),
      DeployFlagJson(svc_, port, "20261130T100001Z-other1", 4242),
      CreateMode::kEphemeral, OpenAcl());
  ASSERT_TRUE(paused.status.ok()) << paused.status.ToString();
  const int64_t b_czxid = Get(FlagPath(port))->stat.czxid;

  ASSERT_TRUE(on_failure.Release());
  ASSERT_EQ(result.wait_for(kDeadline), std::future_status::ready);
  DeployResult r = result.get();
  EXPECT_EQ(r.outcome, DeployOutcome::kFailed) << r.detail;
  auto flag = Get(FlagPath(port));
  ASSERT_TRUE(flag) << "A's resume deleted B's flag";
  EXPECT_EQ(flag->stat.czxid, b_czxid);
  EXPECT_EQ(flag->stat.ephemeral_owner, b->session_id());
  bool resume_said_so = false;
  for (const auto& step : r.steps) {
    if (step.name == "resume") {
      resume_said_so = step.detail.find("nothing deleted") != std::string::npos;
      EXPECT_NE(step.detail.find("ended"), std::string::npos) << step.detail;
    }
  }
  EXPECT_TRUE(resume_said_so);
}

// (b) `zkroll resume` and the deploy's expired-flag removal delete exactly
// the incarnation they read: here the expired manual flag is replaced by a
// deploy between the read and the delete (flag version 0 both times), and
// the delete fails instead of ending the deploy's pause.
TEST_F(ProtocolRaceTest, ExpiredFlagDeleteFailsWhenAPauseWasMadeSinceTheRead) {
  const int port = PickFreePort();
  Register(zk_.get(), port);
  auto now = std::chrono::system_clock::now();
  registry::PauseOutcome manual = registry::Pause(
      *zk_, Service(), Address(port),
      ManualFlagJson(svc_, port, now - std::chrono::seconds(1)),
      CreateMode::kPersistent, OpenAcl());
  ASSERT_TRUE(manual.status.ok()) << manual.status.ToString();

  // The resume reads (guard first, then the flag)...
  auto read = registry::ReadPauseFlag(*zk_, Service(), Address(port));
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_TRUE(read->flag);
  // ...a deploy removes the expired flag and pauses with its own...
  auto deployer = Connect();
  auto its_read = registry::ReadPauseFlag(*deployer, Service(), Address(port));
  ASSERT_TRUE(its_read.ok());
  ASSERT_TRUE(registry::DeleteReadFlag(*deployer, Service(), Address(port),
                                       its_read->pause_dir,
                                       its_read->flag->stat.version)
                  .ok());
  registry::PauseOutcome deploy = registry::Pause(
      *deployer, Service(), Address(port),
      DeployFlagJson(svc_, port, "20261130T100002Z-deploy", 77),
      CreateMode::kEphemeral, OpenAcl());
  ASSERT_TRUE(deploy.status.ok()) << deploy.status.ToString();
  auto deploys_flag = Get(FlagPath(port));
  ASSERT_TRUE(deploys_flag);
  ASSERT_EQ(deploys_flag->stat.version, read->flag->stat.version);

  // ...and the resume's delete fails, naming the flag.
  Status s = registry::DeleteReadFlag(*zk_, Service(), Address(port),
                                      read->pause_dir,
                                      read->flag->stat.version);
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
  EXPECT_NE(s.message().find(FlagPath(port)), std::string::npos);
  auto after = Get(FlagPath(port));
  ASSERT_TRUE(after) << "the deploy's flag was deleted";
  EXPECT_EQ(after->stat.czxid, deploys_flag->stat.czxid);

  // `zkroll resume` (real binary) refuses the deploy's flag.
  RunResult resume = Zkroll({"resume", "--service", svc_, "--instance",
                             Addr(port)});
  EXPECT_NE(resume.exit_code, 0) << resume.output;
  EXPECT_TRUE(Exists(FlagPath(port))) << resume.output;
}

// (c) `zkroll status` shows an expired manual flag as such and deletes
// nothing; the next `zkroll resume` removes it.
TEST_F(ProtocolRaceTest, StatusReportsAnExpiredFlagAndLeavesIt) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  registry::PauseOutcome manual = registry::Pause(
      *zk_, Service(), Address(port),
      ManualFlagJson(svc_, port,
                     std::chrono::system_clock::now() - std::chrono::minutes(1)),
      CreateMode::kPersistent, OpenAcl());
  ASSERT_TRUE(manual.status.ok()) << manual.status.ToString();
  const int64_t czxid = Get(FlagPath(port))->stat.czxid;

  RunResult status = Zkroll({"status", "--service", svc_});
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("expired, will be removed by the next deploy"),
            std::string::npos)
      << status.output;
  auto flag = Get(FlagPath(port));
  ASSERT_TRUE(flag) << "status deleted the expired flag:\n" << status.output;
  EXPECT_EQ(flag->stat.czxid, czxid);

  RunResult resume = Zkroll({"resume", "--service", svc_, "--instance",
                             Addr(port)});
  EXPECT_EQ(resume.exit_code, 0) << resume.output;
  EXPECT_FALSE(Exists(FlagPath(port))) << resume.output;
}

// (d) After a session change during the pause, the read-back adopts the flag
// only if its payload is ours AND it lives in our current session. Driven
// with real flags read from ZooKeeper through the decision the read-back
// uses (a session change at that exact step cannot be forced from outside).
TEST_F(ProtocolRaceTest, ReadBackAdoptsOnlyOurOwnFlagInOurSession) {
  const int port = PickFreePort();
  const std::string flag = FlagPath(port);
  auto ours = Connect();
  ASSERT_TRUE(ours->EnsurePathSync(paths::PauseDir(Service()), OpenAcl()).ok());
  const std::string our_id = "20261130T100003Z-ours01";
  const int64_t our_pid = 5151;
  auto decide = [&](int64_t session) {
    auto node = Get(flag);
    EXPECT_TRUE(node);
    return coordinator::detail::WhyNotOurFlag(*node, flag, our_id, our_pid,
                                              session);
  };

  // Another coordinator's flag, created in our session id's place: payload
  // says it is not ours.
  auto other = Connect();
  ASSERT_TRUE(other
                  ->CreateSync(flag,
                               DeployFlagJson(svc_, port,
                                              "20261130T100004Z-theirs", 6262),
                               CreateMode::kEphemeral, OpenAcl())
                  .ok());
  auto why = decide(other->session_id());
  ASSERT_TRUE(why) << "a foreign deploy's flag was adopted";
  EXPECT_NE(why->find("not ours"), std::string::npos) << *why;
  // Same deploy id but another process: still not ours.
  ASSERT_TRUE(other->DeleteSync(flag).ok());
  ASSERT_TRUE(other
                  ->CreateSync(flag,
                               DeployFlagJson(svc_, port, our_id, our_pid + 1),
                               CreateMode::kEphemeral, OpenAcl())
                  .ok());
  EXPECT_TRUE(decide(other->session_id()));
  // An operator's manual flag: not ours.
  ASSERT_TRUE(other->DeleteSync(flag).ok());
  ASSERT_TRUE(other
                  ->CreateSync(flag,
                               ManualFlagJson(svc_, port,
                                              std::chrono::system_clock::now() +
                                                  std::chrono::minutes(5)),
                               CreateMode::kPersistent, OpenAcl())
                  .ok());
  EXPECT_TRUE(decide(ours->session_id()));
  // Our payload, but owned by a session that is not ours now (our old,
  // expired one): not adopted, it goes with that session.
  ASSERT_TRUE(other->DeleteSync(flag).ok());
  ASSERT_TRUE(other
                  ->CreateSync(flag, DeployFlagJson(svc_, port, our_id, our_pid),
                               CreateMode::kEphemeral, OpenAcl())
                  .ok());
  why = decide(ours->session_id());
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("not our session now"), std::string::npos) << *why;
  // Ours in our session: adopted.
  ASSERT_TRUE(other->DeleteSync(flag).ok());
  ASSERT_TRUE(ours->CreateSync(flag, DeployFlagJson(svc_, port, our_id, our_pid),
                               CreateMode::kEphemeral, OpenAcl())
                  .ok());
  EXPECT_FALSE(decide(ours->session_id()));
}

// (e) The flag checks around COMMAND (the verify before it and the check
// after it share one function) are answered after a sync: a flag that is
// gone at the leader fails the deploy as session lost. Here the flag is
// deleted while COMMAND runs, deterministically. With one server a sync
// cannot be told apart from a plain read, and a follower's lag cannot be
// forced reliably in the 3-server ensemble either, so this pins down the
// outcome, not the sync itself (docs/reliability.md says so).
TEST_F(ProtocolRaceTest, FlagGoneAtTheLeaderFailsTheCheckAfterSync) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  auto a = NewCoordinator();
  Handshake hs(dir_, "cmd");
  auto result = a->Start(port, FastOptions({"/bin/sh", "-c", hs.Snippet()}));
  ASSERT_TRUE(hs.WaitStarted(kDeadline));
  ASSERT_TRUE(zk_->DeleteSync(FlagPath(port)).ok());
  ASSERT_TRUE(hs.Release());
  ASSERT_EQ(result.wait_for(kDeadline), std::future_status::ready);
  DeployResult r = result.get();
  EXPECT_EQ(r.outcome, DeployOutcome::kSessionLost) << r.detail;
  EXPECT_NE(r.detail.find("is gone"), std::string::npos) << r.detail;
  bool verified_after_sync = false;
  for (const auto& step : r.steps) {
    if (step.name == "verify") {
      verified_after_sync =
          step.detail.find("after a sync") != std::string::npos;
    }
  }
  EXPECT_TRUE(verified_after_sync);
}

// (g) COMMAND gets the flag's creation zxid as ZKROLL_FENCE, and its process
// group is stopped as soon as the coordinator's session expires mid-COMMAND;
// the deploy ends as session lost (exit 4 in the CLI).
TEST_F(ProtocolRaceTest, CommandSeesTheFenceAndIsStoppedWhenTheSessionExpires) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  auto a = NewCoordinator();
  Handshake hs(dir_, "cmd");
  const std::string fence_file = dir_.File("fence");
  const std::string child_file = dir_.File("child");
  // The command also leaves a child in its process group: the whole group
  // must go.
  auto result = a->Start(
      port, FastOptions({"/bin/sh", "-c",
                         "echo \"$ZKROLL_FENCE\" > " + fence_file +
                             "; tail -f /dev/null & echo $! > " +
                             child_file + "; " + hs.Snippet()}));
  ASSERT_TRUE(hs.WaitStarted(kDeadline));
  ASSERT_TRUE(WaitFor([&] { return !ReadFile(child_file).empty(); },
                      kDeadline));
  auto flag = Get(FlagPath(port));
  ASSERT_TRUE(flag);
  EXPECT_EQ(ReadFile(fence_file), std::to_string(flag->stat.czxid) + "\n");
  const pid_t shell = std::stoi(ReadFile(hs.marker()));
  const pid_t child = std::stoi(ReadFile(child_file));

  const auto expired_at = std::chrono::steady_clock::now();
  ExpireAndRenew(a->session());
  ASSERT_EQ(result.wait_for(kDeadline), std::future_status::ready);
  DeployResult r = result.get();
  std::printf("COMMAND stopped %lld ms after the expiry was requested\n",
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(
                      std::chrono::steady_clock::now() - expired_at)
                      .count()));
  EXPECT_EQ(r.outcome, DeployOutcome::kSessionLost) << r.detail;
  EXPECT_NE(r.detail.find("COMMAND was stopped"), std::string::npos)
      << r.detail;
  EXPECT_TRUE(WaitFor([&] { return !Alive(shell) && !Alive(child); },
                      kDeadline))
      << "COMMAND's process group survived the loss of the session";
}

// The fence also falls after a disconnect longer than its limit, without
// any word of an expiry (a partition: the servers may expire the session
// while we hear nothing). The server is stopped for the test and started
// again; the limit is shortened to 300 ms.
TEST_F(ProtocolRaceTest, FenceFallsAfterALongDisconnect) {
  auto a = NewCoordinator();
  const std::string node = "/fence-" + svc_;
  ASSERT_TRUE(a->session()
                  ->CreateSync(node, "", CreateMode::kEphemeral, OpenAcl())
                  .ok());
  coordinator::SessionFence fence(a->session(), a->env().abort,
                                  a->session()->session_id(), node,
                                  std::chrono::steady_clock::now(),
                                  Millis(300));
  EXPECT_FALSE(fence.fallen());
  server()->Stop();
  EXPECT_TRUE(WaitFor([&] { return fence.fallen(); }, kDeadline));
  EXPECT_NE(fence.reason().find("since its last confirmed contact"),
            std::string::npos)
      << fence.reason();
  EXPECT_EQ(fence.deadline_at_fall(), fence.last_confirmed() + Millis(300));
  EXPECT_GE(fence.fell_at(), fence.deadline_at_fall());
  ASSERT_TRUE(server()->Start().ok());
  EXPECT_TRUE(WaitFor([&] { return a->session()->connected(); }, kDeadline));
}

// (fencing, b) The connection is cut while COMMAND runs (the fence's own
// read of its node is the request whose reply is lost; reconnects are
// refused). The fence counts from its last confirmed contact, not from when
// the client noticed the cut: it falls at the last answered read's send
// time + 2T/3, and COMMAND's process group goes after that.
TEST_F(ProtocolRaceTest, FenceCountsFromTheLastConfirmedContactWhenCutOff) {
  ZkReplyDropper proxy(server()->port());
  ASSERT_TRUE(proxy.ok());
  auto a = NewCoordinator(proxy.connect_string());
  const std::string node = "/fence-" + svc_;
  ASSERT_TRUE(a->session()
                  ->CreateSync(node, "", CreateMode::kEphemeral, OpenAcl())
                  .ok());
  const auto created = std::chrono::steady_clock::now();
  coordinator::SessionFence fence(a->session(), a->env().abort,
                                  a->session()->session_id(), node, created);
  EXPECT_EQ(fence.limit(), a->session()->negotiated_timeout() * 2 / 3);

  Handshake hs(dir_, "cut");
  coordinator::CommandSpec spec;
  spec.argv = {"/bin/sh", "-c", hs.Snippet()};
  spec.timeout = Millis(60000);
  AbortSignal stop;  // never requested: only the fence may end COMMAND
  auto run = std::async(std::launch::async, [&] {
    return coordinator::RunCommand(
        spec, [](coordinator::OutputStream, std::string_view) {}, &stop,
        fence.signal());
  });
  ASSERT_TRUE(hs.WaitStarted(kDeadline));
  const pid_t shell = std::stoi(ReadFile(hs.marker()));
  // The fence confirms contact by itself while COMMAND runs.
  ASSERT_TRUE(WaitFor([&] { return fence.last_confirmed() > created; },
                      kDeadline));

  const auto cut = std::chrono::steady_clock::now();
  proxy.DropReplyTo(node);
  ASSERT_EQ(run.wait_for(kDeadline), std::future_status::ready)
      << proxy.Describe();
  const coordinator::CommandOutcome outcome = run.get();
  EXPECT_TRUE(proxy.dropped()) << proxy.Describe();
  EXPECT_EQ(outcome.kind, coordinator::CommandOutcome::Kind::kFenced);
  EXPECT_NE(fence.reason().find("since its last confirmed contact"),
            std::string::npos)
      << fence.reason();
  // Order: confirmed contact, cut, deadline = contact + limit, fall; the
  // group is gone once RunCommand returned.
  const auto confirmed = fence.last_confirmed();
  EXPECT_LT(confirmed, cut);
  EXPECT_EQ(fence.deadline_at_fall(), confirmed + fence.limit());
  EXPECT_LT(fence.deadline_at_fall(), cut + fence.limit())
      << "the fence gave a fresh limit from the cut";
  EXPECT_GE(fence.fell_at(), fence.deadline_at_fall());
  EXPECT_TRUE(WaitFor([&] { return !Alive(shell); }, kDeadline));
  std::printf("fence fell %lld ms after its last confirmed contact (limit "
              "%lld ms)\n",
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(fence.fell_at() -
                                                           confirmed)
                      .count()),
              static_cast<long long>(fence.limit().count()));
  proxy.Release();
}

// (fencing, b) Someone else deletes our pause flag while COMMAND runs (an
// admin session): the session is intact, but what COMMAND relies on is
// gone. The fence's read notices and stops COMMAND.
TEST_F(ProtocolRaceTest, FenceFallsWhenTheFlagIsDeletedDuringCommand) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  auto a = NewCoordinator();
  Handshake hs(dir_, "cmd");
  auto result = a->Start(port, FastOptions({"/bin/sh", "-c", hs.Snippet()}));
  ASSERT_TRUE(hs.WaitStarted(kDeadline));
  const pid_t shell = std::stoi(ReadFile(hs.marker()));
  ASSERT_TRUE(zk_->DeleteSync(FlagPath(port)).ok());
  ASSERT_EQ(result.wait_for(kDeadline), std::future_status::ready);
  DeployResult r = result.get();
  EXPECT_EQ(r.outcome, DeployOutcome::kSessionLost) << r.detail;
  EXPECT_NE(r.detail.find("COMMAND was stopped"), std::string::npos)
      << r.detail;
  EXPECT_NE(r.detail.find("is gone"), std::string::npos) << r.detail;
  EXPECT_TRUE(WaitFor([&] { return !Alive(shell); }, kDeadline))
      << "COMMAND's process group survived the loss of its flag";
}

// (fencing, a) The coordinator is cut off from ZooKeeper right after its
// verify, before the journal records that COMMAND starts (the reply to
// that write is lost and reconnects are refused until the session expired
// at the server). COMMAND must not start: the write failed, and the
// re-verify finds the flag gone with the session.
TEST_F(ProtocolRaceTest, CutBeforeTheCommandIsJournalledDoesNotRunCommand) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  ZkReplyDropper proxy(server()->port());
  ASSERT_TRUE(proxy.ok());
  const DeployId id = *DeployId::Parse("20261130T100000Z-test01");
  const std::string journal_node =
      paths::DeployInstanceNode(Service(), id, Address(port));
  // Armed while the coordinator reports that verify ended ok: the next
  // request on the journal node is the command step's start.
  LineTap tap([&](const std::string& line) {
    if (line.find("flag owned by session") != std::string::npos) {
      proxy.DropReplyTo(journal_node);
    }
  });
  ASSERT_NE(tap.file(), nullptr);
  auto a = NewCoordinator(proxy.connect_string(), tap.file());
  proto::DeployRecord record;
  record.set_deploy_id(id.str());
  record.set_service(svc_);
  auto journal = coordinator::Journal::Start(a->session(), OpenAcl(),
                                             Service(), record, Millis(20000));
  ASSERT_TRUE(journal.ok()) << journal.status().ToString();
  a->env().journal = journal->get();

  const std::string ran = dir_.File("command-ran");
  DeployOptions options = FastOptions({"/bin/sh", "-c", "touch " + ran});
  options.zk_retry_window = Millis(30000);  // outlasts the expiry below
  auto result = a->Start(port, options);
  ASSERT_TRUE(WaitFor([&] { return proxy.dropped(); }, kDeadline))
      << proxy.Describe();
  // The session expires at the server (its flag goes with it) while the
  // coordinator cannot reach it; then it may reconnect.
  ASSERT_TRUE(WaitFor([&] { return !Exists(FlagPath(port)); }, kDeadline));
  proxy.Release();
  ASSERT_EQ(result.wait_for(kDeadline), std::future_status::ready);
  DeployResult r = result.get();
  EXPECT_EQ(r.outcome, DeployOutcome::kSessionLost) << r.detail;
  EXPECT_NE(r.detail.find("the journal could not record that COMMAND starts"),
            std::string::npos)
      << r.detail;
  EXPECT_NE(r.detail.find("COMMAND was not run"), std::string::npos)
      << r.detail;
  EXPECT_FALSE(::access(ran.c_str(), F_OK) == 0) << "COMMAND ran";
  a->env().journal = nullptr;
}

// (h) A deploy whose lock was lost before COMMAND does not run COMMAND.
TEST_F(ProtocolRaceTest, DeployThatLostItsLockDoesNotRunCommand) {
  const int port = PickFreePort();
  Declare(zk_.get(), "host-a", {port});
  Register(zk_.get(), port);
  auto a = NewCoordinator();
  proto::LockHolder holder;
  holder.set_by("test");
  holder.set_pid(::getpid());
  auto lock = coordinator::ServiceLock::Acquire(a->session(), Service(), holder,
                                                OpenAcl());
  ASSERT_TRUE(lock.ok()) << lock.status().ToString();
  a->env().lock = lock->get();
  // The lock node goes (as with an expiry; another coordinator could now
  // take the lock).
  ASSERT_TRUE(zk_->DeleteSync((*lock)->path()).ok());

  const std::string ran = dir_.File("command-ran");
  auto result = a->Start(port, FastOptions({"/bin/sh", "-c", "touch " + ran}));
  ASSERT_EQ(result.wait_for(kDeadline), std::future_status::ready);
  DeployResult r = result.get();
  EXPECT_EQ(r.outcome, DeployOutcome::kSessionLost) << r.detail;
  EXPECT_NE(r.detail.find("lost the lock"), std::string::npos) << r.detail;
  EXPECT_FALSE(::access(ran.c_str(), F_OK) == 0) << "COMMAND ran";
  EXPECT_FALSE(Exists(FlagPath(port))) << "our flag was not resumed";
  a->env().lock = nullptr;
}

}  // namespace
}  // namespace zkroll::testing
