// SocketOwners: which process holds a socket, by the socket's inode.
//
// The only way Linux tells is /proc/<pid>/fd: every descriptor of a socket
// is a symlink reading "socket:[<inode>]". A full scan reads every
// process's fd directory and is the expensive part (milliseconds on a busy
// host), so answers are cached and, for an inode not in the cache:
//   1. the processes that held sockets found before are read again first
//      (a caller opening a connection per request is the same process each
//      time, and one process is cheap to read);
//   2. only then the full table is rebuilt, at most once per
//      `min_full_scan_interval`; an inode a full scan did not find is not
//      looked for again.
// An inode left unknown because of the rate limit is answered pid 0 for
// now and looked for again on a later call.
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

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace zkroll::observe {

class SocketOwners {
 public:
  // `proc_root`: "/proc"; tests may point elsewhere.
  explicit SocketOwners(std::string proc_root = "/proc",
                        std::chrono::milliseconds min_full_scan_interval =
                            std::chrono::seconds(1));

  struct Answer {
    std::map<uint64_t, pid_t> pids;  // every asked inode; 0 when unknown
    // Empty, or why some inodes are unknown (processes whose fd directory
    // could not be read, and what would allow it).
    std::string error;
  };
  Answer Resolve(const std::vector<uint64_t>& inodes);

  // Full scans made so far (for tests and the debug log).
  uint64_t scans() const { return scans_; }

 private:
  static constexpr size_t kMaxHotPids = 64;
  void FullScan();
  // Reads the socket fds of `pid` into `into`; false (and *err) if its
  // directory is gone or unreadable.
  bool ScanPid(pid_t pid, std::map<uint64_t, pid_t>* into, int* err);
  // Reads one process again, replacing what owner_ held for it.
  void RescanPid(pid_t pid);
  void RememberHot(pid_t pid);

  std::string proc_root_;
  std::chrono::milliseconds min_full_scan_interval_;
  std::optional<std::chrono::steady_clock::time_point> last_full_scan_;
  std::map<uint64_t, pid_t> owner_;  // from the last full scan, and since
  std::set<uint64_t> missing_;       // asked for, absent from a full scan
  std::map<pid_t, std::vector<uint64_t>> by_pid_;  // owner_, by process
  std::deque<pid_t> hot_;  // owners found recently, newest last
  int unreadable_ = 0;     // processes the last scan could not read
  int unreadable_errno_ = 0;
  uint64_t scans_ = 0;
};

}  // namespace zkroll::observe

#endif  // ZKROLL_AGENT_OBSERVE_SOCKET_OWNERS_H_
