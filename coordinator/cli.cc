#include "coordinator/cli.h"

#include <glog/logging.h>

#include <unistd.h>

#include <boost/program_options.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/duration.h"
#include "common/health/check.h"
#include "common/names.h"
#include "common/paths.h"
#include "common/payload.h"
#include "common/utf8.h"
#include "common/version.h"
#include "common/zk_types.h"
#include "coordinator/abort_signal.h"
#include "coordinator/command.h"
#include "coordinator/connection.h"
#include "coordinator/deploy.h"
#include "coordinator/exit_codes.h"
#include "coordinator/init.h"
#include "coordinator/inventory.h"
#include "coordinator/journal.h"
#include "coordinator/lock.h"
#include "coordinator/maintenance.h"
#include "coordinator/plan.h"
#include "coordinator/reporter.h"
#include "coordinator/rollout.h"
#include "coordinator/status.h"

namespace zkroll::coordinator {
namespace {

namespace po = boost::program_options;

constexpr char kUsage[] =
    R"(usage: zkroll SUBCOMMAND [OPTIONS] [-- COMMAND [ARGS...]]

Upgrades service instances registered in ZooKeeper without failing callers.

Subcommands:
  deploy   --service S --instance IP:PORT [options] -- COMMAND [ARGS...]
           Pause one instance (flag + deregistration in one transaction),
           drain, run COMMAND, health-check, resume, wait for the agent to
           register it again.
  rollout  --service S --min-healthy M [--batch K] [--instances A,B] -- COMMAND
           Deploy every instance the agents declare for S, K at a time,
           never leaving fewer than M registered.
           With --dry-run (deploy too): print the plan and whether the run
           could start (exit 0) or not (exit 1, with why); writes nothing.
  status   --service S           Each instance: registered, paused, agent, health.
  history  --service S [--deploy-id ID] [--limit N]
                                 The deploy journal of S.
  pause    --service S --instance IP:PORT --reason TEXT --ttl DURATION
                                 Manual maintenance pause that expires.
  resume   --service S --instance IP:PORT
                                 End a manual pause.
  init     --admin-auth ADMIN --agent-auth F --coordinator-auth F
                                 Create the tree with its ACLs (once).

Global options (accepted before or after the subcommand):
  --zk CONNECT            ZooKeeper connect string host:port[,host:port][/chroot]
                          (default: $ZKROLL_ZK)
  --connect-timeout D     give up connecting after D (default 10s)
  --session-timeout D     ZooKeeper session timeout (default 10s)
  --auth-file FILE        digest credential "user:password" (mode 0600)
  --output text|json      text for people, JSON lines for tools (default text)
  --help, --version

`zkroll SUBCOMMAND --help` shows each subcommand's options.

Exit codes:
  0    done
  1    a deploy failed and the rollout stopped (COMMAND or health checks
       failed, agent did not re-register, instance already paused, or
       --min-healthy could not be met in time); with --dry-run: the run
       could not start (the plan says why)
  2    usage or validation error, or (--dry-run) a service or instance
       nothing in ZooKeeper knows; nothing in ZooKeeper was touched
  3    ZooKeeper not reachable within --connect-timeout or refused access,
       or the service's lock is held by another coordinator
  4    aborted: the coordinator lost its ZooKeeper session (its pause flag
       vanished), so COMMAND was not run or its outcome is not trusted
  130  aborted by SIGINT (Ctrl-C)   143  aborted by SIGTERM
       (an abort stops COMMAND, deletes the pause flag and records the deploy
       as aborted)
)";

// Options that take a value, for moving leading global options behind the
// subcommand name.
const std::set<std::string> kGlobalWithValue = {"--zk", "--connect-timeout",
                                                "--session-timeout",
                                                "--auth-file", "--output"};

struct UsageError {
  std::string message;
};

struct GlobalConfig {
  ConnectOptions connect;
  OutputFormat format = OutputFormat::kText;
};

po::options_description GlobalOptions() {
  po::options_description d("Global options");
  auto add = d.add_options();
  add("zk", po::value<std::string>(),
      "ZooKeeper connect string host:port[,host:port][/chroot] (default: "
      "$ZKROLL_ZK)");
  add("connect-timeout", po::value<std::string>()->default_value("10s"),
      "give up connecting after this long (exit 3)");
  add("session-timeout", po::value<std::string>()->default_value("10s"),
      "ZooKeeper session timeout; a coordinator that dies leaves its pause "
      "flag for at most this long");
  add("auth-file", po::value<std::string>(),
      "file holding a digest credential \"user:password\" (mode 0600)");
  add("output", po::value<std::string>()->default_value("text"),
      "text | json (one JSON object per line on stdout)");
  add("help,h", "show this help");
  return d;
}

po::options_description DeployOptionsDescription() {
  po::options_description d("Deploy options");
  auto add = d.add_options();
  add("reason", po::value<std::string>(),
      "why, stored in the pause flag (default: the deploy id)");
  add("drain", po::value<std::string>()->default_value("fixed"),
      "fixed: wait --drain-wait after the pause; auto: end the drain as soon "
      "as every registered caller acknowledged a list without the instance "
      "and its agent saw no traffic for --drain-quiet, no traffic from "
      "unknown callers, and at most --drain-wait");
  add("drain-wait", po::value<std::string>()->default_value("20s"),
      "fixed: wait this long after the pause so callers drop the instance "
      "(set it to the callers' registry refresh interval); auto: the cap");
  add("drain-quiet", po::value<std::string>()->default_value("500ms"),
      "auto: the instance must have had no new connection and no received "
      "byte for this long (more than 0)");
  add("drain-min", po::value<std::string>()->default_value("0s"),
      "auto: never end the drain before this (at most --drain-wait)");
  add("exec-timeout", po::value<std::string>()->default_value("10m"),
      "COMMAND is stopped (SIGTERM, SIGKILL 2s later) after this long and "
      "the deploy fails");
  add("check", po::value<std::string>()->default_value("tcp"),
      "health check: tcp | tcp:connect<DURATION | "
      "http[:PATH[|STATUSES][|body=TEXT]] | exec:COMMAND ARGS");
  add("health-attempts", po::value<int>()->default_value(6),
      "check at most this many times; one pass is enough");
  add("health-interval", po::value<std::string>()->default_value("5s"),
      "pause between two checks");
  add("health-timeout", po::value<std::string>()->default_value("2s"),
      "time limit of one check");
  add("register-timeout", po::value<std::string>()->default_value("30s"),
      "after the flag is deleted, wait this long for the agent to register "
      "the instance (a timeout fails the deploy)");
  add("on-failure", po::value<std::string>(),
      "command line run (no shell) when COMMAND or every check failed, "
      "before the flag is deleted, e.g. a rollback");
  add("deploy-id", po::value<std::string>(),
      "journal id (default: generated, <UTC time>-<random>)");
  add("force", po::bool_switch(),
      "deploy instances that no agent declares and that are not registered");
  add("dry-run", po::bool_switch(),
      "print the plan (batches, each instance's registration, health and "
      "pause, the lock holder, --min-healthy) and exit 0 if the run could "
      "start, 1 if not; writes nothing to ZooKeeper");
  return d;
}

po::options_description SwitchOptionsDescription() {
  po::options_description d(
      "Port switching (--switch; the instance's agent must forward it, see "
      "forward_backend in docs/agent.md)");
  auto add = d.add_options();
  add("switch", po::bool_switch(),
      "keep the public port serving: forward it to a backup, run COMMAND "
      "(it starts the new version on $ZKROLL_NEW_PORT), check and verify the "
      "new port, then make it the backend; roll back to the old port on any "
      "failure");
  add("backup", po::value<std::string>(),
      "IP:PORT of a registered instance of the service that takes new "
      "connections while COMMAND runs (default: the first registered one "
      "not being deployed)");
  add("verify-window", po::value<std::string>()->default_value("10s"),
      "how long the new port must handle traffic before it is committed");
  add("verify-max-failures", po::value<int>()->default_value(0),
      "failed connections (and 5xx answers with forward_protocol = http) to "
      "the new port tolerated during the window");
  add("switch-timeout", po::value<std::string>()->default_value("10s"),
      "wait this long for the agent to apply each backend change");
  add("stop-old", po::value<std::string>(),
      "command line run (no shell) once the old port's connections have "
      "drained (at most --drain-wait) after a successful switch; it sees "
      "$ZKROLL_OLD_PORT");
  return d;
}

void Require(const po::variables_map& vm, const char* name) {
  if (!vm.count(name)) {
    throw UsageError{std::string("--") + name + " is required"};
  }
}

std::string Get(const po::variables_map& vm, const char* name) {
  return vm[name].as<std::string>();
}

// Parses a duration option; the message names the option.
Millis DurationOption(const po::variables_map& vm, const char* name,
                      bool allow_zero) {
  auto d = ParseDuration(Get(vm, name));
  if (!d.ok()) {
    throw UsageError{std::string("--") + name + ": " + d.status().message()};
  }
  if (!allow_zero && d->count() == 0) {
    throw UsageError{std::string("--") + name + " must be more than 0"};
  }
  return *d;
}

int IntOption(const po::variables_map& vm, const char* name, int min, int max) {
  int v = vm[name].as<int>();
  if (v < min || v > max) {
    throw UsageError{std::string("--") + name + " must be between " +
                     std::to_string(min) + " and " + std::to_string(max) +
                     ", not " + std::to_string(v)};
  }
  return v;
}

ServiceName ServiceOption(const po::variables_map& vm) {
  Require(vm, "service");
  auto s = ServiceName::Parse(Get(vm, "service"));
  if (!s.ok()) throw UsageError{"--service: " + s.status().message()};
  return *s;
}

InstanceAddress InstanceOption(const po::variables_map& vm) {
  Require(vm, "instance");
  auto a = InstanceAddress::Parse(Get(vm, "instance"));
  if (!a.ok()) {
    throw UsageError{"--instance: " + a.status().message()};
  }
  return *a;
}

std::string ReasonText(const std::string& text, const char* option) {
  if (text.empty()) throw UsageError{std::string(option) + " is empty"};
  if (text.size() > 512) {
    throw UsageError{std::string(option) + " is longer than 512 bytes"};
  }
  if (!IsValidUtf8(text)) {
    throw UsageError{std::string(option) + " is not valid UTF-8"};
  }
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      throw UsageError{std::string(option) + " contains a control character"};
    }
  }
  return text;
}

