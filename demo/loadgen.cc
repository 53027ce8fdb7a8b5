#include "demo/loadgen.h"

#include <glog/logging.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "common/version.h"
#include "common/zk_session.h"
#include "demo/json_text.h"

namespace zkroll::demo {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;
using client::HttpOutcome;

std::string VersionOf(const http::response<http::string_body>& r) {
  auto header = r.find("X-Zkroll-Version");
  if (header != r.end()) return std::string(header->value());
  google::protobuf::Struct doc;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(r.body(), &doc, options)
           .ok()) {
    return "";
  }
  auto field = doc.fields().find("version");
  if (field == doc.fields().end() || !field->second.has_string_value()) {
    return "";
  }
  return field->second.string_value();
}

LoadGenerator::LoadGenerator(asio::any_io_executor ex, Settings settings,
                             std::shared_ptr<InstanceSource> source,
                             std::shared_ptr<RequestSender> sender,
                             SecondReport on_second)
    : ex_(ex),
      settings_(std::move(settings)),
      source_(std::move(source)),
      sender_(std::move(sender)),
      on_second_(std::move(on_second)),
      send_timer_(ex),
      stop_file_timer_(ex),
      guard_timer_(ex) {
  CHECK_GT(settings_.rate, 0);
}

LoadGenerator::Clock::time_point LoadGenerator::DueAt(int64_t i) const {
  // From the start, not from the previous request, so rounding never
  // accumulates into drift.
  return start_ + std::chrono::nanoseconds(static_cast<int64_t>(std::llround(
                      static_cast<double>(i) * 1e9 / settings_.rate)));
}

void LoadGenerator::Start(std::function<void()> done) {
  done_ = std::move(done);
  start_ = Clock::now();
  start_wall_ = std::chrono::system_clock::now();
  double seconds = std::chrono::duration<double>(settings_.duration).count();
  planned_ = static_cast<int64_t>(std::llround(settings_.rate * seconds));
  stopped_by_ = "duration";
  if (!settings_.stop_file.empty()) CheckStopFile();
  Tick();
}

void LoadGenerator::CheckStopFile() {
  if (sending_done_) return;
  if (::access(settings_.stop_file.c_str(), F_OK) == 0) {
    StopSending("stop file " + settings_.stop_file);
    return;
  }
  stop_file_timer_.expires_after(std::chrono::milliseconds(100));
  stop_file_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) self->CheckStopFile();
  });
}

void LoadGenerator::Tick() {
  if (sending_done_) return;
  const Clock::time_point now = Clock::now();
  while (issued_ < planned_) {
    Clock::time_point due = DueAt(issued_);
    if (due > now) break;
    Issue(due, now);
    ++issued_;
  }
  if (issued_ >= planned_) {
    EndSending();
    return;
  }
  Flush();
  send_timer_.expires_at(DueAt(issued_));
  send_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) self->Tick();
  });
}

void LoadGenerator::Issue(Clock::time_point due, Clock::time_point now) {
  const int64_t second =
      std::chrono::duration_cast<std::chrono::seconds>(due - start_).count();
  Second& s = seconds_[second];
  std::shared_ptr<const client::ServiceView> view = source_->Snapshot();
  std::optional<client::Endpoint> endpoint = source_->Pick();
  s.tally.AddSent(now - due > kLateThreshold, view->stale,
                  view->instances.size());
  if (!endpoint) {
    RequestOutcome o;
    o.instance = "none";
    o.failure = Failure::kNoInstance;
    s.tally.AddOutcome(o);
    ReportFailure(due, o);
    return;
  }
  ++s.outstanding;
  ++outstanding_;
  std::string instance = endpoint->address.ToString();
  sender_->Get(
      endpoint->address, settings_.target, due + settings_.timeout,
      [self = shared_from_this(), second, due, instance](client::HttpResult r) {
        self->OnResult(second, due, instance, std::move(r));
      });
}

