// Rollouts that protect themselves (issue 17), end to end: a real ZooKeeper
// server, two real zkroll-agents (two "hosts", two instances each), four
// zkroll-demo-service instances at v1 started by the demo's own upgrade
// script (scripts/lib/demo-upgrade.sh, which logs every version it starts),
// and a zkroll-loadgen caller in watch mode that acknowledges its lists and
// sends requests throughout, logging every failed request with its due
// time and instance.
//
// Each bad version is rolled out with a canary, a soak, a minimum healthy
// time, a canary check that judges the error rate and an automatic revert
// (the same script with --version v1), and the test asserts what a release
// engineer relies on: the rollout stops at the canary, the rest of the
// fleet never ran the bad version (the script's log), every touched
// instance answers v1 again (asked over HTTP), the exit code says "failed,
// reverted" (5), the journal tells the story, the revert's own steps cost
// no request, and the requests the bad version failed are counted, printed
// and bounded. A good version with the same flags goes through with no
// failed request, and a bad version without the protections reaches the
// whole fleet (today's rollout, for contrast).
//
// Everything is observed from outside (events, journal, ZooKeeper, HTTP,
// the load generator's logs); every wait is for a condition with a
// deadline.
#include <fcntl.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "common/payload.h"
#include "tests/coordinator/coordinator_fixture.h"
#include "tests/support/files.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
namespace {

using google::protobuf::Struct;

constexpr int kInstances = 4;
// The load: requests per second over the whole service, spread evenly over
// the registered instances by the discovery client.
constexpr int kRate = 200;
constexpr double kPerInstanceRate = static_cast<double>(kRate) / kInstances;
// The agents' checks of every instance.
constexpr int kCheckIntervalMs = 200;
constexpr int kCheckTimeoutMs = 300;
constexpr int kFall = 2;
// The bad versions.
constexpr double kErrorRate = 0.1;
constexpr char kCrashAfter[] = "2s";

// How many requests a crashed instance can fail before the callers stop
// sending to it. After the crash its port refuses at once, so each failed
// check ends immediately; the agent deregisters it after kFall failed
// checks, kCheckIntervalMs apart (the agent adds 10% jitter and a 16 ms
// wake-up grid; 25% is allowed), and the first failing check may start up
// to one interval (plus a timeout for a check already in flight) after the
// crash. The deregistration then reaches the
// watching caller in a few milliseconds on an idle machine; 1 s is allowed
// for a loaded one. Requests reach the instance at kPerInstanceRate.
//   (kFall * 200ms * 1.25 + 200ms + 300ms + 1000ms) * 50/s = 100 requests.
// (The 500s of --error-rate are bounded differently: one in ten of what the
// canary answered as v2.)
int64_t CrashFailureBound() {
  const double seconds = (kFall * kCheckIntervalMs * 1.25 + kCheckIntervalMs +
                          kCheckTimeoutMs + 1000.0) /
                         1000.0;
  return static_cast<int64_t>(std::ceil(seconds * kPerInstanceRate));
}

std::string SourceDir() { return ZKROLL_SOURCE_DIR; }

// RFC 3339 UTC with milliseconds ("2026-11-30T12:00:00.123Z") as Unix ms;
// -1 if it does not parse.
int64_t UnixMillis(const std::string& t) {
  struct tm tm = {};
  int ms = 0;
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year,
                  &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec,
                  &ms) != 7) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

std::string Field(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  if (it == s.fields().end()) return "";
  if (it->second.has_string_value()) return it->second.string_value();
  if (it->second.has_number_value()) {
    return std::to_string(static_cast<int64_t>(it->second.number_value()));
  }
  if (it->second.has_bool_value()) {
    return it->second.bool_value() ? "true" : "false";
  }
  return "";
}

std::optional<Struct> ParseJson(const std::string& text) {
  Struct s;
  if (!google::protobuf::util::JsonStringToMessage(text, &s).ok()) {
    return std::nullopt;
  }
  return s;
}

