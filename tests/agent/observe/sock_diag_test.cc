// The sock_diag reader, socket owners and sampler on real loopback sockets
// of this process, and the netlink parser on malformed replies.
#include "agent/observe/sock_diag.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "agent/observe/socket_owners.h"
#include "agent/observe/traffic_sampler.h"
#include "tests/support/wait.h"

namespace zkroll::observe {
namespace {

using std::chrono::milliseconds;
using testing::WaitFor;

constexpr milliseconds kDeadline(10000);

class Sock {
 public:
  explicit Sock(int fd = -1) : fd_(fd) {}
  ~Sock() { Close(); }
  Sock(Sock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Sock& operator=(Sock&& o) noexcept {
    Close();
    fd_ = o.fd_;
    o.fd_ = -1;
    return *this;
  }
  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// A listener on loopback (IPv4 or IPv6) with an ephemeral port.
struct Listener {
  int family;
  Sock sock;
  uint16_t port = 0;
  std::string ip;

  static std::optional<Listener> Open(int family) {
    Listener l{family, Sock(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)), 0,
               ""};
    if (l.sock.fd() < 0) return std::nullopt;
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof *a;
      l.ip = "127.0.0.1";
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof *a;
      l.ip = "::1";
    }
    if (bind(l.sock.fd(), reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
        listen(l.sock.fd(), 16) != 0 ||
        getsockname(l.sock.fd(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      return std::nullopt;
    }
    l.port = ntohs(family == AF_INET
                       ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                       : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return l;
  }

  // Connects a client and accepts it: {client, server side}.
  std::pair<Sock, Sock> Connect() {
    Sock c(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(sock.fd(), reinterpret_cast<sockaddr*>(&ss), &len);
    EXPECT_EQ(connect(c.fd(), reinterpret_cast<sockaddr*>(&ss), len), 0)
        << strerror(errno);
    Sock s(accept4(sock.fd(), nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_GE(s.fd(), 0) << strerror(errno);
    return {std::move(c), std::move(s)};
  }
};

uint16_t LocalPort(const Sock& s) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(s.fd(), reinterpret_cast<sockaddr*>(&ss), &len);
  return ntohs(ss.ss_family == AF_INET
                   ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                   : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

uint64_t Inode(const Sock& s) {
  struct stat st {};
  fstat(s.fd(), &st);
  return st.st_ino;
}

void Send(const Sock& s, size_t n) {
  std::string data(n, 'x');
  ASSERT_EQ(send(s.fd(), data.data(), data.size(), 0), static_cast<ssize_t>(n));
}

const TcpSocket* Find(const std::vector<TcpSocket>& all, uint16_t local_port,
                      uint16_t remote_port) {
  for (const auto& s : all) {
    if (s.local_port == local_port && s.remote_port == remote_port) return &s;
  }
  return nullptr;
}

void SeesConnectionsBytesAndOwners(int family) {
  auto l = Listener::Open(family);
  if (!l) GTEST_SKIP() << "no loopback for family " << family;
  auto [c1, s1] = l->Connect();
  auto [c2, s2] = l->Connect();
  Send(c1, 1000);
  Send(c2, 10);
  const uint16_t p1 = LocalPort(c1), p2 = LocalPort(c2);

  // A connection on another port must not appear.
  auto other = Listener::Open(family);
  ASSERT_TRUE(other);
  auto [c3, s3] = other->Connect();

  std::vector<TcpSocket> all;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = DumpTcpByPort(l->port);
        EXPECT_TRUE(r.ok()) << r.status().ToString();
        if (!r.ok()) return false;
        all = *r;
        const TcpSocket* a = Find(all, l->port, p1);
        const TcpSocket* b = Find(all, l->port, p2);
        return a && b && a->bytes_received == 1000u && b->bytes_received == 10u;
      },
      kDeadline));
  // The kernel's filter alone already keeps only this port's sockets.
  auto raw = DumpTcpKernelFiltered(l->port);
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  EXPECT_GE(raw->size(), 4u);  // two connections, both sides
  for (const auto& s : *raw) {
    EXPECT_TRUE(s.local_port == l->port || s.remote_port == l->port)
        << s.local_port << " -> " << s.remote_port;
    EXPECT_NE(s.state, TcpState::kListen);
  }
  const TcpSocket* server1 = Find(all, l->port, p1);
  EXPECT_EQ(server1->state, TcpState::kEstablished);
  EXPECT_EQ(server1->family, family);
  EXPECT_EQ(server1->local_ip, l->ip);
  EXPECT_EQ(server1->remote_ip, l->ip);
  EXPECT_EQ(server1->uid, getuid());
  EXPECT_EQ(server1->inode, Inode(s1));
  ASSERT_TRUE(server1->last_data_recv_ms.has_value());

  // The client's own side, and its owner: this process.
  const TcpSocket* client1 = Find(all, p1, l->port);
  ASSERT_NE(client1, nullptr);
  EXPECT_EQ(client1->inode, Inode(c1));
  SocketOwners owners;
  auto answer = owners.Resolve({client1->inode, Inode(c2)});
  EXPECT_EQ(answer.pids[client1->inode], getpid());
  EXPECT_EQ(answer.pids[Inode(c2)], getpid());
  EXPECT_EQ(owners.scans(), 1u);
  // Cached: no second scan for known inodes.
  answer = owners.Resolve({client1->inode});
  EXPECT_EQ(owners.scans(), 1u);
  EXPECT_EQ(answer.pids[client1->inode], getpid());
  // A new connection of a process already seen is found by reading that
  // process alone, without a full scan.
  auto [c4, s4] = l->Connect();
  answer = owners.Resolve({Inode(c4)});
  EXPECT_EQ(answer.pids[Inode(c4)], getpid());
  EXPECT_EQ(owners.scans(), 1u);
}

TEST(SockDiagTest, SeesIpv4ConnectionsBytesAndOwner) {
  SeesConnectionsBytesAndOwners(AF_INET);
}

TEST(SockDiagTest, SeesIpv6ConnectionsBytesAndOwner) {
  SeesConnectionsBytesAndOwners(AF_INET6);
}

TEST(SockDiagTest, ServerCloseFirstLeavesTimeWait) {
  auto l = Listener::Open(AF_INET);
  ASSERT_TRUE(l);
  auto [c, s] = l->Connect();
  const uint16_t peer = LocalPort(c);
  s.Close();  // the instance closes first: its side ends in TIME_WAIT
  c.Close();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = DumpTcpByPort(l->port);
        if (!r.ok()) return false;
        const TcpSocket* t = Find(*r, l->port, peer);
        return t && t->state == TcpState::kTimeWait && t->inode == 0 &&
               !t->bytes_received.has_value();
      },
      kDeadline));
}

TEST(SockDiagTest, UnknownInodeIsPidZeroAndScannedOnce) {
  SocketOwners owners;
  const uint64_t bogus = 0xfffffffff0ull;
  auto a = owners.Resolve({bogus});
  EXPECT_EQ(a.pids[bogus], 0);
  EXPECT_EQ(owners.scans(), 1u);
  a = owners.Resolve({bogus});
  EXPECT_EQ(owners.scans(), 1u) << "a known miss must not rescan /proc";
}

TEST(SockDiagTest, FullScansAreRateLimited) {
  SocketOwners owners("/proc", std::chrono::hours(1));
  auto a = owners.Resolve({0xfffffffff1ull});
  EXPECT_EQ(owners.scans(), 1u);
  // Another unknown inode within the interval: no second full scan; it is
  // pid 0 for now.
  a = owners.Resolve({0xfffffffff2ull});
  EXPECT_EQ(owners.scans(), 1u);
  EXPECT_EQ(a.pids[0xfffffffff2ull], 0);
}

TEST(SockDiagTest, UnreadableProcRootIsReported) {
  SocketOwners owners("/nonexistent-proc-root");
  auto a = owners.Resolve({42});
  EXPECT_EQ(a.pids[42], 0);
  EXPECT_NE(a.error.find("CAP_SYS_PTRACE"), std::string::npos) << a.error;
}

TEST(TrafficSamplerTest, SeesPeerPidAndSkipsOwnProcess) {
  auto l = Listener::Open(AF_INET);
  ASSERT_TRUE(l);
  auto [c, s] = l->Connect();
  Send(c, 123);
  auto address = InstanceAddress::FromParts(l->ip, l->port).value();
  // As an observer in another process would see us.
  TrafficSampler other(address, /*self=*/-1);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = other.Take();
        EXPECT_TRUE(r.ok()) << r.status().ToString();
        if (!r.ok() || r->connections.size() != 1) return false;
        const auto& conn = r->connections[0];
        return conn.peer_pid == getpid() && conn.bytes_received == 123u &&
               conn.peer_port == LocalPort(c) && conn.peer_ip == "127.0.0.1" &&
               r->pids_known;
      },
      kDeadline));
  // The agent's own connections are not traffic.
  TrafficSampler own(address);
  auto r = own.Take();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->connections.empty());
}