void LoadGenerator::OnResult(int64_t second, Clock::time_point due,
                             const std::string& instance,
                             client::HttpResult result) {
  if (finished_) return;
  auto it = seconds_.find(second);
  if (it == seconds_.end()) return;  // counted by ForceFinish already
  const Clock::time_point now = Clock::now();
  RequestOutcome o;
  o.instance = instance;
  switch (result.outcome) {
    case HttpOutcome::kOk:
      break;
    case HttpOutcome::kNon2xx:
      o.failure = Failure::kNon2xx;
      break;
    case HttpOutcome::kRefused:
      o.failure = Failure::kRefused;
      break;
    case HttpOutcome::kReset:
      o.failure = Failure::kReset;
      break;
    case HttpOutcome::kTimeout:
      o.failure = Failure::kTimeout;
      break;
    case HttpOutcome::kOther:
      o.failure = Failure::kOther;
      break;
  }
  if (result.outcome == HttpOutcome::kOk ||
      result.outcome == HttpOutcome::kNon2xx) {
    o.latency_us =
        std::chrono::duration_cast<std::chrono::microseconds>(now - due)
            .count();
    o.version = VersionOf(result.response);
  } else {
    VLOG(1) << instance << ": " << client::HttpOutcomeName(result.outcome)
            << ": " << result.error;
  }
  it->second.tally.AddOutcome(o);
  if (o.failure) ReportFailure(due, o);
  --it->second.outstanding;
  --outstanding_;
  Flush();
  MaybeFinish();
}

void LoadGenerator::ReportFailure(Clock::time_point due,
                                  const RequestOutcome& o) {
  if (!on_failure_) return;
  const auto due_wall =
      start_wall_ +
      std::chrono::duration_cast<std::chrono::system_clock::duration>(due -
                                                                      start_);
  on_failure_(std::chrono::duration_cast<std::chrono::milliseconds>(
                  due_wall.time_since_epoch())
                  .count(),
              o);
}

void LoadGenerator::StopSending(const std::string& why) {
  if (sending_done_) return;
  stopped_by_ = why;
  LOG(INFO) << "stopping early (" << why << ") after " << issued_ << " of "
            << planned_ << " requests";
  EndSending();
}

void LoadGenerator::EndSending() {
  if (sending_done_) return;
  sending_done_ = true;
  sending_ended_ = Clock::now();
  send_timer_.cancel();
  stop_file_timer_.cancel();
  // Every request has a deadline, so this only fires if something is
  // broken; the run must end regardless.
  guard_timer_.expires_after(settings_.timeout + std::chrono::seconds(5));
  guard_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) self->ForceFinish();
  });
  Flush();
  MaybeFinish();
}

void LoadGenerator::Flush() {
  while (!seconds_.empty()) {
    auto it = seconds_.begin();
    // A second is over once every request due in it has been issued. Not
    // by the clock: the send timer may not have caught up with it yet.
    const bool over =
        sending_done_ ||
        DueAt(issued_) >= start_ + std::chrono::seconds(it->first + 1);
    if (!over || it->second.outstanding > 0) return;
    if (on_second_) on_second_(it->first, it->second.tally);
    totals_.Merge(it->second.tally);
    seconds_.erase(it);
  }
}

void LoadGenerator::MaybeFinish() {
  if (finished_ || !sending_done_ || outstanding_ > 0) return;
  finished_ = true;
  guard_timer_.cancel();
  Flush();
  if (done_) asio::post(ex_, std::move(done_));
}

void LoadGenerator::ForceFinish() {
  if (finished_) return;
  LOG(ERROR) << outstanding_
             << " requests got no outcome long after their deadline; "
                "counting them as timeouts";
  for (auto& [second, s] : seconds_) {
    for (; s.outstanding > 0; --s.outstanding) {
      RequestOutcome o;
      o.instance = "unknown";
      o.failure = Failure::kTimeout;
      s.tally.AddOutcome(o);
    }
  }
  outstanding_ = 0;
  MaybeFinish();
}

double LoadGenerator::sending_seconds() const {
  Clock::time_point end = sending_done_ ? sending_ended_ : Clock::now();
  return std::chrono::duration<double>(end - start_).count();
}

// --- main -------------------------------------------------------------------

