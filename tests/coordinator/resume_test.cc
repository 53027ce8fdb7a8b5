// `zkroll rollout --resume` and `zkroll promote` against a real ZooKeeper,
// real agents, tiny services and real coordinator processes.
//
// Kill: a rollout is SIGKILLed at one step of an instance (held there
// deterministically: a COMMAND blocked on a FIFO, a check that fails until
// a file exists, a re-registration that waits for a stopped service, a
// --min-healthy wait between batches, a drain), its session ends (the lock
// and its pause flags go with it), and `--resume` finishes the rollout.
// Every COMMAND appends its instance's port to a file once it completed:
// each instance must appear exactly once.
//
// Refusals: unknown id, a deploy that succeeded, one that is running (lock
// held), instances that changed (gone, or a new one declared): exit 2, the
// reason, and nothing touched (journal node, locks and flags as before).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "tests/faults/fault_fixture.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

constexpr char kSessionTimeout[] = "2s";
constexpr char kId[] = "resume-1";

enum class KillAt { kInDrain, kDuringCommand, kDuringChecks, kAfterResume,
                    kBetweenBatches };

std::string Name(KillAt k) {
  switch (k) {
    case KillAt::kInDrain:
      return "InDrain";
    case KillAt::kDuringCommand:
      return "InCommand";
    case KillAt::kDuringChecks:
      return "InChecks";
    case KillAt::kAfterResume:
      return "AfterResume";
    case KillAt::kBetweenBatches:
      return "BetweenBatches";
  }
  return "?";
}

