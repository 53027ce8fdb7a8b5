// The exec check: run a command in its own process group and judge its exit
// status, without a thread, without a shell and without SIGCHLD.
//
// The daemon runs other children too (other checks, hooks), so this file
// never calls waitpid(-1) and never installs a SIGCHLD handler: it waits for
// exactly its own pid. The exit is noticed through a pidfd (readable once the
// process is a zombie) or, on kernels without pidfds, by polling
// waitid(WNOWAIT) on a timer. Until we reap the command its pid, and so its
// process group id, cannot be reused; that is why every kill of the group
// happens before the reap.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/health/check_session.h"
#include "common/pidfd.h"

extern char** environ;

namespace zkroll::health::internal {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;

std::atomic<bool> g_use_pidfd{true};

// How much of the command's stdout+stderr goes into a failure's reason.
constexpr size_t kOutputKept = 200;
// How long to wait for a SIGKILLed command to die before reporting the
// timeout anyway (a process in uninterruptible sleep, e.g. on a hung NFS
// mount, can take much longer; it is still reaped when it finally exits).
constexpr Millis kKillGrace{1000};
// Polling interval bounds for kernels without pidfd_open.
constexpr Millis kFirstPoll{1};
constexpr Millis kMaxPoll{50};

std::string ErrnoText(int err) {
  return std::error_code(err, std::generic_category()).message();
}

// Owns a file descriptor until it is released to an Asio descriptor.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// Resolves a bare command name through $PATH now, in the daemon, so that the
// spawn itself needs no search and reports a precise error.
Result<std::string> ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* env_path = std::getenv("PATH");
  std::string search =
      env_path != nullptr && *env_path != '\0' ? env_path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= search.size()) {
    size_t colon = search.find(':', start);
    if (colon == std::string::npos) colon = search.size();
    std::string dir = search.substr(start, colon - start);
    start = colon + 1;
    // An empty entry means the working directory: a daemon must not run
    // whatever happens to lie there.
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return NotFound(ErrnoText(ENOENT) + " ('" + name +
                  "' is not in $PATH=" + search + ")");
}

std::vector<std::string> CheckEnvironment(const CheckTarget& target) {
  constexpr std::string_view kIp = "ZKROLL_CHECK_IP=";
  constexpr std::string_view kPort = "ZKROLL_CHECK_PORT=";
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view kv(*entry);
    if (kv.substr(0, kIp.size()) == kIp ||
        kv.substr(0, kPort.size()) == kPort) {
      continue;
    }
    env.emplace_back(kv);
  }
  env.push_back(std::string(kIp) + target.ip);
  env.push_back(std::string(kPort) + std::to_string(target.port));
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// The command's output as one printable line for a reason.
std::string OneLine(const std::string& raw, bool truncated) {
  std::string out;
  bool space = false;
  for (unsigned char c : raw) {
    if (c < 0x20 || c == 0x7f) {
      space = true;
      continue;
    }
    if (c == ' ') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += static_cast<char>(c);
  }
  if (truncated && !out.empty()) out += "...";
  return out;
}

std::string SignalName(int sig) {
  std::string out = "signal " + std::to_string(sig);
#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* abbrev = ::sigabbrev_np(sig)) {
    out += std::string(" (SIG") + abbrev + ")";
  }
#endif
  return out;
}

class ExecCheck final : public CheckSession {
 public:
  ExecCheck(asio::any_io_executor ex, const CheckSpec& spec,
            const CheckTarget& target, Millis timeout, CheckCallback done,
           TimeSource& time)
      : CheckSession(ex, target, timeout, std::move(done), time),
        argv_(spec.exec_argv),
        output_(ex),
        exit_watch_(ex),
        deadline_(MakeTimer()),
        poll_timer_(ex) {}

  // Runs only when the io_context was destroyed (or its handlers dropped)
  // while the command was still running: nothing will ever reap it through
  // the event loop, so kill and reap it here. The wait is bounded because a
  // process stuck in uninterruptible sleep must not hang the daemon's
  // shutdown; such a process stays a zombie until we exit.
  ~ExecCheck() override {
    if (pid_ <= 0 || reaped_) return;
    ::kill(-pid_, SIGKILL);
    for (int i = 0; i < 1000; ++i) {
      pid_t r = ::waitpid(pid_, nullptr, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) return;
      struct timespec pause = {0, 1000 * 1000};
      ::nanosleep(&pause, nullptr);
    }
  }