GlobalConfig ParseGlobals(const po::variables_map& vm) {
  GlobalConfig g;
  std::string zk;
  if (vm.count("zk")) {
    zk = Get(vm, "zk");
  } else if (const char* env = std::getenv("ZKROLL_ZK"); env && *env) {
    zk = env;
  }
  if (zk.empty()) {
    throw UsageError{
        "--zk is required (or set ZKROLL_ZK), e.g. --zk "
        "zk1:2181,zk2:2181/zkroll"};
  }
  Status valid = ValidateConnectString(zk);
  if (!valid.ok()) throw UsageError{"--zk: " + valid.message()};
  g.connect.connect_string = zk;
  g.connect.connect_timeout = DurationOption(vm, "connect-timeout", false);
  g.connect.session_timeout = DurationOption(vm, "session-timeout", false);
  if (vm.count("auth-file")) {
    auto cred = ReadCredentialFile(Get(vm, "auth-file"));
    if (!cred.ok()) throw UsageError{"--auth-file: " + cred.status().message()};
    g.connect.credential = *cred;
  }
  const std::string out = Get(vm, "output");
  if (out == "json") {
    g.format = OutputFormat::kJson;
  } else if (out != "text") {
    throw UsageError{"--output must be text or json, not " +
                     QuoteForMessage(out)};
  }
  return g;
}

