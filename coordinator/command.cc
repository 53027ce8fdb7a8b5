#include "coordinator/command.h"

#include <glog/logging.h>

#include "common/command_line.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "common/names.h"
#include "common/pidfd.h"

extern char** environ;

namespace zkroll::coordinator {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxLine = 8192;

// Splits pipe output into lines for the sink.
class LineSplitter {
 public:
  LineSplitter(OutputStream stream, const OutputSink& sink)
      : stream_(stream), sink_(sink) {}

  void Feed(const char* data, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (data[i] == '\n') {
        Emit();
      } else {
        buffer_ += data[i];
        if (buffer_.size() >= kMaxLine) Emit();
      }
    }
  }
  void Flush() {
    if (!buffer_.empty()) Emit();
  }

 private:
  void Emit() {
    if (!buffer_.empty() && buffer_.back() == '\r') buffer_.pop_back();
    if (sink_) sink_(stream_, buffer_);
    buffer_.clear();
  }
  OutputStream stream_;
  const OutputSink& sink_;
  std::string buffer_;
};

// Reads what is available on a non-blocking pipe. Returns false at EOF or
// on an error (the pipe is then closed and `fd` set to -1).
bool Pump(int& fd, LineSplitter& splitter) {
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      splitter.Feed(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    ::close(fd);
    fd = -1;
    return false;
  }
}

std::string ErrnoText(int err) { return std::strerror(err); }

}  // namespace

std::string CommandOutcome::Describe(const CommandSpec& spec) const {
  switch (kind) {
    case Kind::kExited:
      return "exit status " + std::to_string(exit_code);
    case Kind::kSignaled:
      return std::string("killed by signal ") + std::to_string(signal) + " (" +
             strsignal(signal) + ")";
    case Kind::kTimedOut:
      return "stopped at the timeout of " + FormatDuration(spec.timeout);
    case Kind::kAborted:
      return "stopped by the abort";
    case Kind::kFenced:
      return "stopped because the coordinator's ZooKeeper session was lost";
    case Kind::kCannotStart:
      return error;
  }
  return "unknown";
}

