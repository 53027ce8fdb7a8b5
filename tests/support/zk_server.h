// A real ZooKeeper server for tests: the Debian `zookeeper` package's Java
// server, run directly with a generated config on a free loopback port and
// its own temporary data directory.
//
// Start() waits until the server answers; Stop() and Restart() keep the
// data (and so the sessions, if the restart is within their timeout).
// ExpireSession() ends a client's session the way the server would: it
// opens a second handle with that session's id and password and closes it.
#ifndef ZKROLL_TESTS_SUPPORT_ZK_SERVER_H_
#define ZKROLL_TESTS_SUPPORT_ZK_SERVER_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace zkroll::testing {

class ZooKeeperTestServer {
 public:
  struct Options {
    int tick_ms = 200;            // min session timeout = 2 ticks
    int max_session_ms = 60000;
  };
  ZooKeeperTestServer();
  explicit ZooKeeperTestServer(Options options);
  ~ZooKeeperTestServer();
  ZooKeeperTestServer(const ZooKeeperTestServer&) = delete;
  ZooKeeperTestServer& operator=(const ZooKeeperTestServer&) = delete;

  Status Start();
  void Stop();
  Status Restart() {
    Stop();
    return Start();
  }
  bool running() const { return pid_ > 0; }

  int port() const { return port_; }
  std::string connect_string() const;  // "127.0.0.1:<port>"
  const std::string& data_dir() const { return dir_; }
  const std::string& log_file() const { return log_; }

  // Expires the session `session_id` (password `passwd`, 16 bytes).
  Status ExpireSession(int64_t session_id, const std::string& passwd);

 private:
  bool Answers() const;
  // True if the server said the session had already expired.
  Result<bool> AttachAndClose(int64_t session_id, const std::string& passwd);
  Options options_;
  std::string dir_;
  std::string log_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// A TCP port free on 127.0.0.1 now (a bind succeeded and was closed), chosen
// at random below the kernel's ephemeral range so that no connect() or
// bind to port 0 elsewhere can take it before the caller binds it. Never
// returns a port it returned before in this process, so the ports one test
// picks are distinct even before any of them is bound. Thread-safe; 0 if
// no port could be found.
int PickFreePort();

// Sends a ZooKeeper four-letter word ("ruok", "srvr", ...) to
// 127.0.0.1:port and returns the answer ("" on any failure).
std::string FourLetterWord(int port, const char* word);

// The command line of a ZooKeeper Java server from the Debian package:
// `main_class` (ZooKeeperServerMain or quorum.QuorumPeerMain) with config
// `cfg` and heap `heap` (e.g. "256m").
std::vector<std::string> JavaServerArgv(const std::string& main_class,
                                        const std::string& cfg,
                                        const std::string& heap);

// The environment variable `name`, or `fallback` if unset or empty
// (ZKROLL_JAVA, ZKROLL_ZK_CLASSPATH override where the server comes from).
std::string EnvOr(const char* name, const char* fallback);

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_SUPPORT_ZK_SERVER_H_