TEST(TrafficSamplerTest, FindsAnIpv6CallerOfAnIpv4Instance) {
  auto l = Listener::Open(AF_INET);
  ASSERT_TRUE(l);
  // An IPv6 socket connected to the IPv4 listener through a mapped address,
  // as Java clients connect by default.
  Sock c(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_GE(c.fd(), 0);
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  to.sin6_port = htons(l->port);
  ASSERT_EQ(inet_pton(AF_INET6, "::ffff:127.0.0.1", &to.sin6_addr), 1);
  if (connect(c.fd(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    GTEST_SKIP() << "no IPv4-mapped IPv6 connect here: " << strerror(errno);
  }
  Sock s(accept4(l->sock.fd(), nullptr, nullptr, SOCK_CLOEXEC));
  Send(c, 5);
  TrafficSampler sampler(InstanceAddress::FromParts(l->ip, l->port).value(),
                         /*self=*/-1);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = sampler.Take();
        if (!r.ok() || r->connections.size() != 1) return false;
        const auto& conn = r->connections[0];
        return conn.peer_pid == getpid() && conn.peer_ip == "127.0.0.1" &&
               conn.peer_port == LocalPort(c) && conn.bytes_received == 5u;
      },
      kDeadline));
}

// --- the parser on hand-made replies ---------------------------------------

