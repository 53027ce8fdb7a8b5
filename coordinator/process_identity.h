// ProcessIdentity: names a process so that another program, later, can
// tell whether that very process still runs: the host, the boot (a reboot
// ends every process), the pid and the pid's start time (a pid can be
// reused by an unrelated process).
//
// The coordinator records the identity of each COMMAND it starts in the
// journal (the "command" step). A coordinator that is SIGKILLed leaves its
// COMMAND running (COMMAND has its own process group); `zkroll rollout
// --resume` uses the identity to wait until that COMMAND has ended before
// it touches the instance again (docs/design.md, "Resume").
//
// Linux only (/proc, pidfd_open). Thread-safety: free functions.
#ifndef ZKROLL_COORDINATOR_PROCESS_IDENTITY_H_
#define ZKROLL_COORDINATOR_PROCESS_IDENTITY_H_

#include <sys/types.h>

#include <chrono>
#include <string>

#include "common/status.h"
#include "coordinator/abort_signal.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator {

using ProcessIdentity = proto::DeployRecord::Step::Process;

// The identity of `pid` on this host now. Errors: NotFound if it is gone.
Result<ProcessIdentity> IdentifyProcess(pid_t pid);

// This host's name and boot id, as IdentifyProcess records them.
std::string ThisHost();
std::string ThisBootId();

enum class ProcessState {
  kGone,     // this host, and the process (that pid with that start) ended
  kRunning,  // this host, same boot, same pid and start time
  kElsewhere,  // recorded on another host: cannot be observed from here
};
ProcessState StateOf(const ProcessIdentity& process);

// Waits until `process` is gone (it must be on this host). Returns Ok once
// gone, DeadlineExceeded at `deadline`, Aborted when `abort` fires.
Status WaitProcessGone(const ProcessIdentity& process,
                       std::chrono::steady_clock::time_point deadline,
                       AbortSignal* abort);

// "pid 4242 on build-3" for messages.
std::string DescribeProcess(const ProcessIdentity& process);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_PROCESS_IDENTITY_H_
