#include "tests/support/zk_reply_dropper.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace zkroll::testing {
namespace {

int32_t ReadBe32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return static_cast<int32_t>(ntohl(v));
}

bool SendAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

struct ZkReplyDropper::Pair {
  int client = -1;
  int server = -1;
  std::string from_client;  // bytes not yet forwarded (partial packets)
  std::string from_server;
  bool client_connected = false;  // the ConnectRequest went by
  bool server_connected = false;  // the ConnectResponse went by
  bool target = false;            // holds the request whose reply is dropped
  int32_t target_xid = 0;
  bool hold = false;      // the target's reply is held, not dropped
  bool holding = false;   // replies from the target's on wait in `held`
  std::string held;
  ~Pair() {
    if (client >= 0) ::close(client);
    if (server >= 0) ::close(server);
  }
};

ZkReplyDropper::ZkReplyDropper(int server_port) : server_port_(server_port) {
  if (::pipe(wake_) != 0) return;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return;
  }
  port_ = ntohs(a.sin_port);
  listen_fd_ = fd;
  thread_ = std::thread([this] { Run(); });
}

ZkReplyDropper::~ZkReplyDropper() {
  stop_ = true;
  if (wake_[1] >= 0) {
    char c = 0;
    (void)!::write(wake_[1], &c, 1);
  }
  if (thread_.joinable()) thread_.join();
  pairs_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

std::string ZkReplyDropper::connect_string() const {
  return "127.0.0.1:" + std::to_string(port_);
}

void ZkReplyDropper::DropReplyTo(const std::string& path) {
  std::string pattern(4, '\0');
  uint32_t n = htonl(static_cast<uint32_t>(path.size()));
  std::memcpy(pattern.data(), &n, 4);
  pattern += path;
  std::lock_guard<std::mutex> l(mu_);
  pattern_ = pattern;
  hold_mode_ = false;
}

void ZkReplyDropper::HoldReplyTo(const std::string& path) {
  DropReplyTo(path);
  std::lock_guard<std::mutex> l(mu_);
  hold_mode_ = true;
}

void ZkReplyDropper::Release() {
  holding_ = false;
  release_ = true;
  char c = 0;
  (void)!::write(wake_[1], &c, 1);  // the proxy thread delivers held replies
}

void ZkReplyDropper::DeliverHeld() {
  for (auto& p : pairs_) {
    if (!p->holding) continue;
    p->holding = false;
    p->target = false;
    SendAll(p->client, p->held.data(), p->held.size());
    p->held.clear();
  }
}

std::string ZkReplyDropper::Describe() const {
  return "proxy " + connect_string() + " -> 127.0.0.1:" +
         std::to_string(server_port_) + ": " + std::to_string(accepted_) +
         " connections accepted, " + std::to_string(refused_) +
         " refused while holding, " + std::to_string(server_failures_) +
         " could not reach the server (last: " +
         std::strerror(server_errno_) + "), reply " +
         (dropped_ ? "dropped (error " + std::to_string(dropped_error_) + ")"
          : held_  ? "held"
                   : "not dropped");
}

void ZkReplyDropper::Run() {
  while (!stop_) {
    std::vector<pollfd> fds;
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (auto& p : pairs_) {
      fds.push_back({p->client, POLLIN, 0});
      fds.push_back({p->server, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[0].revents != 0) {
      char buf[16];
      (void)!::read(wake_[0], buf, sizeof(buf));
      if (stop_) break;
    }
    if (release_.exchange(false)) DeliverHeld();
    if (fds[1].revents & POLLIN) Accept();
    // fds[2 + 2i] and fds[3 + 2i] belong to pairs_[i] as polled.
    std::vector<Pair*> closing;
    for (size_t i = 0; i + 2 < fds.size(); i += 2) {
      Pair* p = pairs_[i / 2].get();
      bool keep = true;
      if (fds[2 + i].revents != 0) keep = Pump(*p, /*from_client=*/true);
      if (keep && fds[3 + i].revents != 0) keep = Pump(*p, false);
      if (!keep) closing.push_back(p);
    }
    for (Pair* p : closing) {
      for (auto it = pairs_.begin(); it != pairs_.end(); ++it) {
        if (it->get() == p) {
          pairs_.erase(it);
          break;
        }
      }
    }
  }
}

void ZkReplyDropper::Accept() {
  int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return;
  ++accepted_;
  if (holding_) {  // the client sees its connection fail and tries again
    ++refused_;
    ::close(c);
    return;
  }
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(server_port_));
  if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    server_errno_ = errno;
    ++server_failures_;
    if (s >= 0) ::close(s);
    ::close(c);
    return;
  }
  auto p = std::make_unique<Pair>();
  p->client = c;
  p->server = s;
  pairs_.push_back(std::move(p));
}

bool ZkReplyDropper::Pump(Pair& p, bool from_client) {
  char buf[65536];
  ssize_t n = ::recv(from_client ? p.client : p.server, buf, sizeof(buf), 0);
  if (n <= 0) return false;
  std::string& pending = from_client ? p.from_client : p.from_server;
  pending.append(buf, static_cast<size_t>(n));
  while (pending.size() >= 4) {
    size_t len = static_cast<size_t>(ReadBe32(pending.data()));
    if (pending.size() < 4 + len) break;
    std::string packet = pending.substr(0, 4 + len);
    pending.erase(0, 4 + len);
    if (from_client) {
      if (!p.client_connected) {
        p.client_connected = true;  // the ConnectRequest
      } else if (len >= 8) {
        std::lock_guard<std::mutex> l(mu_);
        if (!pattern_.empty() &&
            packet.find(pattern_, 12) != std::string::npos) {
          pattern_.clear();
          p.target = true;
          p.hold = hold_mode_;
          p.target_xid = ReadBe32(packet.data() + 4);
        }
      }
      if (!SendAll(p.server, packet.data(), packet.size())) return false;
    } else {
      if (!p.server_connected) {
        p.server_connected = true;  // the ConnectResponse
      } else if (p.holding) {
        p.held += packet;
        continue;
      } else if (p.target && p.hold && len >= 16 &&
                 ReadBe32(packet.data() + 4) == p.target_xid) {
        // Applied (or refused) by the server; the client keeps waiting.
        p.holding = true;
        p.held += packet;
        held_ = true;
        continue;
      } else if (p.target && len >= 16 &&
                 ReadBe32(packet.data() + 4) == p.target_xid) {
        // The server answered: it applied (or refused) the request. The
        // client never hears of it.
        dropped_error_ = ReadBe32(packet.data() + 16);
        holding_ = true;
        dropped_ = true;
        return false;
      }
      if (!SendAll(p.client, packet.data(), packet.size())) return false;
    }
  }
  return true;
}

}  // namespace zkroll::testing
