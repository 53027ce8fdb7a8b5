// The deploy of one instance: the state machine behind `zkroll deploy`, and
// run K at a time by `zkroll rollout`.
//
//   pause ─> drain ─> verify ─> command ─> health ─> resume ─> registered
//                       │          │          │
//                       │          └─ fails ──┴─> on-failure ─> resume
//                       └─ flag gone / not ours ─> aborted (session lost)
//   SIGINT/SIGTERM at any step ─> stop COMMAND ─> resume ─> aborted
//
// pause      One multi (registry::PauseOps) creates /pause/S/<ip>_<port>
//            as an ephemeral node of our session, bumps the registration
//            guard and deletes /services/S/<ip>_<port> if present.
// drain      --drain fixed: waits --drain-wait so callers drop their
//            cached lists. --drain auto: before the pause, asks the
//            instance's agent to observe its traffic (an ephemeral
//            /drain/S/<ip>_<port>, deleted after the drain) and waits,
//            bounded, for its first report; after the pause, ends when the
//            callers acknowledged a list without the instance and the
//            traffic is quiet and known (drain_decision.h), at
//            --drain-wait at the latest. The step's detail says why it
//            ended.
// verify     Immediately before COMMAND: the service lock must still be
//            ours (if the environment has one), and after a ZooKeeper sync
//            (so a follower that lags cannot answer for the leader) the flag
//            must still exist, carry our deploy id and pid, and be owned by
//            the session that created it, which must still be ours.
//            Otherwise the session expired, the flag went with it and the
//            agent may have registered the instance again (or another
//            coordinator holds the lock): COMMAND is not run and the deploy
//            ends "aborted" (session lost).
// command    COMMAND runs (command.h) with ZKROLL_SERVICE, ZKROLL_IP,
//            ZKROLL_PORT, ZKROLL_INSTANCE, ZKROLL_DEPLOY_ID and ZKROLL_FENCE
//            (the flag's creation zxid, decimal: an upgrade script can
//            refuse to act if the flag now there has another one). A
//            non-zero exit or the --exec-timeout fails the deploy. COMMAND
//            starts only once the journal write recording the step's start
//            was answered; after a failed write the flag is verified again
//            (session lost: "aborted", exit 4) and the write retried (still
//            failing: the deploy fails), COMMAND not run in either case.
//            While it runs a SessionFence (session_fence.h) reads our flag
//            every T/6: if the flag is gone or not ours, the session ends,
//            or 2T/3 pass since the last contact ZooKeeper answered,
//            COMMAND's process group is stopped and the deploy ends
//            "aborted" (session lost). The flag is checked again (with a
//            sync) once COMMAND ended.
// health     Up to --health-attempts checks, --health-interval apart; one
//            pass is enough.
// resume     Deletes our flag, only through the session that created it
//            (ZkSession::DeleteInSessionSync): after a session change the
//            flag is already gone with its session, and a flag at that path
//            now is someone else's, so nothing is deleted.
// registered Waits, with a watch, until the agent re-registers the
//            instance, at most --register-timeout (a timeout fails the
//            deploy: the instance is healthy by our checks but out of
//            traffic, which needs a human).
// on-failure Runs --on-failure while the instance is still paused, then the
//            flag is deleted so the agent's own checks decide.
//
// Nothing in ZooKeeper is deleted that this deploy did not create: a flag
// found at pause time (a manual pause, another deploy) fails the deploy
// without touching it, and a flag that is no longer ours is left alone. The
// one exception is an expired manual flag, deleted by a multi that checks
// /pause/<service> at the version read before it
// (registry::DeleteReadFlag), so a pause made in between survives.
//
// With --switch the instance is never paused; the agent's forwarder keeps
// its public port serving while the backend behind it is replaced
// (docs/design.md, "Port switching"):
//
//   prepare ─> forward-backup ─> command ─> health ─> forward-new ─> verify
//      │             │              │          │           │           │
//      └─ nothing    └──────────────┴── fails ─┴───────────┴───────────┴─> rollback
//         touched                                                        (forward to
//                                                 commit ─> drain-old ─>  old, drain new,
//                                                           stop-old      on-failure)
//
// prepare        Reads /forwarders/S/<ip>_<port> (the agent's state): the
//                committed backend (old), the local ports, and picks the
//                new port (the first local port that is not old's) and a
//                backup (--backup, or a registered instance of the service
//                not deployed at the same time).
// forward-backup Creates /switch/S/<ip>_<port>/deploy (ephemeral) with
//                backend = backup, fallback = old, and waits for the agent
//                to report that generation applied.
// command        COMMAND with ZKROLL_NEW_PORT, ZKROLL_OLD_PORT,
//                ZKROLL_BACKEND_IP and ZKROLL_BACKUP besides the usual.
// health         --health-attempts checks of the new port.
// forward-new    backend = new, fallback = old.
// verify         For --verify-window, the agent's counters for the new
//                backend: connection failures (and 5xx answers with
//                forward_protocol = http) above --verify-max-failures
//                roll back at once.
// commit         One multi: /switch/S/<ip>_<port> = new (committed) and
//                the in-flight node deleted.
// drain-old      Waits (at most --drain-wait) for the old backend's
//                connections to end, then runs --stop-old.
// rollback       Deletes the in-flight node (the agent returns to the
//                committed backend, old), waits for the new port's
//                connections to drain, runs --on-failure.
//
// Thread-safety: DeployInstance blocks the calling thread; several may run
// at once on different threads with the same DeployEnvironment.
#ifndef ZKROLL_COORDINATOR_DEPLOY_H_
#define ZKROLL_COORDINATOR_DEPLOY_H_