// GET /stats of the demo service on 127.0.0.1:port: its version, or "" if
// it does not answer. /stats always answers 200, whatever the version's
// faults. The connection is kept alive and closed by us after the answer:
// had the service closed first, its side would linger in TIME_WAIT, a peer
// the agent's traffic observation cannot attribute to any caller, which
// holds every --drain auto drain of the instance to its cap.
std::string VersionOverHttp(int port) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  try {
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    socket.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                           static_cast<uint16_t>(port)));
    http::request<http::empty_body> req(http::verb::get, "/stats", 11);
    req.set(http::field::host, "127.0.0.1");
    http::write(socket, req);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    boost::system::error_code ignored;
    socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    auto s = ParseJson(res.body());
    return s ? Field(*s, "version") : "";
  } catch (const std::exception&) {
    return "";
  }
}

// One start logged by demo-upgrade.sh: "unix_ms port version flags...".
struct VersionStart {
  int64_t at_ms = 0;
  int port = 0;
  std::string version;
  std::string flags;
};

// One line of the load generator's --failure-log.
struct FailedRequest {
  int64_t due_ms = 0;
  std::string instance;  // "127.0.0.1:port", or "none"
  std::string cause;
  std::string version;  // who answered (a 5xx), else ""
};

// One `step` event of the rollout's JSON output.
struct StepEvent {
  int64_t at_ms = 0;
  int port = 0;
  std::string step;
  std::string verdict;
  std::string detail;
};

struct RolloutRun {
  int exit_code = -1;
  std::string output;
  std::vector<Struct> events;
  std::vector<StepEvent> steps;
  std::string deploy_id;
  // Steps of one instance, in order.
  std::vector<StepEvent> StepsOf(int port) const {
    std::vector<StepEvent> out;
    for (const auto& s : steps) {
      if (s.port == port) out.push_back(s);
    }
    return out;
  }
  // End times of `step` (any verdict but "started") on `port`, in order.
  std::vector<int64_t> Ends(int port, const std::string& step) const {
    std::vector<int64_t> out;
    for (const auto& s : steps) {
      if (s.port == port && s.step == step && s.verdict != "started") {
        out.push_back(s.at_ms);
      }
    }
    return out;
  }
  // Start times of `step` (verdict "started") on `port`, in order.
  std::vector<int64_t> Starts(int port, const std::string& step) const {
    std::vector<int64_t> out;
    for (const auto& s : steps) {
      if (s.port == port && s.step == step && s.verdict == "started") {
        out.push_back(s.at_ms);
      }
    }
    return out;
  }
};

// Who failed the requests of a run with a bad canary.
struct Attribution {
  int64_t by_bad_version = 0;  // on the canary while it ran the bad version
  int64_t by_revert = 0;       // on the canary from the revert's pause on
  int64_t elsewhere = 0;       // on any other instance, or none
  std::map<std::string, int64_t> causes;  // of by_bad_version
  std::vector<std::string> unexplained;   // by_revert and elsewhere, printed
};