// A one-line command option (--on-failure, --stop-old) as an argv whose
// program can be run.
std::vector<std::string> CommandOption(const po::variables_map& vm,
                                       const char* name) {
  const std::string flag = std::string("--") + name;
  auto argv = SplitCommandLine(Get(vm, name));
  if (!argv.ok()) throw UsageError{flag + ": " + argv.status().message()};
  Status ok = CheckExecutable((*argv)[0]);
  if (!ok.ok()) throw UsageError{flag + ": " + ok.message()};
  return *argv;
}

// --switch and its options; the others are refused without it.
void ParseSwitchOptions(const po::variables_map& vm, DeployOptions* o) {
  auto& sw = o->switching;
  sw.enabled = vm.count("switch") && vm["switch"].as<bool>();
  if (!sw.enabled) {
    for (const char* name : {"backup", "stop-old"}) {
      if (vm.count(name)) {
        throw UsageError{std::string("--") + name + " needs --switch"};
      }
    }
    for (const char* name : {"verify-window", "verify-max-failures",
                             "switch-timeout"}) {
      if (vm.count(name) && !vm[name].defaulted()) {
        throw UsageError{std::string("--") + name + " needs --switch"};
      }
    }
    return;
  }
  if (vm.count("backup")) {
    auto b = InstanceAddress::Parse(Get(vm, "backup"));
    if (!b.ok()) throw UsageError{"--backup: " + b.status().message()};
    sw.backup = *b;
  }
  sw.verify_window = DurationOption(vm, "verify-window", true);
  sw.verify_max_failures = static_cast<uint64_t>(
      IntOption(vm, "verify-max-failures", 0, 1000000000));
  sw.apply_timeout = DurationOption(vm, "switch-timeout", false);
  if (vm.count("stop-old")) sw.stop_old = CommandOption(vm, "stop-old");
}

// --drain and its options. --drain-quiet and --drain-min only mean
// something with --drain auto and are refused without it, so a typo'd mode
// never silently becomes a fixed wait.
void ParseDrainOptions(const po::variables_map& vm, DeployOptions* o) {
  const std::string mode = Get(vm, "drain");
  if (mode == "fixed") {
    o->drain_mode = DrainMode::kFixed;
  } else if (mode == "auto") {
    o->drain_mode = DrainMode::kAuto;
  } else {
    throw UsageError{"--drain must be fixed or auto, not " +
                     QuoteForMessage(mode)};
  }
  o->drain_wait = DurationOption(vm, "drain-wait", true);
  if (o->drain_mode == DrainMode::kFixed) {
    for (const char* name : {"drain-quiet", "drain-min"}) {
      if (!vm[name].defaulted()) {
        throw UsageError{std::string("--") + name + " " +
                         QuoteForMessage(Get(vm, name)) +
                         " needs --drain auto"};
      }
    }
    return;
  }
  if (vm.count("switch") && vm["switch"].as<bool>()) {
    throw UsageError{
        "--drain auto does not apply to --switch (the instance is never "
        "paused; its old backend drains by its connections)"};
  }
  o->drain_quiet = DurationOption(vm, "drain-quiet", true);
  if (o->drain_quiet.count() == 0) {
    throw UsageError{"--drain-quiet " + QuoteForMessage(Get(vm, "drain-quiet")) +
                     " must be more than 0: a quiet period of nothing proves "
                     "nothing"};
  }
  o->drain_min = DurationOption(vm, "drain-min", true);
  if (o->drain_min > o->drain_wait) {
    throw UsageError{"--drain-min " + QuoteForMessage(Get(vm, "drain-min")) +
                     " is above the cap --drain-wait " +
                     FormatDuration(o->drain_wait)};
  }
}

// Deploy options shared by deploy and rollout.
DeployOptions ParseDeployOptions(const po::variables_map& vm,
                                 const std::vector<std::string>& command,
                                 const GlobalConfig& g) {
  DeployOptions o;
  if (command.empty()) {
    throw UsageError{
        "missing `-- COMMAND [ARGS...]`: give the upgrade "
        "command after `--`, e.g. `-- /usr/local/bin/upgrade "
        "v2` (use `-- /bin/sh -c '...'` for shell syntax)"};
  }
  Status exe = CheckExecutable(command[0]);
  if (!exe.ok()) throw UsageError{"COMMAND: " + exe.message()};
  o.command = command;
  ParseDrainOptions(vm, &o);
  o.exec_timeout = DurationOption(vm, "exec-timeout", false);
  auto check = health::ParseCheckSpec(Get(vm, "check"));
  if (!check.ok()) throw UsageError{"--check: " + check.status().message()};
  o.check = *check;
  o.health_attempts = IntOption(vm, "health-attempts", 1, 1000);
  o.health_interval = DurationOption(vm, "health-interval", true);
  o.health_timeout = DurationOption(vm, "health-timeout", false);
  o.register_timeout = DurationOption(vm, "register-timeout", true);
  if (vm.count("on-failure")) o.on_failure = CommandOption(vm, "on-failure");
  if (vm.count("reason")) o.reason = ReasonText(Get(vm, "reason"), "--reason");
  o.zk_retry_window = g.connect.connect_timeout;
  ParseSwitchOptions(vm, &o);
  return o;
}

DeployId DeployIdOption(const po::variables_map& vm) {
  if (!vm.count("deploy-id")) return DeployId::Generate();
  auto id = DeployId::Parse(Get(vm, "deploy-id"));
  if (!id.ok()) throw UsageError{"--deploy-id: " + id.status().message()};
  return *id;
}

void PrintError(const std::string& message) {
  std::fprintf(stderr, "zkroll: error: %s\n", message.c_str());
  std::fflush(stderr);
}

// Maps a Status from a ZooKeeper-facing step to an exit code.
int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
      return kExitUsage;
    case StatusCode::kFailedPrecondition:
      return kExitFailed;
    default:
      return kExitUnavailable;
  }
}