CommandOutcome RunCommand(const CommandSpec& spec, const OutputSink& sink,
                          AbortSignal* abort, AbortSignal* fence) {
  CommandOutcome outcome;
  const auto start = Clock::now();
  if (spec.argv.empty() || spec.argv[0].empty()) {
    outcome.error = "no command given";
    return outcome;
  }

  // Everything the child needs is built before the spawn.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    std::string key(kv.substr(0, kv.find('=')));
    if (spec.env.count(key) == 0) env.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.env) env.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = spec.argv;
  std::vector<char*> argv;
  for (auto& a : argv_copy) argv.push_back(a.data());
  argv.push_back(nullptr);

  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    outcome.error = "cannot create pipes: " + ErrnoText(errno);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) {
      if (fd >= 0) ::close(fd);
    }
    return outcome;
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own process group: a timeout or abort stops the whole tree, and a
  // Ctrl-C on the terminal reaches the command only through us.
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1,
                SIGUSR2, SIGALRM}) {
    sigaddset(&defaults, s);
  }
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                      POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  int rc =
      ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    outcome.error =
        "cannot start " + QuoteForMessage(spec.argv[0]) + ": " + ErrnoText(rc);
    outcome.elapsed = std::chrono::duration_cast<Millis>(Clock::now() - start);
    return outcome;
  }

  int out_fd = out_pipe[0];
  int err_fd = err_pipe[0];
  ::fcntl(out_fd, F_SETFL, O_NONBLOCK);
  ::fcntl(err_fd, F_SETFL, O_NONBLOCK);
  LineSplitter out_lines(OutputStream::kStdout, sink);
  LineSplitter err_lines(OutputStream::kStderr, sink);
  int pidfd = OpenPidfd(pid);
  if (spec.on_started) spec.on_started(static_cast<int>(pid));

  const auto deadline = start + spec.timeout;
  std::optional<Clock::time_point> kill_at;  // set once SIGTERM was sent
  bool killed = false;
  bool timed_out = false;
  bool aborted = false;
  bool fenced = false;
  int wait_status = 0;
  bool exited = false;

  auto stop = [&] {
    ::kill(-pid, SIGTERM);
    kill_at = Clock::now() + spec.kill_grace;
  };

  while (!exited) {
    auto now = Clock::now();
    if (!kill_at && !timed_out && !aborted && now >= deadline) {
      timed_out = true;
      stop();
    }
    if (kill_at && !killed && now >= *kill_at) {
      ::kill(-pid, SIGKILL);
      killed = true;
    }
    // Wake up for the next deadline; without a pidfd also to poll waitpid.
    Clock::time_point wake = kill_at && !killed ? *kill_at : deadline;
    if (pidfd < 0) wake = std::min(wake, now + Millis(50));
    int timeout_ms = static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<Millis>(wake - now).count() + 1));
    if (killed) timeout_ms = pidfd < 0 ? 50 : -1;

    pollfd fds[5];
    int n = 0;
    int out_i = -1, err_i = -1, abort_i = -1, fence_i = -1, pid_i = -1;
    if (out_fd >= 0) fds[out_i = n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[err_i = n++] = {err_fd, POLLIN, 0};
    if (abort != nullptr && !aborted && !timed_out) {
      fds[abort_i = n++] = {abort->fd(), POLLIN, 0};
    }
    if (fence != nullptr && !kill_at) {
      fds[fence_i = n++] = {fence->fd(), POLLIN, 0};
    }
    if (pidfd >= 0) fds[pid_i = n++] = {pidfd, POLLIN, 0};
    int ready = ::poll(fds, static_cast<nfds_t>(n), timeout_ms);
    if (ready < 0 && errno != EINTR) {
      LOG(ERROR) << "poll: " << ErrnoText(errno);
    }
    if (out_i >= 0 && fds[out_i].revents != 0) Pump(out_fd, out_lines);
    if (err_i >= 0 && fds[err_i].revents != 0) Pump(err_fd, err_lines);
    if (abort_i >= 0 && fds[abort_i].revents != 0 && !kill_at) {
      aborted = true;
      stop();
    }
    if (fence_i >= 0 && fds[fence_i].revents != 0 && !kill_at) {
      fenced = true;
      stop();
    }
    if (pid_i < 0 || fds[pid_i].revents != 0) {
      pid_t r = ::waitpid(pid, &wait_status, WNOHANG);
      if (r == pid) exited = true;
    }
  }
  // Take what the command wrote before it exited; processes it left behind
  // may keep the pipes open, so never wait for EOF.
  if (out_fd >= 0) {
    Pump(out_fd, out_lines);
    if (out_fd >= 0) ::close(out_fd);
  }
  if (err_fd >= 0) {
    Pump(err_fd, err_lines);
    if (err_fd >= 0) ::close(err_fd);
  }
  out_lines.Flush();
  err_lines.Flush();
  if (pidfd >= 0) ::close(pidfd);
  if (timed_out || aborted || fenced) {
    ::kill(-pid, SIGKILL);  // leftovers of a stop
  }

  outcome.elapsed = std::chrono::duration_cast<Millis>(Clock::now() - start);
  if (timed_out) {
    outcome.kind = CommandOutcome::Kind::kTimedOut;
  } else if (aborted) {
    outcome.kind = CommandOutcome::Kind::kAborted;
  } else if (fenced) {
    outcome.kind = CommandOutcome::Kind::kFenced;
  } else if (WIFEXITED(wait_status)) {
    outcome.kind = CommandOutcome::Kind::kExited;
    outcome.exit_code = WEXITSTATUS(wait_status);
  } else {
    outcome.kind = CommandOutcome::Kind::kSignaled;
    outcome.signal = WTERMSIG(wait_status);
  }
  if (WIFEXITED(wait_status)) outcome.exit_code = WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) outcome.signal = WTERMSIG(wait_status);
  return outcome;
}

Status CheckExecutable(const std::string& program) {
  if (program.empty()) return InvalidArgument("the command is empty");
  auto executable = [](const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
  };
  if (program.find('/') != std::string::npos) {
    if (executable(program)) return Status::Ok();
    return InvalidArgument("command " + QuoteForMessage(program) +
                           " is not an executable file; check the path and "
                           "its permissions");
  }
  const char* path_env = std::getenv("PATH");
  std::string path = path_env != nullptr ? path_env : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t colon = path.find(':', start);
    std::string dir = path.substr(
        start, colon == std::string::npos ? std::string::npos : colon - start);
    if (dir.empty()) dir = ".";
    if (executable(dir + "/" + program)) return Status::Ok();
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return InvalidArgument("command " + QuoteForMessage(program) +
                         " was not found in $PATH; give its absolute path");
}

Result<std::vector<std::string>> SplitCommandLine(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("bad command line " + QuoteForMessage(text) + ": " +
                           why +
                           " (example: /usr/local/bin/rollback --to 'v1 2')");
  };
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return bad("it contains a control character");
  }
  auto words = ::zkroll::SplitCommandLine(text);
  if (!words.ok()) return bad(words.status().message());
  if (words->empty()) return bad("it is empty");
  return words;
}

}  // namespace zkroll::coordinator