class RolloutSafetyTest : public CoordinatorTest {
 protected:
  void SetUp() override {
    CoordinatorTest::SetUp();
    demo_dir_ = dir_.path() + "/demo";
    ASSERT_EQ(::mkdir(demo_dir_.c_str(), 0755), 0);
    for (int i = 0; i < kInstances; ++i) ports_.push_back(PickFreePort());
    std::sort(ports_.begin(), ports_.end());
    for (int port : ports_) {
      RunResult r = RunScript(port, {"--version", "v1"});
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
    for (int port : ports_) {
      ASSERT_TRUE(WaitFor([&] { return VersionOverHttp(port) == "v1"; },
                          milliseconds(20000)))
          << "v1 did not start on port " << port << "\n"
          << ReadFile(demo_dir_ + "/instances/" + std::to_string(port) +
                      ".log");
    }
    const std::vector<std::string> checks = {
        "--check",
        "http:/healthz",
        "--interval",
        std::to_string(kCheckIntervalMs) + "ms",
        "--timeout",
        std::to_string(kCheckTimeoutMs) + "ms",
        "--rise",
        "2",
        "--fall",
        std::to_string(kFall),
        "--session-timeout",
        "6s"};
    StartAgent("host-a", {Instance(ports_[0]), Instance(ports_[1])}, checks);
    StartAgent("host-b", {Instance(ports_[2]), Instance(ports_[3])}, checks);
    ASSERT_TRUE(WaitFor(
        [&] {
          for (int port : ports_) {
            if (!Registered(port)) return false;
          }
          return true;
        },
        milliseconds(30000)))
        << AgentLogs();
    StartLoad();
  }

  void TearDown() override {
    // A hanging COMMAND still blocked on its FIFO is released, so that no
    // script outlives the test (it would end by itself, bounded).
    if (!hang_fifo_.empty()) {
      int fd = ::open(hang_fifo_.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) {
        (void)!::write(fd, "go\n", 3);
        ::close(fd);
      }
    }
    if (loadgen_ && loadgen_->running()) loadgen_->Signal(SIGTERM);
    if (loadgen_) loadgen_->Wait(milliseconds(10000));
    if (rollout_ && rollout_->running()) rollout_->Signal(SIGKILL);
    if (rollout_) rollout_->Wait(milliseconds(10000));
    // The services run in sessions of their own (setsid), so nothing else
    // stops them. Only while the pid is still a demo service on that port:
    // a crashed version's pid may belong to another process by now.
    for (int port : ports_) {
      std::ifstream in(demo_dir_ + "/instances/" + std::to_string(port) +
                       ".pid");
      pid_t pid = 0;
      if (!(in >> pid) || pid <= 1) continue;
      std::string cmdline =
          ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      if (cmdline.find("zkroll-demo-service") != std::string::npos &&
          cmdline.find(" " + std::to_string(port) + " ") != std::string::npos) {
        ::kill(pid, SIGKILL);
      }
    }
    if (HasFailure()) {
      std::cerr << "---- versions log\n"
                << ReadFile(VersionLogPath()) << "---- loadgen\n"
                << (loadgen_ ? loadgen_->Output() : "") << "\n";
      for (int port : ports_) {
        std::cerr << "---- instance " << port << "\n"
                  << ReadFile(demo_dir_ + "/instances/" + std::to_string(port) +
                              ".log");
      }
    }
    CoordinatorTest::TearDown();
  }

  std::string Instance(int port) const { return svc_ + "@" + Addr(port); }
  std::string UpgradeScript() const {
    return SourceDir() + "/scripts/lib/demo-upgrade.sh";
  }
  std::string VersionLogPath() const { return demo_dir_ + "/versions.log"; }

  std::map<std::string, std::string> ScriptEnv() const {
    return {{"DEMO_DIR", demo_dir_},
            {"DEMO_SERVICE_BIN", ZKROLL_DEMO_SERVICE_BIN},
            {"DEMO_VERSION_LOG", VersionLogPath()},
            {"DEMO_HANG_MAX", "120"}};
  }

  // The upgrade script run by hand, as zkroll would run it for `port`.
  RunResult RunScript(int port, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {UpgradeScript()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto env = ScriptEnv();
    env["ZKROLL_IP"] = "127.0.0.1";
    env["ZKROLL_PORT"] = std::to_string(port);
    return RunCommand(argv, milliseconds(30000), env);
  }

  // The load generator's caller node acknowledges a list of every instance.
  bool CallerSeesAll(pid_t pid) {
    const std::string dir = "/callers/" + svc_;
    for (const auto& name : Children(dir)) {
      auto data = Get(dir + "/" + name);
      if (!data) continue;
      auto r = ParsePayload<proto::CallerRecord>(data->data, name);
      if (r.ok() && r->pid() == pid &&
          r->instances() >= static_cast<uint32_t>(kInstances)) {
        return true;
      }
    }
    return false;
  }

  void StartLoad() {
    loadgen_ = std::make_unique<ChildProcess>();
    Status s = loadgen_->Start({ZKROLL_LOADGEN_BIN,
                                "--zk",
                                connect_string(),
                                "--service",
                                svc_,
                                "--mode",
                                "watch",
                                "--rate",
                                std::to_string(kRate),
                                "--duration",
                                "400s",
                                "--timeout",
                                "1s",
                                "--connections",
                                "8",
                                "--quiet",
                                "--stop-file",
                                dir_.File("stop-load"),
                                "--summary-json",
                                dir_.File("summary.json"),
                                "--failure-log",
                                dir_.File("failures.csv"),
                                "--list-log",
                                dir_.File("lists.csv")},
                               dir_.File("loadgen.log"));
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(WaitFor([&] { return CallerSeesAll(loadgen_->pid()); },
                        milliseconds(30000)))
        << loadgen_->Output();
  }

  // Stops the load and returns its summary.
  Struct StopLoad() {
    dir_.Write("stop-load", "");
    auto code = loadgen_->Wait(milliseconds(30000));
    EXPECT_TRUE(code.has_value()) << "the load generator did not stop";
    auto s = ParseJson(ReadFile(dir_.File("summary.json")));
    EXPECT_TRUE(s.has_value()) << loadgen_->Output();
    return s.value_or(Struct());
  }

  std::vector<FailedRequest> Failures() const {
    std::vector<FailedRequest> out;
    std::istringstream in(ReadFile(dir_.File("failures.csv")));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::vector<std::string> f;
      std::stringstream ls(line);
      std::string part;
      while (std::getline(ls, part, ',')) f.push_back(part);
      if (f.size() < 3) continue;
      out.push_back({std::stoll(f[0]), f[1], f[2], f.size() > 3 ? f[3] : ""});
    }
    return out;
  }

  std::vector<VersionStart> VersionLog() const {
    std::vector<VersionStart> out;
    std::istringstream in(ReadFile(VersionLogPath()));
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      VersionStart v;
      ls >> v.at_ms >> v.port >> v.version;
      std::getline(ls, v.flags);
      out.push_back(v);
    }
    return out;
  }
  std::vector<std::string> VersionsStarted(int port) const {
    std::vector<std::string> out;
    for (const auto& v : VersionLog()) {
      if (v.port == port) out.push_back(v.version);
    }
    return out;
  }

