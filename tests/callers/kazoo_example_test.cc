// docs/examples/kazoo_caller.py, the Python caller of docs/callers.md, run
// as it is against a real ZooKeeper, a real agent's registrations of real
// zkroll-demo-service instances and the real coordinator's pause, in both
// of its modes (ChildrenWatch, polling get_children). Skipped where
// python3-kazoo is not installed.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/callers/caller_fixture.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

class KazooExampleTest : public CallerTest,
                         public ::testing::WithParamInterface<const char*> {
 protected:
  void SetUp() override {
    if (RunCommand({"/usr/bin/python3", "-c", "import kazoo"},
                   milliseconds(30000))
            .exit_code != 0) {
      GTEST_SKIP() << "python3 cannot import kazoo (scripts/install-deps.sh "
                      "installs python3-kazoo)";
    }
    CallerTest::SetUp();
  }
};

INSTANTIATE_TEST_SUITE_P(Modes, KazooExampleTest,
                         ::testing::Values("watch", "poll"),
                         [](const auto& info) {
                           return std::string(info.param);
                         });

TEST_P(KazooExampleTest, ListsInstancesAndDropsAPausedOne) {
  const int a = PickFreePort(), b = PickFreePort();
  ASSERT_TRUE(StartDemo(a, "v1"));
  ASSERT_TRUE(StartDemo(b, "v1"));
  StartAgent("host-a", {Instance(a), Instance(b)});
  for (int p : {a, b}) {
    ASSERT_TRUE(WaitFor([&] { return Registered(p); }, milliseconds(20000)))
        << AgentLogs();
  }
  const std::string stop = dir_.File("stop");
  children_.push_back(std::make_unique<ChildProcess>());
  ChildProcess* caller = children_.back().get();
  ASSERT_TRUE(caller
                  ->Start({"/usr/bin/python3", ZKROLL_KAZOO_EXAMPLE, "--zk",
                           connect_string(), "--service", svc_, "--mode",
                           GetParam(), "--interval", "0.5", "--rate", "50",
                           "--requests", "100000", "--stop-file", stop},
                          dir_.File("kazoo.log"))
                  .ok());
  const std::string to_a = "127.0.0.1:" + std::to_string(a);
  const std::string to_b = "127.0.0.1:" + std::to_string(b);
  const std::string both = std::min(to_a, to_b) + "," + std::max(to_a, to_b);
  auto last_list = [&] {
    std::string last = "(none)";
    for (const auto& l : ParseCallerLines(caller->Output())) {
      if (l.kind == "instances") last = l["list"];
    }
    return last;
  };
  ASSERT_TRUE(WaitFor([&] { return last_list() == both; }, milliseconds(60000)))
      << caller->Output();

  RunResult pause = Zkroll({"pause", "--service", svc_, "--instance", Addr(a),
                            "--reason", "kazoo example test", "--ttl", "10m"});
  ASSERT_EQ(pause.exit_code, 0) << pause.output;
  ASSERT_TRUE(WaitFor([&] { return last_list() == to_b; }, milliseconds(30000)))
      << caller->Output();
  // Requests go on, to b only.
  const size_t at_drop = caller->Output().size();
  ASSERT_TRUE(WaitFor(
      [&] {
        return caller->Output().find("send instance=" + to_b, at_drop) !=
               std::string::npos;
      },
      milliseconds(30000)))
      << caller->Output();
  RunResult resume =
      Zkroll({"resume", "--service", svc_, "--instance", Addr(a)});
  ASSERT_EQ(resume.exit_code, 0) << resume.output;
  ASSERT_TRUE(WaitFor([&] { return last_list() == both; }, milliseconds(30000)))
      << caller->Output();
  std::ofstream(stop).put('\n');
  ASSERT_EQ(caller->Wait(milliseconds(30000)), 0) << caller->Output();

  // Nothing is sent before the caller's first list (both modes read it
  // before their first request); between the list without a and the list
  // with it again: no send to a.
  bool listed = false, dropped = false, back = false;
  int before_first_list = 0, to_a_while_dropped = 0;
  for (const auto& l : ParseCallerLines(caller->Output())) {
    if ((l.kind == "send" || l.kind == "fail") && !listed) ++before_first_list;
    if (l.kind == "instances") {
      listed = true;
      if (l["list"] == to_b) dropped = true;
      if (dropped && l["list"] == both) back = true;
    } else if (l.kind == "send" && l["instance"] == to_a && dropped && !back) {
      ++to_a_while_dropped;
    }
  }
  EXPECT_EQ(before_first_list, 0) << caller->Output();
  EXPECT_TRUE(dropped && back);
  EXPECT_EQ(to_a_while_dropped, 0) << caller->Output();
  EXPECT_NE(caller->Output().find("summary "), std::string::npos);
  EXPECT_NE(caller->Output().find(" failed=0"), std::string::npos)
      << caller->Output();
}

}  // namespace
}  // namespace zkroll::testing