// What to do about a ZooKeeper error, for messages.
std::string Hint(const Status& s) {
  switch (s.code()) {
    case StatusCode::kPermissionDenied:
      return "; ZooKeeper refused access: pass --auth-file with a credential "
             "that may write /pause, /locks and /deploys and delete under "
             "/services/<service>";
    case StatusCode::kConnectionLoss:
    case StatusCode::kOperationTimeout:
    case StatusCode::kSessionExpired:
      return "; the connection to ZooKeeper is unstable: check the servers "
             "and the network, then run the command again";
    default:
      return "; check ZooKeeper's health and run the command again";
  }
}

// Our own refusals (InvalidArgument, NotFound, FailedPrecondition) already
// say what to do; ZooKeeper errors get a hint.
std::string Explain(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kFailedPrecondition:
      return s.message();
    default:
      return s.ToString() + Hint(s);
  }
}

int Finish(Reporter* reporter, int code, const std::string& message) {
  if (code != kExitOk && !reporter->json()) {
    PrintError(message);
  } else {
    reporter->Result(code == kExitOk ? "ok" : "error", code, message);
  }
  return code;
}

int SignalExitCode(const AbortSignal& abort) {
  if (abort.signo() == SIGINT) return kExitInterrupted;
  if (abort.signo() == SIGTERM) return kExitTerminated;
  return kExitSessionLost;
}

// Everything a ZooKeeper-using subcommand needs, opened in order.
struct Session {
  AbortSignal abort;
  Connection connection{&abort};
  Reporter reporter;
  explicit Session(OutputFormat format) : reporter(format, stdout, stderr) {}
};

// Connects; on failure reports and returns the exit code.
std::optional<int> Open(Session& s, const GlobalConfig& g) {
  Status st = s.connection.Open(g.connect);
  if (st.ok()) return std::nullopt;
  if (st.code() == StatusCode::kAborted) {
    return Finish(&s.reporter, SignalExitCode(s.abort),
                  st.message() + "; nothing was touched");
  }
  return Finish(&s.reporter, kExitUnavailable,
                "cannot reach ZooKeeper: " + st.message() + " (--zk " +
                    g.connect.connect_string + ", --connect-timeout " +
                    FormatDuration(g.connect.connect_timeout) + ")");
}

proto::LockHolder MakeHolder(const DeployId& id, const char* purpose) {
  proto::LockHolder h;
  h.set_by(CurrentUserAtHost());
  h.set_pid(::getpid());
  h.set_since(NowRfc3339());
  h.set_deploy_id(id.str());
  h.set_purpose(purpose);
  return h;
}

void FillParameters(const po::variables_map& vm, proto::DeployRecord* rec) {
  for (const auto& [name, value] : vm) {
    if (name == "help" || name == "auth-file") continue;
    std::string text;
    const auto& any = value.value();
    if (any.type() == typeid(std::string)) {
      text = boost::any_cast<std::string>(any);
    } else if (any.type() == typeid(int)) {
      text = std::to_string(boost::any_cast<int>(any));
    } else if (any.type() == typeid(bool)) {
      text = boost::any_cast<bool>(any) ? "true" : "false";
    } else {
      continue;
    }
    (*rec->mutable_parameters())[name] = text;
  }
}

// Common preparation of deploy and rollout once connected: read the
// inventory, refuse unknown instances, remove expired flags, take the lock
// and start the journal.
struct Prepared {
  std::unique_ptr<ServiceLock> lock;
  std::unique_ptr<Journal> journal;
};

std::optional<int> Prepare(Session& s, const ServiceName& service,
                           const DeployId& id, const char* kind,
                           std::vector<InstanceAddress>* targets,
                           bool from_agents, bool force,
                           const po::variables_map& vm,
                           const std::vector<std::string>& command,
                           Prepared* out) {
  ZkSession* zk = s.connection.session();
  auto inv = LoadInventory(zk, service);
  if (!inv.ok()) {
    return Finish(&s.reporter, kExitUnavailable,
                  "cannot read the instances of " + service.str() + ": " +
                      inv.status().ToString() + Hint(inv.status()));
  }
  for (const auto& w : inv->warnings) LOG(WARNING) << w;
  Status selected = SelectTargets(*inv, service, from_agents, force, targets);
  if (!selected.ok()) {
    return Finish(&s.reporter, kExitUsage, selected.message());
  }
  for (const auto& line : RemoveExpiredFlags(zk, service)) {
    s.reporter.Notice(line);
  }
  auto lock = ServiceLock::Acquire(zk, service, MakeHolder(id, kind),
                                   s.connection.AclFor(paths::kLocksRoot));
  if (!lock.ok()) {
    return Finish(&s.reporter, kExitUnavailable,
                  lock.status().code() == StatusCode::kFailedPrecondition
                      ? lock.status().message()
                      : "cannot take the lock of " + service.str() + ": " +
                            lock.status().ToString() + Hint(lock.status()));
  }
  proto::DeployRecord rec;
  rec.set_deploy_id(id.str());
  rec.set_service(service.str());
  rec.set_kind(kind);
  rec.set_by(CurrentUserAtHost());
  rec.set_pid(::getpid());
  for (const auto& c : command) rec.add_command(c);
  FillParameters(vm, &rec);
  for (const auto& a : *targets) {
    auto* inst = rec.add_instances();
    inst->set_instance(a.NodeName());
    inst->set_outcome("pending");
  }
  auto journal = Journal::Start(zk, s.connection.AclFor(paths::kDeploysRoot),
                                service, rec, s.connection.connect_timeout());
  if (!journal.ok()) {
    return Finish(&s.reporter, kExitUnavailable,
                  "cannot start the journal: " + journal.status().ToString() +
                      Hint(journal.status()));
  }
  out->lock = std::move(lock).value();
  out->journal = std::move(journal).value();
  s.reporter.Notice(std::string(kind) + " " + id.str() + " of " +
                    service.str() + ": " + std::to_string(targets->size()) +
                    " instance(s); lock " + out->lock->path() + ", journal " +
                    out->journal->path());
  return std::nullopt;
}

