// zkroll-loadgen as a real process against real zkroll-demo-service
// processes registered in a real ZooKeeper by the test (as agents would).
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <sstream>

#include "client/discovery.h"
#include "common/paths.h"
#include "common/payload.h"
#include "tests/demo/demo_fixture.h"
#include "tests/support/files.h"
#include "zkroll.pb.h"

namespace zkroll::testing {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

Struct ParseJson(const std::string& text) {
  Struct doc;
  auto status = google::protobuf::util::JsonStringToMessage(text, &doc);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << text;
  return doc;
}

// A number at a dotted path, e.g. "failed_by_cause.refused"; -1 if absent.
double Number(const Struct& doc, const std::string& path) {
  const Struct* at = &doc;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string key = path.substr(start, dot - start);
    auto it = at->fields().find(key);
    if (it == at->fields().end()) return -1;
    if (dot == std::string::npos) return it->second.number_value();
    at = &it->second.struct_value();
    start = dot + 1;
  }
}

// True if some "<key><n>" in `text` has n != 0.
bool AnyNonZero(const std::string& text, const std::string& key) {
  for (size_t at = text.find(key); at != std::string::npos;
       at = text.find(key, at + 1)) {
    if (text[at + key.size()] != '0') return true;
  }
  return false;
}

class LoadgenTest : public ZooKeeperTest {
 protected:
  void SetUp() override {
    ZooKeeperTest::SetUp();
    service_ = ServiceName::Parse(TestServiceName()).value();
    owner_ = Connect();
    ASSERT_TRUE(
        owner_->EnsurePathSync(paths::ServiceDir(service_), OpenAcl()).ok());
  }

  void Register(const DemoService& s) {
    proto::InstanceRecord rec;
    rec.set_service(service_.str());
    rec.set_ip("127.0.0.1");
    rec.set_port(s.port());
    rec.set_host("test");
    ASSERT_TRUE(owner_
                    ->CreateSync(paths::InstanceNode(service_, s.address()),
                                 ToJson(rec), CreateMode::kEphemeral, OpenAcl())
                    .ok());
  }
  void Deregister(const DemoService& s) {
    ASSERT_TRUE(
        owner_->DeleteSync(paths::InstanceNode(service_, s.address())).ok());
  }

  std::vector<std::string> LoadgenArgs(const std::string& mode, int rate,
                                       const std::string& duration) {
    return {ZKROLL_LOADGEN_BIN,
            "--zk",
            connect_string(),
            "--service",
            service_.str(),
            "--mode",
            mode,
            "--rate",
            std::to_string(rate),
            "--duration",
            duration,
            "--poll-interval",
            "500ms",
            "--summary-json",
            dir_.File("summary.json"),
            "--timeline",
            dir_.File("timeline.csv")};
  }

  ServiceName service_;
  std::unique_ptr<ZkSession> owner_;
  TempDir dir_;
};

class LoadgenModesTest : public LoadgenTest,
                         public ::testing::WithParamInterface<const char*> {};
INSTANTIATE_TEST_SUITE_P(Modes, LoadgenModesTest,
                         ::testing::Values("watch", "poll"),
                         [](const auto& info) {
                           return std::string(info.param);
                         });

