// Fault: malformed or hostile znode payloads, written by the test into the
// nodes zkroll reads: pause flags (/pause/S/<instance>), registrations and
// stray nodes under /services/S, and agent records under /agents.
//
// Expected outcome: the agent keeps running and keeps managing its other
// instances; a flag whose payload cannot be parsed still counts as a pause
// (fail safe); `zkroll status` (text and JSON) exits 0 and names every bad
// node instead of crashing. Removing the bad flag ends the pause; the test
// prints how long the agent took to register the instance again.
#include <gtest/gtest.h>

#include "common/registry.h"
#include "tests/faults/fault_fixture.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

struct Hostile {
  std::string name;
  std::string payload;
};

std::vector<Hostile> HostilePayloads() {
  return {
      {"empty", ""},
      {"invalid JSON", "{\"by\": "},
      {"wrong types", "{\"pid\":\"not a number\",\"by\":42,\"since\":[1]}"},
      {"unknown fields",
       "{\"by\":\"x\",\"surprise\":{\"nested\":[1,2,3]},\"zz\":null}"},
      {"non-UTF-8", std::string("{\"by\":\"\xff\xfe\xc0\x80\"}")},
      {"binary with NUL", std::string("\x00\x01{\x02}\x00", 6)},
      {"expires_at garbage", "{\"by\":\"x\",\"expires_at\":\"tomorrow\"}"},
      // Under ZooKeeper's default 1 MB jute.maxbuffer, far over our 64 KiB.
      {"900 KB", "{\"reason\":\"" + std::string(900 * 1024, 'a') + "\"}"},
  };
}

class HostilePayloadTest : public FaultTest {
 protected:
  RunResult Status(bool json) {
    std::vector<std::string> args;
    if (json) args = {"--output", "json"};
    args.insert(args.end(), {"status", "--service", svc_});
    return Zkroll(args, milliseconds(30000));
  }
};

TEST_F(HostilePayloadTest, BadPauseFlagsCountAsPausesAndAreReported) {
  StartFleet(2);
  if (HasFatalFailure()) return;
  const std::vector<int> ports = Ports();
  const int target = ports[0], bystander = ports[1];
  ChildProcess* agent = children_.back().get();

  for (const Hostile& h : HostilePayloads()) {
    SCOPED_TRACE(h.name);
    // The coordinator's pause transaction, with a hostile payload.
    ASSERT_TRUE(zk_->EnsurePathSync(paths::kPauseRoot, OpenAcl()).ok());
    auto r = registry::Pause(*zk_, *ServiceName::Parse(svc_),
                             *InstanceAddress::FromParts("127.0.0.1", target),
                             h.payload, CreateMode::kPersistent, OpenAcl());
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    ASSERT_TRUE(WaitFor(
        [&] {
          auto v = AgentView("host-a", target);
          return v && v->paused();
        },
        milliseconds(20000)))
        << "the agent did not treat the flag as a pause\n"
        << AgentLogs();
    ASSERT_TRUE(WaitForChecks("host-a", target, 2, milliseconds(20000)));
    EXPECT_FALSE(Registered(target)) << AgentLogs();
    EXPECT_TRUE(Registered(bystander));
    EXPECT_TRUE(agent->running()) << AgentLogs();

    for (bool json : {false, true}) {
      RunResult st = Status(json);
      EXPECT_EQ(st.exit_code, 0) << st.output.substr(0, 4000);
      EXPECT_NE(st.output.find(Addr(target)), std::string::npos)
          << st.output.substr(0, 4000);
      if (h.name == "expires_at garbage") {
        // The flag parses but can never expire: status says so and how to
        // end it (the agent fails safe and treats it as a pause).
        EXPECT_NE(st.output.find("will not expire by itself"), std::string::npos)
            << st.output.substr(0, 4000);
        EXPECT_NE(st.output.find(FlagPath(target)), std::string::npos)
            << st.output.substr(0, 4000);
      } else if (h.name != "unknown fields") {
        // The bad flag is named, and the instance shown as paused.
        EXPECT_NE(st.output.find(FlagPath(target)), std::string::npos)
            << "status did not report the bad flag\n"
            << st.output.substr(0, 4000);
      }
      EXPECT_LT(st.output.size(), 64u * 1024)
          << "status echoed the huge payload";
    }

    // The operator's way out: `zkroll resume` removes the bad flag.
    const auto lifted = FaultClock::now();
    RunResult res =
        Zkroll({"resume", "--service", svc_, "--instance", Addr(target)});
    EXPECT_EQ(res.exit_code, 0) << res.output.substr(0, 4000);
    if (Paused(target)) {
      ASSERT_TRUE(zk_->DeleteSync(FlagPath(target)).ok());
    }
    ASSERT_TRUE(
        WaitFor([&] { return Registered(target); }, milliseconds(20000)))
        << AgentLogs();
    Report("hostile pause flag (" + h.name + ")",
           "registered again after the flag was removed", MillisSince(lifted));
  }
  EXPECT_TRUE(agent->running());
}

