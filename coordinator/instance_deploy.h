// The state machines of one instance's deploy: PauseDeploy (deploy.cc) and
// SwitchDeploy (switch_deploy.cc), two sequences over the steps they share
// in InstanceDeploy. Internal to the coordinator library: callers use
// DeployInstance() in deploy.h.
#ifndef ZKROLL_COORDINATOR_INSTANCE_DEPLOY_H_
#define ZKROLL_COORDINATOR_INSTANCE_DEPLOY_H_

#include <chrono>
#include <csignal>
#include <functional>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "common/paths.h"
#include "coordinator/command.h"
#include "coordinator/connection.h"
#include "coordinator/deploy.h"
#include "coordinator/drain_decision.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator::detail {

using Clock = std::chrono::steady_clock;

inline Millis Since(Clock::time_point t) {
  return std::chrono::duration_cast<Millis>(Clock::now() - t);
}

inline std::string SessionHex(int64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(id));
  return buf;
}

// Whether `node`, read at the flag path `path`, is the flag this deploy
// created: its payload names `deploy_id` and `pid`, and it is an ephemeral
// of `session` (the coordinator's session now). nullopt if so; otherwise
// why not, for the message. A flag that fails this belongs to someone else
// (another coordinator, an operator) and must never be deleted by us.
std::optional<std::string> WhyNotOurFlag(const NodeData& node,
                                         const std::string& path,
                                         const std::string& deploy_id,
                                         int64_t pid, int64_t session);

// Why a deploy stopped early; carried out of the step functions.
struct Stop {
  DeployOutcome outcome;
  std::string detail;
};

// The steps both sequences share (deploy.cc): journalled step records,
// COMMAND under a SessionFence, the health checks, extra commands, and
// confirming that an ephemeral node this deploy created is still ours.
// A sequence says what it holds in ZooKeeper while COMMAND runs (the pause
// flag, or the in-flight switch node) and what COMMAND's environment adds.
class InstanceDeploy {
 public:
  InstanceDeploy(const InstanceDeploy&) = delete;
  InstanceDeploy& operator=(const InstanceDeploy&) = delete;
  virtual ~InstanceDeploy() = default;

 protected:
  InstanceDeploy(const DeployEnvironment& env, const DeployOptions& options,
                 const InstanceAddress& address)
      : env_(env),
        opt_(options),
        address_(address),
        label_(InstanceId{env.service, address}.ToString()),
        target_{address.ip(), address.port()},
        retry_(env.session, env.abort) {}

  struct Step {
    std::string name;
    Clock::time_point start;
    int journal_index = -1;
    bool open = false;
    // A persisted step's journal write: its status (Ok when not persisted
    // or there is no journal) and a time before it was sent.
    Status journalled;
    Clock::time_point journal_sent;
  };

  // `announce`: a long step, reported when it starts. `runs_command`: the
  // step starts a command, so its start is written to the journal before
  // Begin returns (`journalled`); the journal writes every other step
  // within Journal::kFlushDelay or with its next write.
  Step Begin(const std::string& name, const std::string& detail, bool announce,
             bool runs_command = false);
  void End(Step& step, StepVerdict verdict, const std::string& detail);
  // Records the outcome in the result and the journal; returns the result.
  DeployResult Finish(DeployOutcome outcome, const std::string& detail);

  std::optional<Stop> Command();
  // Makes sure the journal records that COMMAND starts before it does:
  // after a failed write, re-verifies (session lost: exit 4) and writes
  // again (still failing: the deploy fails). COMMAND is run only if this
  // returns nothing; it also leaves confirmed_at_ current.
  std::optional<Stop> RecordCommandStart(Step& step);
  std::optional<Stop> Health();

  // Retry (common/retry.h) with the coordinator's options for at most the
  // ZooKeeper retry window; waits wake on session events. A retry may run
  // in a later session than the first attempt: a call whose meaning depends
  // on the session (deleting a node we created) goes through RetryingIn.
  template <typename Call>
  auto Retrying(Call call) -> decltype(call()) {
    return Retry(retry_, CoordinatorRetry(opt_.zk_retry_window), call);
  }
  // The same for a call bound to `session` (ZkSession::*InSessionSync): no
  // attempt is made once that session is not the current one.
  template <typename Call>
  auto RetryingIn(int64_t session, Call call) -> decltype(call()) {
    RetryOptions o = CoordinatorRetry(opt_.zk_retry_window);
    o.bound_session = session;
    return Retry(retry_, o, call);
  }