class ResumeTest : public FaultTest {
 protected:
  // Shell text appending this instance's port to the completion file.
  std::string Complete() const {
    return "echo \"$ZKROLL_PORT\" >> '" + dir_.File("completed") + "'";
  }
  // How many times each port's COMMAND completed.
  std::map<int, int> Completions() const {
    std::map<int, int> counts;
    std::ifstream in(dir_.File("completed"));
    int port = 0;
    while (in >> port) ++counts[port];
    return counts;
  }
  // `zkroll rollout` of svc_ with fast options and a fixed id; `extra`
  // options and `script` (run by /bin/sh -c) are the test's.
  std::vector<std::string> Rollout(std::vector<std::string> extra,
                                   const std::string& script) {
    std::vector<std::string> args = {
        "--output", "json", "--session-timeout", kSessionTimeout, "rollout",
        "--service", svc_, "--deploy-id", kId, "--batch", "1"};
    std::map<std::string, std::string> defaults = {
        {"--min-healthy", "0"},
        {"--drain-wait", "0s"},
        {"--health-interval", "100ms"},
        {"--register-timeout", "20s"}};
    for (size_t i = 0; i + 1 < extra.size(); i += 2) defaults.erase(extra[i]);
    for (const auto& [k, v] : defaults) args.insert(args.end(), {k, v});
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--", "/bin/sh", "-c", script});
    return args;
  }
  std::vector<std::string> Resume(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--output", "json", "--session-timeout",
                                     kSessionTimeout, "rollout", "--resume",
                                     kId, "--service", svc_};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  std::string JournalPath() const {
    return "/deploys/" + svc_ + "/" + kId;
  }
  // The journal of kId (the only deploy of svc_), with its steps.
  std::optional<proto::DeployRecord> Journal() {
    auto last = LastJournal();
    if (!last || last->deploy_id() != kId) return std::nullopt;
    return last;
  }
  // Whether `port`'s COMMAND is on record as the journal leaves it for a
  // resume: its process, or its end. Both are held changes, written within
  // the journal's flush delay (a COMMAND costs no write of its own); a kill
  // before that leaves a COMMAND the resume cannot judge and refuses
  // without --command-ended (the refusal has its own case). The kills
  // below land after it, as they do for any COMMAND that runs or ended
  // more than the flush delay before.
  bool CommandOnRecord(int port) {
    auto j = Journal();
    if (!j) return false;
    for (const auto& s : Steps(*j, port)) {
      if (s.name() == "command" && !s.has_process() &&
          s.verdict() == "running") {
        return false;
      }
    }
    return true;
  }
  // The steps of `port` in the journal.
  std::vector<proto::DeployRecord::Step> Steps(const proto::DeployRecord& r,
                                               int port) {
    const std::string node = "127.0.0.1_" + std::to_string(port);
    for (const auto& inst : r.instances()) {
      if (inst.instance() == node) return {inst.steps().begin(), inst.steps().end()};
    }
    return {};
  }
  // Kills `z` and waits until its session (lock, flags) is gone.
  void KillAndWaitSessionGone(ChildProcess* z) {
    z->Signal(SIGKILL);
    ASSERT_EQ(z->Wait(milliseconds(10000)), 128 + SIGKILL);
    ASSERT_TRUE(WaitFor([&] { return LockFree(); }, milliseconds(20000)))
        << "the killed coordinator's lock outlived its session";
  }
  // What a refusal must leave as it was.
  struct Snapshot {
    std::string journal;
    int32_t version = -1;
    std::vector<std::string> locks, flags;
    bool operator==(const Snapshot& o) const {
      return journal == o.journal && version == o.version &&
             locks == o.locks && flags == o.flags;
    }
  };
  Snapshot Take() {
    Snapshot s;
    if (auto d = Get(JournalPath())) {
      s.journal = d->data;
      s.version = d->stat.version;
    }
    s.locks = Children("/locks/" + svc_);
    s.flags = Children("/pause/" + svc_);
    return s;
  }
  void ExpectRefused(const std::vector<std::string>& args,
                     const std::string& reason) {
    const Snapshot before = Take();
    RunResult r = Zkroll(args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(reason), std::string::npos)
        << "wanted: " << reason << "\ngot: " << r.output;
    EXPECT_NE(r.output.find("nothing was touched"), std::string::npos)
        << r.output;
    EXPECT_TRUE(Take() == before) << "a refused resume changed ZooKeeper";
  }
  void ExpectFinished(const std::vector<int>& ports) {
    auto j = Journal();
    ASSERT_TRUE(j.has_value());
    EXPECT_EQ(j->outcome(), "succeeded") << j->DebugString();
    EXPECT_EQ(j->resumed_size(), 1);
    for (const auto& inst : j->instances()) {
      EXPECT_EQ(inst.outcome(), "succeeded") << inst.instance();
    }
    std::map<int, int> counts = Completions();
    for (int port : ports) {
      EXPECT_EQ(counts[port], 1) << "COMMAND of " << port << " completed "
                                 << counts[port] << " times";
    }
    EXPECT_EQ(counts.size(), ports.size());
    EXPECT_TRUE(NoFlags());
    EXPECT_TRUE(LockFree());
    for (int port : ports) {
      EXPECT_TRUE(WaitFor([&] { return Registered(port); },
                          milliseconds(20000)))
          << port << "\n" << AgentLogs();
    }
  }
};

class ResumeKillTest : public ResumeTest,
                       public ::testing::WithParamInterface<KillAt> {};

