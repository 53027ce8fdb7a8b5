// Real child processes for integration tests (agent, coordinator, tiny
// services): started with an argv (no shell), output captured in a file,
// killed with the parent if the test crashes.
#ifndef ZKROLL_TESTS_SUPPORT_PROCESS_H_
#define ZKROLL_TESTS_SUPPORT_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace zkroll::testing {

// Starts argv[0] (an absolute path, no shell) with stdout and stderr
// appended to `log_path`, stdin from /dev/null, `extra_env` added to our
// environment, and SIGKILL delivered to it if this process dies first, so
// no server or agent outlives a crashed test. Returns the child's pid.
// `pending_signals` are blocked and raised in the child just before execve,
// so the program starts with them pending (both survive execve): a signal
// that arrives before its first instruction, deterministically.
Result<pid_t> SpawnTied(const std::vector<std::string>& argv,
                        const std::string& log_path,
                        const std::map<std::string, std::string>& extra_env = {},
                        const std::vector<int>& pending_signals = {});

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();  // SIGKILLs and reaps a still running child
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv[0] (an absolute path) with `extra_env` added to ours.
  // stdout and stderr go to `log_path` (appended).
  // `pending_signals`: see SpawnTied.
  Status Start(const std::vector<std::string>& argv,
               const std::string& log_path,
               const std::map<std::string, std::string>& extra_env = {},
               const std::vector<int>& pending_signals = {});

  pid_t pid() const { return pid_; }
  bool running();
  void Signal(int sig);
  // Waits for exit; returns the exit code (128+signal if killed), or
  // nullopt if it is still running after `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // Whole captured output so far.
  std::string Output() const;
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
};

// Runs argv to completion (at most `timeout`) and returns exit code and
// combined output.
struct RunResult {
  int exit_code = -1;
  std::string output;
};
RunResult RunCommand(const std::vector<std::string>& argv,
                     std::chrono::milliseconds timeout,
                     const std::map<std::string, std::string>& extra_env = {});

// A fresh temporary directory, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  // Writes `content` into path()/name (mode `mode`) and returns its path.
  std::string Write(const std::string& name, const std::string& content,
                    int mode = 0644) const;

 private:
  std::string path_;
};

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_SUPPORT_PROCESS_H_
