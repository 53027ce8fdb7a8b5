#include "coordinator/process_identity.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/pidfd.h"

namespace zkroll::coordinator {
namespace {

using Clock = std::chrono::steady_clock;

// Field 22 of /proc/<pid>/stat (starttime, clock ticks after boot). The
// command name (field 2) is in parentheses and may hold spaces or ')', so
// fields are counted after the last ')'. With `live_only`, a zombie (state
// Z or X) has ended: NotFound, as for a reaped process (its new parent may
// be slow to reap).
Result<std::string> StartTicks(pid_t pid, bool live_only) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!in || !std::getline(in, stat)) {
    return NotFound("no process " + std::to_string(pid));
  }
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) {
    return Internal("cannot parse /proc/" + std::to_string(pid) + "/stat");
  }
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  // After ')': field 3 (state) is the first; starttime is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(fields >> field)) {
      return Internal("cannot parse /proc/" + std::to_string(pid) + "/stat");
    }
    if (live_only && i == 3 && (field == "Z" || field == "X")) {
      return NotFound("process " + std::to_string(pid) + " has ended");
    }
  }
  return field;
}

}  // namespace

std::string ThisHost() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

std::string ThisBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

Result<ProcessIdentity> IdentifyProcess(pid_t pid) {
  // A COMMAND that already exited is a zombie until we reap it: still
  // identified, so the journal names it.
  auto ticks = StartTicks(pid, /*live_only=*/false);
  if (!ticks.ok()) return ticks.status();
  ProcessIdentity p;
  p.set_host(ThisHost());
  p.set_boot_id(ThisBootId());
  p.set_pid(static_cast<int32_t>(pid));
  p.set_start_ticks(*ticks);
  return p;
}

ProcessState StateOf(const ProcessIdentity& process) {
  if (process.host() != ThisHost()) return ProcessState::kElsewhere;
  if (process.boot_id() != ThisBootId()) return ProcessState::kGone;
  auto ticks = StartTicks(static_cast<pid_t>(process.pid()), /*live_only=*/true);
  if (!ticks.ok() || *ticks != process.start_ticks()) {
    return ProcessState::kGone;
  }
  return ProcessState::kRunning;
}

Status WaitProcessGone(const ProcessIdentity& process,
                       Clock::time_point deadline, AbortSignal* abort) {
  if (StateOf(process) == ProcessState::kElsewhere) {
    return FailedPrecondition(DescribeProcess(process) +
                              " cannot be observed from " + ThisHost());
  }
  const pid_t pid = static_cast<pid_t>(process.pid());
  // A pidfd polls readable when the process exits, whoever its parent is
  // (the killed coordinator was, so we cannot wait() for it). It is opened
  // before the start time is compared, so a pid reused after the check
  // cannot be the process we wait for.
  const int pidfd = OpenPidfd(pid);
  while (true) {
    if (StateOf(process) != ProcessState::kRunning) {
      if (pidfd >= 0) ::close(pidfd);
      return Status::Ok();
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      if (pidfd >= 0) ::close(pidfd);
      return DeadlineExceeded(DescribeProcess(process) + " still runs");
    }
    // Without a pidfd (kernels before 5.3) the start time is re-read every
    // 200 ms.
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    const int timeout = static_cast<int>(
        std::min<long long>(left.count() + 1, pidfd >= 0 ? 60000 : 200));
    pollfd fds[2] = {{pidfd, POLLIN, 0}, {abort ? abort->fd() : -1, POLLIN, 0}};
    int rc = ::poll(fds, 2, timeout);
    if (rc < 0 && errno != EINTR) {
      if (pidfd >= 0) ::close(pidfd);
      return Internal(std::string("poll: ") + std::strerror(errno));
    }
    if (abort != nullptr && abort->requested()) {
      if (pidfd >= 0) ::close(pidfd);
      return Aborted("stopped while waiting for " + DescribeProcess(process));
    }
  }
}

std::string DescribeProcess(const ProcessIdentity& process) {
  return "pid " + std::to_string(process.pid()) + " on " + process.host();
}

}  // namespace zkroll::coordinator