// Short names: the fixture derives the service name from the test name and
// cuts it at 60 characters.
TEST_P(ResumeKillTest, ExactlyOnce) {
  const KillAt at = GetParam();
  ChildProcess* z = nullptr;
  std::vector<int> rolled;  // the instances of the rollout
  Handshake* held = nullptr;
  bool checks_pass_after_kill = false;
  TinyService* stopped = nullptr;
  const std::string check_ok = dir_.File("check-ok");

  if (at == KillAt::kBetweenBatches) {
    // As in coordinator_kill_test: A and B one at a time, keeping 2
    // registered; C is stopped while A's COMMAND runs, so the coordinator
    // waits for --min-healthy before batch 2: B is not paused yet.
    StartFleet(3);
    if (HasFatalFailure()) return;
    const std::vector<int> p = Ports();
    rolled = {p[0], p[1]};
    held = NewHandshake("a");
    z = StartZkroll(Rollout(
        {"--instances", Addr(p[0]) + "," + Addr(p[1]), "--min-healthy", "2"},
        "[ \"$ZKROLL_PORT\" != " + std::to_string(p[0]) + " ] || { " +
            held->Snippet() + "; }; " + Complete()));
    ASSERT_TRUE(held->WaitStarted(milliseconds(20000))) << z->Output();
    for (auto& s : services_) {
      if (s->port() == p[2]) stopped = s.get();
    }
    stopped->Stop();
    ASSERT_TRUE(WaitFor([&] { return !Registered(p[2]); }, milliseconds(10000)));
    ASSERT_TRUE(Release(held));
    ASSERT_TRUE(WaitForLine(
        z, {"\"event\":\"notice\"", "outside the next batch", "(now 1)"}))
        << z->Output();
    ASSERT_FALSE(Paused(p[1]));
  } else {
    StartFleet(2);
    if (HasFatalFailure()) return;
    rolled = Ports();
    const int victim = rolled[0];
    const std::string is_victim =
        "[ \"$ZKROLL_PORT\" = " + std::to_string(victim) + " ]";
    std::vector<std::string> extra;
    std::string script = Complete();
    std::vector<std::string> moment;
    if (at == KillAt::kInDrain) {
      // Every instance drains 3s; the kill lands in the victim's (the
      // first) drain, long before it ends.
      extra = {"--drain-wait", "3s"};
      moment = {"\"step\":\"drain\"", "\"verdict\":\"started\""};
    } else if (at == KillAt::kDuringCommand) {
      held = NewHandshake("cmd");
      extra = {"--exec-timeout", "5m"};
      script = "if " + is_victim + "; then " + held->Snippet() + "; fi; " +
               Complete();
      moment = {"\"step\":\"command\"", "\"verdict\":\"started\""};
    } else if (at == KillAt::kDuringChecks) {
      // The coordinator's check fails until the test creates check-ok.
      extra = {"--check", "exec:/usr/bin/test -e " + check_ok,
               "--health-attempts", "1000"};
      moment = {"\"step\":\"health\"", "\"verdict\":\"started\""};
      checks_pass_after_kill = true;
    } else {  // kAfterResume
      // COMMAND stops the victim's service: the coordinator's own check
      // passes (/bin/true), the flag is deleted, and the agent does not
      // register a service that is down: held in "registered".
      stopped = services_[0].get();
      for (auto& s : services_) {
        if (s->port() == victim) stopped = s.get();
      }
      // The coordinator's check passes only once the test saw the agent
      // check the dead service (check-ok): the agent must not register it
      // on a result from before the kill.
      extra = {"--check", "exec:/usr/bin/test -e " + check_ok,
               "--health-attempts", "1000", "--register-timeout", "5m"};
      script = "if " + is_victim + "; then kill $(cat '" +
               stopped->pidfile() + "'); fi; " + Complete();
      moment = {"\"step\":\"registered\"", "\"verdict\":\"started\""};
    }
    z = StartZkroll(Rollout(extra, script));
    if (at == KillAt::kAfterResume) {
      ASSERT_TRUE(WaitForLine(z, {"\"step\":\"health\"",
                                  "\"verdict\":\"started\""}))
          << z->Output();
      ASSERT_TRUE(WaitForChecks("host-a", victim, 2, milliseconds(20000)))
          << AgentLogs();
      std::ofstream(check_ok) << "ok\n";
    }
    ASSERT_TRUE(WaitForLine(z, moment)) << z->Output();
    if (held != nullptr) {
      ASSERT_TRUE(held->WaitStarted(milliseconds(10000))) << z->Output();
    }
    ASSERT_TRUE(HasLine(z, {moment[0], moment[1], std::to_string(victim)}))
        << "the kill would not land in the victim's step\n"
        << z->Output();
  }

  ASSERT_TRUE(WaitFor(
      [&] {
        for (int port : rolled) {
          if (!CommandOnRecord(port)) return false;
        }
        return true;
      },
      milliseconds(20000)))
      << "a COMMAND never reached the journal\n"
      << z->Output();
  KillAndWaitSessionGone(z);
  if (HasFatalFailure()) return;
  {
    auto j = Journal();
    ASSERT_TRUE(j.has_value());
    ASSERT_EQ(j->outcome(), "running");
    RunResult h = Zkroll({"history", "--service", svc_});
    EXPECT_NE(h.output.find("unfinished"), std::string::npos) << h.output;
  }
  if (checks_pass_after_kill) {
    std::ofstream(check_ok) << "ok\n";
  }
  if (stopped != nullptr) {
    stopped->Stop();  // reap it (kAfterResume: COMMAND killed it)
    ASSERT_TRUE(stopped->Start());
  }

  if (at == KillAt::kDuringCommand) {
    // The killed coordinator's COMMAND still runs: the resume waits for it
    // and touches nothing meanwhile.
    ChildProcess* r = StartZkroll(Resume());
    ASSERT_TRUE(WaitForLine(r, {"\"event\":\"notice\"",
                                "waiting for the COMMAND of"}))
        << r->Output();
    EXPECT_TRUE(Completions().empty());
    EXPECT_TRUE(r->running());
    for (int port : rolled) EXPECT_FALSE(Paused(port)) << port;
    ASSERT_TRUE(Release(held));
    auto code = r->Wait(milliseconds(60000));
    ASSERT_EQ(code, 0) << r->Output() << AgentLogs();
    // The victim was judged by its checks, not run again.
    auto j = Journal();
    ASSERT_TRUE(j.has_value());
    auto steps = Steps(*j, rolled[0]);
    int skipped = 0;
    bool process_recorded = false;
    for (const auto& s : steps) {
      if (s.name() == "command" && s.verdict() == "skipped") ++skipped;
      if (s.name() == "command" && s.has_process()) {
        process_recorded = true;
        EXPECT_GT(s.process().pid(), 1);
      }
    }
    EXPECT_EQ(skipped, 1) << j->DebugString();
    EXPECT_TRUE(process_recorded) << j->DebugString();
  } else {
    RunResult r = Zkroll(Resume());
    ASSERT_EQ(r.exit_code, 0) << r.output << AgentLogs();
    EXPECT_NE(r.output.find("rollout " + std::string(kId) + " of " + svc_ + ": resuming"),
              std::string::npos)
        << r.output;
  }
  ExpectFinished(rolled);

  // Done: a second resume is refused, and changes nothing.
  ExpectRefused(Resume(), "it succeeded");
}

