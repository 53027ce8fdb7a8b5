#include "coordinator/cli.h"

#include <glog/logging.h>

#include <unistd.h>

#include <boost/program_options.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/duration.h"
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
#include "coordinator/error_text.h"
#include "coordinator/exit_codes.h"
#include "coordinator/init.h"
#include "coordinator/maintenance.h"
#include "coordinator/options.h"
#include "coordinator/plan.h"
#include "coordinator/reporter.h"
#include "coordinator/resume.h"
#include "coordinator/rollout.h"
#include "coordinator/rollout_request.h"
#include "coordinator/status.h"

namespace zkroll::coordinator {
namespace {

namespace po = boost::program_options;

// A usage error is an option error: printed with exit 2, before anything
// in ZooKeeper is touched.
using UsageError = OptionError;

// The COMMAND after `--` (empty: none).
using Command = std::vector<std::string>;

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

void PrintError(const std::string& message) {
  std::fprintf(stderr, "zkroll: error: %s\n", message.c_str());
  std::fflush(stderr);
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

// A new deploy or rollout: opens the session and prepares the run (lock,
// journal). Returns the exit code when it cannot start.
std::optional<int> OpenAndPrepare(Session& s, const GlobalConfig& g,
                                  RolloutRequest* request,
                                  PreparedRollout* prep) {
  if (auto code = Open(s, g)) return *code;
  if (auto failed = Prepare(&s.connection, &s.reporter, request, prep)) {
    return Finish(&s.reporter, failed->exit_code, failed->message);
  }
  return std::nullopt;
}

// The typed request of a deploy or rollout; its validation errors are
// usage errors.
RolloutRequest ParseRequest(const std::string& kind,
                            const po::variables_map& vm,
                            const std::vector<std::string>& command,
                            const GlobalConfig& g) {
  auto request = RolloutRequest::FromOptions(kind, vm, command,
                                             g.connect.connect_timeout);
  if (!request.ok()) throw UsageError{request.status().message()};
  return *std::move(request);
}

// --dry-run: prints the plan of `rollout` and whether the run could start.
// Writes nothing to ZooKeeper. Exit 0 could start, 1 could not (the plan
// says why), 2 unknown service or instance, 3 ZooKeeper unreachable.
int RunDryRun(const GlobalConfig& g, const RolloutRequest& rollout) {
  const ServiceName& service = rollout.service;
  PlanRequest request;
  request.kind = rollout.kind;
  request.targets = rollout.targets;
  request.from_agents = rollout.from_agents;
  request.force = rollout.force;
  request.batch = rollout.options.batch;
  request.min_healthy = rollout.options.min_healthy;
  request.canary = rollout.options.canary;
  request.canary_soak = rollout.options.canary_soak;
  request.canary_manual =
      rollout.options.canary_promote == CanaryPromote::kManual;
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

int RunDeploy(const po::variables_map& vm, const Command& command) {
  GlobalConfig g = ParseGlobals(vm);
  RolloutRequest request = ParseRequest("deploy", vm, command, g);
  if (request.dry_run) return RunDryRun(g, request);

  Session s(g.format);
  PreparedRollout prep;
  if (auto code = OpenAndPrepare(s, g, &request, &prep)) return *code;
  const ServiceName& service = request.service;
  const DeployId& id = request.id;
  const InstanceAddress address = request.targets.front();
  const DeployOptions& opt = request.options.deploy;
  DeployEnvironment env =
      MakeEnvironment(&s.connection, &s.abort, &s.reporter, request, prep);
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
  Status js = prep.journal->Finish(RunOutcomeOf(r.outcome), r.detail);
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

// Ends a rollout (a new one or a resumed one): the journal's outcome, the
// lock released, the summary and the exit code.
int FinishRollout(Session& s, const RolloutRequest& request,
                  PreparedRollout& prep, const RolloutResult& r) {
  int code = kExitOk;
  if (r.session_lost) {
    code = kExitSessionLost;
  } else if (s.abort.requested()) {
    code = SignalExitCode(s.abort);
  } else if (r.outcome == RunOutcome::kReverted) {
    code = kExitFailedReverted;
  } else if (r.outcome == RunOutcome::kRevertIncomplete) {
    code = kExitRevertIncomplete;
  } else if (r.outcome != RunOutcome::kSucceeded &&
             r.outcome != RunOutcome::kAwaitingPromotion) {
    code = kExitFailed;
  }
  Status js = prep.journal->Finish(r.outcome, r.detail);
  if (!js.ok()) LOG(WARNING) << "final journal write failed: " << js.ToString();
  Status ls = prep.lock->Release();
  if (!ls.ok()) LOG(WARNING) << ls.ToString();
  const std::string& id = request.id.str();
  const std::string& service = request.service.str();
  std::string summary = "rollout " + id + " of " + service + " " +
                        WireString(r.outcome) + ": " + r.detail;
  if (r.outcome != RunOutcome::kSucceeded &&
      r.outcome != RunOutcome::kAwaitingPromotion && !r.revert &&
      !r.min_healthy_stop) {
    summary +=
        ". Instances not started were not touched; fix the cause and "
        "continue with `zkroll rollout --resume " +
        id + " --service " + service +
        "` (instances that succeeded are not run again)";
  }
  for (const auto& f : r.failures) summary += "\n  " + f;
  if (r.revert) {
    for (const auto& f : r.revert->failures) summary += "\n  " + f;
  }
  proto::ResultEvent result;
  result.set_deploy_id(id);
  result.set_journal(prep.journal->path());
  result.set_succeeded(static_cast<uint32_t>(r.succeeded));
  result.set_failed(static_cast<uint32_t>(r.failed));
  result.set_aborted(static_cast<uint32_t>(r.aborted));
  result.set_not_started(static_cast<uint32_t>(r.not_started));
  s.reporter.Result(WireString(r.outcome), code, summary, result);
  return code;
}

// `rollout --resume ID` and `promote`: continue deploy ID from its journal.
int RunResumed(const GlobalConfig& g, const ResumeOptions& options) {
  Session s(g.format);
  if (auto code = Open(s, g)) return *code;
  auto plan = PlanResume(s.connection.session(), options,
                         g.connect.connect_timeout);
  if (!plan.ok()) {
    return Finish(&s.reporter, ExitCodeFor(plan.status()),
                  Explain(plan.status()));
  }
  PreparedRollout prep;
  if (auto failed = PrepareResume(&s.connection, &s.reporter, *plan, &prep)) {
    return Finish(&s.reporter, failed->exit_code, failed->message);
  }
  DeployEnvironment env = MakeEnvironment(&s.connection, &s.abort, &s.reporter,
                                          plan->request, prep);
  RolloutResult r = RunResume(env, *plan, prep.lock.get());
  return FinishRollout(s, plan->request, prep, r);
}

// The options that may stand beside --resume: --service, the resume
// options and the global ones. The rest comes from the journal, so that a
// resumed rollout is the rollout that was started.
bool AllowedBesideResume(const std::string& name) {
  return name == "service" || IsResumeOption(name) ||
         GlobalOptions().find_nothrow(name, /*approx=*/false) != nullptr;
}

int RunRolloutResume(const po::variables_map& vm, const Command& command) {
  GlobalConfig g = ParseGlobals(vm);
  ResumeOptions options;
  options.service = ServiceOption(vm);
  options.id = RequiredDeployId(vm, "resume");
  for (const auto& [name, value] : vm) {
    if (value.defaulted() || AllowedBesideResume(name)) continue;
    throw UsageError{"--" + name +
                     " cannot be given with --resume: a resumed rollout "
                     "keeps the options its journal recorded (see them with "
                     "`zkroll history --service " +
                     options.service.str() + " --deploy-id " +
                     options.id.str() + "`)"};
  }
  if (!command.empty()) {
    throw UsageError{
        "--resume takes no `-- COMMAND`: the COMMAND its journal recorded "
        "runs"};
  }
  options.rerun_command = SwitchOption(vm, "rerun-command");
  options.command_ended = SwitchOption(vm, "command-ended");
  return RunResumed(g, options);
}

int RunRollout(const po::variables_map& vm, const Command& command) {
  if (vm.count("resume")) return RunRolloutResume(vm, command);
  GlobalConfig g = ParseGlobals(vm);
  RolloutRequest request = ParseRequest("rollout", vm, command, g);
  if (request.dry_run) return RunDryRun(g, request);

  Session s(g.format);
  PreparedRollout prep;
  if (auto code = OpenAndPrepare(s, g, &request, &prep)) return *code;
  DeployEnvironment env =
      MakeEnvironment(&s.connection, &s.abort, &s.reporter, request, prep);
  RolloutResult r =
      RunRollout(env, request.options, request.targets, prep.lock.get());
  return FinishRollout(s, request, prep, r);
}

// `zkroll revert`: the instances deploy ID upgraded, newest first.
int RunRevert(const po::variables_map& vm, const Command& command) {
  GlobalConfig g = ParseGlobals(vm);
  RevertOptions options;
  options.service = ServiceOption(vm);
  options.id = RequiredDeployId(vm, "deploy");
  if (vm.count("revert-command") && !command.empty()) {
    throw UsageError{"give the revert command once: --revert-command or "
                     "after `--`, not both"};
  }
  if (vm.count("revert-command")) {
    options.revert_command = CommandOption(vm, "revert-command");
  } else if (!command.empty()) {
    Status exe = CheckExecutable(command[0]);
    if (!exe.ok()) throw UsageError{"REVERT_CMD: " + exe.message()};
    options.revert_command = command;
  }
  Session s(g.format);
  if (auto code = Open(s, g)) return *code;
  auto plan =
      PlanRevert(s.connection.session(), options, g.connect.connect_timeout);
  if (!plan.ok()) {
    return Finish(&s.reporter, ExitCodeFor(plan.status()),
                  Explain(plan.status()));
  }
  PreparedRollout prep;
  if (auto failed = PrepareContinuation(
          &s.connection, &s.reporter, plan->request,
          "reverting " + std::to_string(plan->touched.size()) +
              " instance(s), newest first",
          &prep)) {
    return Finish(&s.reporter, failed->exit_code, failed->message);
  }
  DeployEnvironment env = MakeEnvironment(&s.connection, &s.abort, &s.reporter,
                                          plan->request, prep);
  RevertResult rv =
      RevertInstances(env, plan->request.options, plan->touched);
  const RunOutcome outcome =
      rv.complete() ? RunOutcome::kReverted : RunOutcome::kRevertIncomplete;
  const std::string detail = std::to_string(rv.reverted.size()) +
                             " reverted, " + std::to_string(rv.left.size()) +
                             " left on the new version";
  int code = kExitOk;
  if (!rv.complete()) {
    code = s.abort.requested() ? SignalExitCode(s.abort)
                               : static_cast<int>(kExitRevertIncomplete);
  }
  Status js = prep.journal->Finish(outcome, detail);
  if (!js.ok()) LOG(WARNING) << "final journal write failed: " << js.ToString();
  Status ls = prep.lock->Release();
  if (!ls.ok()) LOG(WARNING) << ls.ToString();
  std::string summary = "revert of " + options.id.str() + " of " +
                        options.service.str() + " " + WireString(outcome) +
                        ": " + detail;
  for (const auto& f : rv.failures) summary += "\n  " + f;
  proto::ResultEvent result;
  result.set_deploy_id(options.id.str());
  result.set_journal(prep.journal->path());
  result.set_succeeded(static_cast<uint32_t>(rv.reverted.size()));
  result.set_failed(static_cast<uint32_t>(rv.left.size()));
  s.reporter.Result(
      WireString(rv.complete() ? RunOutcome::kSucceeded : RunOutcome::kFailed),
      code, summary, result);
  return code;
}

// `zkroll promote`: the rest of a rollout that awaits promotion.
int RunPromote(const po::variables_map& vm, const Command& /*none*/) {
  GlobalConfig g = ParseGlobals(vm);
  ResumeOptions options;
  options.service = ServiceOption(vm);
  options.id = RequiredDeployId(vm, "deploy");
  options.promote = true;
  return RunResumed(g, options);
}

int RunStatus(const po::variables_map& vm, const Command& /*none*/) {
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

int RunHistory(const po::variables_map& vm, const Command& /*none*/) {
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

int RunPause(const po::variables_map& vm, const Command& /*none*/) {
  GlobalConfig g = ParseGlobals(vm);
  ServiceName service = ServiceOption(vm);
  InstanceAddress address = InstanceOption(vm);
  Require(vm, "reason");
  Require(vm, "ttl");
  ManualPause p;
  p.reason = ReasonText(Get(vm, "reason"), "--reason");
  p.ttl = DurationOption(vm, "ttl", false);
  p.force = SwitchOption(vm, "force");
  Session s(g.format);
  if (auto code = Open(s, g)) return *code;
  Status st = PauseInstance(s.connection.session(),
                            s.connection.AclFor(paths::kPauseRoot), service,
                            address, p, &s.reporter);
  if (!st.ok()) return Finish(&s.reporter, ExitCodeFor(st), Explain(st));
  if (s.reporter.json()) s.reporter.Result("ok", kExitOk, "paused");
  return kExitOk;
}

int RunResume(const po::variables_map& vm, const Command& /*none*/) {
  GlobalConfig g = ParseGlobals(vm);
  ServiceName service = ServiceOption(vm);
  InstanceAddress address = InstanceOption(vm);
  const bool force = SwitchOption(vm, "force");
  Session s(g.format);
  if (auto code = Open(s, g)) return *code;
  Status st = ResumeInstance(s.connection.session(), service, address, force,
                             &s.reporter);
  if (!st.ok()) return Finish(&s.reporter, ExitCodeFor(st), Explain(st));
  if (s.reporter.json()) s.reporter.Result("ok", kExitOk, "resumed");
  return kExitOk;
}

int RunInit(const po::variables_map& vm, const Command& /*none*/) {
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


// The options of each subcommand besides the global ones.
po::options_description DeployRequestOptions() {
  return RequestOptionsDescription("deploy");
}

po::options_description RolloutRequestOptions() {
  return RequestOptionsDescription("rollout");
}

po::options_description ServiceOnlyOptions() {
  po::options_description d("Options");
  d.add_options()("service", po::value<std::string>(), "service name");
  return d;
}

po::options_description HistoryOptions() {
  po::options_description d = ServiceOnlyOptions();
  auto add = d.add_options();
  add("limit", po::value<int>()->default_value(20), "show this many");
  add("deploy-id", po::value<std::string>(), "show this deploy's steps");
  return d;
}

po::options_description InstanceOptions() {
  po::options_description d = ServiceOnlyOptions();
  d.add_options()("instance", po::value<std::string>(),
                  "the instance, IP:PORT ([IPv6]:PORT)");
  return d;
}

po::options_description PauseOptions() {
  po::options_description d = InstanceOptions();
  auto add = d.add_options();
  add("reason", po::value<std::string>(), "why (required)");
  add("ttl", po::value<std::string>(),
      "the pause expires after this long (required), e.g. 2h");
  add("force", po::bool_switch(), "pause an instance that no agent declares");
  return d;
}

po::options_description ResumeOptions() {
  po::options_description d = InstanceOptions();
  d.add_options()("force", po::bool_switch(),
                  "also delete the flag of a running deploy");
  return d;
}

po::options_description InitOptions() {
  po::options_description d("Options");
  auto add = d.add_options();
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
  return d;
}

// --service and --deploy ID; `what` says which deploy ID names.
po::options_description DeployOfServiceOptions(const char* what) {
  po::options_description d = ServiceOnlyOptions();
  d.add_options()("deploy", po::value<std::string>(),
                  (std::string(what) + " (its deploy id)").c_str());
  return d;
}

po::options_description PromoteOptions() {
  return DeployOfServiceOptions("the rollout awaiting promotion");
}

po::options_description RevertOptionsDescription() {
  po::options_description d = DeployOfServiceOptions(
      "the deploy whose upgraded instances are reverted");
  auto add = d.add_options();
  add("revert-command", po::value<std::string>(),
      "command line (no shell) that reverts one instance (default: the "
      "deploy's --auto-revert); or give it after `--`");
  return d;
}

// One subcommand: what `zkroll --help` lists, what `zkroll NAME --help`
// shows, the options it accepts besides the global ones, and its handler.
struct Subcommand {
  const char* name;
  const char* synopsis;  // the arguments after `zkroll NAME`
  const char* summary;   // one paragraph, lines broken at 66 columns
  const char* details;   // more for `zkroll NAME --help` ("" for none)
  bool takes_command;    // accepts `-- COMMAND [ARGS...]`
  po::options_description (*options)();
  int (*run)(const po::variables_map& vm, const Command& command);
};

const Subcommand kSubcommands[] = {
    {"deploy",
     "--service S --instance IP:PORT [options] -- COMMAND [ARGS...]",
     "Pause one instance (flag + deregistration in one transaction),\n"
     "drain, run COMMAND, health-check, resume, wait for the agent to\n"
     "register it again.",
     "Before COMMAND the flag is verified to be still ours. COMMAND sees\n"
     "ZKROLL_SERVICE, ZKROLL_IP, ZKROLL_PORT, ZKROLL_INSTANCE,\n"
     "ZKROLL_DEPLOY_ID and ZKROLL_FENCE (the flag's creation zxid); it is\n"
     "stopped if the ZooKeeper session is lost.",
     true, DeployRequestOptions, RunDeploy},
    {"rollout",
     "--service S --min-healthy M [--batch K] [--instances A,B,...] "
     "[options] -- COMMAND [ARGS...]",
     "Deploy every instance the agents declare for S (or --instances),\n"
     "K at a time, never leaving fewer than M registered.\n"
     "With --dry-run (deploy too): print the plan and whether the run\n"
     "could start (exit 0) or not (exit 1, with why); writes nothing.",
     "Stops after more than --max-failures failed instances.\n"
     "With --canary N the first N go first and are observed (--canary-soak,\n"
     "--canary-check) before the rest (--canary-promote manual: stop there);\n"
     "--min-healthy-time and --progress-deadline fail flapping or stuck\n"
     "upgrades; --auto-revert reverts what the failed rollout touched.\n"
     "`zkroll rollout --resume ID --service S` continues rollout (or deploy)\n"
     "ID that stopped (failed, aborted, its coordinator killed) from its\n"
     "journal; see the Resume options below.",
     true, RolloutRequestOptions, RunRollout},
    {"promote", "--service S --deploy ID",
     "Continue a rollout that awaits promotion after its canary.",
     "Deploys the rest of rollout ID (stopped after its canary soak with\n"
     "--canary-promote manual, outcome awaiting-promotion) with the options\n"
     "its journal recorded: the same as `zkroll rollout --resume ID`, for\n"
     "that state only.",
     false, PromoteOptions, RunPromote},
    {"revert", "--service S --deploy ID [--revert-command CMD | -- REVERT_CMD]",
     "Revert the instances deploy ID upgraded, newest first.",
     "Each instance whose COMMAND ran in deploy ID (by its journal) and is\n"
     "not reverted yet goes through the deploy's steps with REVERT_CMD\n"
     "instead of COMMAND (pause, drain, REVERT_CMD, checks, resume),\n"
     "--batch at a time, newest first. REVERT_CMD: --revert-command, the\n"
     "command after `--`, or the deploy's recorded --auto-revert. Exit 0\n"
     "when every instance is reverted, 6 when some are left (listed).",
     true, RevertOptionsDescription, RunRevert},
    {"status", "--service S",
     "Each instance: registered, paused, agent, health.",
     "Shows each instance of S: registered, paused (by whom, why, until),\n"
     "the agents that declare it and their view of its health, its last\n"
     "deploy. Changes nothing: an expired manual pause is shown as expired\n"
     "(the next deploy or resume removes it).",
     false, ServiceOnlyOptions, RunStatus},
    {"history", "--service S [--deploy-id ID] [--limit N]",
     "The deploy journal of S: every deploy (newest first), or one with\n"
     "its steps.",
     "", false, HistoryOptions, RunHistory},
    {"pause", "--service S --instance IP:PORT --reason TEXT --ttl DURATION",
     "Manual maintenance pause that expires.",
     "Takes an instance out of traffic for maintenance. The flag outlives\n"
     "this process but expires after --ttl: agents ignore an expired flag\n"
     "and zkroll removes it.",
     false, PauseOptions, RunPause},
    {"resume", "--service S --instance IP:PORT",
     "End a manual pause.",
     "Deletes a manual pause flag; the agent registers the instance after\n"
     "its next passing check.",
     false, ResumeOptions, RunResume},
    {"init",
     "--admin-auth ADMIN (--agent-auth F | --agent-id ID) "
     "(--coordinator-auth F | --coordinator-id ID) "
     "[--caller-auth F | --caller-id ID]",
     "Create the tree with its ACLs (once).",
     "Creates /services, /agents, /pause, /deploys, /locks, /switch,\n"
     "/forwarders, /drain, /traffic and /callers with their ACLs\n"
     "(docs/design.md, security model); re-ACLs them if they exist.\n"
     "Idempotent.",
     false, InitOptions, RunInit},
};

constexpr char kExitCodes[] =
    R"(Exit codes:
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
  5    rollout --auto-revert: the rollout failed and every instance it had
       touched was reverted
  6    rollout --auto-revert: the rollout failed and the revert is
       incomplete (the message lists the instances left on the new version)
  130  aborted by SIGINT (Ctrl-C)   143  aborted by SIGTERM
       (an abort stops COMMAND, deletes the pause flag and records the deploy
       as aborted)
)";

// `text` with every line after the first indented by `indent` spaces.
std::string Indented(const std::string& text, size_t indent) {
  std::string out;
  for (char c : text) {
    out += c;
    if (c == '\n') out += std::string(indent, ' ');
  }
  return out;
}

// `zkroll --help`: built from the table, so a subcommand is described once.
std::string Usage() {
  std::ostringstream u;
  u << "usage: zkroll SUBCOMMAND [OPTIONS] [-- COMMAND [ARGS...]]\n\n"
       "Upgrades service instances registered in ZooKeeper without failing "
       "callers.\n\nSubcommands:\n";
  for (const auto& sub : kSubcommands) {
    std::string name = sub.name;
    name.resize(9, ' ');
    u << "  " << name << Indented(sub.synopsis, 11) << "\n           "
      << Indented(sub.summary, 11) << "\n";
  }
  u << "\n"
    << GlobalOptions()
    << "  --version                    print the version\n"
       "  (global options are accepted before or after the subcommand)\n\n"
       "`zkroll SUBCOMMAND --help` shows each subcommand's options.\n\n"
    << kExitCodes;
  return u.str();
}

std::string SubcommandNames() {
  std::string names;
  for (const auto& sub : kSubcommands) {
    names += (names.empty() ? "" : ", ") + std::string(sub.name);
  }
  return names;
}

const Subcommand* FindSubcommand(const std::string& name) {
  for (const auto& sub : kSubcommands) {
    if (name == sub.name) return &sub;
  }
  return nullptr;
}

// `zkroll NAME --help`.
std::string SubcommandHelp(const Subcommand& sub,
                           const po::options_description& desc) {
  std::ostringstream help;
  help << "usage: zkroll " << sub.name << " " << sub.synopsis << "\n\n"
       << sub.summary << "\n";
  if (*sub.details) help << sub.details << "\n";
  help << "\n"
       << desc << "\n"
       << "Exit codes: 0 done, 1 failed, 2 usage, 3 ZooKeeper unreachable "
          "or lock held,\n4 session lost, 5 failed and reverted, 6 revert "
          "incomplete,\n130/143 aborted by SIGINT/SIGTERM "
          "(details: zkroll --help).\n";
  return help.str();
}

// True when `arg` ("--zk") names a global option that takes a value.
bool GlobalTakesValue(const std::string& arg) {
  if (arg.rfind("--", 0) != 0) return false;
  const po::options_description globals = GlobalOptions();
  const po::option_description* option =
      globals.find_nothrow(arg.substr(2), /*approx=*/false);
  return option != nullptr && option->semantic()->max_tokens() > 0;
}

// Moves global options given before the subcommand behind it.
std::vector<std::string> Reorder(const std::vector<std::string>& args) {
  std::vector<std::string> leading;
  size_t i = 0;
  while (i < args.size() && args[i].size() > 1 && args[i][0] == '-') {
    const std::string& a = args[i];
    leading.push_back(a);
    if (GlobalTakesValue(a) && i + 1 < args.size()) {
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

int Dispatch(std::vector<std::string> args, const Command& command,
             bool has_separator) {
  if (args.empty()) {
    std::fputs(Usage().c_str(), stderr);
    return kExitUsage;
  }
  args = Reorder(args);
  const std::string& first = args[0];
  if (first == "--version" || first == "version") {
    std::printf("zkroll %s\n", ZKROLL_VERSION_TEXT);
    return kExitOk;
  }
  if (first == "--help" || first == "-h" || first == "help") {
    std::fputs(Usage().c_str(), stdout);
    return kExitOk;
  }
  const Subcommand* sub = FindSubcommand(first);
  if (sub == nullptr) {
    throw UsageError{"unknown subcommand " + QuoteForMessage(first) +
                     "; expected one of " + SubcommandNames() +
                     " (see `zkroll --help`)"};
  }
  po::options_description desc;
  desc.add(sub->options()).add(GlobalOptions());
  po::variables_map vm;
  std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    po::store(po::command_line_parser(rest).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError{e.what()};
  }
  if (vm.count("help")) {
    std::fputs(SubcommandHelp(*sub, desc).c_str(), stdout);
    return kExitOk;
  }
  if (!sub->takes_command && has_separator) {
    throw UsageError{std::string("zkroll ") + sub->name +
                     " takes no `-- COMMAND`"};
  }
  return sub->run(vm, command);
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
  const bool known = FindSubcommand(sub) != nullptr;
  try {
    return Dispatch(args, command, has_separator);
  } catch (const UsageError& e) {
    std::string hint = !known ? "zkroll --help" : "zkroll " + sub + " --help";
    PrintError(e.message + " (see `" + hint + "`)");
    return kExitUsage;
  }
}

}  // namespace zkroll::coordinator
