#include "tests/support/zk_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <fstream>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace zkroll::testing {
std::string EnvOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// Sends a four-letter word and returns the answer ("" on any failure).
std::string FourLetterWord(int port, const char* word) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, word, 4) == 4) {
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, n);
  }
  ::close(fd);
  return out;
}

std::vector<std::string> JavaServerArgv(const std::string& main_class,
                                        const std::string& cfg,
                                        const std::string& heap) {
  return {EnvOr("ZKROLL_JAVA", "/usr/bin/java"),
          "-Xmx" + heap,
          "-XX:+UseSerialGC",
          "-XX:TieredStopAtLevel=1",
          "-Dzookeeper.admin.enableServer=false",
          "-Dzookeeper.4lw.commands.whitelist=*",
          "-cp",
          EnvOr("ZKROLL_ZK_CLASSPATH", "/usr/share/java/zookeeper.jar"),
          main_class,
          cfg};
}

namespace {

// Whether nothing listens on (or holds) 127.0.0.1:port right now.
bool PortFree(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// The low end of the kernel's ephemeral port range.
int EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0, high = 0;
  if (in >> low >> high && low > 0) return low;
  return 32768;
}

}  // namespace

int PickFreePort() {
  // Below the kernel's ephemeral range: the kernel hands those ports out to
  // every connect() and to every bind to port 0 (the agents' metrics
  // listeners bind 127.0.0.1:0), so a port picked there could be taken
  // between this choice and the moment the test's server binds it.
  const int high = EphemeralLow() - 1;
  const int low = std::max(1024, high - 12000);
  // A test often picks several ports before anything binds them (a public
  // port and a forward port written into one agent config): a free-now
  // probe alone would hand the same port out twice. So a port once handed
  // out is never handed out again by this process.
  static std::mutex mu;
  static std::set<int> handed_out;
  std::lock_guard<std::mutex> lock(mu);
  thread_local std::mt19937 rng(std::random_device{}() ^
                                static_cast<unsigned>(::getpid()));
  std::uniform_int_distribution<int> pick(low, high);
  for (int attempt = 0; attempt < 500 && high > low; ++attempt) {
    int port = pick(rng);
    if (handed_out.count(port) == 0 && PortFree(port)) {
      handed_out.insert(port);
      return port;
    }
  }
  // Fall back to ports of the kernel's choosing.
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      if (fd >= 0) ::close(fd);
      return 0;
    }
    int port = ntohs(addr.sin_port);
    ::close(fd);
    if (handed_out.insert(port).second) return port;
  }
  return 0;
}

ZooKeeperTestServer::ZooKeeperTestServer() : ZooKeeperTestServer(Options{}) {}

ZooKeeperTestServer::ZooKeeperTestServer(Options options)
    : options_(options) {
  char tmpl[] = "/tmp/zkroll-zk-XXXXXX";
  char* d = ::mkdtemp(tmpl);
  dir_ = d ? d : "/tmp/zkroll-zk-fallback";
  log_ = dir_ + "/server.log";
}

ZooKeeperTestServer::~ZooKeeperTestServer() {
  Stop();
  std::error_code ec;
  if (std::getenv("ZKROLL_KEEP_ZK_DIR") == nullptr) {
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string ZooKeeperTestServer::connect_string() const {
  return "127.0.0.1:" + std::to_string(port_);
}

bool ZooKeeperTestServer::Answers() const {
  return FourLetterWord(port_, "ruok") == "imok" &&
         FourLetterWord(port_, "srvr").find("Mode:") != std::string::npos;
}

Status ZooKeeperTestServer::Start() {
  if (pid_ > 0) return Status::Ok();
  if (port_ == 0) port_ = PickFreePort();
  if (port_ == 0) return Internal("no free loopback port");
  std::filesystem::create_directories(dir_ + "/data");
  const std::string cfg = dir_ + "/zoo.cfg";
  {
    std::ofstream out(cfg);
    out << "tickTime=" << options_.tick_ms << "\n"
        << "dataDir=" << dir_ << "/data\n"
        << "clientPort=" << port_ << "\n"
        << "clientPortAddress=127.0.0.1\n"
        << "minSessionTimeout=" << 2 * options_.tick_ms << "\n"
        << "maxSessionTimeout=" << options_.max_session_ms << "\n"
        << "maxClientCnxns=0\n"
        << "admin.enableServer=false\n"
        << "4lw.commands.whitelist=ruok,srvr,stat,mntr,cons,dump\n";
  }
  auto pid = SpawnTied(
      JavaServerArgv("org.apache.zookeeper.server.ZooKeeperServerMain", cfg,
                     "256m"),
      log_);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  bool up = WaitFor(
      [&] {
        int status;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          return true;
        }
        return Answers();
      },
      milliseconds(60000));
  if (pid_ < 0) {
    return Unavailable("ZooKeeper test server exited at start; see " + log_);
  }
  if (!up) {
    Stop();
    return DeadlineExceeded("ZooKeeper test server did not answer on port " +
                            std::to_string(port_) + " within 60s; see " + log_);
  }
  return Status::Ok();
}

void ZooKeeperTestServer::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

Status ZooKeeperTestServer::ExpireSession(int64_t session_id,
                                          const std::string& passwd) {
  // Attaching a second handle to the session moves it away from its owner;
  // closing that handle ends it. The owner may win the session back by
  // reconnecting before our close is sent, so repeat until an attach is
  // told that the session has expired.
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto expired = AttachAndClose(session_id, passwd);
    if (!expired.ok()) return expired.status();
    if (*expired) return Status::Ok();
  }
  return Internal("session still alive after 50 attempts to expire it");
}

Result<bool> ZooKeeperTestServer::AttachAndClose(int64_t session_id,
                                           const std::string& passwd) {
  clientid_t cid{};
  cid.client_id = session_id;
  std::memcpy(cid.passwd, passwd.data(),
              std::min(passwd.size(), sizeof cid.passwd));
  struct State {
    std::mutex mu;
    bool connected = false;
    bool expired = false;
  } state;
  Signal signal;
  struct Ctx {
    State* state;
    Signal* signal;
  } ctx{&state, &signal};
  auto watcher = [](zhandle_t*, int type, int st, const char*, void* c) {
    auto* x = static_cast<Ctx*>(c);
    if (type == ZOO_SESSION_EVENT) {
      std::lock_guard<std::mutex> l(x->state->mu);
      if (st == ZOO_CONNECTED_STATE) x->state->connected = true;
      if (st == ZOO_EXPIRED_SESSION_STATE) x->state->expired = true;
    }
    x->signal->Notify();
  };
  zhandle_t* zh =
      zookeeper_init(connect_string().c_str(), watcher, 10000, &cid, &ctx, 0);
  if (zh == nullptr) return Internal("zookeeper_init failed");
  signal.WaitFor(
      [&] {
        std::lock_guard<std::mutex> l(state.mu);
        return state.connected || state.expired;
      },
      milliseconds(10000));
  zookeeper_close(zh);
  std::lock_guard<std::mutex> l(state.mu);
  return state.expired;
}
}  // namespace zkroll::testing