TEST_P(LoadgenModesTest, SmokeRunHasNoFailuresAndConsistentCounts) {
  DemoService a(PickFreePort(), "v1");
  DemoService b(PickFreePort(), "v1");
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  Register(a);
  Register(b);
  RunResult r =
      RunCommand(LoadgenArgs(GetParam(), 200, "2s"), milliseconds(30000));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Struct summary = ParseJson(ReadFile(dir_.File("summary.json")));
  EXPECT_EQ(Number(summary, "sent"), 400) << r.output;
  EXPECT_EQ(Number(summary, "ok"), 400) << r.output;
  EXPECT_EQ(Number(summary, "failed"), 0) << r.output;
  EXPECT_EQ(Number(summary, "sent"),
            Number(summary, "ok") + Number(summary, "failed"));
  for (const char* cause :
       {"refused", "reset", "timeout", "non2xx", "no_instance", "other"}) {
    EXPECT_EQ(Number(summary, std::string("failed_by_cause.") + cause), 0)
        << cause;
  }
  EXPECT_EQ(Number(summary, "versions.v1"), 400);
  EXPECT_EQ(summary.fields().at("mode").string_value(), GetParam());
  EXPECT_GT(Number(summary, "latency_ms.max"), 0);
  // Round robin over the two instances.
  const auto& instances = summary.fields().at("instances").struct_value();
  ASSERT_EQ(instances.fields().size(), 2u) << r.output;
  for (const auto& [name, counts] : instances.fields()) {
    EXPECT_EQ(Number(counts.struct_value(), "requests"), 200) << name;
  }
  // The per-second lines and the timeline add up to the same totals.
  EXPECT_NE(r.output.find("second=0 sent=200 ok=200 failed=0"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("second=1 sent=200 ok=200 failed=0"),
            std::string::npos)
      << r.output;
  std::istringstream csv(ReadFile(dir_.File("timeline.csv")));
  std::string line;
  ASSERT_TRUE(std::getline(csv, line));
  EXPECT_EQ(line, "second,instance,requests,ok,failed,version");
  int rows = 0, requests = 0;
  while (std::getline(csv, line)) {
    ++rows;
    std::vector<std::string> cells;
    std::stringstream cs(line);
    std::string cell;
    while (std::getline(cs, cell, ',')) cells.push_back(cell);
    if (line.back() == ',') cells.push_back("");
    ASSERT_EQ(cells.size(), 6u) << line;
    requests += std::stoi(cells[2]);
    EXPECT_EQ(cells[4], "0") << line;
    EXPECT_EQ(cells[5], "v1") << line;
  }
  EXPECT_EQ(rows, 4);  // 2 seconds x 2 instances
  EXPECT_EQ(requests, 400);
}

// An instance is SIGKILLed under load while still registered: the loadgen
// reports the failures by cause, second by second, and they stop once the
// instance is deregistered.
TEST_F(LoadgenTest, KilledInstanceFailuresAreCountedByCause) {
  DemoService a(PickFreePort(), "v1");
  DemoService b(PickFreePort(), "v2");
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  Register(a);
  Register(b);
  ChildProcess loadgen;
  ASSERT_TRUE(
      loadgen.Start(LoadgenArgs("watch", 400, "6s"), dir_.File("loadgen.log"))
          .ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        return loadgen.Output().find("second=0 ") != std::string::npos ||
               !loadgen.running();
      },
      milliseconds(15000)))
      << loadgen.Output();
  a.Signal(SIGKILL);
  ASSERT_TRUE(a.Wait(milliseconds(5000)).has_value());
  // Failures show up in a per-second line while the run goes on.
  ASSERT_TRUE(WaitFor([&] { return AnyNonZero(loadgen.Output(), " refused="); },
                      milliseconds(10000)))
      << loadgen.Output();
  Deregister(a);  // what the agent does once its checks fail
  auto code = loadgen.Wait(milliseconds(30000));
  ASSERT_TRUE(code.has_value()) << loadgen.Output();
  EXPECT_EQ(*code, 0) << loadgen.Output();

  Struct summary = ParseJson(ReadFile(dir_.File("summary.json")));
  const double sent = Number(summary, "sent");
  EXPECT_EQ(sent, 2400) << loadgen.Output();
  EXPECT_EQ(sent, Number(summary, "ok") + Number(summary, "failed"));
  EXPECT_GT(Number(summary, "failed_by_cause.refused"), 0);
  EXPECT_EQ(Number(summary, "failed"),
            Number(summary, "failed_by_cause.refused") +
                Number(summary, "failed_by_cause.reset") +
                Number(summary, "failed_by_cause.timeout"))
      << "only connection failures are expected: " << loadgen.Output();
  const auto& instances = summary.fields().at("instances").struct_value();
  EXPECT_EQ(Number(instances.fields()
                       .at("127.0.0.1:" + std::to_string(b.port()))
                       .struct_value(),
                   "failed"),
            0)
      << "the healthy instance failed requests";
  // The last second came well after the deregistration: clean again.
  std::string out = loadgen.Output();
  size_t last = out.find("second=5 ");
  ASSERT_NE(last, std::string::npos) << out;
  EXPECT_NE(out.find(" failed=0 ", last), std::string::npos)
      << out.substr(last, out.find('\n', last) - last);
  std::cout << "[ measured ] " << Number(summary, "failed")
            << " failed requests after SIGKILL (refused="
            << Number(summary, "failed_by_cause.refused")
            << " reset=" << Number(summary, "failed_by_cause.reset")
            << " timeout=" << Number(summary, "failed_by_cause.timeout")
            << ")\n";
}