TEST_F(HostilePayloadTest, StrayRegistrationsAndAgentRecordsAreReported) {
  StartFleet(1);
  if (HasFatalFailure()) return;
  const int port = services_[0]->port();
  ChildProcess* agent = children_.back().get();
  const std::string sdir = paths::ServiceDir(*ServiceName::Parse(svc_));
  const std::string pdir = paths::PauseDir(*ServiceName::Parse(svc_));
  // Names that are not instances, a non-canonical spelling, and a valid
  // name whose payload is garbage.
  const std::vector<std::pair<std::string, std::string>> nodes = {
      {sdir + "/not-an-instance", "{}"},
      {sdir + "/127.0.0.1_0090", "{}"},
      {sdir + "/127.0.0.1_1", std::string("\xff\xfe garbage", 10)},
      {sdir + "/127.0.0.2_2", "{\"port\":\"two\"}"},
      {pdir + "/weird name", "{"},
      {std::string(paths::kAgentsRoot) + "/evil-host", "not json at all"},
      {std::string(paths::kAgentsRoot) + "/evil host", "{}"},
      {std::string(paths::kAgentsRoot) + "/typed-host",
       "{\"instances\":[{\"service\":\"" + svc_ +
           "\",\"ip\":\"999.1.1.1\",\"port\":70000}]}"},
  };
  ASSERT_TRUE(zk_->EnsurePathSync(pdir, OpenAcl()).ok());
  for (const auto& [path, data] : nodes) {
    auto c = zk_->CreateSync(path, data, CreateMode::kEphemeral, OpenAcl());
    ASSERT_TRUE(c.ok()) << path << ": " << c.status().ToString();
  }

  // The agent keeps running and keeps its instance registered through
  // several checks and resyncs.
  ASSERT_TRUE(WaitForChecks("host-a", port, 3, milliseconds(20000)))
      << AgentLogs();
  EXPECT_TRUE(agent->running()) << AgentLogs();
  EXPECT_TRUE(Registered(port)) << AgentLogs();
  EXPECT_EQ(RegistrationCount(port), 1);

  for (bool json : {false, true}) {
    RunResult st = Status(json);
    EXPECT_EQ(st.exit_code, 0) << st.output;
    for (const std::string& named :
         {std::string("not-an-instance"), std::string("127.0.0.1_0090"),
          sdir + "/127.0.0.1_1", sdir + "/127.0.0.2_2",
          std::string("weird name"), std::string("/agents/evil-host"),
          std::string("evil host"), std::string("/agents/typed-host")}) {
      EXPECT_NE(st.output.find(named), std::string::npos)
          << "status did not report " << named << "\n"
          << st.output;
    }
    EXPECT_NE(st.output.find(Addr(port)), std::string::npos) << st.output;
  }
  // A rollout refuses nothing it should not: it still finds the real
  // instance and upgrades it.
  RunResult r = FollowUpRollout();
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace zkroll::testing
