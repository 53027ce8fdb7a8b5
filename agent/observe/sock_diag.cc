#include "agent/observe/sock_diag.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>

namespace zkroll::observe {
namespace {

// Every state but LISTEN, SYN_SENT (our own outgoing connects) and CLOSE.
constexpr uint32_t kStates = (1u << static_cast<int>(TcpState::kEstablished)) |
                             (1u << static_cast<int>(TcpState::kSynRecv)) |
                             (1u << static_cast<int>(TcpState::kFinWait1)) |
                             (1u << static_cast<int>(TcpState::kFinWait2)) |
                             (1u << static_cast<int>(TcpState::kTimeWait)) |
                             (1u << static_cast<int>(TcpState::kCloseWait)) |
                             (1u << static_cast<int>(TcpState::kLastAck)) |
                             (1u << static_cast<int>(TcpState::kClosing));

// Large enough for one batch of the kernel's dump (it fills up to the
// smaller of our buffer and 32 KiB per recv).
constexpr size_t kRecvBuffer = 64 * 1024;

std::atomic<uint32_t> next_seq{1};

Status ErrnoStatus(const std::string& what, int err) {
  std::string m = what + ": " + strerror(err);
  if (err == EPERM || err == EACCES) {
    return Status(StatusCode::kPermissionDenied, m);
  }
  return Unavailable(m);
}

// Closes a file descriptor on every path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string AddressText(int family, const uint32_t words[4]) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET) {
    inet_ntop(AF_INET, words, buf, sizeof buf);
    return buf;
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(words);
  static const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0,    0,
                                            0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(bytes, kMappedPrefix, sizeof kMappedPrefix) == 0) {
    inet_ntop(AF_INET, bytes + 12, buf, sizeof buf);
    return buf;
  }
  inet_ntop(AF_INET6, words, buf, sizeof buf);
  return buf;
}

// Appends one op of the inet_diag filter language.
void AddOp(std::vector<uint8_t>* out, uint8_t code, uint8_t yes, uint16_t no) {
  inet_diag_bc_op op{};
  op.code = code;
  op.yes = yes;
  op.no = no;
  const auto* p = reinterpret_cast<const uint8_t*>(&op);
  out->insert(out->end(), p, p + sizeof op);
}

Status DumpFamily(int fd, uint8_t family, uint16_t port,
                  std::vector<TcpSocket>* out) {
  const uint32_t seq = next_seq.fetch_add(1);
  std::vector<uint8_t> bc = PortFilterBytecode(port);

  std::vector<uint8_t> msg(NLMSG_SPACE(sizeof(inet_diag_req_v2)) +
                           RTA_SPACE(bc.size()));
  auto* nlh = reinterpret_cast<nlmsghdr*>(msg.data());
  nlh->nlmsg_len = static_cast<uint32_t>(msg.size());
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = seq;
  auto* req = reinterpret_cast<inet_diag_req_v2*>(NLMSG_DATA(nlh));
  req->sdiag_family = family;
  req->sdiag_protocol = IPPROTO_TCP;
  req->idiag_states = kStates;
  req->idiag_ext = 1 << (INET_DIAG_INFO - 1);
  auto* rta = reinterpret_cast<rtattr*>(msg.data() +
                                        NLMSG_SPACE(sizeof(inet_diag_req_v2)));
  rta->rta_type = INET_DIAG_REQ_BYTECODE;
  rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(bc.size()));
  memcpy(RTA_DATA(rta), bc.data(), bc.size());

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, msg.data(), msg.size(), 0,
             reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    return ErrnoStatus("sock_diag request", errno);
  }

  std::vector<uint8_t> buf(kRecvBuffer);
  bool done = false;
  while (!done) {
    iovec iov{buf.data(), buf.size()};
    sockaddr_nl from{};
    msghdr mh{};
    mh.msg_name = &from;
    mh.msg_namelen = sizeof from;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = recvmsg(fd, &mh, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return Unavailable("sock_diag: the kernel did not answer within 1s");
      }
      return ErrnoStatus("sock_diag reply", errno);
    }
    if (mh.msg_flags & MSG_TRUNC) {
      return Internal("sock_diag reply truncated (more than " +
                      std::to_string(buf.size()) + " bytes in one message)");
    }
    if (from.nl_pid != 0) continue;  // not from the kernel
    ZKROLL_RETURN_IF_ERROR(ParseInetDiagReply(
        buf.data(), static_cast<size_t>(n), seq, out, &done));
  }
  return Status::Ok();
}

}  // namespace

