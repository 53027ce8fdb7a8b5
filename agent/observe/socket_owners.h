// SocketOwners: which process holds a socket, by the socket's inode.
//
// The only way Linux tells is /proc/<pid>/fd: every descriptor of a socket
// is a symlink reading "socket:[<inode>]". A scan reads every process's fd
// directory and is the expensive part (a few ms on a busy host), so the
// answers are cached and the table is rebuilt only when asked for an inode
// it does not hold, at most once per Resolve() call, and not again for
// inodes a scan already failed to find.
//
// Privileges: for a process of another user, listing /proc/<pid>/fd (mode
// 0500, owned by that user) needs CAP_DAC_READ_SEARCH and reading its
// links needs CAP_SYS_PTRACE (a ptrace read-access check); the same uid
// needs neither (unless the process made itself non-dumpable). The
// packaged agent runs as user `zkroll`; to see callers of other users its
// unit grants both as ambient capabilities (docs/agent.md). Without them
// those sockets resolve to pid 0 and Resolve() says why, naming the number
// of processes it could not read and the capabilities.
//
// Threading: not thread-safe; one owner (the traffic sampler).
#ifndef ZKROLL_AGENT_OBSERVE_SOCKET_OWNERS_H_
#define ZKROLL_AGENT_OBSERVE_SOCKET_OWNERS_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace zkroll::observe {

class SocketOwners {
 public:
  // `proc_root`: "/proc"; tests may point elsewhere.
  explicit SocketOwners(std::string proc_root = "/proc");

  struct Answer {
    std::map<uint64_t, pid_t> pids;  // every asked inode; 0 when unknown
    // Empty, or why some inodes are unknown (processes whose fd directory
    // could not be read, and what would allow it).
    std::string error;
  };
  Answer Resolve(const std::vector<uint64_t>& inodes);

  // Scans made so far (for tests and the debug log).
  uint64_t scans() const { return scans_; }

 private:
  void Scan();

  std::string proc_root_;
  std::map<uint64_t, pid_t> owner_;  // from the last scan
  std::set<uint64_t> missing_;       // asked for, absent from the last scan
  int unreadable_ = 0;               // processes the last scan could not read
  int unreadable_errno_ = 0;
  uint64_t scans_ = 0;
};

}  // namespace zkroll::observe

#endif  // ZKROLL_AGENT_OBSERVE_SOCKET_OWNERS_H_
