// Exit codes of the `zkroll` CLI. They are part of its interface: scripts
// and CI jobs branch on them, so never renumber one.
#ifndef ZKROLL_COORDINATOR_EXIT_CODES_H_
#define ZKROLL_COORDINATOR_EXIT_CODES_H_

namespace zkroll::coordinator {

enum ExitCode : int {
  kExitOk = 0,
  // A deploy failed (COMMAND failed, every health check failed, the agent
  // did not re-register the instance in time, the instance was already
  // paused by someone else) or a rollout stopped (a failed batch, or the
  // --min-healthy condition did not hold within --min-healthy-timeout).
  kExitFailed = 1,
  // Usage or validation error, reported before anything in ZooKeeper was
  // touched.
  kExitUsage = 2,
  // ZooKeeper not reachable within --connect-timeout, ZooKeeper refused a
  // read or write needed before the work could start (ACL, auth), or the
  // service's lock is held by another coordinator.
  kExitUnavailable = 3,
  // The deploy was aborted because the coordinator lost its ZooKeeper
  // session (its pause flags and lock vanished with it), so it could no
  // longer guarantee that the instance was out of traffic.
  kExitSessionLost = 4,
  // A rollout with --auto-revert failed, and every instance whose COMMAND
  // ran in it was reverted (journal outcome "reverted").
  kExitFailedReverted = 5,
  // A rollout with --auto-revert failed and some of the instances it had
  // touched could not be reverted (journal outcome "revert-incomplete"; the
  // message lists them).
  kExitRevertIncomplete = 6,
  // Aborted by SIGINT / SIGTERM (the shell convention 128 + signal).
  kExitInterrupted = 130,
  kExitTerminated = 143,
};

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_EXIT_CODES_H_