// What every deploy of this process shares: its session, executor, stop
// signal, reporter, journal and the ACL for the flags it creates.
DeployEnvironment MakeEnvironment(Session& s, const ServiceName& service,
                                  const DeployId& id, const Prepared& prep) {
  DeployEnvironment env(service, id);
  env.session = s.connection.session();
  env.executor = s.connection.executor();
  env.abort = &s.abort;
  env.reporter = &s.reporter;
  env.journal = prep.journal.get();
  env.lock = prep.lock.get();
  env.acl = s.connection.AclFor(paths::kPauseRoot);
  env.switch_acl = s.connection.AclFor(paths::kSwitchRoot);
  env.drain_acl = s.connection.AclFor(paths::kDrainRoot);
  return env;
}

// --dry-run: prints the plan of `request` and whether the run could start.
// Writes nothing to ZooKeeper. Exit 0 could start, 1 could not (the plan
// says why), 2 unknown service or instance, 3 ZooKeeper unreachable.
int RunDryRun(const GlobalConfig& g, const ServiceName& service,
              const PlanRequest& request) {
  Session s(g.format);
  if (auto code = Open(s, g)) return *code;
  auto plan = MakePlan(s.connection.session(), service, request);
  if (!plan.ok()) {
    const Status& st = plan.status();
    return Finish(&s.reporter, ExitCodeFor(st),
                  "dry-run of " + request.kind + ": " + Explain(st));
  }
  PrintPlan(*plan, &s.reporter);
  if (plan->can_start()) {
    s.reporter.Result("ready", kExitOk,
                      "dry-run: the " + request.kind + " of " + service.str() +
                          " could start now; nothing was written to "
                          "ZooKeeper");
    return kExitOk;
  }
  std::string why;
  for (const auto& b : plan->blockers()) why += "\n  " + b;
  s.reporter.Result("blocked", kExitFailed,
                    "dry-run: the " + request.kind + " of " + service.str() +
                        " could not start; nothing was written to "
                        "ZooKeeper:" +
                        why);
  return kExitFailed;
}

int RunDeploy(const po::variables_map& vm,
              const std::vector<std::string>& command) {
  GlobalConfig g = ParseGlobals(vm);
  ServiceName service = ServiceOption(vm);
  InstanceAddress address = InstanceOption(vm);
  DeployOptions opt = ParseDeployOptions(vm, command, g);
  DeployId id = DeployIdOption(vm);
  if (opt.reason.empty()) opt.reason = id.str();
  const bool force = vm["force"].as<bool>();
  if (vm["dry-run"].as<bool>()) {
    PlanRequest request;
    request.kind = "deploy";
    request.targets = {address};
    request.force = force;
    return RunDryRun(g, service, request);
  }

  Session s(g.format);
  if (auto code = Open(s, g)) return *code;
  std::vector<InstanceAddress> targets = {address};
  Prepared prep;
  if (auto code = Prepare(s, service, id, "deploy", &targets, false, force, vm,
                          command, &prep)) {
    return *code;
  }
  DeployEnvironment env = MakeEnvironment(s, service, id, prep);
  DeployResult r = DeployInstance(env, opt, address);

  const std::string label = InstanceId{service, address}.ToString();
  int code = kExitOk;
  switch (r.outcome) {
    case DeployOutcome::kSucceeded:
      code = kExitOk;
      break;
    case DeployOutcome::kFailed:
      code = kExitFailed;
      break;
    case DeployOutcome::kAborted:
      code = SignalExitCode(s.abort);
      break;
    case DeployOutcome::kSessionLost:
      code = kExitSessionLost;
      break;
  }
  Status js = prep.journal->Finish(DeployOutcomeName(r.outcome), r.detail);
  if (!js.ok()) LOG(WARNING) << "final journal write failed: " << js.ToString();
  Status ls = prep.lock->Release();
  if (!ls.ok()) LOG(WARNING) << ls.ToString();

  std::string advice;
  switch (r.outcome) {
    case DeployOutcome::kSucceeded:
      break;
    case DeployOutcome::kFailed:
      if (r.rolled_back) {
        advice = ". The old port serves again; fix the cause and deploy "
                 "again";
      } else if (r.touched && !opt.switching.enabled) {
        advice = ". The pause flag is deleted: the agent registers the "
                 "instance again once its own checks pass. Fix the cause "
                 "and deploy again";
      } else {
        advice = ". Fix the cause and deploy again";
      }
      break;
    case DeployOutcome::kAborted:
      advice = ". Run the deploy again when ready";
      break;
    case DeployOutcome::kSessionLost:
      advice =
          ". Check this host's connection to ZooKeeper (or raise "
          "--session-timeout), check the instance with `zkroll status "
          "--service " +
          service.str() + "`, and deploy again";
      break;
  }
  std::string summary = "deploy " + id.str() + " of " + label + " " +
                        DeployOutcomeName(r.outcome) +
                        (r.detail.empty() ? "" : ": " + r.detail) + advice +
                        " [" + DescribeTimings(r.steps) + "]";
  proto::ResultEvent result;
  result.set_deploy_id(id.str());
  result.set_instance(address.ToString());
  result.set_journal(prep.journal->path());
  s.reporter.Result(DeployOutcomeName(r.outcome), code, summary, result);
  return code;
}