// Callers that never refresh their instance list: --targets sends to a
// fixed list in round robin without any ZooKeeper, keep-alive or with a
// connection per request. One target has nothing listening, so its share
// fails, counted as refused, while the others answer.
class LoadgenTargetsTest : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Connections, LoadgenTargetsTest, ::testing::Bool(),
                         [](const auto& info) {
                           return std::string(info.param ? "PerRequest"
                                                         : "KeepAlive");
                         });

TEST_P(LoadgenTargetsTest, FixedListIsUsedInRoundRobinWithoutZooKeeper) {
  const bool per_request = GetParam();
  DemoService a(PickFreePort(), "v1");
  DemoService b(PickFreePort(), "v2");
  ASSERT_TRUE(a.Start());
  ASSERT_TRUE(b.Start());
  const int dead = PickFreePort();
  ASSERT_TRUE(ConnectRefused(dead));
  TempDir dir;
  const std::string a_text = "127.0.0.1:" + std::to_string(a.port());
  const std::string b_text = "127.0.0.1:" + std::to_string(b.port());
  const std::string dead_text = "127.0.0.1:" + std::to_string(dead);
  std::vector<std::string> args = {ZKROLL_LOADGEN_BIN,
                                   "--targets",
                                   a_text + "," + b_text + "," + dead_text,
                                   "--rate",
                                   "300",
                                   "--duration",
                                   "2s",
                                   "--summary-json",
                                   dir.File("summary.json"),
                                   "--timeline",
                                   dir.File("timeline.csv")};
  if (per_request) args.push_back("--new-connection-per-request");
  RunResult r = RunCommand(args, milliseconds(30000));
  ASSERT_EQ(r.exit_code, 0) << r.output;

  Struct summary = ParseJson(ReadFile(dir.File("summary.json")));
  EXPECT_EQ(summary.fields().at("mode").string_value(), "targets");
  const auto& targets = summary.fields().at("targets").list_value();
  ASSERT_EQ(targets.values_size(), 3) << r.output;
  EXPECT_EQ(targets.values(0).string_value(), a_text);
  EXPECT_EQ(targets.values(2).string_value(), dead_text);
  EXPECT_EQ(summary.fields().at("new_connection_per_request").bool_value(),
            per_request);
  EXPECT_EQ(Number(summary, "sent"), 600) << r.output;
  EXPECT_EQ(Number(summary, "ok"), 400) << r.output;
  EXPECT_EQ(Number(summary, "failed"), 200) << r.output;
  EXPECT_EQ(Number(summary, "failed_by_cause.refused"), 200) << r.output;
  for (const char* cause :
       {"reset", "timeout", "non2xx", "no_instance", "other"}) {
    EXPECT_EQ(Number(summary, std::string("failed_by_cause.") + cause), 0)
        << cause << "\n"
        << r.output;
  }
  EXPECT_EQ(Number(summary, "versions.v1"), 200);
  EXPECT_EQ(Number(summary, "versions.v2"), 200);
  const auto& instances = summary.fields().at("instances").struct_value();
  ASSERT_EQ(instances.fields().size(), 3u) << r.output;
  for (const std::string& ok : {a_text, b_text}) {
    const Struct& i = instances.fields().at(ok).struct_value();
    EXPECT_EQ(Number(i, "requests"), 200) << ok;
    EXPECT_EQ(Number(i, "ok"), 200) << ok;
  }
  const Struct& d = instances.fields().at(dead_text).struct_value();
  EXPECT_EQ(Number(d, "requests"), 200);
  EXPECT_EQ(Number(d, "failed"), 200);
  // The list never changes and is never stale.
  EXPECT_EQ(Number(summary, "discovery.refreshes"), 0);
  EXPECT_EQ(Number(summary, "discovery.listed_at_end"), 3);
  EXPECT_EQ(Number(summary, "discovery.stale_picks"), 0);
  // Keep-alive reuses connections (one per instance suffices at this rate,
  // and the pool opens at most 32); per request, every request connects.
  const double connects = Number(summary, "pool.connects");
  if (per_request) {
    EXPECT_EQ(connects, 600);
  } else {
    EXPECT_GE(connects, 200);  // each refused request tried to connect
    EXPECT_LE(connects, 200 + 2 * 32);
  }
  EXPECT_NE(r.output.find("second=1 sent=300 ok=200 failed=100 refused=100"),
            std::string::npos)
      << r.output;
  // The timeline adds up to the same total.
  std::istringstream csv(ReadFile(dir.File("timeline.csv")));
  std::string line;
  int requests = 0;
  ASSERT_TRUE(std::getline(csv, line));
  while (std::getline(csv, line)) {
    requests += std::stoi(line.substr(line.find(',', line.find(',') + 1) + 1));
  }
  EXPECT_EQ(requests, 600);
}