namespace {

namespace po = boost::program_options;

constexpr char kUsage[] =
    R"(zkroll-loadgen: open-loop HTTP load on one service found through ZooKeeper
(or on a fixed list of instances), counting every failure by cause.

Usage:
  zkroll-loadgen --zk HOST:PORT[/chroot] --service NAME [--mode watch|poll]
                 [--rate 2000] [--duration 30s] [options]
  zkroll-loadgen --targets IP:PORT[,IP:PORT...] [--rate 2000] [options]

Instances come from /services/NAME through the discovery client: --mode
watch follows ZooKeeper watches, --mode poll re-reads the list every
--poll-interval (like callers that cache the list on a timer). --targets
instead sends to a fixed list, in round robin, with no ZooKeeper at all:
callers that never refresh their instance list (e.g. pointed at one
address, such as an instance that zkroll-agent forwards). Requests are
sent at a fixed rate whatever the answers (open loop) on keep-alive
connections (at most --connections per instance), and never retried.

--new-connection-per-request opens a new TCP connection for every request
(sent with "Connection: close") instead of reusing keep-alive connections.
It models callers that connect per request, and it matters behind a
forwarder (zkroll deploy --switch): a switch applies to new connections,
so these callers move to the new backend at once, while keep-alive
callers stay on the old backend until it closes their connections.

Output: one line per second (by due time) once all its requests have an
outcome, a final "total" line, optionally a per-second per-instance CSV
(--timeline: second,instance,requests,ok,failed,version), a JSON summary
(--summary-json) and one CSV line per failed request (--failure-log:
due_unix_ms,instance,cause,version, written as outcomes arrive).

Exit codes: 0 the run ended (failed requests are data, not an error);
2 bad flag (including an output file that cannot be written); 1 could not
start (ZooKeeper could not be read; never with --targets).

Options)";

struct Flags {
  std::string zk;
  std::vector<InstanceAddress> targets;  // --targets: no ZooKeeper
  ServiceName service;  // required with --zk; a label with --targets
  client::DiscoveryMode mode = client::DiscoveryMode::kWatch;
  Millis poll_interval{1000};
  Millis resync{30000};
  LoadGenerator::Settings settings;
  size_t connections = 32;
  Millis startup_timeout{10000};
  std::string timeline;
  std::string summary_json;
  std::string list_log;
  std::string failure_log;
  bool new_connection_per_request = false;
  bool quiet = false;
  bool acknowledge = true;
};