INSTANTIATE_TEST_SUITE_P(Steps, ResumeKillTest,
                         ::testing::Values(KillAt::kInDrain,
                                           KillAt::kDuringCommand,
                                           KillAt::kDuringChecks,
                                           KillAt::kAfterResume,
                                           KillAt::kBetweenBatches),
                         [](const auto& info) { return Name(info.param); });

// --rerun-command: the in-flight instance's COMMAND runs again once the old
// one ended (twice in all, as asked), the others once.
TEST_F(ResumeTest, RerunCommandRunsTheInFlightCommandAgain) {
  StartFleet(2);
  if (HasFatalFailure()) return;
  const std::vector<int> p = Ports();
  Handshake* held = NewHandshake("cmd");
  const std::string once = dir_.File("held-once");
  // Only the first run of the victim blocks.
  ChildProcess* z = StartZkroll(Rollout(
      {"--exec-timeout", "5m"},
      "if [ \"$ZKROLL_PORT\" = " + std::to_string(p[0]) + " ] && [ ! -e '" +
          once + "' ]; then touch '" + once + "'; " + held->Snippet() +
          "; fi; " + Complete()));
  ASSERT_TRUE(held->WaitStarted(milliseconds(20000))) << z->Output();
  ASSERT_TRUE(WaitFor([&] { return CommandOnRecord(p[0]); },
                      milliseconds(20000)))
      << z->Output();
  KillAndWaitSessionGone(z);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(Release(held));  // the old COMMAND completes (count 1)
  ASSERT_TRUE(WaitFor([&] { return Completions()[p[0]] == 1; },
                      milliseconds(10000)));
  RunResult r = Zkroll(Resume({"--rerun-command"}));
  ASSERT_EQ(r.exit_code, 0) << r.output << AgentLogs();
  std::map<int, int> counts = Completions();
  EXPECT_EQ(counts[p[0]], 2);
  EXPECT_EQ(counts[p[1]], 1);
  auto j = Journal();
  ASSERT_TRUE(j.has_value());
  EXPECT_EQ(j->outcome(), "succeeded");
}

