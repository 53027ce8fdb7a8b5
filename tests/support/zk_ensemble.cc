#include "tests/support/zk_ensemble.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "tests/support/process.h"
#include "tests/support/wait.h"
#include "tests/support/zk_server.h"

namespace zkroll::testing {
namespace {

// Nine free ports, distinct because PickFreePort never repeats one.
std::vector<int> DistinctPorts(size_t n) {
  std::vector<int> out;
  while (out.size() < n) out.push_back(PickFreePort());
  return out;
}

}  // namespace

ZooKeeperEnsemble::ZooKeeperEnsemble() {
  char tmpl[] = "/tmp/zkroll-ensemble-XXXXXX";
  char* d = ::mkdtemp(tmpl);
  root_ = d ? d : "/tmp/zkroll-ensemble-fallback";
  std::vector<int> ports = DistinctPorts(3 * kServers);
  for (int i = 0; i < kServers; ++i) {
    servers_[i].dir = root_ + "/server" + std::to_string(i + 1);
    servers_[i].client_port = ports[3 * i];
    servers_[i].quorum_port = ports[3 * i + 1];
    servers_[i].election_port = ports[3 * i + 2];
  }
}

ZooKeeperEnsemble::~ZooKeeperEnsemble() {
  for (int i = 0; i < kServers; ++i) Kill(i);
  std::error_code ec;
  if (std::getenv("ZKROLL_KEEP_ZK_DIR") == nullptr) {
    std::filesystem::remove_all(root_, ec);
  }
}

std::string ZooKeeperEnsemble::connect_string() const {
  std::string out;
  for (int i = 0; i < kServers; ++i) {
    if (i) out += ",";
    out += "127.0.0.1:" + std::to_string(servers_[i].client_port);
  }
  return out;
}

Status ZooKeeperEnsemble::Start() {
  for (int i = 0; i < kServers; ++i) {
    ZKROLL_RETURN_IF_ERROR(StartServer(i));
  }
  if (!WaitForQuorum(std::chrono::milliseconds(90000))) {
    return DeadlineExceeded("the ensemble elected no leader within 90s; see " +
                            root_ + "/server*/server.log");
  }
  return Status::Ok();
}

Status ZooKeeperEnsemble::StartServer(int i) {
  Server& s = servers_[i];
  if (s.pid > 0) return Status::Ok();
  std::filesystem::create_directories(s.dir + "/data");
  {
    std::ofstream myid(s.dir + "/data/myid");
    myid << (i + 1) << "\n";
  }
  const std::string cfg = s.dir + "/zoo.cfg";
  {
    std::ofstream out(cfg);
    out << "tickTime=200\n"
        << "initLimit=50\n"
        << "syncLimit=10\n"
        << "dataDir=" << s.dir << "/data\n"
        << "clientPort=" << s.client_port << "\n"
        << "clientPortAddress=127.0.0.1\n"
        << "minSessionTimeout=400\n"
        << "maxSessionTimeout=60000\n"
        << "maxClientCnxns=0\n"
        << "admin.enableServer=false\n"
        << "4lw.commands.whitelist=ruok,srvr,stat,mntr,cons,dump\n";
    for (int j = 0; j < kServers; ++j) {
      out << "server." << (j + 1) << "=127.0.0.1:" << servers_[j].quorum_port
          << ":" << servers_[j].election_port << "\n";
    }
  }
  auto pid = SpawnTied(
      JavaServerArgv("org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg,
                     "128m"),
      log_file(i));
  if (!pid.ok()) return pid.status();
  s.pid = *pid;
  return Status::Ok();
}

void ZooKeeperEnsemble::Kill(int i) {
  Server& s = servers_[i];
  if (s.pid <= 0) return;
  ::kill(s.pid, SIGKILL);
  int status;
  ::waitpid(s.pid, &status, 0);
  s.pid = -1;
}

std::string ZooKeeperEnsemble::Mode(int i) const {
  if (servers_[i].pid <= 0) return "";
  const std::string out = FourLetterWord(servers_[i].client_port, "srvr");
  for (const char* mode : {"leader", "follower"}) {
    if (out.find(std::string("Mode: ") + mode) != std::string::npos) {
      return mode;
    }
  }
  return "";
}

int ZooKeeperEnsemble::Leader() const {
  for (int i = 0; i < kServers; ++i) {
    if (Mode(i) == "leader") return i;
  }
  return -1;
}

bool ZooKeeperEnsemble::WaitForQuorum(
    std::chrono::milliseconds deadline) const {
  return WaitFor(
      [&] {
        int leaders = 0;
        for (int i = 0; i < kServers; ++i) {
          if (servers_[i].pid <= 0) continue;
          const std::string m = Mode(i);
          if (m.empty()) return false;
          if (m == "leader") ++leaders;
        }
        return leaders == 1;
      },
      deadline);
}

}  // namespace zkroll::testing
