// A pidfd: a file descriptor that refers to one process, not to a pid number.
//
// It polls readable once that process has exited (is a zombie or reaped),
// whoever its parent is, and a pid reused by a later process can never be
// mistaken for it. Used to wait for a command we spawned (coordinator
// COMMAND, exec health checks) and for a coordinator that is not our child.
#ifndef ZKROLL_COMMON_PIDFD_H_
#define ZKROLL_COMMON_PIDFD_H_

#include <sys/types.h>

namespace zkroll {

// Opens a pidfd for `pid` (pidfd_open(2), Linux 5.3 and later). Returns the
// descriptor, which the caller owns and must close; the kernel always sets
// O_CLOEXEC on it. Returns -1 with errno set when the process does not exist
// (ESRCH), when the kernel lacks the call (ENOSYS, also when this build's
// headers do not know it) or the descriptor table is full: callers then fall
// back to polling. Thread-safe.
int OpenPidfd(pid_t pid);

}  // namespace zkroll

#endif  // ZKROLL_COMMON_PIDFD_H_
