#include "agent/observe/socket_owners.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <cstdlib>

namespace zkroll::observe {
namespace {

bool AllDigits(const char* s) {
  if (*s == '\0') return false;
  for (; *s; ++s) {
    if (*s < '0' || *s > '9') return false;
  }
  return true;
}

// "socket:[12345]" -> 12345; 0 for anything else.
uint64_t SocketInode(const char* link, ssize_t len) {
  static constexpr char kPrefix[] = "socket:[";
  constexpr ssize_t kPrefixLen = sizeof kPrefix - 1;
  if (len <= kPrefixLen + 1 || memcmp(link, kPrefix, kPrefixLen) != 0 ||
      link[len - 1] != ']') {
    return 0;
  }
  uint64_t v = 0;
  for (ssize_t i = kPrefixLen; i < len - 1; ++i) {
    if (link[i] < '0' || link[i] > '9') return 0;
    v = v * 10 + static_cast<uint64_t>(link[i] - '0');
  }
  return v;
}

}  // namespace

SocketOwners::SocketOwners(std::string proc_root)
    : proc_root_(std::move(proc_root)) {}

SocketOwners::Answer SocketOwners::Resolve(
    const std::vector<uint64_t>& inodes) {
  bool need_scan = false;
  for (uint64_t inode : inodes) {
    if (inode != 0 && !owner_.count(inode) && !missing_.count(inode)) {
      need_scan = true;
    }
  }
  if (need_scan) Scan();
  Answer a;
  bool unknown = false;
  for (uint64_t inode : inodes) {
    auto it = owner_.find(inode);
    if (it != owner_.end()) {
      a.pids[inode] = it->second;
    } else {
      a.pids[inode] = 0;
      if (inode != 0) {
        missing_.insert(inode);
        unknown = true;
      }
    }
  }
  if (unknown && unreadable_ > 0) {
    a.error = "cannot read /proc/<pid>/fd of " + std::to_string(unreadable_) +
              " process(es) (" + strerror(unreadable_errno_) +
              "): peers of other users get pid 0; mapping them needs "
              "CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (or the callers' uid)";
  }
  return a;
}

void SocketOwners::Scan() {
  ++scans_;
  std::map<uint64_t, pid_t> found;
  int unreadable = 0;
  int unreadable_errno = 0;
  DIR* proc = opendir(proc_root_.c_str());
  if (proc == nullptr) {
    unreadable_ = 1;
    unreadable_errno_ = errno;
    owner_.clear();
    missing_.clear();
    return;
  }
  char link[64];
  while (dirent* p = readdir(proc)) {
    if (!AllDigits(p->d_name)) continue;
    const pid_t pid = static_cast<pid_t>(std::strtol(p->d_name, nullptr, 10));
    const std::string fd_dir = proc_root_ + "/" + p->d_name + "/fd";
    DIR* fds = opendir(fd_dir.c_str());
    if (fds == nullptr) {
      // ENOENT: the process exited meanwhile. EACCES: not ours to read.
      if (errno == EACCES || errno == EPERM) {
        ++unreadable;
        unreadable_errno = errno;
      }
      continue;
    }
    while (dirent* f = readdir(fds)) {
      if (!AllDigits(f->d_name)) continue;
      std::string path = fd_dir + "/" + f->d_name;
      ssize_t n = readlink(path.c_str(), link, sizeof link);
      if (n <= 0 || n >= static_cast<ssize_t>(sizeof link)) continue;
      uint64_t inode = SocketInode(link, n);
      // A socket shared by several processes (fork): keep the lowest pid,
      // the parent, so the answer does not flip between scans.
      if (inode != 0) {
        auto [it, inserted] = found.emplace(inode, pid);
        if (!inserted && pid < it->second) it->second = pid;
      }
    }
    closedir(fds);
  }
  closedir(proc);
  owner_ = std::move(found);
  missing_.clear();
  unreadable_ = unreadable;
  unreadable_errno_ = unreadable_errno;
}

}  // namespace zkroll::observe
