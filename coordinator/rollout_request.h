// RolloutRequest: one `zkroll deploy` or `zkroll rollout`, typed, and the
// preparation every such run shares (inventory, lock, journal).
//
// The request is parsed from the subcommand's options in one place
// (RolloutRequest::FromOptions), and its journal records the option texts
// it was parsed from (ToParameters, the DeployRecord's `parameters`), so a
// later run can rebuild exactly the same request from the journal
// (FromParameters) by parsing those texts again with the same rules. Adding
// an option means adding it to RequestOptionsDescription() and reading it
// in rollout_request.cc's parser: the journal and a rebuild follow.
//
// Validation errors are InvalidArgument whose message names the option and
// the value ("--drain-min '30s' is above the cap --drain-wait 20s"); the
// CLI prints them with exit 2. Nothing here touches ZooKeeper except
// Prepare.
//
// Thread-safety: plain values and free functions; Prepare runs on the
// coordinator's main thread.
#ifndef ZKROLL_COORDINATOR_ROLLOUT_REQUEST_H_
#define ZKROLL_COORDINATOR_ROLLOUT_REQUEST_H_

#include <boost/program_options.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/duration.h"
#include "common/names.h"
#include "common/status.h"
#include "coordinator/abort_signal.h"
#include "coordinator/connection.h"
#include "coordinator/deploy.h"
#include "coordinator/journal.h"
#include "coordinator/lock.h"
#include "coordinator/reporter.h"
#include "coordinator/rollout.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator {

// The options of `zkroll deploy` (kind "deploy") or `zkroll rollout`
// ("rollout"), global options excluded, in the groups `--help` shows.
boost::program_options::options_description RequestOptionsDescription(
    const std::string& kind);

// True for the options of `zkroll rollout --resume` (--resume,
// --rerun-command, --command-ended): how to continue a stopped rollout,
// never part of a request and never recorded in its journal.
bool IsResumeOption(const std::string& name);

struct RolloutRequest {
  std::string kind = "rollout";  // deploy | rollout
  ServiceName service;
  DeployId id = DeployId::Generate();  // --deploy-id, or a fresh one
  // deploy: the --instance; rollout: --instances in the order given, or
  // (from_agents) filled by Prepare with every declared instance.
  std::vector<InstanceAddress> targets;
  bool from_agents = false;
  bool force = false;    // --force
  bool dry_run = false;  // --dry-run
  // The deploy part (options.deploy) holds COMMAND; batch and the rest are
  // a rollout's (a deploy keeps their defaults).
  RolloutOptions options;

  // Parses the options of `kind` (parsed by RequestOptionsDescription(kind),
  // global options may be present and are recorded too) and COMMAND.
  // `zk_retry_window` is the --connect-timeout. InvalidArgument names the
  // bad option and value.
  static Result<RolloutRequest> FromOptions(
      const std::string& kind,
      const boost::program_options::variables_map& options,
      const std::vector<std::string>& command, Millis zk_retry_window);

  // Rebuilds the request a journal recorded: its kind, service, id,
  // COMMAND and parameters, parsed again with the rules of FromOptions
  // (parameters equal to an option's default count as not given; global
  // options are ignored). InvalidArgument when the record cannot be parsed
  // any more (e.g. COMMAND is no longer executable), naming the value.
  static Result<RolloutRequest> FromParameters(const proto::DeployRecord& record,
                                               Millis zk_retry_window);

  // The option texts this request was parsed from, by option name without
  // "--", defaults included (the journal's `parameters`).
  std::map<std::string, std::string> ToParameters() const {
    return parameters_;
  }

 private:
  std::map<std::string, std::string> parameters_;
};

// What a prepared run holds: the service lock and the started journal.
struct PreparedRollout {
  std::unique_ptr<ServiceLock> lock;
  std::unique_ptr<Journal> journal;
};

// Why preparation stopped: the exit code (exit_codes.h) and the message for
// the user. Nothing was left behind (no lock, no journal).
struct PrepareFailure {
  int exit_code;
  std::string message;
};

// Prepares `request` once connected: reads the inventory, refuses unknown
// instances (exit 2; from_agents: fills request->targets), removes expired
// pause flags, takes the service lock (exit 3 naming the holder) and starts
// the journal (record "running", each target "pending"). Notices go to
// `reporter`. Returns nullopt and fills `out` on success.
std::optional<PrepareFailure> Prepare(Connection* connection,
                                      Reporter* reporter,
                                      RolloutRequest* request,
                                      PreparedRollout* out);

// The holder record of a lock taken for deploy `id` ("deploy", "rollout").
proto::LockHolder MakeLockHolder(const DeployId& id, const std::string& purpose);

// What every deploy of this process shares: its session, executor, stop
// signal, reporter, journal and lock, and the ACLs of the nodes it creates.
DeployEnvironment MakeEnvironment(Connection* connection, AbortSignal* abort,
                                  Reporter* reporter,
                                  const RolloutRequest& request,
                                  const PreparedRollout& prepared);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_ROLLOUT_REQUEST_H_