  // The rollout options every case shares: one at a time, three others
  // registered, a drain that ends when the callers acknowledged, the
  // deploy's own checks.
  std::vector<std::string> BaseOptions() const {
    return {"rollout",
            "--service",
            svc_,
            "--batch",
            "1",
            "--min-healthy",
            "3",
            "--drain",
            "auto",
            "--drain-wait",
            "10s",
            "--drain-quiet",
            "200ms",
            "--check",
            "http:/healthz",
            "--health-attempts",
            "5",
            "--health-interval",
            "200ms",
            "--health-timeout",
            "500ms",
            "--register-timeout",
            "20s",
            "--session-timeout",
            "6s",
            "--output",
            "json"};
  }

  // The protections under test: a canary of one soaked for 5 s after a
  // minimum healthy time of 3 s (a crash 2 s after start must fall inside
  // them), a canary check of the error rate, and the revert to v1.
  std::vector<std::string> Protections(const std::string& progress_deadline) {
    std::string check = SourceDir() + "/tests/e2e/canary_error_rate.py 0.01 20";
    for (int port : ports_) check += " " + std::to_string(port);
    return {"--canary",
            "1",
            "--canary-soak",
            "5s",
            "--min-healthy-time",
            "3s",
            "--canary-check",
            check,
            "--auto-revert",
            UpgradeScript() + " --version v1",
            "--progress-deadline",
            progress_deadline};
  }