std::string TcpStateName(TcpState s) {
  switch (s) {
    case TcpState::kEstablished:
      return "ESTABLISHED";
    case TcpState::kSynSent:
      return "SYN_SENT";
    case TcpState::kSynRecv:
      return "SYN_RECV";
    case TcpState::kFinWait1:
      return "FIN_WAIT1";
    case TcpState::kFinWait2:
      return "FIN_WAIT2";
    case TcpState::kTimeWait:
      return "TIME_WAIT";
    case TcpState::kClose:
      return "CLOSE";
    case TcpState::kCloseWait:
      return "CLOSE_WAIT";
    case TcpState::kLastAck:
      return "LAST_ACK";
    case TcpState::kListen:
      return "LISTEN";
    case TcpState::kClosing:
      return "CLOSING";
  }
  return "STATE_" + std::to_string(static_cast<int>(s));
}

std::vector<uint8_t> PortFilterBytecode(uint16_t port) {
  // The kernel runs the ops in order; each jumps `yes` or `no` bytes ahead.
  // A socket is kept when a jump lands exactly on the end of the program,
  // dropped when it lands past it (end + 4). A port comparison is an op
  // followed by a second op whose `no` field holds the port. The kernel's
  // audit walks the program along the `yes` jumps and accepts a `no` jump
  // only to an op on that walk, hence the JMP (which always takes `no`)
  // rather than a `yes` jump over the dport block.
  //    0: sport >= port ?  8 : 20     8: sport <= port ? 16 : 20
  //   16: jump to the end (keep)
  //   20: dport >= port ? 28 : drop  28: dport <= port ? keep : drop
  constexpr uint8_t kOp = sizeof(inet_diag_bc_op);
  constexpr uint8_t kCmp = 2 * kOp;
  constexpr uint16_t kDport = 2 * kCmp + kOp;   // 20
  constexpr uint16_t kLen = kDport + 2 * kCmp;  // 36
  std::vector<uint8_t> out;
  AddOp(&out, INET_DIAG_BC_S_GE, kCmp, kDport);
  AddOp(&out, INET_DIAG_BC_NOP, 0, port);
  AddOp(&out, INET_DIAG_BC_S_LE, kCmp, kDport - kCmp);
  AddOp(&out, INET_DIAG_BC_NOP, 0, port);
  AddOp(&out, INET_DIAG_BC_JMP, kOp, kLen - 2 * kCmp);
  AddOp(&out, INET_DIAG_BC_D_GE, kCmp, kLen - kDport + 4);
  AddOp(&out, INET_DIAG_BC_NOP, 0, port);
  AddOp(&out, INET_DIAG_BC_D_LE, kCmp, kCmp + 4);
  AddOp(&out, INET_DIAG_BC_NOP, 0, port);
  return out;
}