std::vector<uint8_t> Message(uint16_t type, uint32_t seq,
                             const std::vector<uint8_t>& body) {
  std::vector<uint8_t> out(NLMSG_SPACE(body.size()));
  nlmsghdr h{};
  h.nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(body.size()));
  h.nlmsg_type = type;
  h.nlmsg_seq = seq;
  memcpy(out.data(), &h, sizeof h);
  memcpy(out.data() + NLMSG_HDRLEN, body.data(), body.size());
  return out;
}

std::vector<uint8_t> Record(uint16_t sport, uint16_t dport,
                            const std::vector<uint8_t>& attrs = {}) {
  inet_diag_msg m{};
  m.idiag_family = AF_INET;
  m.idiag_state = 1;
  m.id.idiag_sport = htons(sport);
  m.id.idiag_dport = htons(dport);
  m.id.idiag_src[0] = htonl(INADDR_LOOPBACK);
  m.id.idiag_dst[0] = htonl(INADDR_LOOPBACK);
  m.idiag_inode = 77;
  std::vector<uint8_t> out(NLMSG_ALIGN(sizeof m) + attrs.size());
  memcpy(out.data(), &m, sizeof m);
  if (!attrs.empty()) {
    memcpy(out.data() + NLMSG_ALIGN(sizeof m), attrs.data(), attrs.size());
  }
  return out;
}

template <typename T>
std::vector<uint8_t> Bytes(const T& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  return std::vector<uint8_t>(p, p + sizeof v);
}