// Parses the command line. Returns nullopt and sets *exit_code on --help
// (0) or a bad flag (2, message printed).
std::optional<Flags> ParseFlags(int argc, char** argv, int* exit_code) {
  po::options_description desc(kUsage);
  // clang-format off
  desc.add_options()
    ("help,h", "show this help and exit")
    ("zk", po::value<std::string>(),
     "ZooKeeper connect string (required unless --targets)")
    ("service", po::value<std::string>(),
     "service name (required with --zk; with --targets only a label)")
    ("targets", po::value<std::string>(),
     "fixed instance list IP:PORT[,IP:PORT...] used in round robin, no "
     "ZooKeeper (excludes --zk)")
    ("mode", po::value<std::string>()->default_value("watch"),
     "discovery mode: watch or poll")
    ("poll-interval", po::value<std::string>()->default_value("1s"),
     "poll mode: time between reads of the list")
    ("resync", po::value<std::string>()->default_value("30s"),
     "slow full re-check of the list (both modes)")
    ("rate", po::value<double>()->default_value(2000),
     "requests per second (0 < rate <= 100000)")
    ("duration", po::value<std::string>()->default_value("30s"),
     "how long to send, e.g. 30s, 2m")
    ("connections", po::value<int>()->default_value(32),
     "keep-alive connections per instance at most (1-10000)")
    ("new-connection-per-request",
     "a new TCP connection for every request, closed after the response "
     "(--connections does not apply; at most rate x timeout are open)")
    ("timeout", po::value<std::string>()->default_value("1s"),
     "per request, counted from its due time")
    ("path", po::value<std::string>()->default_value("/"),
     "request target, e.g. / or /healthz")
    ("timeline", po::value<std::string>(),
     "write second,instance,requests,ok,failed,version rows to this CSV")
    ("summary-json", po::value<std::string>(),
     "write the run's totals as JSON to this file")
    ("failure-log", po::value<std::string>(),
     "write one CSV line per failed request (due_unix_ms,instance,cause,"
     "version), as soon as its outcome is known")
    ("list-log", po::value<std::string>(),
     "CSV of every change of the instance list: unix_ms,generation,instances "
     "(';'-separated), for measuring how fast callers drop an instance")
    ("stop-file", po::value<std::string>(),
     "stop sending early once this file exists (it must not exist at start)")
    ("startup-timeout", po::value<std::string>()->default_value("10s"),
     "how long to wait for the first read of the list")
    ("no-acknowledge",
     "do not acknowledge the list in /callers (a caller that reads the "
     "registry but never tells a `--drain auto` deploy it let go)")
    ("quiet", "no per-second lines, only the total");
  // clang-format on
  auto bad = [exit_code](const std::string& message) -> std::optional<Flags> {
    std::cerr << "zkroll-loadgen: " << message
              << "\nRun 'zkroll-loadgen --help' for the options.\n";
    *exit_code = 2;
    return std::nullopt;
  };
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return bad(e.what());
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    *exit_code = 0;
    return std::nullopt;
  }
  Flags f;
  if (vm.count("targets")) {
    if (vm.count("zk")) {
      return bad(
          "--targets and --zk exclude each other: --targets sends to a fixed "
          "list without ZooKeeper, --zk finds the instances in ZooKeeper");
    }
    if (vm.count("no-acknowledge")) {
      return bad(
          "--no-acknowledge applies to ZooKeeper discovery (--zk) only, not "
          "to --targets");
    }
    for (const char* zk_only :
         {"mode", "poll-interval", "resync", "list-log", "startup-timeout"}) {
      if (vm.count(zk_only) && !vm[zk_only].defaulted()) {
        return bad(std::string("--") + zk_only +
                   " applies to ZooKeeper discovery (--zk) only, not to "
                   "--targets");
      }
    }
    auto targets = ParseTargets(vm["targets"].as<std::string>());
    if (!targets.ok()) return bad("--targets: " + targets.status().message());
    f.targets = std::move(*targets);
  } else {
    if (!vm.count("zk")) {
      return bad(
          "--zk is required, e.g. --zk 127.0.0.1:2181 (or a fixed list: "
          "--targets 127.0.0.1:8080)");
    }
    f.zk = vm["zk"].as<std::string>();
    Status zk_ok = ValidateConnectString(f.zk);
    if (!zk_ok.ok()) return bad("--zk: " + zk_ok.message());
    if (!vm.count("service")) return bad("--service is required");
  }
  if (vm.count("service")) {
    auto service = ServiceName::Parse(vm["service"].as<std::string>());
    if (!service.ok()) return bad("--service: " + service.status().message());
    f.service = *service;
  }
  auto mode = client::ParseDiscoveryMode(vm["mode"].as<std::string>());
  if (!mode.ok()) return bad("--mode: " + mode.status().message());
  f.mode = *mode;
  f.new_connection_per_request = vm.count("new-connection-per-request") != 0;
  f.acknowledge = vm.count("no-acknowledge") == 0;
  struct DurationFlag {
    const char* name;
    Millis* out;
    bool positive;
  };
  for (const DurationFlag& d :
       {DurationFlag{"poll-interval", &f.poll_interval, true},
        DurationFlag{"resync", &f.resync, false},
        DurationFlag{"duration", &f.settings.duration, true},
        DurationFlag{"timeout", &f.settings.timeout, true},
        DurationFlag{"startup-timeout", &f.startup_timeout, true}}) {
    auto v = ParseDuration(vm[d.name].as<std::string>());
    if (!v.ok())
      return bad(std::string("--") + d.name + ": " + v.status().message());
    if (d.positive && v->count() <= 0) {
      return bad(std::string("--") + d.name + " must be more than 0");
    }
    *d.out = *v;
  }
  if (f.settings.duration > std::chrono::hours(24)) {
    return bad("--duration is limited to 24h");
  }
  f.settings.rate = vm["rate"].as<double>();
  if (!(f.settings.rate > 0 && f.settings.rate <= 100000)) {
    return bad("--rate must be more than 0 and at most 100000 requests/s");
  }
  int connections = vm["connections"].as<int>();
  if (connections < 1 || connections > 10000) {
    return bad("--connections must be between 1 and 10000");
  }
  f.connections = static_cast<size_t>(connections);
  f.settings.target = vm["path"].as<std::string>();
  if (f.settings.target.empty() || f.settings.target[0] != '/' ||
      f.settings.target.find_first_of(" \r\n\t") != std::string::npos) {
    return bad("--path must start with '/' and contain no whitespace, got " +
               QuoteForMessage(f.settings.target));
  }
  if (vm.count("timeline")) f.timeline = vm["timeline"].as<std::string>();
  if (vm.count("list-log")) f.list_log = vm["list-log"].as<std::string>();
  if (vm.count("failure-log")) {
    f.failure_log = vm["failure-log"].as<std::string>();
  }
  if (vm.count("summary-json")) {
    f.summary_json = vm["summary-json"].as<std::string>();
  }
  if (vm.count("stop-file")) {
    f.settings.stop_file = vm["stop-file"].as<std::string>();
    if (::access(f.settings.stop_file.c_str(), F_OK) == 0) {
      return bad("--stop-file " + f.settings.stop_file +
                 " already exists; remove it first (its appearance is what "
                 "stops the run)");
    }
  }
  f.quiet = vm.count("quiet") != 0;
  return f;
}

