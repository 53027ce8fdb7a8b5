// RolloutRequest: the options of deploy and rollout parsed in one place,
// recorded in the journal (ToParameters) and rebuilt from it
// (FromParameters) into the same request. Pure logic, no ZooKeeper.
#include "coordinator/rollout_request.h"

#include <gtest/gtest.h>

#include "coordinator/process_identity.h"

namespace zkroll::coordinator {
namespace {

namespace po = boost::program_options;

Result<RolloutRequest> Parse(const std::string& kind,
                             std::vector<std::string> args,
                             std::vector<std::string> command = {"/bin/true"}) {
  po::options_description desc = RequestOptionsDescription(kind);
  // Global options are recorded too (and ignored by a rebuild).
  desc.add_options()("zk", po::value<std::string>());
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).run(), vm);
  po::notify(vm);
  return RolloutRequest::FromOptions(kind, vm, command, Millis(7000));
}

proto::DeployRecord Record(const RolloutRequest& r) {
  proto::DeployRecord rec;
  rec.set_deploy_id(r.id.str());
  rec.set_service(r.service.str());
  rec.set_kind(r.kind);
  for (const auto& c : r.options.deploy.command) rec.add_command(c);
  for (const auto& [k, v] : r.ToParameters()) (*rec.mutable_parameters())[k] = v;
  return rec;
}

TEST(RolloutRequestTest, RebuiltFromItsParametersIsTheSameRequest) {
  auto r = Parse("rollout",
                 {"--zk", "127.0.0.1:2181", "--service", "level",
                  "--instances", "127.0.0.1:81,127.0.0.1:80", "--batch", "2",
                  "--min-healthy", "3", "--min-healthy-timeout", "1m30s",
                  "--max-failures", "1", "--drain", "auto", "--drain-wait",
                  "9s", "--drain-quiet", "700ms", "--drain-min", "2s",
                  "--check", "http:/health|200,204", "--health-attempts",
                  "4", "--on-failure", "/bin/echo 'roll back'",
                  "--deploy-id", "d-1", "--force"},
                 {"/bin/echo", "v2"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ToParameters().at("zk"), "127.0.0.1:2181");
  auto back = RolloutRequest::FromParameters(Record(*r), Millis(7000));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->kind, "rollout");
  EXPECT_EQ(back->service.str(), "level");
  EXPECT_EQ(back->id.str(), "d-1");
  ASSERT_EQ(back->targets.size(), 2u);
  EXPECT_EQ(back->targets[0].ToString(), "127.0.0.1:81");
  EXPECT_FALSE(back->from_agents);
  EXPECT_TRUE(back->force);
  EXPECT_EQ(back->options.batch, 2);
  EXPECT_EQ(back->options.min_healthy, 3);
  EXPECT_EQ(back->options.min_healthy_timeout, Millis(90000));
  EXPECT_EQ(back->options.max_failures, 1);
  const DeployOptions& d = back->options.deploy;
  EXPECT_EQ(d.command, (std::vector<std::string>{"/bin/echo", "v2"}));
  EXPECT_EQ(d.drain_mode, DrainMode::kAuto);
  EXPECT_EQ(d.drain_wait, Millis(9000));
  EXPECT_EQ(d.drain_quiet, Millis(700));
  EXPECT_EQ(d.drain_min, Millis(2000));
  EXPECT_EQ(d.check.kind, health::CheckSpec::Kind::kHttp);
  EXPECT_EQ(d.check.http_path, "/health");
  EXPECT_EQ(d.health_attempts, 4);
  EXPECT_EQ(d.on_failure,
            (std::vector<std::string>{"/bin/echo", "roll back"}));
  EXPECT_EQ(d.reason, "d-1");  // no --reason: the id
  EXPECT_EQ(d.zk_retry_window, Millis(7000));
  EXPECT_EQ(back->ToParameters(), r->ToParameters());
}

TEST(RolloutRequestTest, DefaultsAndSwitchRebuild) {
  auto r = Parse("deploy", {"--service", "level", "--instance", "[::1]:80",
                            "--switch", "--verify-window", "3s",
                            "--reason", "ticket 42"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto back = RolloutRequest::FromParameters(Record(*r), Millis(1000));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->kind, "deploy");
  ASSERT_EQ(back->targets.size(), 1u);
  EXPECT_EQ(back->targets[0].ToString(), "[::1]:80");
  EXPECT_TRUE(back->options.deploy.switching.enabled);
  EXPECT_EQ(back->options.deploy.switching.verify_window, Millis(3000));
  EXPECT_EQ(back->options.deploy.reason, "ticket 42");
  EXPECT_EQ(back->options.deploy.drain_mode, DrainMode::kFixed);
  EXPECT_EQ(back->options.deploy.drain_wait, Millis(20000));
  EXPECT_EQ(back->id.str(), r->id.str());
}

TEST(RolloutRequestTest, RefusesWhatNoLongerParses) {
  auto r = Parse("rollout", {"--service", "level", "--min-healthy", "1"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  proto::DeployRecord rec = Record(*r);
  rec.set_command(0, "/nonexistent/upgrade");
  auto back = RolloutRequest::FromParameters(rec, Millis(1000));
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(back.status().message().find("/nonexistent/upgrade"),
            std::string::npos)
      << back.status().message();
  rec = Record(*r);
  (*rec.mutable_parameters())["batch"] = "0";
  back = RolloutRequest::FromParameters(rec, Millis(1000));
  ASSERT_FALSE(back.ok());
  EXPECT_NE(back.status().message().find("--batch"), std::string::npos);
  rec = Record(*r);
  rec.set_kind("frobnicate");
  EXPECT_FALSE(RolloutRequest::FromParameters(rec, Millis(1000)).ok());
}

TEST(RolloutRequestTest, ResumeOptionsNeedResume) {
  auto r = Parse("rollout", {"--service", "level", "--min-healthy", "1",
                             "--rerun-command"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--rerun-command needs --resume"),
            std::string::npos);
  r = Parse("rollout", {"--service", "level", "--min-healthy", "1"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->ToParameters().count("rerun-command"), 0u);
}

TEST(ProcessIdentityTest, TellsARunningProcessFromAGoneOne) {
  auto me = IdentifyProcess(::getpid());
  ASSERT_TRUE(me.ok()) << me.status().ToString();
  EXPECT_EQ(StateOf(*me), ProcessState::kRunning);
  ProcessIdentity reused = *me;
  reused.set_start_ticks("1");  // same pid, another start: not ours
  EXPECT_EQ(StateOf(reused), ProcessState::kGone);
  ProcessIdentity rebooted = *me;
  rebooted.set_boot_id("another-boot");
  EXPECT_EQ(StateOf(rebooted), ProcessState::kGone);
  ProcessIdentity elsewhere = *me;
  elsewhere.set_host(me->host() + "-elsewhere");
  EXPECT_EQ(StateOf(elsewhere), ProcessState::kElsewhere);
  // Gone already: no wait.
  EXPECT_TRUE(WaitProcessGone(reused, std::chrono::steady_clock::now(),
                              nullptr)
                  .ok());
  // Running: the deadline ends the wait.
  Status s = WaitProcessGone(*me, std::chrono::steady_clock::now(), nullptr);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace zkroll::coordinator