TEST(InetDiagParserTest, ParsesRecordsAndDone) {
  auto a = Message(SOCK_DIAG_BY_FAMILY, 5, Record(80, 4000));
  auto b = Message(SOCK_DIAG_BY_FAMILY, 4, Record(81, 4001));  // older seq
  auto done = Message(NLMSG_DONE, 5, Bytes(0));
  std::vector<uint8_t> buf = a;
  buf.insert(buf.end(), b.begin(), b.end());
  buf.insert(buf.end(), done.begin(), done.end());
  std::vector<TcpSocket> out;
  bool finished = false;
  ASSERT_TRUE(
      ParseInetDiagReply(buf.data(), buf.size(), 5, &out, &finished).ok());
  EXPECT_TRUE(finished);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].local_port, 80);
  EXPECT_EQ(out[0].remote_port, 4000);
  EXPECT_EQ(out[0].local_ip, "127.0.0.1");
  EXPECT_EQ(out[0].inode, 77u);
  EXPECT_FALSE(out[0].bytes_received.has_value());
}

TEST(InetDiagParserTest, RefusesEveryBadLength) {
  std::vector<TcpSocket> out;
  bool done = false;
  auto good = Message(SOCK_DIAG_BY_FAMILY, 1, Record(80, 4000));
  // Shorter than a header.
  Status s = ParseInetDiagReply(good.data(), 10, 1, &out, &done);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("shorter than a netlink header"),
            std::string::npos);
  // A header claiming more than the buffer holds.
  s = ParseInetDiagReply(good.data(), good.size() - 4, 1, &out, &done);
  EXPECT_NE(s.message().find("message length"), std::string::npos)
      << s.message();
  // A record too short for inet_diag_msg.
  auto shortrec = Message(SOCK_DIAG_BY_FAMILY, 1, std::vector<uint8_t>(8));
  s = ParseInetDiagReply(shortrec.data(), shortrec.size(), 1, &out, &done);
  EXPECT_NE(s.message().find("socket record of 8 bytes"), std::string::npos)
      << s.message();
  // An attribute whose length runs past the record.
  rtattr bad{};
  bad.rta_len = 400;
  bad.rta_type = INET_DIAG_INFO;
  auto badattr = Message(SOCK_DIAG_BY_FAMILY, 1, Record(80, 4000, Bytes(bad)));
  s = ParseInetDiagReply(badattr.data(), badattr.size(), 1, &out, &done);
  EXPECT_NE(s.message().find("attribute length 400"), std::string::npos)
      << s.message();
  // A tcp_info too short for bytes_received is not an error: no value.
  std::vector<uint8_t> info(RTA_LENGTH(8));
  rtattr shortinfo{};
  shortinfo.rta_len = static_cast<uint16_t>(RTA_LENGTH(8));
  shortinfo.rta_type = INET_DIAG_INFO;
  memcpy(info.data(), &shortinfo, sizeof shortinfo);
  auto oldkernel = Message(SOCK_DIAG_BY_FAMILY, 1, Record(80, 4000, info));
  out.clear();
  ASSERT_TRUE(
      ParseInetDiagReply(oldkernel.data(), oldkernel.size(), 1, &out, &done)
          .ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].bytes_received.has_value());
  EXPECT_TRUE(out.size() == 1 && !done);
}

TEST(InetDiagParserTest, KernelErrorsNameTheirCause) {
  std::vector<TcpSocket> out;
  bool done = false;
  nlmsgerr e{};
  e.error = -EPERM;
  auto msg = Message(NLMSG_ERROR, 3, Bytes(e));
  Status s = ParseInetDiagReply(msg.data(), msg.size(), 3, &out, &done);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("Operation not permitted"), std::string::npos)
      << s.message();
  auto trunc = Message(NLMSG_ERROR, 3, std::vector<uint8_t>(4));
  s = ParseInetDiagReply(trunc.data(), trunc.size(), 3, &out, &done);
  EXPECT_NE(s.message().find("error message of 4 bytes"), std::string::npos)
      << s.message();
  auto donerr = Message(NLMSG_DONE, 3, Bytes(-EINVAL));
  s = ParseInetDiagReply(donerr.data(), donerr.size(), 3, &out, &done);
  EXPECT_NE(s.message().find("Invalid argument"), std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace zkroll::observe
