// The `zkroll` command line: argument parsing, validation and dispatch to
// the subcommands (deploy, rollout, status, history, pause, resume).
//
// Every argument is validated before any ZooKeeper call: service names,
// addresses, durations, check specs, the COMMAND after `--` (which must be
// executable) and --on-failure (split into an argv, never given to a
// shell). Exit codes are listed in coordinator/exit_codes.h, in
// `zkroll --help` and in docs/coordinator.md.
//
// Not thread-safe; call once from main().
#ifndef ZKROLL_COORDINATOR_CLI_H_
#define ZKROLL_COORDINATOR_CLI_H_

namespace zkroll::coordinator {

// Runs the CLI and returns the process exit code.
int RunCli(int argc, char** argv);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_CLI_H_