// "watch", "poll" or "targets".
std::string ModeName(const Flags& f) {
  return f.targets.empty() ? client::DiscoveryModeName(f.mode) : "targets";
}

std::string SummaryJson(const Flags& f, const LoadGenerator& gen,
                        const client::ServiceView& view,
                        const client::HttpPool::Stats& pool) {
  const Tally& t = gen.totals();
  std::ostringstream out;
  out << "{\n";
  out << "  \"service\": " << JsonQuote(f.service.str()) << ",\n";
  out << "  \"mode\": " << JsonQuote(ModeName(f)) << ",\n";
  out << "  \"targets\": [";
  for (size_t i = 0; i < f.targets.size(); ++i) {
    out << (i ? ", " : "") << JsonQuote(f.targets[i].ToString());
  }
  out << "],\n";
  out << "  \"new_connection_per_request\": "
      << (f.new_connection_per_request ? "true" : "false") << ",\n";
  out << "  \"rate\": " << JsonNumber(f.settings.rate) << ",\n";
  out << "  \"duration_ms\": " << f.settings.duration.count() << ",\n";
  out << "  \"started_at_unix_ms\": "
      << std::chrono::duration_cast<std::chrono::milliseconds>(
             gen.start_wall().time_since_epoch())
             .count()
      << ",\n";
  out << "  \"sending_seconds\": " << JsonNumber(gen.sending_seconds())
      << ",\n";
  out << "  \"stopped_by\": " << JsonQuote(gen.stopped_by()) << ",\n";
  out << "  \"sent\": " << t.sent << ",\n";
  out << "  \"ok\": " << t.ok << ",\n";
  out << "  \"failed\": " << t.failed << ",\n";
  out << "  \"failed_by_cause\": {";
  for (int i = 0; i < kFailureKinds; ++i) {
    out << (i ? ", " : "") << JsonQuote(FailureName(static_cast<Failure>(i)))
        << ": " << t.by_failure[i];
  }
  out << "},\n";
  out << "  \"late\": " << t.late << ",\n";
  out << "  \"latency_ms\": {\"p50\": "
      << JsonNumber(t.latency.Percentile(50) / 1000.0)
      << ", \"p99\": " << JsonNumber(t.latency.Percentile(99) / 1000.0)
      << ", \"max\": " << JsonNumber(t.latency.max() / 1000.0)
      << ", \"count\": " << t.latency.count() << "},\n";
  out << "  \"versions\": {";
  const char* sep = "";
  for (const auto& [v, n] : t.versions) {
    out << sep << JsonQuote(v) << ": " << n;
    sep = ", ";
  }
  out << "},\n";
  out << "  \"instances\": {";
  sep = "";
  for (const auto& [name, i] : t.instances) {
    out << sep << "\n    " << JsonQuote(name)
        << ": {\"requests\": " << i.requests << ", \"ok\": " << i.ok
        << ", \"failed\": " << i.failed << "}";
    sep = ",";
  }
  out << (t.instances.empty() ? "" : "\n  ") << "},\n";
  out << "  \"discovery\": {\"refreshes\": " << view.refreshes
      << ", \"generation\": " << view.generation
      << ", \"listed_at_end\": " << view.instances.size()
      << ", \"stale_at_end\": " << (view.stale ? "true" : "false")
      << ", \"stale_picks\": " << t.stale_picks
      << ", \"skipped_children\": " << view.skipped.size() << "},\n";
  out << "  \"pool\": {\"connects\": " << pool.connects
      << ", \"discarded_dead\": " << pool.discarded_dead
      << ", \"closed_retired\": " << pool.closed_retired << "}\n";
  out << "}\n";
  return out.str();
}