  // Whether what this deploy holds in ZooKeeper while COMMAND runs (the
  // pause flag, or the in-flight switch node) is still there and ours,
  // confirmed after a sync. `why` says what is wrong otherwise.
  virtual bool StillOurs(std::string* why) = 0;
  // That node's path and the session that owns it, for the SessionFence.
  virtual std::string HeldPath() const = 0;
  virtual int64_t HeldSession() const = 0;
  // What COMMAND and the extra commands see besides CommandEnvironment().
  virtual void AddCommandEnvironment(CommandSpec* spec) const = 0;

  // Whether the ephemeral node at `path`, created in session `owner`, is
  // still there and ours; `consequence` says what its loss means, for the
  // message. Issues a ZooKeeper sync first, so a lagging follower cannot
  // confirm a node that is gone at the leader. `out` (may be null) gets the
  // node.
  bool EphemeralStillOurs(const std::string& path, int64_t owner,
                          const std::string& what,
                          const std::string& consequence, std::string* why,
                          NodeData* out = nullptr);

  Stop AbortStop(const std::string& during) const {
    int sig = env_.abort->signo();
    return Stop{DeployOutcome::kAborted, std::string("stopped by ") +
                                             (sig == SIGINT    ? "SIGINT"
                                              : sig == SIGTERM ? "SIGTERM"
                                                               : "request") +
                                             " during " + during};
  }

  CommandSpec MakeCommand(const std::vector<std::string>& argv) const;
  // Runs an extra command (--on-failure, --stop-old) as a journalled step;
  // `failure` becomes ZKROLL_FAILURE when not empty.
  void RunStepCommand(const std::string& step_name,
                      const std::vector<std::string>& argv,
                      const std::string& failure);

  const DeployEnvironment& env_;
  const DeployOptions& opt_;
  const InstanceAddress address_;
  const std::string label_;
  // Health() checks `target_`; the switch points it at the new port.
  health::CheckTarget target_;
  // Last confirmed contact with ZooKeeper: a time before the last answered
  // request of EphemeralStillOurs or the command step's journal write was
  // sent. The SessionFence times its limit from here.
  Clock::time_point confirmed_at_{};
  bool command_started_ = false;  // COMMAND's process was started
  DeployResult result_;
  SessionRetryContext retry_;
};

// The pause-based sequence (deploy.cc, drain_step.cc): pause, drain,
// verify, command, health, resume, registered.
class PauseDeploy : public InstanceDeploy {
 public:
  PauseDeploy(const DeployEnvironment& env, const DeployOptions& options,
              const InstanceAddress& address)
      : InstanceDeploy(env, options, address),
        flag_path_(paths::PauseFlagNode(env.service, address)),
        node_path_(paths::InstanceNode(env.service, address)) {}

  DeployResult Run();

 private:
  std::optional<Stop> Pause();
  std::optional<Stop> Drain();

  // --- drain on evidence (drain_step.cc) ---------------------------------
  // Creates our DrainRequest and waits (at most
  // DeployOptions::drain_observe_timeout) for the agent's first report, so
  // the agent has seen who talks to the instance before the pause.
  void StartObservation();
  // Deletes our DrainRequest if it is still ours. Idempotent.
  void StopObservation();
  // The auto drain: feeds DecideDrain with what ZooKeeper's watches report.
  std::optional<Stop> DrainAuto(Step& step);
  std::optional<Stop> Verify();
  std::optional<Stop> WaitRegistered();
  void Resume(const std::string& why);
  void FailurePath(const std::string& reason);
  void AbortPath(const Stop& stop);

