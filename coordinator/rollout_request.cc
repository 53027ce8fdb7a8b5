#include "coordinator/rollout_request.h"

#include <glog/logging.h>
#include <unistd.h>

#include <set>

#include "common/clock.h"
#include "common/health/check.h"
#include "common/paths.h"
#include "coordinator/command.h"
#include "coordinator/error_text.h"
#include "coordinator/exit_codes.h"
#include "coordinator/inventory.h"
#include "coordinator/options.h"

namespace zkroll::coordinator {
namespace {

namespace po = boost::program_options;

// Options recorded in parameters that a rebuild must not take from there:
// the id comes from the record, and a journal exists only for a real run.
const std::set<std::string> kNotRebuilt = {"deploy-id", "dry-run", "help"};

// How to continue a stopped rollout: not part of any request, never
// recorded.
const std::set<std::string> kResumeOptions = {"resume", "rerun-command",
                                              "command-ended"};

po::options_description ResumeOptionsDescription() {
  po::options_description d(
      "Resume (`zkroll rollout --resume ID --service S`; docs/design.md, "
      "\"Resume\")");
  auto add = d.add_options();
  add("resume", po::value<std::string>(),
      "continue deploy ID from its journal, with its recorded options and "
      "COMMAND, on the instances not yet done (no other option and no "
      "COMMAND may be given). An instance that succeeded is never run "
      "again; one whose COMMAND was running when its coordinator was "
      "killed is waited for (at most --exec-timeout) and then checked and "
      "resumed without running COMMAND again. Refused (exit 2, nothing "
      "touched): unknown ID, a deploy that succeeded or is running (lock "
      "held), instances that no longer match its plan");
  add("rerun-command", po::bool_switch(),
      "with --resume: run COMMAND again on the instance whose COMMAND was "
      "running when its coordinator was killed (once it has ended)");
  add("command-ended", po::bool_switch(),
      "with --resume: you made sure that COMMAND, running when its "
      "coordinator was killed on another host (or before its process was "
      "recorded), has ended; zkroll cannot observe it");
  return d;
}

po::options_description TargetOptionsDescription(const std::string& kind) {
  po::options_description d("Options");
  auto add = d.add_options();
  add("service", po::value<std::string>(), "service name");
  if (kind == "deploy") {
    add("instance", po::value<std::string>(),
        "the instance, IP:PORT ([IPv6]:PORT)");
    return d;
  }
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
  add("min-healthy-time", po::value<std::string>()->default_value("0s"),
      "an instance counts as upgraded only after it stayed registered and "
      "healthy (by its agent's checks) this long after it re-registered; a "
      "flap fails it. 0: registered once is enough");
  add("canary", po::value<int>()->default_value(0),
      "deploy the first N instances as a batch of their own first (the "
      "canaries); a failed canary stops the rollout");
  add("canary-soak", po::value<std::string>(),
      "after the canary batch, the canaries must stay registered and "
      "healthy this long (needs --canary)");
  add("canary-check", po::value<std::string>(),
      "command line (no shell) run once after the soak; exit 0 = good. It "
      "sees $ZKROLL_SERVICE, $ZKROLL_DEPLOY_ID, $ZKROLL_CANARIES "
      "(ip:port,...) and is stopped at --exec-timeout (needs --canary)");
  add("canary-promote", po::value<std::string>()->default_value("auto"),
      "auto: continue with the rest once the canaries passed; manual: stop "
      "there with exit 0, outcome awaiting-promotion (continue with `zkroll "
      "promote`, undo with `zkroll revert`)");
  add("auto-revert", po::value<std::string>(),
      "command line (no shell) that reverts one instance: when the rollout "
      "fails, every instance whose COMMAND ran is reverted with the deploy's "
      "steps, newest first, --batch at a time (exit 5 reverted, 6 revert "
      "incomplete); it sees the COMMAND variables and ZKROLL_REVERT=1");
  add("progress-deadline", po::value<std::string>()->default_value("0s"),
      "fail the rollout (and revert with --auto-revert) when no instance "
      "completed for this long; the deploys in flight are stopped like on "
      "SIGTERM. 0: none");
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

// --switch and its options; the others are refused without it.
void ParseSwitchOptions(const OptionValues& vm, DeployOptions* o) {
  auto& sw = o->switching;
  sw.enabled = SwitchOption(vm, "switch");
  if (!sw.enabled) {
    for (const char* name : {"backup", "stop-old"}) {
      if (vm.count(name)) {
        throw OptionError{std::string("--") + name + " needs --switch"};
      }
    }
    for (const char* name : {"verify-window", "verify-max-failures",
                             "switch-timeout"}) {
      if (vm.count(name) && !vm[name].defaulted()) {
        throw OptionError{std::string("--") + name + " needs --switch"};
      }
    }
    return;
  }
  if (vm.count("backup")) {
    auto b = InstanceAddress::Parse(Get(vm, "backup"));
    if (!b.ok()) throw OptionError{"--backup: " + b.status().message()};
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
void ParseDrainOptions(const OptionValues& vm, DeployOptions* o) {
  const std::string mode = Get(vm, "drain");
  if (mode == "fixed") {
    o->drain_mode = DrainMode::kFixed;
  } else if (mode == "auto") {
    o->drain_mode = DrainMode::kAuto;
  } else {
    throw OptionError{"--drain must be fixed or auto, not " +
                      QuoteForMessage(mode)};
  }
  o->drain_wait = DurationOption(vm, "drain-wait", true);
  if (o->drain_mode == DrainMode::kFixed) {
    for (const char* name : {"drain-quiet", "drain-min"}) {
      if (!vm[name].defaulted()) {
        throw OptionError{std::string("--") + name + " " +
                          QuoteForMessage(Get(vm, name)) +
                          " needs --drain auto"};
      }
    }
    return;
  }
  if (SwitchOption(vm, "switch")) {
    throw OptionError{
        "--drain auto does not apply to --switch (the instance is never "
        "paused; its old backend drains by its connections)"};
  }
  o->drain_quiet = DurationOption(vm, "drain-quiet", true);
  if (o->drain_quiet.count() == 0) {
    throw OptionError{"--drain-quiet " +
                      QuoteForMessage(Get(vm, "drain-quiet")) +
                      " must be more than 0: a quiet period of nothing "
                      "proves nothing"};
  }
  o->drain_min = DurationOption(vm, "drain-min", true);
  if (o->drain_min > o->drain_wait) {
    throw OptionError{"--drain-min " + QuoteForMessage(Get(vm, "drain-min")) +
                      " is above the cap --drain-wait " +
                      FormatDuration(o->drain_wait)};
  }
}

// The options of one instance's deploy, shared by deploy and rollout.
DeployOptions ParseDeployOptions(const OptionValues& vm,
                                 const std::vector<std::string>& command,
                                 Millis zk_retry_window) {
  DeployOptions o;
  if (command.empty()) {
    throw OptionError{
        "missing `-- COMMAND [ARGS...]`: give the upgrade "
        "command after `--`, e.g. `-- /usr/local/bin/upgrade "
        "v2` (use `-- /bin/sh -c '...'` for shell syntax)"};
  }
  Status exe = CheckExecutable(command[0]);
  if (!exe.ok()) throw OptionError{"COMMAND: " + exe.message()};
  o.command = command;
  ParseDrainOptions(vm, &o);
  o.exec_timeout = DurationOption(vm, "exec-timeout", false);
  auto check = health::ParseCheckSpec(Get(vm, "check"));
  if (!check.ok()) throw OptionError{"--check: " + check.status().message()};
  o.check = *check;
  o.health_attempts = IntOption(vm, "health-attempts", 1, 1000);
  o.health_interval = DurationOption(vm, "health-interval", true);
  o.health_timeout = DurationOption(vm, "health-timeout", false);
  o.register_timeout = DurationOption(vm, "register-timeout", true);
  if (vm.count("on-failure")) o.on_failure = CommandOption(vm, "on-failure");
  if (vm.count("reason")) o.reason = ReasonText(Get(vm, "reason"), "--reason");
  o.zk_retry_window = zk_retry_window;
  ParseSwitchOptions(vm, &o);
  return o;
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
      throw OptionError{"--instances: " + a.status().message() +
                        "; separate instances with commas"};
    }
    if (!seen.insert(*a).second) {
      throw OptionError{"--instances names " + a->ToString() + " twice"};
    }
    out.push_back(*a);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// The options that make a rollout protect itself (rollout.h). Each
// refusal names the value; the options that only mean something with
// --canary are refused without it.
void ParseSafetyOptions(const OptionValues& vm, RolloutOptions* o) {
  o->min_healthy_time = DurationOption(vm, "min-healthy-time", true);
  o->progress_deadline = DurationOption(vm, "progress-deadline", true);
  o->canary = IntOption(vm, "canary", 0, 100000);
  const std::string promote = Get(vm, "canary-promote");
  if (promote == "manual") {
    o->canary_promote = CanaryPromote::kManual;
  } else if (promote != "auto") {
    throw OptionError{"--canary-promote must be auto or manual, not " +
                      QuoteForMessage(promote)};
  }
  if (o->canary == 0) {
    for (const char* name : {"canary-soak", "canary-check"}) {
      if (vm.count(name)) {
        throw OptionError{std::string("--") + name + " " +
                          QuoteForMessage(Get(vm, name)) +
                          " needs --canary N (the instances to observe)"};
      }
    }
    if (o->canary_promote == CanaryPromote::kManual) {
      throw OptionError{
          "--canary-promote manual needs --canary N (there is nothing to "
          "promote without canaries)"};
    }
  }
  if (vm.count("canary-soak")) {
    o->canary_soak = DurationOption(vm, "canary-soak", true);
  }
  if (vm.count("canary-check")) {
    o->canary_check = CommandOption(vm, "canary-check");
  }
  if (vm.count("auto-revert")) {
    if (o->deploy.switching.enabled) {
      throw OptionError{
          "--auto-revert does not apply to --switch: a failed switch already "
          "sends traffic back to the old port"};
    }
    o->revert_command = CommandOption(vm, "auto-revert");
  }
  if (o->progress_deadline.count() > 0 &&
      o->min_healthy_time > o->progress_deadline) {
    throw OptionError{"--min-healthy-time " +
                      QuoteForMessage(Get(vm, "min-healthy-time")) +
                      " is longer than --progress-deadline " +
                      QuoteForMessage(Get(vm, "progress-deadline")) +
                      ": no instance could ever complete in time"};
  }
}

// The rollout-only options (batches, --min-healthy, --max-failures).
void ParseRolloutOptions(const OptionValues& vm, RolloutOptions* opt) {
  opt->batch = IntOption(vm, "batch", 1, 1000);
  Require(vm, "min-healthy");
  opt->min_healthy = IntOption(vm, "min-healthy", 0, 100000);
  opt->min_healthy_timeout = DurationOption(vm, "min-healthy-timeout", true);
  opt->max_failures = IntOption(vm, "max-failures", 0, 100000);
  ParseSafetyOptions(vm, opt);
}

// The whole request; throws OptionError. The order of the checks is the
// order of the messages a user with several mistakes sees first.
// `id`: the recorded id of a rebuild (--deploy-id is not read then).
RolloutRequest Parse(const std::string& kind, const OptionValues& vm,
                     const std::vector<std::string>& command,
                     Millis zk_retry_window,
                     const std::optional<DeployId>& id = std::nullopt) {
  RolloutRequest r;
  r.kind = kind;
  r.service = ServiceOption(vm);
  if (kind == "deploy") {
    r.targets = {InstanceOption(vm)};
    r.options.deploy = ParseDeployOptions(vm, command, zk_retry_window);
  } else {
    for (const char* name : {"rerun-command", "command-ended"}) {
      if (SwitchOption(vm, name)) {
        throw OptionError{std::string("--") + name + " needs --resume ID"};
      }
    }
    r.options.deploy = ParseDeployOptions(vm, command, zk_retry_window);
    ParseRolloutOptions(vm, &r.options);
    r.from_agents = !vm.count("instances");
    if (!r.from_agents) {
      r.targets = ParseInstanceList(Get(vm, "instances"));
      Status fits = CheckRolloutTargets(r.options, r.targets.size());
      if (!fits.ok()) throw OptionError{fits.message()};
    }
  }
  r.id = id ? *id : DeployIdOption(vm);
  if (r.options.deploy.reason.empty()) r.options.deploy.reason = r.id.str();
  r.force = SwitchOption(vm, "force");
  r.dry_run = SwitchOption(vm, "dry-run");
  return r;
}

std::map<std::string, std::string> Texts(const OptionValues& vm) {
  std::map<std::string, std::string> texts;
  for (const auto& [name, value] : vm) {
    // --auth-file names a secret's file: not for a world-readable journal.
    if (name == "help" || name == "auth-file") continue;
    if (kResumeOptions.count(name)) continue;
    if (auto text = OptionText(value.value())) texts[name] = *text;
  }
  return texts;
}

}  // namespace

bool IsResumeOption(const std::string& name) {
  return kResumeOptions.count(name) > 0;
}

po::options_description RequestOptionsDescription(const std::string& kind) {
  po::options_description all;
  all.add(TargetOptionsDescription(kind));
  all.add(DeployOptionsDescription());
  all.add(SwitchOptionsDescription());
  if (kind == "rollout") all.add(ResumeOptionsDescription());
  return all;
}

Result<RolloutRequest> RolloutRequest::FromOptions(
    const std::string& kind, const OptionValues& options,
    const std::vector<std::string>& command, Millis zk_retry_window) {
  try {
    RolloutRequest r = Parse(kind, options, command, zk_retry_window);
    r.parameters_ = Texts(options);
    return r;
  } catch (const OptionError& e) {
    return InvalidArgument(e.message);
  }
}

Result<RolloutRequest> RolloutRequest::FromParameters(
    const proto::DeployRecord& record, Millis zk_retry_window) {
  const std::string& kind = record.kind();
  if (kind != "deploy" && kind != "rollout") {
    return InvalidArgument("the journal of " + record.deploy_id() +
                           " records kind " + QuoteForMessage(kind) +
                           ", not deploy or rollout");
  }
  const po::options_description desc = RequestOptionsDescription(kind);
  // The recorded texts become a command line again; a text equal to the
  // option's default is left out, so the rules that refuse an option
  // without another one (--drain-quiet without --drain auto) judge it as
  // they did when the user gave it.
  std::vector<std::string> args;
  for (const auto& [name, text] : record.parameters()) {
    if (kNotRebuilt.count(name) || kResumeOptions.count(name)) continue;
    const po::option_description* option =
        desc.find_nothrow(name, /*approx=*/false);
    if (option == nullptr) continue;  // a global option, or none of ours
    boost::any default_value;
    if (option->semantic()->apply_default(default_value) &&
        OptionText(default_value) == text) {
      continue;
    }
    if (option->semantic()->max_tokens() == 0) {  // a switch
      if (text == "true") args.push_back("--" + name);
      continue;
    }
    args.push_back("--" + name);
    args.push_back(text);
  }
  OptionValues vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return InvalidArgument("the parameters recorded in the journal of " +
                           record.deploy_id() + " do not parse: " + e.what());
  }
  auto id = DeployId::Parse(record.deploy_id());
  if (!id.ok()) return id.status();
  const std::vector<std::string> command(record.command().begin(),
                                         record.command().end());
  try {
    RolloutRequest r = Parse(kind, vm, command, zk_retry_window, *id);
    if (r.service.str() != record.service()) {
      return InvalidArgument("the journal of " + record.deploy_id() +
                             " is of service " +
                             QuoteForMessage(record.service()) +
                             " but its parameters name " + r.service.str());
    }
    r.parameters_ = {record.parameters().begin(), record.parameters().end()};
    return r;
  } catch (const OptionError& e) {
    return InvalidArgument("the journal of " + record.deploy_id() +
                           " no longer makes a valid " + kind + ": " +
                           e.message);
  }
}

proto::LockHolder MakeLockHolder(const DeployId& id,
                                 const std::string& purpose) {
  proto::LockHolder h;
  h.set_by(CurrentUserAtHost());
  h.set_pid(::getpid());
  *h.mutable_since() = NowTimestamp();
  h.set_deploy_id(id.str());
  h.set_purpose(purpose);
  return h;
}

std::optional<PrepareFailure> Prepare(Connection* connection,
                                      Reporter* reporter,
                                      RolloutRequest* request,
                                      PreparedRollout* out) {
  ZkSession* zk = connection->session();
  const ServiceName& service = request->service;
  auto inv = LoadInventory(zk, service);
  if (!inv.ok()) {
    return PrepareFailure{kExitUnavailable,
                          "cannot read the instances of " + service.str() +
                              ": " + inv.status().ToString() +
                              Hint(inv.status())};
  }
  for (const auto& w : inv->warnings) LOG(WARNING) << w;
  Status selected = SelectTargets(*inv, service, request->from_agents,
                                  request->force, &request->targets);
  if (!selected.ok()) return PrepareFailure{kExitUsage, selected.message()};
  Status fits = CheckRolloutTargets(request->options, request->targets.size());
  if (!fits.ok()) return PrepareFailure{kExitUsage, fits.message()};
  for (const auto& line : RemoveExpiredFlags(zk, service)) {
    reporter->Notice(line);
  }
  auto lock =
      ServiceLock::Acquire(zk, service, MakeLockHolder(request->id, request->kind),
                           connection->AclFor(paths::kLocksRoot));
  if (!lock.ok()) {
    return PrepareFailure{
        kExitUnavailable,
        lock.status().code() == StatusCode::kFailedPrecondition
            ? lock.status().message()
            : "cannot take the lock of " + service.str() + ": " +
                  lock.status().ToString() + Hint(lock.status())};
  }
  proto::DeployRecord rec;
  rec.set_deploy_id(request->id.str());
  rec.set_service(service.str());
  rec.set_kind(request->kind);
  rec.set_by(CurrentUserAtHost());
  rec.set_pid(::getpid());
  for (const auto& c : request->options.deploy.command) rec.add_command(c);
  for (const auto& [name, text] : request->ToParameters()) {
    (*rec.mutable_parameters())[name] = text;
  }
  for (const auto& a : request->targets) {
    auto* inst = rec.add_instances();
    inst->set_instance(a.NodeName());
    inst->set_outcome(WireString(InstanceOutcome::kPending));
  }
  auto journal =
      Journal::Start(zk, connection->AclFor(paths::kDeploysRoot), service, rec,
                     connection->connect_timeout());
  if (!journal.ok()) {
    return PrepareFailure{kExitUnavailable,
                          "cannot start the journal: " +
                              journal.status().ToString() +
                              Hint(journal.status())};
  }
  out->lock = std::move(lock).value();
  out->journal = std::move(journal).value();
  reporter->Notice(request->kind + " " + request->id.str() + " of " +
                   service.str() + ": " +
                   std::to_string(request->targets.size()) +
                   " instance(s); lock " + out->lock->path() + ", journal " +
                   out->journal->path());
  return std::nullopt;
}

DeployEnvironment MakeEnvironment(Connection* connection, AbortSignal* abort,
                                  Reporter* reporter,
                                  const RolloutRequest& request,
                                  const PreparedRollout& prepared) {
  DeployEnvironment env(request.service, request.id);
  env.session = connection->session();
  env.executor = connection->executor();
  env.abort = abort;
  env.reporter = reporter;
  env.journal = prepared.journal.get();
  env.lock = prepared.lock.get();
  env.acl = connection->AclFor(paths::kPauseRoot);
  env.switch_acl = connection->AclFor(paths::kSwitchRoot);
  env.drain_acl = connection->AclFor(paths::kDrainRoot);
  return env;
}

}  // namespace zkroll::coordinator