// --canary-promote manual stops after the canary; promote deploys the rest
// (the canary not again); revert then reverts every instance, newest first.
TEST_F(ResumeTest, PromoteThenRevert) {
  StartFleet(3);
  if (HasFatalFailure()) return;
  const std::vector<int> p = Ports();
  RunResult first = Zkroll(Rollout(
      {"--canary", "1", "--canary-promote", "manual"}, Complete()));
  ASSERT_EQ(first.exit_code, 0) << first.output << AgentLogs();
  ASSERT_EQ(Journal()->outcome(), "awaiting-promotion");
  EXPECT_EQ(Completions().size(), 1u);
  // It recorded no --auto-revert: revert needs a command.
  ExpectRefused({"revert", "--service", svc_, "--deploy", kId},
                "no --auto-revert command");
  RunResult promoted = Zkroll({"--output", "json", "--session-timeout",
                               kSessionTimeout, "promote", "--service", svc_,
                               "--deploy", kId});
  ASSERT_EQ(promoted.exit_code, 0) << promoted.output << AgentLogs();
  std::map<int, int> counts = Completions();
  for (int port : p) EXPECT_EQ(counts[port], 1) << port;
  ASSERT_EQ(Journal()->outcome(), "succeeded");
  ExpectRefused({"promote", "--service", svc_, "--deploy", kId},
                "not awaiting promotion");

  const std::string reverted = dir_.File("reverted");
  RunResult r = Zkroll({"--output", "json", "--session-timeout",
                        kSessionTimeout, "revert", "--service", svc_,
                        "--deploy", kId, "--", "/bin/sh", "-c",
                        "echo \"$ZKROLL_PORT $ZKROLL_REVERT\" >> '" + reverted +
                            "'"});
  ASSERT_EQ(r.exit_code, 0) << r.output << AgentLogs();
  std::ifstream in(reverted);
  std::vector<int> order;
  int port = 0, flag = 0;
  while (in >> port >> flag) {
    order.push_back(port);
    EXPECT_EQ(flag, 1);
  }
  // Newest first: the canary (the first upgraded) is reverted last.
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order.back(), p[0]);
  auto j = Journal();
  ASSERT_TRUE(j.has_value());
  EXPECT_EQ(j->outcome(), "reverted");
  for (const auto& inst : j->instances()) {
    EXPECT_EQ(inst.outcome(), "reverted") << inst.instance();
  }
  for (int q : p) {
    EXPECT_TRUE(WaitFor([&] { return Registered(q); }, milliseconds(20000)));
  }
  ExpectRefused({"revert", "--service", svc_, "--deploy", kId, "--",
                 "/bin/true"},
                "nothing to revert");
}