TEST(LoadgenFlagsTest, BadFlagsExitTwoWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::string zk = "127.0.0.1:1";
  for (const Case& c : std::vector<Case>{
           {{"--service", "s"}, "--zk is required"},
           {{"--zk", zk}, "--service is required"},
           {{"--zk", zk, "--service", "bad/name"}, "--service"},
           {{"--zk", zk, "--service", "s", "--mode", "push"}, "--mode"},
           {{"--zk", zk, "--service", "s", "--rate", "0"}, "--rate"},
           {{"--zk", zk, "--service", "s", "--duration", "10"}, "--duration"},
           {{"--zk", zk, "--service", "s", "--connections", "0"},
            "--connections"},
           {{"--zk", zk, "--service", "s", "--path", "x"}, "--path"},
           {{"--zk", "no port", "--service", "s"}, "--zk"},
           {{"--zk", zk, "--service", "s", "--timeline", "/nonexistent/t.csv"},
            "--timeline"},
           {{"--targets", "127.0.0.1:1", "--zk", zk}, "exclude each other"},
           {{"--targets", "127.0.0.1"}, "--targets"},
           {{"--targets", "127.0.0.1:1,,127.0.0.1:2"}, "empty entry"},
           {{"--targets", "127.0.0.1:1,127.0.0.1:1"}, "listed twice"},
           {{"--targets", "127.0.0.1:1", "--mode", "poll"}, "--mode"},
       }) {
    std::vector<std::string> argv = {ZKROLL_LOADGEN_BIN};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    RunResult r = RunCommand(argv, milliseconds(10000));
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(c.says), std::string::npos) << r.output;
  }
}

TEST(LoadgenFlagsTest, UnreachableZooKeeperExitsOneAfterTheStartupTimeout) {
  RunResult r = RunCommand({ZKROLL_LOADGEN_BIN, "--zk",
                            "127.0.0.1:" + std::to_string(PickFreePort()),
                            "--service", "s", "--startup-timeout", "1s"},
                           milliseconds(20000));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("could not read /services/s"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace zkroll::testing