  RolloutRun RunRollout(std::vector<std::string> options,
                        const std::vector<std::string>& upgrade_args) {
    std::vector<std::string> argv = {ZKROLL_COORDINATOR_BIN, "--zk",
                                     connect_string()};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back("--");
    argv.push_back(UpgradeScript());
    argv.insert(argv.end(), upgrade_args.begin(), upgrade_args.end());
    rollout_ = std::make_unique<ChildProcess>();
    Status s = rollout_->Start(argv, dir_.File("rollout.log"), ScriptEnv());
    EXPECT_TRUE(s.ok()) << s.ToString();
    RolloutRun run;
    auto code = rollout_->Wait(milliseconds(180000));
    EXPECT_TRUE(code.has_value()) << "the rollout did not end in 180 s";
    run.exit_code = code.value_or(-1);
    run.output = rollout_->Output();
    std::istringstream in(run.output);
    std::string line;
    const std::string prefix = svc_ + "@127.0.0.1:";
    while (std::getline(in, line)) {
      if (line.empty() || line[0] != '{') continue;
      auto e = ParseJson(line);
      if (!e) continue;
      run.events.push_back(*e);
      if (Field(*e, "event") == "result")
        run.deploy_id = Field(*e, "deploy_id");
      if (Field(*e, "event") != "step") continue;
      const std::string inst = Field(*e, "instance");
      if (inst.rfind(prefix, 0) != 0) continue;
      run.steps.push_back(
          {UnixMillis(Field(*e, "time")), std::stoi(inst.substr(prefix.size())),
           Field(*e, "step"), Field(*e, "verdict"), Field(*e, "detail")});
    }
    std::cout << "rollout exit code " << run.exit_code << "; steps:\n";
    for (const auto& st : run.steps) {
      if (st.verdict == "started") continue;
      std::cout << "  " << st.port << " " << st.step << " " << st.verdict << " "
                << st.detail << "\n";
    }
    return run;
  }

  // Every instance registered again (the end state of any rollout here).
  bool AllRegistered() {
    for (int port : ports_) {
      if (!Registered(port)) return false;
    }
    return true;
  }

  // Sorts the failed requests of a run whose canary (`canary`) ran
  // `bad_version` from `bad_from_ms` (its COMMAND) and was reverted from
  // `revert_from_ms` (the revert's pause). A 5xx answered by the bad
  // version is the bad version's whenever it was due (the callers learn of
  // the revert's pause a few milliseconds after it); any other failure on
  // the canary is the bad version's only before the revert's pause.
  Attribution Attribute(int canary, const std::string& bad_version,
                        int64_t bad_from_ms, int64_t revert_from_ms) const {
    Attribution a;
    const std::string canary_addr = Addr(canary);
    for (const auto& f : Failures()) {
      std::ostringstream what;
      what << f.due_ms << " " << f.instance << " " << f.cause << " "
           << f.version;
      if (f.instance != canary_addr) {
        ++a.elsewhere;
        a.unexplained.push_back("not the canary: " + what.str());
      } else if ((f.cause == "non2xx" && f.version == bad_version) ||
                 (f.due_ms >= bad_from_ms && f.due_ms < revert_from_ms)) {
        ++a.by_bad_version;
        ++a.causes[f.cause];
      } else {
        ++a.by_revert;
        a.unexplained.push_back("during the revert: " + what.str());
      }
    }
    return a;
  }

  // When the revert of `port` began: its revert's pause step (journalled
  // "revert-pause"; a second "pause" would do as well). -1 if none.
  static int64_t RevertPauseStart(const RolloutRun& run, int port) {
    auto reverts = run.Starts(port, "revert-pause");
    if (!reverts.empty()) return reverts[0];
    auto pauses = run.Starts(port, "pause");
    return pauses.size() >= 2 ? pauses[1] : -1;
  }