Status ParseInetDiagReply(const uint8_t* data, size_t len, uint32_t seq,
                          std::vector<TcpSocket>* out, bool* done) {
  size_t off = 0;
  while (off < len) {
    if (len - off < sizeof(nlmsghdr)) {
      return Internal("sock_diag reply: " + std::to_string(len - off) +
                      " trailing bytes, shorter than a netlink header");
    }
    nlmsghdr hdr;
    memcpy(&hdr, data + off, sizeof hdr);
    if (hdr.nlmsg_len < sizeof(nlmsghdr) || hdr.nlmsg_len > len - off) {
      return Internal("sock_diag reply: message length " +
                      std::to_string(hdr.nlmsg_len) + " outside 16.." +
                      std::to_string(len - off));
    }
    const uint8_t* body = data + off + NLMSG_HDRLEN;
    const size_t body_len = hdr.nlmsg_len - NLMSG_HDRLEN;
    const size_t step = NLMSG_ALIGN(hdr.nlmsg_len);
    off = step > len - off ? len : off + step;
    if (hdr.nlmsg_seq != seq) continue;  // a late answer to an older request

    if (hdr.nlmsg_type == NLMSG_DONE) {
      // Since Linux 4.x a dump may end with an error code in DONE.
      if (body_len >= sizeof(int)) {
        int err;
        memcpy(&err, body, sizeof err);
        if (err < 0) return ErrnoStatus("sock_diag dump", -err);
      }
      *done = true;
      return Status::Ok();
    }
    if (hdr.nlmsg_type == NLMSG_ERROR) {
      if (body_len < sizeof(nlmsgerr)) {
        return Internal("sock_diag reply: error message of " +
                        std::to_string(body_len) + " bytes, expected " +
                        std::to_string(sizeof(nlmsgerr)));
      }
      nlmsgerr e;
      memcpy(&e, body, sizeof e);
      if (e.error == 0) continue;  // an acknowledgement
      return ErrnoStatus("sock_diag request refused by the kernel", -e.error);
    }
    if (hdr.nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
    if (body_len < sizeof(inet_diag_msg)) {
      return Internal("sock_diag reply: socket record of " +
                      std::to_string(body_len) + " bytes, expected at least " +
                      std::to_string(sizeof(inet_diag_msg)));
    }
    inet_diag_msg m;
    memcpy(&m, body, sizeof m);
    if (m.idiag_family != AF_INET && m.idiag_family != AF_INET6) {
      return Internal("sock_diag reply: address family " +
                      std::to_string(m.idiag_family));
    }
    TcpSocket s;
    s.family = m.idiag_family;
    s.state = static_cast<TcpState>(m.idiag_state);
    s.local_ip = AddressText(m.idiag_family, m.id.idiag_src);
    s.local_port = ntohs(m.id.idiag_sport);
    s.remote_ip = AddressText(m.idiag_family, m.id.idiag_dst);
    s.remote_port = ntohs(m.id.idiag_dport);
    s.inode = m.idiag_inode;
    s.uid = m.idiag_uid;

    // Attributes follow the record, each 4-byte aligned.
    size_t aoff = NLMSG_ALIGN(sizeof(inet_diag_msg));
    while (aoff + sizeof(rtattr) <= body_len) {
      rtattr a;
      memcpy(&a, body + aoff, sizeof a);
      if (a.rta_len < sizeof(rtattr) || a.rta_len > body_len - aoff) {
        return Internal("sock_diag reply: attribute length " +
                        std::to_string(a.rta_len) + " outside 4.." +
                        std::to_string(body_len - aoff));
      }
      const uint8_t* payload = body + aoff + RTA_LENGTH(0);
      const size_t payload_len = a.rta_len - RTA_LENGTH(0);
      if (a.rta_type == INET_DIAG_INFO) {
        // Older kernels send a shorter tcp_info: read only what is there.
        constexpr size_t kBytesEnd =
            offsetof(tcp_info, tcpi_bytes_received) + sizeof(uint64_t);
        constexpr size_t kLastRecvEnd =
            offsetof(tcp_info, tcpi_last_data_recv) + sizeof(uint32_t);
        if (payload_len >= kBytesEnd) {
          uint64_t v;
          memcpy(&v, payload + offsetof(tcp_info, tcpi_bytes_received),
                 sizeof v);
          s.bytes_received = v;
        }
        if (payload_len >= kLastRecvEnd) {
          uint32_t v;
          memcpy(&v, payload + offsetof(tcp_info, tcpi_last_data_recv),
                 sizeof v);
          s.last_data_recv_ms = v;
        }
      }
      aoff += RTA_ALIGN(a.rta_len);
    }
    out->push_back(std::move(s));
  }
  return Status::Ok();
}

Result<std::vector<TcpSocket>> DumpTcpKernelFiltered(uint16_t port,
                                                     int family) {
  if (family != 0 && family != AF_INET && family != AF_INET6) {
    return InvalidArgument("address family " + std::to_string(family) +
                           ": expected AF_INET, AF_INET6 or 0 (both)");
  }
  Fd fd(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (fd.get() < 0) return ErrnoStatus("socket(NETLINK_SOCK_DIAG)", errno);
  timeval tv{1, 0};
  if (setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
    return ErrnoStatus("setsockopt(SO_RCVTIMEO) on the sock_diag socket",
                       errno);
  }
  std::vector<TcpSocket> all;
  if (family != AF_INET6) {
    ZKROLL_RETURN_IF_ERROR(DumpFamily(fd.get(), AF_INET, port, &all));
  }
  if (family != AF_INET) {
    ZKROLL_RETURN_IF_ERROR(DumpFamily(fd.get(), AF_INET6, port, &all));
  }
  return all;
}

Result<std::vector<TcpSocket>> DumpTcpByPort(uint16_t port, int family) {
  auto all = DumpTcpKernelFiltered(port, family);
  if (!all.ok()) return all.status();
  // The kernel filtered already; a socket it let through wrongly would be
  // counted as traffic, so check again.
  std::vector<TcpSocket> out;
  out.reserve(all->size());
  for (auto& s : *all) {
    if (s.local_port == port || s.remote_port == port)
      out.push_back(std::move(s));
  }
  return out;
}

}  // namespace zkroll::observe