 private:
  void Begin() override {
    if (argv_.empty()) {
      Finish(false, "exec failed: empty command");
      return;
    }
    Result<std::string> program = ResolveProgram(argv_[0]);
    if (!program.ok()) {
      Finish(false, "exec failed: " + program.status().message());
      return;
    }
    Status spawned = Spawn(*program);
    if (!spawned.ok()) {
      Finish(false, spawned.message());
      return;
    }
    WaitForOutput();
    WatchExit();
    deadline_->ExpiresAfter(timeout());
    deadline_->AsyncWait([self = SharedAs<ExecCheck>()](error_code ec) {
      if (!ec) self->OnDeadline();
    });
  }

  Status Spawn(const std::string& program) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      return Internal("exec failed: pipe: " + ErrnoText(errno));
    }
    UniqueFd read_end(fds[0]);
    UniqueFd write_end(fds[1]);
    // Only our end is non-blocking: the command writes to a normal pipe.
    int flags = ::fcntl(read_end.get(), F_GETFL);
    if (flags < 0 || ::fcntl(read_end.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
      return Internal("exec failed: fcntl: " + ErrnoText(errno));
    }

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
    posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    // Our own descriptors are all O_CLOEXEC, but libraries in the daemon
    // (the ZooKeeper client, logging) may open some without it.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own process group, so that a timeout kills the command together
    // with everything it started.
    posix_spawnattr_setpgroup(&attr, 0);
    // Signals the daemon ignores or blocks (SIGPIPE, SIGTERM while shutting
    // down) would otherwise stay ignored or blocked in the command.
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_setsigdefault(&attr, &all);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                        POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK);

    std::vector<std::string> argv_copy = argv_;
    std::vector<std::string> env = CheckEnvironment(target());
    std::vector<char*> argv_ptrs = CStrings(argv_copy);
    std::vector<char*> env_ptrs = CStrings(env);
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, program.c_str(), &actions, &attr,
                           argv_ptrs.data(), env_ptrs.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      return Unavailable("exec failed: " + ErrnoText(rc) + " (" + program +
                         ")");
    }
    pid_ = pid;
    // Only the command may hold the write end, or we would never see EOF.
    write_end.reset();
    output_.assign(read_end.release());
    return Status::Ok();
  }

  // The output pipe is drained by hand on readiness rather than with
  // async_read_some, so that no bytes are ever in flight inside Asio when the
  // command exits: OnExited then finds all of them in the pipe, in order.
  void WaitForOutput() {
    output_.async_wait(asio::posix::stream_descriptor::wait_read,
                       [self = SharedAs<ExecCheck>()](error_code ec) {
                         if (ec || !self->output_.is_open()) return;
                         if (self->DrainOutput()) self->WaitForOutput();
                       });
  }

  // Reads what the pipe holds now. Everything beyond kOutputKept bytes is
  // read and dropped, so that a chatty command never blocks on a full pipe.
  // Returns false at EOF or on an error.
  bool DrainOutput() {
    std::array<char, 4096> buf;
    while (true) {
      ssize_t n = ::read(output_.native_handle(), buf.data(), buf.size());
      if (n > 0) {
        size_t room = kOutputKept - output_head_.size();
        size_t keep = std::min(room, static_cast<size_t>(n));
        output_head_.append(buf.data(), keep);
        if (keep < static_cast<size_t>(n)) output_truncated_ = true;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }

  void WatchExit() {
    if (g_use_pidfd.load()) {
      int fd = OpenPidfd(pid_);
      if (fd >= 0) {
        error_code ec;
        exit_watch_.assign(fd, ec);
        if (ec) {
          ::close(fd);
        } else {
          // The pidfd is registered with the reactor before this handler
          // returns to the event loop, so an exit that already happened is
          // still reported as an event.
          exit_watch_.async_wait(asio::posix::stream_descriptor::wait_read,
                                 [self = SharedAs<ExecCheck>()](error_code ec) {
                                   self->OnPidfdReadable(ec);
                                 });
          return;
        }
      }
    }
    PollExit();
  }

  void OnPidfdReadable(error_code ec) {
    if (reaped_ || ec == asio::error::operation_aborted) return;
    if (!ec && HasExited()) return OnExited();
    if (ec) {
      // The reactor could not watch the pidfd after all: fall back.
      error_code ignored;
      exit_watch_.close(ignored);
      return PollExit();
    }
    exit_watch_.async_wait(asio::posix::stream_descriptor::wait_read,
                           [self = SharedAs<ExecCheck>()](error_code ec) {
                             self->OnPidfdReadable(ec);
                           });
  }

  void PollExit() {
    poll_timer_.expires_after(poll_delay_);
    poll_delay_ = std::min(poll_delay_ * 2, kMaxPoll);
    poll_timer_.async_wait([self = SharedAs<ExecCheck>()](error_code ec) {
      if (ec || self->reaped_) return;
      if (self->HasExited()) return self->OnExited();
      self->PollExit();
    });
  }

  // True once the command is a zombie (or, if something else in the process
  // reaped it behind our back, gone). Does not reap it.
  bool HasExited() {
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info,
                 WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == EINTR) return false;
      // ECHILD: someone else reaped it (or SIGCHLD is ignored), so its pid
      // may already belong to another process.
      child_lost_ = true;
      return true;
    }
    return info.si_pid != 0;
  }

  void OnExited() {
    if (reaped_) return;
    // Still a zombie, so the group id is still ours: kill anything the
    // command left running in its group, then reap it.
    if (!child_lost_) ::kill(-pid_, SIGKILL);
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    int wait_errno = r < 0 ? errno : 0;
    reaped_ = true;

    DrainOutput();
    error_code ignored;
    output_.close(ignored);
    exit_watch_.close(ignored);
    poll_timer_.cancel();
    deadline_->Cancel();

    if (finished()) return;  // cancelled, or reported after the kill grace
    std::string output = OneLine(output_head_, output_truncated_);
    std::string suffix = output.empty() ? "" : ": " + output;
    if (killed_at_timeout_) {
      Finish(false, "killed at timeout " + FormatDuration(timeout()) + suffix);
    } else if (r < 0) {
      Finish(false, "could not read the exit status: " + ErrnoText(wait_errno));
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      Finish(true, "ok (exit 0 in " + FormatElapsed(Elapsed()) + ")");
    } else if (WIFEXITED(status)) {
      Finish(false,
             "exit status " + std::to_string(WEXITSTATUS(status)) + suffix);
    } else if (WIFSIGNALED(status)) {
      Finish(false, "killed by " + SignalName(WTERMSIG(status)) + suffix);
    } else {
      Finish(false, "unexpected wait status " + std::to_string(status));
    }
  }

  void OnDeadline() {
    if (reaped_ || killed_at_timeout_ || finished()) return;
    killed_at_timeout_ = true;
    ::kill(-pid_, SIGKILL);
    // The exit watch reports the result once the group leader is dead.
    deadline_->ExpiresAfter(kKillGrace);
    deadline_->AsyncWait([self = SharedAs<ExecCheck>()](error_code ec) {
      if (ec || self->finished()) return;
      self->Finish(false, "killed at timeout " +
                              FormatDuration(self->timeout()) +
                              ", but the process has not exited yet");
    });
  }

  void Abort() override {
    deadline_->Cancel();
    if (pid_ > 0 && !reaped_) {
      // The exit watch keeps running and reaps the command once it is dead.
      ::kill(-pid_, SIGKILL);
    }
  }

  const std::vector<std::string> argv_;
  asio::posix::stream_descriptor output_;      // read end of stdout+stderr
  asio::posix::stream_descriptor exit_watch_;  // pidfd, if the kernel has it
  std::unique_ptr<Timer> deadline_;
  // On the machine's clock, not the check's time source: polling is how
  // the exit is noticed without a pidfd (an event, not a decision by elapsed
  // time), and a test's virtual clock standing still must not hide it.
  asio::steady_timer poll_timer_;
  Millis poll_delay_ = kFirstPoll;
  pid_t pid_ = -1;
  bool reaped_ = false;
  bool killed_at_timeout_ = false;
  bool child_lost_ = false;
  std::string output_head_;
  bool output_truncated_ = false;
};

}  // namespace

std::shared_ptr<CheckSession> MakeExecCheck(asio::any_io_executor ex,
                                            const CheckSpec& spec,
                                            const CheckTarget& target,
                                            Millis timeout,
                                            CheckCallback done,
    TimeSource& time) {
  return std::make_shared<ExecCheck>(std::move(ex), spec, target, timeout,
                                     std::move(done), time);
}

void SetExecUsesPidfdForTesting(bool use_pidfd) { g_use_pidfd = use_pidfd; }

}  // namespace zkroll::health::internal