  // Whether our flag still exists (read after a sync), carries our deploy
  // id, is owned by the session that created it and that session is still
  // ours; records its czxid as the fence.
  bool StillOurs(std::string* why) override;
  std::string HeldPath() const override { return flag_path_; }
  int64_t HeldSession() const override { return paused_session_; }
  void AddCommandEnvironment(CommandSpec* spec) const override;
  // After a pause whose session changed (or whose reply was lost): whether
  // the flag at flag_path_ is the one this deploy created. Only if its
  // payload names our deploy id and pid and its owner is our current
  // session; then paused_session_ is set to it. `why` (may be null) says
  // what is wrong otherwise.
  bool AdoptFlag(std::string* why);

  const std::string flag_path_;
  const std::string node_path_;
  int64_t paused_session_ = 0;
  bool flag_created_ = false;
  int64_t fence_zxid_ = 0;  // czxid of our flag, read by Verify
  // The pause transaction's zxid (the czxid of our flag), and the pzxid of
  // /services/<service> a caller's list must have been read at to be
  // without the instance.
  int64_t pause_zxid_ = 0;
  int64_t pause_pzxid_ = 0;
  Clock::time_point paused_at_;
  struct Observation {
    std::string request_path;  // /drain/S/<ip>_<port>
    std::string traffic_path;  // /traffic/S/<ip>_<port>
    int64_t session = 0;       // owner of our request node
    bool requested = false;    // we created it and have not deleted it
    std::string note;          // why there may be no report
  } observation_;
};

// The port-switching sequence (switch_deploy.cc): prepare, forward-backup,
// command, health, forward-new, verify, commit, drain-old; rollback on
// failure.
class SwitchDeploy : public InstanceDeploy {
 public:
  SwitchDeploy(const DeployEnvironment& env, const DeployOptions& options,
               const InstanceAddress& address)
      : InstanceDeploy(env, options, address) {}

  // `busy`: instances deployed at the same time, never chosen as the backup.
  DeployResult Run(const std::vector<InstanceAddress>& busy);

 private:
  struct Plan {
    InstanceAddress old_backend;  // committed backend before the deploy
    InstanceAddress new_backend;  // where COMMAND starts the new version
    InstanceAddress backup;       // serves while COMMAND runs
    std::string switch_path;      // /switch/S/<ip>_<port>
    std::string deploy_path;      // /switch/S/<ip>_<port>/deploy
    std::string state_path;       // /forwarders/S/<ip>_<port>
    int64_t session = 0;          // owner of our in-flight node
    bool in_flight = false;       // we created the in-flight node
    bool committed = false;
    bool command_started = false;
    int writes = 0;               // generations written so far
    std::optional<proto::ForwarderState> last;  // last state read
  };

  // Whether our in-flight switch node is still there and ours.
  bool StillOurs(std::string* why) override;
  std::string HeldPath() const override { return plan_.deploy_path; }
  int64_t HeldSession() const override { return plan_.session; }
  void AddCommandEnvironment(CommandSpec* spec) const override;

  std::optional<Stop> Prepare(const std::vector<InstanceAddress>& busy);
  // Writes the in-flight target and waits for the agent to apply it.
  std::optional<Stop> Forward(const std::string& step,
                              const InstanceAddress& backend,
                              const std::string& phase,
                              const std::string& detail);
  std::optional<Stop> Verify();
  std::optional<Stop> Commit();
  void Rollback(const std::string& reason);
  void DrainAndRun(const InstanceAddress& backend,
                   const std::vector<std::string>& argv,
                   const std::string& step_name, const std::string& reason);
  // A target with a fresh generation, stamped with this deploy.
  proto::ForwardTarget NewTarget(const InstanceAddress& backend,
                                 const std::string& phase);
  // Waits until the agent reports `generation` applied or refused.
  std::pair<std::optional<proto::ForwarderState>, bool> WaitApplied(
      const std::string& generation, bool stop_on_abort);
  // Reads /forwarders/<service>/<ip>_<port> until `done` accepts it or
  // `timeout` passes, re-reading on its watch. Returns the last state read
  // (nullopt if none could be read) and whether `done` accepted it.
  std::pair<std::optional<proto::ForwarderState>, bool> WaitForwarderState(
      const std::function<bool(const proto::ForwarderState&)>& done,
      Millis timeout, bool stop_on_abort);

  Plan plan_;
};

}  // namespace zkroll::coordinator::detail

#endif  // ZKROLL_COORDINATOR_INSTANCE_DEPLOY_H_