TEST_F(ResumeTest, RefusesAndTouchesNothing) {
  // Two agents, one instance each, so one instance can vanish.
  services_.push_back(std::make_unique<TinyService>(PickFreePort()));
  services_.push_back(std::make_unique<TinyService>(PickFreePort()));
  for (auto& s : services_) ASSERT_TRUE(s->Start());
  const int a = services_[0]->port(), b = services_[1]->port();
  StartAgent("host-a", {Instance(a)});
  ChildProcess* agent_b = StartAgent("host-b", {Instance(b)});
  for (int port : {a, b}) {
    ASSERT_TRUE(WaitFor([&] { return Registered(port); }, milliseconds(20000)))
        << AgentLogs();
  }
  ASSERT_TRUE(WaitFor([&] { return AgentDeclares("host-a", a) &&
                                   AgentDeclares("host-b", b); },
                      milliseconds(20000)));

  // Unknown id.
  ExpectRefused(Resume(), "there is no such deploy");

  // A rollout of every declared instance whose COMMAND fails until
  // `fixed` exists: the first instance fails, the second never starts.
  const std::string fixed = dir_.File("fixed");
  Handshake* held = NewHandshake("hold");
  const std::string hold_flag = dir_.File("hold");
  const std::string script = "[ ! -e '" + hold_flag + "' ] || { rm '" +
                             hold_flag + "'; " + held->Snippet() +
                             "; }; [ -e '" + fixed + "' ] || exit 1; " +
                             Complete();
  RunResult first = Zkroll(Rollout({}, script));
  ASSERT_EQ(first.exit_code, 1) << first.output;
  EXPECT_NE(first.output.find("--resume " + std::string(kId)),
            std::string::npos)
      << first.output;
  ASSERT_EQ(Journal()->outcome(), "failed");

  // Options beside --resume, or a COMMAND, are usage errors.
  {
    RunResult r = Zkroll({"rollout", "--resume", kId, "--service", svc_,
                          "--batch", "2"});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("--batch cannot be given with --resume"),
              std::string::npos)
        << r.output;
    r = Zkroll({"rollout", "--resume", kId, "--service", svc_, "--",
                "/bin/true"});
    EXPECT_EQ(r.exit_code, 2) << r.output;
  }

  // A new instance declared: the plan (every declared instance) is
  // ambiguous.
  services_.push_back(std::make_unique<TinyService>(PickFreePort()));
  ASSERT_TRUE(services_.back()->Start());
  const int c = services_.back()->port();
  ChildProcess* agent_c = StartAgent("host-c", {Instance(c)});
  ASSERT_TRUE(WaitFor([&] { return AgentDeclares("host-c", c); },
                      milliseconds(20000)));
  ExpectRefused(Resume(), "agents now declare " + Addr(c));
  agent_c->Signal(SIGTERM);
  ASSERT_TRUE(agent_c->Wait(milliseconds(20000)).has_value());
  ASSERT_TRUE(WaitFor([&] { return !Exists("/agents/host-c"); },
                      milliseconds(20000)));

  // An instance of the plan, not done, gone from ZooKeeper.
  agent_b->Signal(SIGTERM);
  ASSERT_TRUE(agent_b->Wait(milliseconds(20000)).has_value());
  ASSERT_TRUE(WaitFor([&] { return !Exists("/agents/host-b") && !Registered(b); },
                      milliseconds(20000)));
  ExpectRefused(Resume(), Addr(b) + ", not done yet, is no longer declared");

  // Back: the resume may run. It is held in the first COMMAND, so that a
  // second resume finds it running (the lock held).
  agent_b = StartAgent("host-b", {Instance(b)});
  ASSERT_TRUE(WaitFor([&] { return AgentDeclares("host-b", b) && Registered(b); },
                      milliseconds(20000)));
  std::ofstream(fixed) << "fixed\n";
  std::ofstream(hold_flag) << "hold\n";
  ChildProcess* running = StartZkroll(Resume());
  ASSERT_TRUE(held->WaitStarted(milliseconds(20000))) << running->Output();
  ExpectRefused(Resume(), "it is running: its coordinator holds the lock");
  ASSERT_TRUE(Release(held));
  ASSERT_EQ(running->Wait(milliseconds(60000)), 0)
      << running->Output() << AgentLogs();
  std::map<int, int> counts = Completions();
  EXPECT_EQ(counts[a], 1);
  EXPECT_EQ(counts[b], 1);
  auto j = Journal();
  ASSERT_TRUE(j.has_value());
  EXPECT_EQ(j->outcome(), "succeeded");
  EXPECT_EQ(j->resumed_size(), 1);
  RunResult h = Zkroll({"history", "--service", svc_, "--deploy-id", kId});
  EXPECT_NE(h.output.find("resumed "), std::string::npos) << h.output;

  // Succeeded now.
  ExpectRefused(Resume(), "it succeeded");
  // promote wants a rollout awaiting promotion.
  ExpectRefused({"promote", "--service", svc_, "--deploy", kId},
                "not awaiting promotion");
}

}  // namespace
}  // namespace zkroll::testing
