// A real Apache Curator caller (tests/callers/java/CuratorCaller.java:
// ServiceDiscovery on /services and a ServiceProvider, i.e. a ServiceCache
// following the registry with watches) against real zkroll-agent
// registrations of real zkroll-demo-service instances, with the real
// coordinator pausing and upgrading them. Skipped where no JDK or Curator
// jar was found at configure time.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/callers/caller_fixture.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

class CuratorCallerTest : public CallerTest {
 protected:
  void SetUp() override {
    if (std::string(ZKROLL_CURATOR_MISSING) != "") {
      GTEST_SKIP() << "the Curator caller was not built: "
                   << ZKROLL_CURATOR_MISSING
                   << " (scripts/install-deps.sh installs default-jdk-headless "
                      "and libcurator-discovery-java)";
    }
    CallerTest::SetUp();
  }

  std::vector<std::string> CallerArgv(std::vector<std::string> extra) {
    std::vector<std::string> argv = {ZKROLL_JAVA, "-Xmx128m", "-cp",
                                     ZKROLL_CURATOR_CLASSPATH, "CuratorCaller",
                                     "--zk", connect_string(), "--service",
                                     svc_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }
  ChildProcess* StartCaller(std::vector<std::string> extra) {
    children_.push_back(std::make_unique<ChildProcess>());
    ChildProcess* p = children_.back().get();
    EXPECT_TRUE(p->Start(CallerArgv(std::move(extra)),
                         dir_.File("curator-caller.log"))
                    .ok());
    return p;
  }

  // The last "instances" line lists every port in `ports` and nothing else.
  static bool Lists(const std::string& output, const std::vector<int>& ports) {
    std::string want;
    std::vector<std::string> keys;
    for (int p : ports) keys.push_back("127.0.0.1:" + std::to_string(p));
    std::sort(keys.begin(), keys.end());
    for (const auto& k : keys) want += (want.empty() ? "" : ",") + k;
    std::string last;
    bool any = false;
    for (const auto& l : ParseCallerLines(output)) {
      if (l.kind == "instances") {
        last = l["list"];
        any = true;
      }
    }
    return any && last == want;
  }

  static const CallerLine* Summary(const std::vector<CallerLine>& lines) {
    for (const auto& l : lines) {
      if (l.kind == "summary") return &l;
    }
    return nullptr;
  }
};

TEST_F(CuratorCallerTest, SeesEveryInstanceWithItsAddressPortAndConfig) {
  const std::vector<int> ports = {PickFreePort(), PickFreePort(),
                                  PickFreePort()};
  for (int p : ports) ASSERT_TRUE(StartDemo(p, "v1")) << p;
  StartAgentWithConfig("host-a", ports,
                       "payload = {\"zone\": \"a\"}\n"
                       "uri_spec = {scheme}://{address}:{port}/v1\n");
  for (int p : ports) {
    ASSERT_TRUE(WaitFor([&] { return Registered(p); }, milliseconds(20000)))
        << AgentLogs();
  }
  RunResult r = RunCommand(
      CallerArgv({"--rate", "50", "--requests", "150", "--max-seconds", "60"}),
      milliseconds(120000));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto lines = ParseCallerLines(r.output);
  const CallerLine* summary = Summary(lines);
  ASSERT_NE(summary, nullptr) << r.output;
  EXPECT_EQ((*summary)["sent"], "150") << r.output;
  EXPECT_EQ((*summary)["ok"], "150") << r.output;
  EXPECT_EQ((*summary)["failed"], "0") << r.output;
  // Round robin over the three: every one answered at its address.
  for (int p : ports) {
    const std::string key = "127.0.0.1:" + std::to_string(p) + "=";
    EXPECT_NE((*summary)["per"].find(key), std::string::npos) << r.output;
  }
  // Curator read every field of zkroll's record.
  for (int p : ports) {
    const std::string port = std::to_string(p);
    bool found = false;
    for (const auto& l : lines) {
      if (l.kind != "instance" || l["port"] != port) continue;
      found = true;
      EXPECT_EQ(l["address"], "127.0.0.1");
      EXPECT_EQ(l["id"], "127.0.0.1_" + port);
      EXPECT_EQ(l["name"], svc_);
      EXPECT_EQ(l["serviceType"], "DYNAMIC");
      EXPECT_EQ(l["enabled"], "true");
      EXPECT_EQ(l["sslPort"], "null");
      EXPECT_EQ(l["uri"], "http://127.0.0.1:" + port + "/v1");
      EXPECT_EQ(l["payload"], "{zone=a}");
    }
    EXPECT_TRUE(found) << "no instance line for port " << port << "\n"
                       << r.output;
  }
}

TEST_F(CuratorCallerTest, RolloutUnderLoadHasNoFailedRequests) {
  const std::vector<int> ports = {PickFreePort(), PickFreePort(),
                                  PickFreePort()};
  for (int p : ports) ASSERT_TRUE(StartDemo(p, "v1")) << p;
  std::vector<std::string> instances;
  for (int p : ports) instances.push_back(Instance(p));
  StartAgent("host-a", instances);
  for (int p : ports) {
    ASSERT_TRUE(WaitFor([&] { return Registered(p); }, milliseconds(20000)))
        << AgentLogs();
  }
  const std::string stop = dir_.File("stop-caller");
  ChildProcess* caller =
      StartCaller({"--rate", "200", "--requests", "200000", "--max-seconds",
                   "240", "--stop-file", stop});
  ASSERT_TRUE(WaitFor([&] { return Lists(caller->Output(), ports); },
                      milliseconds(60000)))
      << caller->Output();

  std::vector<std::string> args = {
      "rollout", "--service", svc_, "--batch", "1", "--min-healthy", "2",
      "--drain-wait", "2s", "--check", "http:/healthz", "--health-attempts",
      "40", "--health-interval", "250ms", "--register-timeout", "30s", "--"};
  for (const auto& word : UpgradeCommand()) args.push_back(word);
  RunResult rollout = Zkroll(args, milliseconds(180000));
  ASSERT_EQ(rollout.exit_code, 0) << rollout.output << AgentLogs();
  // Every instance is back in the caller's list, at v2.
  ASSERT_TRUE(WaitFor([&] { return Lists(caller->Output(), ports); },
                      milliseconds(30000)))
      << caller->Output();
  for (int p : ports) {
    RunResult v = RunCommand(
        {"/bin/bash", "-c",
         "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(p) +
             "; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"},
        milliseconds(5000));
    EXPECT_NE(v.output.find("\"version\":\"v2\""), std::string::npos)
        << v.output;
  }
  std::ofstream(stop).put('\n');
  ASSERT_TRUE(caller->Wait(milliseconds(60000)).has_value());
  const auto lines = ParseCallerLines(caller->Output());
  const CallerLine* summary = Summary(lines);
  ASSERT_NE(summary, nullptr) << caller->Output();
  EXPECT_EQ((*summary)["failed"], "0") << caller->Output();
  EXPECT_GT(std::stol((*summary)["sent"]), 1000) << caller->Output();
  std::cout << "[curator] rollout of 3 instances under 200 requests/s: "
            << (*summary)["sent"] << " sent, " << (*summary)["failed"]
            << " failed\n";
}

TEST_F(CuratorCallerTest, StopsPickingAPausedInstanceBeforeTheDrainEnds) {
  const int a = PickFreePort(), b = PickFreePort();
  ASSERT_TRUE(StartDemo(a, "v1"));
  ASSERT_TRUE(StartDemo(b, "v1"));
  StartAgent("host-a", {Instance(a), Instance(b)});
  for (int p : {a, b}) {
    ASSERT_TRUE(WaitFor([&] { return Registered(p); }, milliseconds(20000)))
        << AgentLogs();
  }
  const std::string stop = dir_.File("stop-caller");
  ChildProcess* caller =
      StartCaller({"--rate", "200", "--requests", "200000", "--max-seconds",
                   "240", "--stop-file", stop, "--log-requests"});
  const std::string to_a = "127.0.0.1:" + std::to_string(a);
  auto sends_to_a = [&] {
    int n = 0;
    for (const auto& l : ParseCallerLines(caller->Output())) {
      if (l.kind == "send" && l["instance"] == to_a) ++n;
    }
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return Lists(caller->Output(), {a, b}) &&
                                   sends_to_a() > 0; },
                      milliseconds(60000)))
      << caller->Output();

  // The command runs once the drain is over: what the caller printed by
  // then is what it did during the pause and the drain.
  Handshake hs(dir_, "upgrade");
  ChildProcess* deploy = StartZkroll(
      Deploy(a, {"--drain-wait", "3s"}, {"/bin/sh", "-c", hs.Snippet()}));
  ASSERT_TRUE(hs.WaitStarted(milliseconds(60000))) << deploy->Output();
  const std::string at_drain_end = caller->Output();
  ASSERT_TRUE(hs.Release());
  ASSERT_EQ(deploy->Wait(milliseconds(60000)), 0) << deploy->Output();
  // After the resume the caller picks `a` again.
  const int before_resume = sends_to_a();
  ASSERT_TRUE(WaitFor([&] { return sends_to_a() > before_resume; },
                      milliseconds(30000)))
      << caller->Output();
  std::ofstream(stop).put('\n');
  ASSERT_TRUE(caller->Wait(milliseconds(60000)).has_value());
  const std::string all = caller->Output();

  // In order: `a` listed, then a list without it (the drop), then no send
  // to `a` until a list has it again (the resume).
  const auto drain_lines = ParseCallerLines(at_drain_end);
  bool listed = false, dropped = false;
  for (const auto& l : drain_lines) {
    if (l.kind != "instances") continue;
    bool has_a = l["list"].find(to_a) != std::string::npos;
    if (has_a) listed = true;
    if (listed && !has_a) dropped = true;
  }
  EXPECT_TRUE(listed) << at_drain_end;
  EXPECT_TRUE(dropped) << "the caller still listed " << to_a
                       << " when the drain ended:\n" << at_drain_end;
  bool in_list = false, was_dropped = false, resumed = false;
  int sends_after_drop = 0, sends_before_drop = 0;
  for (const auto& l : ParseCallerLines(all)) {
    if (l.kind == "instances") {
      bool has_a = l["list"].find(to_a) != std::string::npos;
      if (in_list && !has_a) was_dropped = true;
      if (was_dropped && has_a) resumed = true;
      in_list = has_a;
    } else if (l.kind == "send" && l["instance"] == to_a) {
      if (!was_dropped) ++sends_before_drop;
      if (was_dropped && !resumed) ++sends_after_drop;
    }
  }
  EXPECT_TRUE(was_dropped && resumed);
  EXPECT_GT(sends_before_drop, 0);
  EXPECT_EQ(sends_after_drop, 0) << all;
  const auto all_lines = ParseCallerLines(all);
  const CallerLine* summary = Summary(all_lines);
  ASSERT_NE(summary, nullptr) << all;
  EXPECT_EQ((*summary)["failed"], "0") << all;
}