#include <boost/asio/any_io_executor.hpp>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/duration.h"
#include "common/health/check.h"
#include "common/names.h"
#include "common/states.h"
#include "common/zk_session.h"
#include "coordinator/abort_signal.h"
#include "coordinator/journal.h"
#include "coordinator/reporter.h"

namespace zkroll::coordinator {

class ServiceLock;
// --drain: fixed waits --drain-wait; auto ends the drain on evidence
// (coordinator/drain_decision.h), --drain-wait being the cap.
enum class DrainMode { kFixed, kAuto };

struct DeployOptions {
  std::vector<std::string> command;     // argv after `--`
  std::vector<std::string> on_failure;  // empty: none
  std::string reason;                   // the flag's "why"
  DrainMode drain_mode = DrainMode::kFixed;
  Millis drain_wait{20000};   // fixed: the wait; auto: the cap
  Millis drain_quiet{500};    // auto: no new connection or byte this long
  Millis drain_min{0};        // auto: never end before this
  // auto: how long to wait, before the pause, for the agent's first
  // traffic report (an older agent never answers; the drain then runs to
  // the cap).
  Millis drain_observe_timeout{2000};
  Millis exec_timeout{600000};
  health::CheckSpec check;
  int health_attempts = 6;
  Millis health_interval{5000};
  Millis health_timeout{2000};
  Millis register_timeout{30000};
  // Set by `rollout --resume`: the instances whose COMMAND already ran, or
  // ran when their coordinator was killed and has ended since (its outcome
  // unknown). COMMAND is not run again for them; their "command" step is
  // recorded "skipped" and the checks decide. Not used by a revert.
  std::set<InstanceAddress> command_ran_before;
  // How long ZooKeeper calls that fail with connection loss are retried
  // before the step gives up (the --connect-timeout).
  Millis zk_retry_window{10000};
  struct Switching {
    bool enabled = false;                   // --switch
    std::optional<InstanceAddress> backup;  // --backup
    Millis verify_window{10000};            // --verify-window
    uint64_t verify_max_failures = 0;       // --verify-max-failures
    Millis apply_timeout{10000};            // --switch-timeout
    std::vector<std::string> stop_old;      // --stop-old
  } switching;
  // A revert (rollout --auto-revert, or an explicit revert): `command` is
  // the revert command; every step is named "revert-<step>" in the journal,
  // the output and the events; the instance's journal outcome becomes
  // "reverted" or "revert-failed" (its earlier steps stay, the revert's are
  // appended); COMMAND also sees ZKROLL_REVERT=1.
  bool revert = false;
};

// What every instance deploy of one coordinator run shares.
struct DeployEnvironment {
  DeployEnvironment(ServiceName s, DeployId id)
      : service(std::move(s)), deploy_id(std::move(id)) {}
  ZkSession* session = nullptr;
  boost::asio::any_io_executor executor;  // runs health checks
  AbortSignal* abort = nullptr;
  Reporter* reporter = nullptr;
  Journal* journal = nullptr;  // may be null (tests)
  // The service lock of this run (may be null: tests). Verify checks it
  // is still held right before COMMAND.
  ServiceLock* lock = nullptr;
  AclList acl;         // for pause flags
  AclList switch_acl;  // for /switch nodes
  AclList drain_acl;   // for /drain nodes (--drain auto)
  ServiceName service;
  DeployId deploy_id;
};

enum class DeployOutcome {
  kSucceeded,
  kFailed,       // COMMAND or checks failed, or a step could not be done
  kAborted,      // SIGINT/SIGTERM
  kSessionLost,  // our flag vanished or changed owner (recorded "aborted")
};
// The journal's outcome of a run that was this one deploy: succeeded |
// failed | aborted (kSessionLost is an abort in the journal).
RunOutcome RunOutcomeOf(DeployOutcome outcome);
// The instance's outcome in the journal: as RunOutcomeOf, or, for a
// revert, reverted | revert-failed.
InstanceOutcome InstanceOutcomeOf(DeployOutcome outcome, bool revert);
// WireString(RunOutcomeOf(outcome)), for messages and the result event.
std::string DeployOutcomeName(DeployOutcome outcome);

struct StepTiming {
  std::string name;
  StepVerdict verdict = StepVerdict::kOk;  // ok | failed | aborted | skipped
  Millis took{0};
  std::string detail;
};

struct DeployResult {
  DeployOutcome outcome = DeployOutcome::kFailed;
  std::string detail;  // why it failed or was aborted; empty on success
  std::vector<StepTiming> steps;
  bool touched = false;  // our pause flag (or in-flight switch) was created
  // COMMAND's process was started: the instance may run the new version
  // (what a revert must undo), whatever the outcome.
  bool command_started = false;
  bool rolled_back = false;  // --switch: traffic went back to the old backend
};

// Runs the state machine above for `address`. `busy`: instances deployed
// at the same time (a rollout's batch), never used as a switch's backup.
DeployResult DeployInstance(const DeployEnvironment& env,
                            const DeployOptions& options,
                            const InstanceAddress& address,
                            const std::vector<InstanceAddress>& busy = {});

// "pause 3ms, drain 20s, command 1.2s, ..." for summaries.
std::string DescribeTimings(const std::vector<StepTiming>& steps);

// The environment COMMAND and --on-failure see, besides ours.
std::map<std::string, std::string> CommandEnvironment(
    const ServiceName& service, const InstanceAddress& address,
    const DeployId& deploy_id);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_DEPLOY_H_