// Writes `text` to `path` through a temporary file and a rename, so a
// reader never sees half a summary.
Status WriteFileAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      return Unavailable("cannot write " + tmp + ": " + std::strerror(errno));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Unavailable("cannot rename " + tmp + " to " + path + ": " +
                       std::strerror(errno));
  }
  return Status::Ok();
}

std::string DescribeList(const client::ServiceView& view) {
  std::string out =
      "list generation=" + std::to_string(view.generation) + " instances=";
  const char* sep = "";
  for (const auto& i : view.instances) {
    out += sep + i.address.ToString();
    if (i.weight != 1) out += "(w" + std::to_string(i.weight) + ")";
    sep = ",";
  }
  if (view.instances.empty()) out += "-";
  out += view.stale ? " stale=yes (" + view.stale_reason + ")" : " stale=no";
  return out;
}

}  // namespace

int LoadgenMain(int argc, char** argv) {
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  int exit_code = 0;
  std::optional<Flags> flags = ParseFlags(argc, argv, &exit_code);
  if (!flags) return exit_code;
  const Flags& f = *flags;

  std::ofstream timeline;
  if (!f.timeline.empty()) {
    timeline.open(f.timeline, std::ios::trunc);
    if (!timeline) {
      std::cerr << "zkroll-loadgen: cannot write --timeline " << f.timeline
                << ": " << std::strerror(errno) << "\n";
      return 2;
    }
    timeline << kTimelineHeader << std::flush;
  }
  std::ofstream failure_log;
  if (!f.failure_log.empty()) {
    failure_log.open(f.failure_log, std::ios::trunc);
    if (!failure_log) {
      std::cerr << "zkroll-loadgen: cannot write --failure-log "
                << f.failure_log << ": " << std::strerror(errno) << "\n";
      return 2;
    }
    failure_log << "due_unix_ms,instance,cause,version\n" << std::flush;
  }
  if (!f.summary_json.empty()) {
    Status s = WriteFileAtomically(f.summary_json, "{}\n");
    if (!s.ok()) {
      std::cerr << "zkroll-loadgen: --summary-json: " << s.message() << "\n";
      return 2;
    }
  }

  asio::io_context io;
  // Discovery through ZooKeeper, unless --targets gives a fixed list.
  std::unique_ptr<ZkSession> session;
  std::shared_ptr<client::ServiceDiscovery> discovery;
  std::shared_ptr<InstanceSource> source;
  if (f.targets.empty()) {
    ZkOptions zk_options;
    zk_options.connect_string = f.zk;
    session = std::make_unique<ZkSession>(io.get_executor(), zk_options);
    Status started = session->Start();
    if (!started.ok()) {
      std::cerr << "zkroll-loadgen: " << started.message() << "\n";
      return 1;
    }
    client::ServiceDiscovery::Options d;
    d.service = f.service;
    d.mode = f.mode;
    d.poll_interval = f.poll_interval;
    d.resync = f.resync;
    d.acknowledge = f.acknowledge;
    discovery =
        client::ServiceDiscovery::Create(io.get_executor(), session.get(), d);
    source = std::make_shared<DiscoverySource>(discovery);
  } else {
    source = std::make_shared<FixedTargets>(f.service, f.targets);
  }
  auto stop_discovery = [&] {
    if (discovery) discovery->Stop();
  };

  const std::string user_agent =
      std::string("zkroll-loadgen/") + ZKROLL_VERSION;
  std::shared_ptr<RequestSender> sender;
  if (f.new_connection_per_request) {
    sender =
        std::make_shared<ConnectionPerRequest>(io.get_executor(), user_agent);
  } else {
    client::HttpPool::Options p;
    p.max_connections_per_instance = f.connections;
    p.user_agent = user_agent;
    sender = std::make_shared<PooledSender>(
        client::HttpPool::Create(io.get_executor(), p));
  }
  const bool quiet = f.quiet;
  std::shared_ptr<std::ofstream> list_log;
  if (!f.list_log.empty()) {
    list_log = std::make_shared<std::ofstream>(f.list_log, std::ios::trunc);
    if (!*list_log) {
      std::cerr << "zkroll-loadgen: --list-log: cannot write " << f.list_log
                << "\n";
      return 2;
    }
    *list_log << "unix_ms,generation,instances\n";
  }
  if (discovery) {
    discovery->AddChangeListener(
        [sender, ex = io.get_executor(), quiet,
         list_log](const std::shared_ptr<const client::ServiceView>& view) {
          std::vector<InstanceAddress> current;
          std::string names;
          for (const auto& i : view->instances) {
            current.push_back(i.address);
            names += (names.empty() ? "" : ";") + i.address.ToString();
          }
          // Stamped when the list changed, not when the post below runs.
          const int64_t now_ms =
              std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
          std::string line = DescribeList(*view);
          uint64_t generation = view->generation;
          // The sender belongs to the io_context's thread.
          asio::post(ex, [sender, current, line, quiet, list_log, now_ms,
                          generation, names] {
            sender->Retain(current);
            if (!quiet) std::cout << line << std::endl;
            if (list_log) {
              *list_log << now_ms << "," << generation << "," << names << "\n";
              list_log->flush();
            }
          });
        });
    discovery->Start();
  }

  std::shared_ptr<LoadGenerator> gen;
  bool interrupted = false;
  auto finish = [&] {
    sender->Shutdown();
    auto view = source->Snapshot();
    stop_discovery();
    std::cout << FormatTotalLine(gen->sending_seconds(), gen->totals())
              << " stopped_by=" << QuoteForMessage(gen->stopped_by())
              << std::endl;
    if (!f.summary_json.empty()) {
      Status s = WriteFileAtomically(
          f.summary_json, SummaryJson(f, *gen, *view, sender->stats()));
      if (!s.ok()) {
        std::cerr << "zkroll-loadgen: --summary-json: " << s.message() << "\n";
      }
    }
    io.stop();
  };
  auto start_load = [&] {
    LoadGenerator::Settings settings = f.settings;
    gen = std::make_shared<LoadGenerator>(
        io.get_executor(), settings, source, sender,
        [&](int64_t second, const Tally& t) {
          if (!quiet) std::cout << FormatSecondLine(second, t) << std::endl;
          if (timeline.is_open()) {
            timeline << TimelineRows(second, t) << std::flush;
          }
        });
    if (failure_log.is_open()) {
      gen->set_failure_report([&](int64_t due_ms, const RequestOutcome& o) {
        failure_log << due_ms << "," << o.instance << ","
                    << FailureName(*o.failure) << "," << o.version << "\n"
                    << std::flush;
      });
    }
    std::cout << "loadgen service="
              << (f.service.str().empty() ? "-" : f.service.str())
              << " mode=" << ModeName(f) << " rate=" << f.settings.rate
              << " duration=" << FormatDuration(f.settings.duration)
              << " connections="
              << (f.new_connection_per_request ? "per-request" : "keep-alive")
              << " " << DescribeList(*source->Snapshot()) << std::endl;
    gen->Start(finish);
  };

  // Wait for the first complete read of the list, so the first second is
  // not "no instance" only because we had not looked yet.
  asio::steady_timer wait(io);
  const auto give_up = std::chrono::steady_clock::now() + f.startup_timeout;
  std::function<void()> await_list = [&] {
    if (interrupted) return;
    if (source->Snapshot()->loaded) {
      start_load();
      return;
    }
    if (std::chrono::steady_clock::now() >= give_up) {
      std::cerr << "zkroll-loadgen: could not read /services/"
                << f.service.str() << " from ZooKeeper at " << f.zk
                << " within " << FormatDuration(f.startup_timeout) << " ("
                << source->Snapshot()->stale_reason
                << "); check --zk and that the servers are up\n";
      exit_code = 1;
      stop_discovery();
      io.stop();
      return;
    }
    wait.expires_after(std::chrono::milliseconds(20));
    wait.async_wait([&](error_code ec) {
      if (!ec) await_list();
    });
  };
  await_list();

  asio::signal_set signals(io, SIGINT, SIGTERM);
  std::function<void()> arm_signals = [&] {
    signals.async_wait([&](const error_code& ec, int sig) {
      if (ec) return;
      if (gen) {
        gen->StopSending("signal " + std::to_string(sig));
        arm_signals();
        return;
      }
      interrupted = true;
      std::cerr << "zkroll-loadgen: interrupted before the run started\n";
      exit_code = 1;
      stop_discovery();
      io.stop();
    });
  };
  arm_signals();

  io.run();
  stop_discovery();
  return exit_code;
}

}  // namespace zkroll::demo