// Curator's own ServiceDiscovery.registerService under /services/<service>
// (a node named after a UUID, without zkroll's fields): `zkroll status`
// warns about it and lists the agent's instance, and zkroll's client (the
// load generator) skips it, so no request goes to its address.
TEST_F(CuratorCallerTest, CuratorRegisteredInstanceIsSkippedByZkrollReaders) {
  const int port = PickFreePort(), nobody = PickFreePort();
  ASSERT_TRUE(StartDemo(port, "v1"));
  StartAgent("host-a", {Instance(port)});
  ASSERT_TRUE(WaitFor([&] { return Registered(port); }, milliseconds(20000)))
      << AgentLogs();
  const std::string stop = dir_.File("stop-registrar");
  ChildProcess* registrar = StartCaller({"--register-port",
                                         std::to_string(nobody), "--stop-file",
                                         stop, "--max-seconds", "240"});
  std::string id;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& l : ParseCallerLines(registrar->Output())) {
          if (l.kind == "registered") id = l["id"];
        }
        return !id.empty();
      },
      milliseconds(60000)))
      << registrar->Output();
  const std::string dir = paths::ServiceDir(*ServiceName::Parse(svc_));
  ASSERT_TRUE(Exists(dir + "/" + id));

  RunResult st = Zkroll({"status", "--service", svc_});
  ASSERT_EQ(st.exit_code, 0) << st.output;
  EXPECT_NE(st.output.find("warning: skipped " + dir + "/'" + id + "'"),
            std::string::npos)
      << st.output;
  EXPECT_NE(st.output.find(Addr(port)), std::string::npos) << st.output;

  RunResult load = RunCommand(
      {ZKROLL_LOADGEN_BIN, "--zk", connect_string(), "--service", svc_,
       "--mode", "watch", "--rate", "100", "--duration", "2s",
       "--summary-json", dir_.File("summary.json")},
      milliseconds(60000));
  EXPECT_EQ(load.exit_code, 0) << load.output;
  std::ifstream in(dir_.File("summary.json"));
  std::string summary((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
  EXPECT_NE(summary.find("\"failed\": 0"), std::string::npos) << summary;
  EXPECT_NE(summary.find("\"ok\": 200"), std::string::npos) << summary;
  EXPECT_EQ(summary.find(std::to_string(nobody)), std::string::npos)
      << summary;

  std::ofstream(stop).put('\n');
  EXPECT_EQ(registrar->Wait(milliseconds(30000)), 0) << registrar->Output();
  EXPECT_FALSE(Exists(dir + "/" + id)) << "Curator unregistered its node";
}

}  // namespace
}  // namespace zkroll::testing