  // The checks every protected case shares: the rollout stopped at the
  // canary (the first instance in address order), the rest of the fleet
  // never ran COMMAND nor the bad version, the canary was reverted to v1
  // with the smooth steps, every instance answers v1, exit code 5 and the
  // journal tells the story: the canary's step that caught the bad version
  // (one of `caught_by`, failed or aborted), the reason (one of `phrases`,
  // in the record's detail or a step's), the revert's steps. Returns the
  // attribution of the failed requests.
  Attribution ExpectStoppedAtCanaryAndReverted(
      const RolloutRun& run, const std::vector<std::string>& caught_by,
      const std::vector<std::string>& phrases) {
    const int canary = ports_[0];
    EXPECT_EQ(run.exit_code, 5) << "expected 'failed, every touched instance "
                                   "reverted'\n"
                                << run.output;
    // Only the canary ran COMMAND (or anything), once.
    EXPECT_EQ(run.Ends(canary, "command").size(), 1u) << run.output;
    for (size_t i = 1; i < ports_.size(); ++i) {
      EXPECT_TRUE(run.StepsOf(ports_[i]).empty())
          << "instance " << ports_[i] << " was touched\n"
          << run.output;
      EXPECT_EQ(VersionsStarted(ports_[i]), std::vector<std::string>{"v1"})
          << "instance " << ports_[i] << " ran another version\n"
          << ReadFile(VersionLogPath());
    }
    // The canary was reverted with the smooth steps (pause, drain, the
    // revert command, checks, resume, re-registration), and the last
    // version started on it is v1.
    const int64_t revert_from = RevertPauseStart(run, canary);
    EXPECT_GT(revert_from, 0) << "no revert of the canary\n" << run.output;
    for (const char* step : {"revert-drain", "revert-command", "revert-resume",
                             "revert-registered"}) {
      EXPECT_EQ(run.Starts(canary, step).size(), 1u)
          << "the revert has no step " << step << "\n"
          << run.output;
    }
    const auto started = VersionsStarted(canary);
    EXPECT_FALSE(started.empty());
    if (!started.empty()) {
      EXPECT_EQ(started.back(), "v1");
    }
    // Every instance serves v1 and is registered.
    EXPECT_TRUE(WaitFor([&] { return AllRegistered(); }, milliseconds(30000)))
        << AgentLogs();
    for (int port : ports_) {
      EXPECT_EQ(VersionOverHttp(port), "v1") << "instance " << port;
    }
    // The journal tells the story: reverted, why, the canary's upgrade and
    // its revert, nobody else's COMMAND.
    auto journal = LastJournal();
    EXPECT_TRUE(journal.has_value());
    if (journal) {
      const std::string text = ToJson(*journal);
      std::cout << "journal: " << text << "\n";
      EXPECT_EQ(journal->outcome(), "reverted") << text;
      bool reason_given = false;
      for (const auto& p : phrases) {
        reason_given = reason_given || text.find(p) != std::string::npos;
      }
      EXPECT_TRUE(reason_given)
          << "the journal gives none of the reasons "
          << ::testing::PrintToString(phrases) << ": " << text;
      bool canary_journalled = false;
      for (const auto& inst : journal->instances()) {
        std::vector<std::string> names;
        for (const auto& s : inst.steps()) names.push_back(s.name());
        auto has = [&](const std::string& n) {
          return std::find(names.begin(), names.end(), n) != names.end();
        };
        if (inst.instance() == "127.0.0.1_" + std::to_string(canary)) {
          canary_journalled = true;
          EXPECT_EQ(inst.outcome(), "reverted") << text;
          EXPECT_TRUE(has("command")) << text;
          bool caught = false;
          for (const auto& st : inst.steps()) {
            caught = caught ||
                     ((st.verdict() == "failed" || st.verdict() == "aborted") &&
                      std::find(caught_by.begin(), caught_by.end(),
                                st.name()) != caught_by.end());
          }
          EXPECT_TRUE(caught)
              << "no step of " << ::testing::PrintToString(caught_by)
              << " failed in the journal: " << text;
          EXPECT_TRUE(has("revert-pause") && has("revert-command") &&
                      has("revert-registered"))
              << "the journal lacks the revert's steps: " << text;
        } else {
          EXPECT_FALSE(has("command"))
              << inst.instance() << " ran COMMAND: " << text;
        }
      }
      EXPECT_TRUE(canary_journalled) << text;
    }
    const auto commands = run.Starts(canary, "command");
    return revert_from > 0 && !commands.empty()
               ? Attribute(canary, "v2", commands[0], revert_from)
               : Attribution{};
  }

  void PrintFailures(const std::string& name, const Struct& summary,
                     const Attribution& a) {
    std::cout << "[" << name << "] requests sent " << Field(summary, "sent")
              << ", failed " << Field(summary, "failed") << ": by the bad "
              << "version " << a.by_bad_version << " (";
    for (const auto& [cause, n] : a.causes)
      std::cout << cause << " " << n << " ";
    std::cout << "), during the revert " << a.by_revert << ", elsewhere "
              << a.elsewhere << "\n";
    for (const auto& u : a.unexplained) std::cout << "  " << u << "\n";
  }

  std::string demo_dir_;
  std::vector<int> ports_;
  std::unique_ptr<ChildProcess> loadgen_;
  std::unique_ptr<ChildProcess> rollout_;
  std::string hang_fifo_;
};