std::vector<InstanceAddress> ParseInstanceList(const std::string& text) {
  std::vector<InstanceAddress> out;
  std::set<InstanceAddress> seen;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(
        start, comma == std::string::npos ? std::string::npos : comma - start);
    auto a = InstanceAddress::Parse(item);
    if (!a.ok()) {
      throw UsageError{"--instances: " + a.status().message() +
                       "; separate instances with commas"};
    }
    if (!seen.insert(*a).second) {
      throw UsageError{"--instances names " + a->ToString() + " twice"};
    }
    out.push_back(*a);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

int RunRolloutCommand(const po::variables_map& vm,
                      const std::vector<std::string>& command) {
  GlobalConfig g = ParseGlobals(vm);
  ServiceName service = ServiceOption(vm);
  RolloutOptions opt;
  opt.deploy = ParseDeployOptions(vm, command, g);
  opt.batch = IntOption(vm, "batch", 1, 1000);
  Require(vm, "min-healthy");
  opt.min_healthy = IntOption(vm, "min-healthy", 0, 100000);
  opt.min_healthy_timeout = DurationOption(vm, "min-healthy-timeout", true);
  opt.max_failures = IntOption(vm, "max-failures", 0, 100000);
  std::vector<InstanceAddress> targets;
  const bool from_agents = !vm.count("instances");
  if (!from_agents) targets = ParseInstanceList(Get(vm, "instances"));
  DeployId id = DeployIdOption(vm);
  if (opt.deploy.reason.empty()) opt.deploy.reason = id.str();
  const bool force = vm["force"].as<bool>();
  if (vm["dry-run"].as<bool>()) {
    PlanRequest request;
    request.kind = "rollout";
    request.targets = targets;
    request.from_agents = from_agents;
    request.force = force;
    request.batch = opt.batch;
    request.min_healthy = opt.min_healthy;
    return RunDryRun(g, service, request);
  }

  Session s(g.format);
  if (auto code = Open(s, g)) return *code;
  Prepared prep;
  if (auto code = Prepare(s, service, id, "rollout", &targets, from_agents,
                          force, vm, command, &prep)) {
    return *code;
  }
  DeployEnvironment env = MakeEnvironment(s, service, id, prep);
  RolloutResult r = RunRollout(env, opt, targets, prep.lock.get());

  int code = kExitOk;
  if (r.session_lost) {
    code = kExitSessionLost;
  } else if (s.abort.requested()) {
    code = SignalExitCode(s.abort);
  } else if (r.outcome != "succeeded") {
    code = kExitFailed;
  }
  Status js = prep.journal->Finish(r.outcome, r.detail);
  if (!js.ok()) LOG(WARNING) << "final journal write failed: " << js.ToString();
  Status ls = prep.lock->Release();
  if (!ls.ok()) LOG(WARNING) << ls.ToString();
  std::string summary = "rollout " + id.str() + " of " + service.str() + " " +
                        r.outcome + ": " + r.detail;
  if (r.outcome != "succeeded" && !r.min_healthy_stop) {
    summary +=
        ". Instances not started were not touched; fix the cause and "
        "run the rollout again (name the remaining instances with "
        "--instances to skip the upgraded ones)";
  }
  for (const auto& f : r.failures) summary += "\n  " + f;
  proto::ResultEvent result;
  result.set_deploy_id(id.str());
  result.set_journal(prep.journal->path());
  result.set_succeeded(static_cast<uint32_t>(r.succeeded));
  result.set_failed(static_cast<uint32_t>(r.failed));
  result.set_aborted(static_cast<uint32_t>(r.aborted));
  result.set_not_started(static_cast<uint32_t>(r.not_started));
  s.reporter.Result(r.outcome, code, summary, result);
  return code;
}

int RunStatus(const po::variables_map& vm) {
  GlobalConfig g = ParseGlobals(vm);
  ServiceName service = ServiceOption(vm);
  Session s(g.format);
  if (auto code = Open(s, g)) return *code;
  Status st = PrintServiceStatus(s.connection.session(), service, &s.reporter);
  if (!st.ok()) {
    return Finish(&s.reporter, ExitCodeFor(st), st.ToString() + Hint(st));
  }
  return kExitOk;
}

int RunHistory(const po::variables_map& vm) {
  GlobalConfig g = ParseGlobals(vm);
  ServiceName service = ServiceOption(vm);
  const int limit = IntOption(vm, "limit", 1, 100000);
  std::optional<DeployId> id;
  if (vm.count("deploy-id")) id = DeployIdOption(vm);
  Session s(g.format);
  if (auto code = Open(s, g)) return *code;
  Status st =
      id ? PrintDeploy(s.connection.session(), service, *id, &s.reporter)
         : PrintHistory(s.connection.session(), service, limit, &s.reporter);
  if (!st.ok()) return Finish(&s.reporter, ExitCodeFor(st), Explain(st));
  return kExitOk;
}

int RunPause(const po::variables_map& vm) {
  GlobalConfig g = ParseGlobals(vm);
  ServiceName service = ServiceOption(vm);
  InstanceAddress address = InstanceOption(vm);
  Require(vm, "reason");
  Require(vm, "ttl");
  ManualPause p;
  p.reason = ReasonText(Get(vm, "reason"), "--reason");
  p.ttl = DurationOption(vm, "ttl", false);
  p.force = vm["force"].as<bool>();
  Session s(g.format);
  if (auto code = Open(s, g)) return *code;
  Status st = PauseInstance(s.connection.session(),
                            s.connection.AclFor(paths::kPauseRoot), service,
                            address, p, &s.reporter);
  if (!st.ok()) return Finish(&s.reporter, ExitCodeFor(st), Explain(st));
  if (s.reporter.json()) s.reporter.Result("ok", kExitOk, "paused");
  return kExitOk;
}

int RunResume(const po::variables_map& vm) {
  GlobalConfig g = ParseGlobals(vm);
  ServiceName service = ServiceOption(vm);
  InstanceAddress address = InstanceOption(vm);
  const bool force = vm["force"].as<bool>();
  Session s(g.format);
  if (auto code = Open(s, g)) return *code;
  Status st = ResumeInstance(s.connection.session(), service, address, force,
                             &s.reporter);
  if (!st.ok()) return Finish(&s.reporter, ExitCodeFor(st), Explain(st));
  if (s.reporter.json()) s.reporter.Result("ok", kExitOk, "resumed");
  return kExitOk;
}

std::string OptionalString(const po::variables_map& vm, const char* name) {
  return vm.count(name) ? Get(vm, name) : std::string();
}

int RunInit(const po::variables_map& vm) {
  GlobalConfig g = ParseGlobals(vm);
  if (vm.count("admin-auth")) {
    // --admin-auth is init's name for the admin credential; --auth-file
    // works too, as for every subcommand.
    if (vm.count("auth-file")) {
      throw UsageError{"give the admin credential once: --admin-auth or "
                       "--auth-file, not both"};
    }
    auto cred = ReadCredentialFile(Get(vm, "admin-auth"));
    if (!cred.ok()) {
      throw UsageError{"--admin-auth: " + cred.status().message()};
    }
    g.connect.credential = *cred;
  }
  if (!g.connect.credential) {
    throw UsageError{
        "zkroll init needs --admin-auth FILE with the admin's "
        "credential: the admin keeps every right on the tree"};
  }
  InitIdentities ids;
  ids.admin_id = DigestId(*g.connect.credential);
  auto agent = IdentityFromFlag(OptionalString(vm, "agent-auth"),
                                OptionalString(vm, "agent-id"), "agent");
  if (!agent.ok()) throw UsageError{agent.status().message()};
  ids.agent_id = *agent;
  auto coordinator =
      IdentityFromFlag(OptionalString(vm, "coordinator-auth"),
                       OptionalString(vm, "coordinator-id"), "coordinator");
  if (!coordinator.ok()) throw UsageError{coordinator.status().message()};
  ids.coordinator_id = *coordinator;
  if (vm.count("caller-auth") || vm.count("caller-id")) {
    auto caller = IdentityFromFlag(OptionalString(vm, "caller-auth"),
                                   OptionalString(vm, "caller-id"), "caller");
    if (!caller.ok()) throw UsageError{caller.status().message()};
    ids.caller_id = *caller;
  }

  Session s(g.format);
  if (auto code = Open(s, g)) return *code;
  auto changed = InitTree(*s.connection.session(), ids);
  if (!changed.ok()) {
    return Finish(&s.reporter, ExitCodeFor(changed.status()),
                  "zkroll init: " + Explain(changed.status()));
  }
  for (const auto& path : *changed) {
    s.reporter.Notice("created or re-ACLed " + path);
  }
  if (changed->empty()) {
    s.reporter.Notice("the tree already has the right ACLs; nothing changed");
  }
  if (ids.caller_id.empty()) {
    s.reporter.Notice(
        "no caller identity (--caller-auth/--caller-id): only the admin may "
        "write /callers, so callers cannot acknowledge and deploys with "
        "--drain auto run to their cap");
  }
  if (s.reporter.json()) s.reporter.Result("ok", kExitOk, "initialized");
  return kExitOk;
}

struct Subcommand {
  const char* name;
  const char* synopsis;
  bool takes_command;
};

const Subcommand kSubcommands[] = {
    {"deploy",
     "zkroll deploy --service S --instance IP:PORT [options] -- COMMAND "
     "[ARGS...]\n\nUpgrades one instance: pause (flag + deregistration in one "
     "transaction), drain,\nverify the flag is still ours, run COMMAND "
     "(env: ZKROLL_SERVICE, ZKROLL_IP,\nZKROLL_PORT, ZKROLL_INSTANCE, "
     "ZKROLL_DEPLOY_ID, ZKROLL_FENCE = the flag's\ncreation zxid; stopped if "
     "the ZooKeeper session is lost), health-check,\ndelete the flag, wait "
     "for the agent to register the instance again.",
     true},
    {"rollout",
     "zkroll rollout --service S --min-healthy M [--batch K] "
     "[--instances A,B,...] [options] -- COMMAND [ARGS...]\n\nDeploys every "
     "instance that an agent declares for S (or --instances), K at a\ntime, "
     "never starting a batch that would leave fewer than M instances\n"
     "registered; stops after more than --max-failures failed instances.",
     true},
    {"status",
     "zkroll status --service S\n\nShows each instance of S: registered, "
     "paused (by whom, why, until), the\nagents that declare it and their "
     "view of its health, its last deploy.\nChanges nothing: an expired "
     "manual pause is shown as expired (the next\ndeploy or resume removes "
     "it).",
     false},
    {"history",
     "zkroll history --service S [--limit N] [--deploy-id ID]\n\nLists the "
     "deploy journals of S (newest first), or one journal with its steps.",
     false},
    {"pause",
     "zkroll pause --service S --instance IP:PORT --reason TEXT --ttl "
     "DURATION\n\nTakes an instance out of traffic for maintenance. The flag "
     "outlives this process\nbut expires after --ttl: agents ignore an expired "
     "flag and zkroll removes it.",
     false},
    {"resume",
     "zkroll resume --service S --instance IP:PORT\n\nDeletes a manual pause "
     "flag; the agent registers the instance after its next\npassing check.",
     false},
    {"init",
     "zkroll init --admin-auth ADMIN (--agent-auth FILE | --agent-id ID) "
     "(--coordinator-auth FILE | --coordinator-id ID) [--caller-auth FILE | "
     "--caller-id ID]\n\nCreates /services, /agents, /pause, /deploys, "
     "/locks, /switch,\n/forwarders, /drain, /traffic and /callers with their "
     "ACLs (docs/design.md,\nsecurity model); re-ACLs them if they exist. "
     "Idempotent.",
     false},
};

po::options_description OptionsFor(const std::string& name) {
  po::options_description all;
  po::options_description own("Options");
  auto add = own.add_options();
  auto is = [&](std::initializer_list<const char*> names) {
    for (const char* n : names) {
      if (name == n) return true;
    }
    return false;
  };
  if (is({"deploy", "rollout", "pause", "resume", "status", "history"})) {
    add("service", po::value<std::string>(), "service name");
  }
  if (is({"deploy", "pause", "resume"})) {
    add("instance", po::value<std::string>(),
        "the instance, IP:PORT ([IPv6]:PORT)");
  }
  if (name == "rollout") {
    add("instances", po::value<std::string>(),
        "IP:PORT,IP:PORT,... (default: every instance an agent declares, in "
        "address order)");
    add("batch", po::value<int>()->default_value(1),
        "instances deployed at the same time");
    add("min-healthy", po::value<int>(),
        "never start a batch that would leave fewer than this many "
        "instances registered (required)");
    add("min-healthy-timeout", po::value<std::string>()->default_value("5m"),
        "how long to wait for --min-healthy before stopping");
    add("max-failures", po::value<int>()->default_value(0),
        "failed instances tolerated before the rollout stops");
  }
  if (name == "pause") {
    add("reason", po::value<std::string>(), "why (required)");
    add("ttl", po::value<std::string>(),
        "the pause expires after this long (required), e.g. 2h");
    add("force", po::bool_switch(), "pause an instance that no agent declares");
  }
  if (name == "resume") {
    add("force", po::bool_switch(), "also delete the flag of a running deploy");
  }
  if (name == "history") {
    add("limit", po::value<int>()->default_value(20), "show this many");
    add("deploy-id", po::value<std::string>(), "show this deploy's steps");
  }
  if (name == "init") {
    add("admin-auth", po::value<std::string>(),
        "credential file (user:password, mode 0600) of the admin identity, "
        "which keeps every right on the tree");
    add("agent-auth", po::value<std::string>(),
        "credential file of the agents' identity");
    add("agent-id", po::value<std::string>(),
        "or their digest id USER:BASE64SHA1");
    add("coordinator-auth", po::value<std::string>(),
        "credential file of the coordinators' identity");
    add("coordinator-id", po::value<std::string>(),
        "or their digest id USER:BASE64SHA1");
    add("caller-auth", po::value<std::string>(),
        "credential file of the callers' identity: it may write only under "
        "/callers (acknowledgements for --drain auto)");
    add("caller-id", po::value<std::string>(),
        "or their digest id USER:BASE64SHA1");
  }
  all.add(own);
  if (is({"deploy", "rollout"})) {
    all.add(DeployOptionsDescription());
    all.add(SwitchOptionsDescription());
  }
  all.add(GlobalOptions());
  return all;
}

// Moves global options given before the subcommand behind it.
std::vector<std::string> Reorder(const std::vector<std::string>& args) {
  std::vector<std::string> leading;
  size_t i = 0;
  while (i < args.size() && args[i].size() > 1 && args[i][0] == '-') {
    const std::string& a = args[i];
    leading.push_back(a);
    if (kGlobalWithValue.count(a) && i + 1 < args.size()) {
      leading.push_back(args[i + 1]);
      i += 2;
    } else {
      ++i;
    }
  }
  if (i >= args.size()) return args;  // no subcommand: leave for the caller
  std::vector<std::string> out = {args[i]};
  out.insert(out.end(), leading.begin(), leading.end());
  out.insert(out.end(), args.begin() + static_cast<long>(i) + 1, args.end());
  return out;
}

int Dispatch(std::vector<std::string> args,
             const std::vector<std::string>& command, bool has_separator) {
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  args = Reorder(args);
  const std::string& first = args[0];
  if (first == "--version" || first == "version") {
    std::printf("zkroll %s\n", ZKROLL_VERSION_TEXT);
    return kExitOk;
  }
  if (first == "--help" || first == "-h" || first == "help") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  const Subcommand* sub = nullptr;
  for (const auto& s : kSubcommands) {
    if (first == s.name) sub = &s;
  }
  if (sub == nullptr) {
    throw UsageError{"unknown subcommand " + QuoteForMessage(first) +
                     "; expected one of deploy, rollout, status, history, "
                     "pause, resume, init (see `zkroll --help`)"};
  }
  po::options_description desc = OptionsFor(sub->name);
  po::variables_map vm;
  std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    po::store(po::command_line_parser(rest).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError{e.what()};
  }
  if (vm.count("help")) {
    std::ostringstream help;
    help << "usage: " << sub->synopsis << "\n\n"
         << desc << "\n"
         << "Exit codes: 0 done, 1 failed, 2 usage, 3 ZooKeeper unreachable "
            "or lock held,\n4 session lost, 130/143 aborted by SIGINT/SIGTERM "
            "(details: zkroll --help).\n";
    std::fputs(help.str().c_str(), stdout);
    return kExitOk;
  }
  if (!sub->takes_command && has_separator) {
    throw UsageError{std::string("zkroll ") + sub->name +
                     " takes no `-- COMMAND`"};
  }
  const std::string name = sub->name;
  if (name == "deploy") return RunDeploy(vm, command);
  if (name == "rollout") return RunRolloutCommand(vm, command);
  if (name == "status") return RunStatus(vm);
  if (name == "history") return RunHistory(vm);
  if (name == "pause") return RunPause(vm);
  if (name == "init") return RunInit(vm);
  return RunResume(vm);
}

}  // namespace

int RunCli(int argc, char** argv) {
  google::InitGoogleLogging("zkroll");
  FLAGS_logtostderr = true;
  if (std::getenv("GLOG_minloglevel") == nullptr) FLAGS_minloglevel = 1;
  // A closed stdout (e.g. `zkroll ... | head`) must not kill a coordinator
  // in the middle of a deploy; writes just fail.
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<std::string> args;
  std::vector<std::string> command;
  bool has_separator = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (!has_separator && a == "--") {
      has_separator = true;
      continue;
    }
    (has_separator ? command : args).push_back(a);
  }
  std::string sub = args.empty() ? "" : Reorder(args)[0];
  bool known = false;
  for (const auto& s : kSubcommands) known = known || sub == s.name;
  try {
    return Dispatch(args, command, has_separator);
  } catch (const UsageError& e) {
    std::string hint = !known ? "zkroll --help" : "zkroll " + sub + " --help";
    PrintError(e.message + " (see `" + hint + "`)");
    return kExitUsage;
  }
}

}  // namespace zkroll::coordinator
