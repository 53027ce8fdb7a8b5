#include "agent/observe/socket_owners.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
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

SocketOwners::SocketOwners(std::string proc_root,
                           std::chrono::milliseconds min_full_scan_interval)
    : proc_root_(std::move(proc_root)),
      min_full_scan_interval_(min_full_scan_interval) {}

SocketOwners::Answer SocketOwners::Resolve(
    const std::vector<uint64_t>& inodes) {
  auto unresolved = [&] {
    for (uint64_t inode : inodes) {
      if (inode != 0 && !owner_.count(inode) && !missing_.count(inode)) {
        return true;
      }
    }
    return false;
  };
  if (unresolved() && !hot_.empty()) {
    for (pid_t pid : std::vector<pid_t>(hot_.begin(), hot_.end())) {
      RescanPid(pid);
    }
  }
  const auto now = std::chrono::steady_clock::now();
  bool full = false;
  if (unresolved() &&
      (!last_full_scan_ || now - *last_full_scan_ >= min_full_scan_interval_)) {
    last_full_scan_ = now;
    FullScan();
    full = true;
  }
  Answer a;
  bool unknown = false;
  for (uint64_t inode : inodes) {
    auto it = owner_.find(inode);
    if (it != owner_.end()) {
      a.pids[inode] = it->second;
      RememberHot(it->second);
    } else {
      a.pids[inode] = 0;
      if (inode != 0) {
        unknown = true;
        // Not found by a full scan just made: do not look again.
        if (full) missing_.insert(inode);
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

void SocketOwners::RememberHot(pid_t pid) {
  auto it = std::find(hot_.begin(), hot_.end(), pid);
  if (it != hot_.end()) {
    if (it + 1 == hot_.end()) return;
    hot_.erase(it);
  }
  hot_.push_back(pid);
  if (hot_.size() > kMaxHotPids) hot_.pop_front();
}

bool SocketOwners::ScanPid(pid_t pid, std::map<uint64_t, pid_t>* into,
                           int* err) {
  const std::string fd_dir = proc_root_ + "/" + std::to_string(pid) + "/fd";
  DIR* fds = opendir(fd_dir.c_str());
  if (fds == nullptr) {
    *err = errno;
    return false;
  }
  char link[64];
  while (dirent* f = readdir(fds)) {
    if (!AllDigits(f->d_name)) continue;
    std::string path = fd_dir + "/" + f->d_name;
    ssize_t n = readlink(path.c_str(), link, sizeof link);
    if (n <= 0 || n >= static_cast<ssize_t>(sizeof link)) continue;
    uint64_t inode = SocketInode(link, n);
    // A socket shared by several processes (fork): keep the lowest pid,
    // the parent, so the answer does not flip between scans.
    if (inode != 0) {
      auto [it, inserted] = into->emplace(inode, pid);
      if (!inserted && pid < it->second) it->second = pid;
    }
  }
  closedir(fds);
  return true;
}

void SocketOwners::RescanPid(pid_t pid) {
  // Replace what we knew of this process: its closed sockets go.
  auto known = by_pid_.find(pid);
  if (known != by_pid_.end()) {
    for (uint64_t inode : known->second) {
      auto it = owner_.find(inode);
      if (it != owner_.end() && it->second == pid) owner_.erase(it);
    }
    by_pid_.erase(known);
  }
  std::map<uint64_t, pid_t> found;
  int err = 0;
  if (!ScanPid(pid, &found, &err)) return;
  auto& mine = by_pid_[pid];
  for (const auto& [inode, owner] : found) {
    auto [it, inserted] = owner_.emplace(inode, owner);
    if (!inserted && owner < it->second) it->second = owner;
    mine.push_back(inode);
  }
}

void SocketOwners::FullScan() {
  ++scans_;
  std::map<uint64_t, pid_t> found;
  int unreadable = 0;
  int unreadable_errno = 0;
  DIR* proc = opendir(proc_root_.c_str());
  if (proc == nullptr) {
    unreadable_ = 1;
    unreadable_errno_ = errno;
    owner_.clear();
    return;
  }
  while (dirent* p = readdir(proc)) {
    if (!AllDigits(p->d_name)) continue;
    const pid_t pid = static_cast<pid_t>(std::strtol(p->d_name, nullptr, 10));
    int err = 0;
    // ENOENT: the process exited meanwhile. EACCES: not ours to read.
    if (!ScanPid(pid, &found, &err) && (err == EACCES || err == EPERM)) {
      ++unreadable;
      unreadable_errno = err;
    }
  }
  closedir(proc);
  // Whatever was asked and is still unknown after a full scan is not looked
  // for again (its socket closed, or its process is not readable).
  missing_.clear();
  by_pid_.clear();
  for (const auto& [inode, pid] : found) by_pid_[pid].push_back(inode);
  owner_ = std::move(found);
  unreadable_ = unreadable;
  unreadable_errno_ = unreadable_errno;
}

}  // namespace zkroll::observe