TEST_F(RolloutSafetyTest, AGoodVersionWithTheProtectionsUpgradesEveryInstance) {
  auto options = BaseOptions();
  for (auto& o : Protections("60s")) options.push_back(o);
  RolloutRun run = RunRollout(options, {"--version", "v2"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  ASSERT_TRUE(WaitFor([&] { return AllRegistered(); }, milliseconds(30000)));
  for (int port : ports_) {
    EXPECT_EQ(VersionOverHttp(port), "v2") << "instance " << port;
    EXPECT_EQ(VersionsStarted(port), (std::vector<std::string>{"v1", "v2"}))
        << "instance " << port << " was upgraded more than once\n"
        << ReadFile(VersionLogPath());
  }
  // The canary was soaked and checked before the others started, and each
  // instance stayed healthy for the minimum time.
  const auto soaked = run.Ends(ports_[0], "canary-soak");
  const auto checked = run.Ends(ports_[0], "canary-check");
  const auto second_pause = run.Starts(ports_[1], "pause");
  ASSERT_EQ(soaked.size(), 1u) << run.output;
  ASSERT_EQ(checked.size(), 1u) << run.output;
  ASSERT_EQ(second_pause.size(), 1u) << run.output;
  EXPECT_LE(soaked[0], checked[0]);
  EXPECT_LE(checked[0], second_pause[0]);
  for (int port : ports_) {
    EXPECT_EQ(run.Ends(port, "healthy-time").size(), 1u)
        << "instance " << port << "\n"
        << run.output;
  }
  auto journal = LastJournal();
  ASSERT_TRUE(journal.has_value());
  EXPECT_EQ(journal->outcome(), "succeeded") << ToJson(*journal);
  Struct summary = StopLoad();
  PrintFailures("good version", summary, Attribution{});
  EXPECT_EQ(Field(summary, "failed"), "0")
      << ReadFile(dir_.File("failures.csv"));
  EXPECT_GT(std::stoll(Field(summary, "sent")), kRate * 5);
}

// Today's rollout, without the protections: a version that fails one
// request in ten but passes every health check reaches every instance.
// This is what the protections are for.
TEST_F(RolloutSafetyTest,
       WithoutTheProtectionsABadVersionReachesTheWholeFleet) {
  RolloutRun run =
      RunRollout(BaseOptions(), {"--version", "v2", "--error-rate", "0.1"});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  ASSERT_TRUE(WaitFor([&] { return AllRegistered(); }, milliseconds(30000)));
  for (int port : ports_) {
    EXPECT_EQ(VersionOverHttp(port), "v2") << "instance " << port;
  }
  // Every instance fails requests now: wait until the callers have seen a
  // 500 from each.
  auto failing_instances = [&] {
    std::set<std::string> s;
    for (const auto& f : Failures()) {
      if (f.cause == "non2xx" && f.version == "v2") s.insert(f.instance);
    }
    return s.size();
  };
  EXPECT_TRUE(WaitFor([&] { return failing_instances() == ports_.size(); },
                      milliseconds(30000)))
      << ReadFile(dir_.File("failures.csv"));
  Struct summary = StopLoad();
  std::cout << "[bad version, no protections] requests sent "
            << Field(summary, "sent") << ", failed " << Field(summary, "failed")
            << ", from " << failing_instances() << " instances\n";
  EXPECT_GT(std::stoll(Field(summary, "failed")), 0);
}

// Crashes 2 s after it started listening: it passes the deploy's check and
// registers, then its agent sees it fall inside the minimum healthy time
// (or the soak).
TEST_F(RolloutSafetyTest, ACrashAfterAPassingCheckIsRevertedAtTheCanary) {
  auto options = BaseOptions();
  for (auto& o : Protections("60s")) options.push_back(o);
  RolloutRun run =
      RunRollout(options, {"--version", "v2", "--exit-after", kCrashAfter});
  // It did pass its check and register before crashing.
  EXPECT_GE(run.Starts(ports_[0], "registered").size(), 1u) << run.output;
  Attribution a = ExpectStoppedAtCanaryAndReverted(
      run, {"healthy-time", "canary-soak"},
      {"registration vanished", "canary soak"});
  Struct summary = StopLoad();
  PrintFailures("crash 2 s after a passing check", summary, a);
  EXPECT_EQ(a.by_revert, 0);
  EXPECT_EQ(a.elsewhere, 0);
  EXPECT_LE(a.by_bad_version, CrashFailureBound())
      << "the callers kept sending to the crashed canary for longer than "
         "the agent's checks take to fall";
  EXPECT_EQ(VersionsStarted(ports_[0]),
            (std::vector<std::string>{"v1", "v2", "v1"}));
}

// Answers 500 to every 10th request; /healthz passes, so only the canary
// check (the error rate from the instances' own counters) catches it.
TEST_F(RolloutSafetyTest, AnErrorRateIsCaughtByTheCanaryCheckAndReverted) {
  auto options = BaseOptions();
  for (auto& o : Protections("60s")) options.push_back(o);
  RolloutRun run =
      RunRollout(options, {"--version", "v2", "--error-rate", "0.1"});
  Attribution a = ExpectStoppedAtCanaryAndReverted(run, {"canary-check"},
                                                   {"--canary-check"});
  Struct summary = StopLoad();
  PrintFailures("500 to 10% of requests", summary, a);
  EXPECT_EQ(a.by_revert, 0);
  EXPECT_EQ(a.elsewhere, 0);
  // Only 500s, and one in ten of what the bad version answered (the
  // service fails requests by number; the canary check sends none).
  int64_t answered_by_v2 = 0;
  auto versions = summary.fields().find("versions");
  if (versions != summary.fields().end()) {
    auto v2 = versions->second.struct_value().fields().find("v2");
    if (v2 != versions->second.struct_value().fields().end()) {
      answered_by_v2 = static_cast<int64_t>(v2->second.number_value());
    }
  }
  std::cout << "  the canary answered " << answered_by_v2
            << " requests as v2\n";
  EXPECT_EQ(a.causes.size(), 1u);
  EXPECT_GT(a.by_bad_version, 0);
  EXPECT_LE(a.by_bad_version,
            static_cast<int64_t>(answered_by_v2 * kErrorRate) + 1);
  EXPECT_EQ(VersionsStarted(ports_[0]),
            (std::vector<std::string>{"v1", "v2", "v1"}));
}

// Starts listening only after 60 s, long after the deploy's 5 checks: the
// canary fails its health step while still paused, so no request reaches
// it.
TEST_F(RolloutSafetyTest, ASlowStartIsRevertedAtTheCanary) {
  auto options = BaseOptions();
  for (auto& o : Protections("60s")) options.push_back(o);
  RolloutRun run =
      RunRollout(options, {"--version", "v2", "--start-delay", "60s"});
  Attribution a = ExpectStoppedAtCanaryAndReverted(
      run, {"health"}, {"every health check failed"});
  Struct summary = StopLoad();
  PrintFailures("slow start", summary, a);
  EXPECT_EQ(Field(summary, "failed"), "0")
      << ReadFile(dir_.File("failures.csv"));
}

// The install hangs (COMMAND blocks on a FIFO nobody writes): the progress
// deadline fails the rollout and the revert brings v1 back.
TEST_F(RolloutSafetyTest, AHangInCommandHitsTheProgressDeadlineAndIsReverted) {
  hang_fifo_ = dir_.File("hang.fifo");
  ASSERT_EQ(::mkfifo(hang_fifo_.c_str(), 0600), 0);
  auto options = BaseOptions();
  for (auto& o : Protections("8s")) options.push_back(o);
  RolloutRun run =
      RunRollout(options, {"--version", "v2", "--hang-fifo", hang_fifo_});
  Attribution a = ExpectStoppedAtCanaryAndReverted(run, {"command"},
                                                   {"--progress-deadline"});
  Struct summary = StopLoad();
  PrintFailures("hang in COMMAND", summary, a);
  EXPECT_EQ(Field(summary, "failed"), "0")
      << ReadFile(dir_.File("failures.csv"));
  // The bad version never started anywhere.
  for (const auto& v : VersionLog()) EXPECT_EQ(v.version, "v1");
}

}  // namespace
}  // namespace zkroll::testing
