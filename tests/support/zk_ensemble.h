// A real three-server ZooKeeper ensemble for fault tests: the Debian
// `zookeeper` package's QuorumPeerMain, three Java processes on loopback
// (client, quorum and election ports picked free), each with its own data
// directory and myid file.
//
// Start() starts every server and waits until each one answers `srvr` as
// leader or follower. Leader() asks every running server which it is. Kill()
// SIGKILLs one server (its data stays), StartServer() restarts it.
// WaitForQuorum() waits until a running server is leader again. Not
// thread-safe; one owner (the test).
#ifndef ZKROLL_TESTS_SUPPORT_ZK_ENSEMBLE_H_
#define ZKROLL_TESTS_SUPPORT_ZK_ENSEMBLE_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace zkroll::testing {

class ZooKeeperEnsemble {
 public:
  static constexpr int kServers = 3;
  ZooKeeperEnsemble();
  ~ZooKeeperEnsemble();  // kills every server and removes the data
  ZooKeeperEnsemble(const ZooKeeperEnsemble&) = delete;
  ZooKeeperEnsemble& operator=(const ZooKeeperEnsemble&) = delete;

  Status Start();
  Status StartServer(int i);  // 0-based
  void Kill(int i);
  bool running(int i) const { return servers_[i].pid > 0; }

  // "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
  std::string connect_string() const;
  int client_port(int i) const { return servers_[i].client_port; }
  // The 0-based index of the running server that says "Mode: leader", or
  // -1 if none does right now.
  int Leader() const;
  // Waits until some running server is leader and every other running
  // server is its follower.
  bool WaitForQuorum(std::chrono::milliseconds deadline) const;
  std::string log_file(int i) const { return servers_[i].dir + "/server.log"; }

 private:
  struct Server {
    std::string dir;
    int client_port = 0;
    int quorum_port = 0;
    int election_port = 0;
    pid_t pid = -1;
  };
  std::string Mode(int i) const;  // "leader", "follower", or ""
  std::string root_;
  Server servers_[kServers];
};

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_SUPPORT_ZK_ENSEMBLE_H_
