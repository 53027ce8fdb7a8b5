#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "tests/support/files.h"
#include "tests/support/wait.h"

extern char** environ;

namespace zkroll::testing {

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
}

Result<pid_t> SpawnTied(const std::vector<std::string>& argv,
                        const std::string& log_path,
                        const std::map<std::string, std::string>& extra_env,
                        const std::vector<int>& pending_signals) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    if (extra_env.count(key) == 0) env.push_back(kv);
  }
  for (auto& [k, v] : extra_env) env.push_back(k + "=" + v);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return Internal(std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    std::vector<char*> args, envp;
    for (auto& a : const_cast<std::vector<std::string>&>(argv)) {
      args.push_back(a.data());
    }
    args.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    if (!pending_signals.empty()) {
      sigset_t held;
      sigemptyset(&held);
      for (int sig : pending_signals) sigaddset(&held, sig);
      ::sigprocmask(SIG_BLOCK, &held, nullptr);
      for (int sig : pending_signals) ::raise(sig);
    }
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

Status ChildProcess::Start(const std::vector<std::string>& argv,
                           const std::string& log_path,
                           const std::map<std::string, std::string>& extra_env,
                           const std::vector<int>& pending_signals) {
  log_path_ = log_path;
  exit_code_.reset();
  auto pid = SpawnTied(argv, log_path, extra_env, pending_signals);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  return Status::Ok();
}

bool ChildProcess::running() {
  if (pid_ <= 0 || exit_code_) return false;
  int status;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status)
                                   : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, sig);
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  WaitFor([&] { return !running(); }, timeout);
  return exit_code_;
}

std::string ChildProcess::Output() const {
  return ReadFile(log_path_);
}

RunResult RunCommand(const std::vector<std::string>& argv,
                     std::chrono::milliseconds timeout,
                     const std::map<std::string, std::string>& extra_env) {
  TempDir dir;
  ChildProcess p;
  RunResult out;
  if (!p.Start(argv, dir.File("out.log"), extra_env).ok()) return out;
  auto code = p.Wait(timeout);
  if (!code) {
    p.Signal(SIGKILL);
    code = p.Wait(std::chrono::milliseconds(5000));
    out.output = "[killed after timeout]\n";
  }
  out.exit_code = code.value_or(-1);
  out.output += p.Output();
  return out;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/zkroll-test-XXXXXX";
  char* d = ::mkdtemp(tmpl);
  path_ = d ? d : "/tmp";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (path_ != "/tmp") std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Write(const std::string& name, const std::string& content,
                           int mode) const {
  std::string p = File(name);
  {
    std::ofstream out(p, std::ios::trunc);
    out << content;
  }
  ::chmod(p.c_str(), static_cast<mode_t>(mode));
  return p;
}

}  // namespace zkroll::testing
