// SockDiag: the TCP sockets of this host (its network namespace) that have
// one port, read from the kernel through NETLINK_SOCK_DIAG / inet_diag, the
// interface `ss` uses. No process is started and nothing in the data path
// is touched: the kernel answers from its socket tables.
//
// One dump asks for IPv4 and/or IPv6 sockets whose local OR remote port is
// the given port (an inet_diag bytecode filter run by the kernel; the
// result is checked again here), in the states a drain cares about:
// SYN_RECV, ESTABLISHED, CLOSE_WAIT, LAST_ACK, FIN_WAIT1/2, CLOSING and
// TIME_WAIT (never LISTEN). Local port == port: the instance's side of a
// connection. Remote port == port: a caller's side, when the caller runs
// on this host; that socket's inode leads to the caller's process
// (agent/observe/socket_owners.h).
//
// Privileges: a dump needs none. Every user may read every socket of the
// namespace, with inode, uid and tcp_info (INET_DIAG_INFO). TIME_WAIT
// sockets carry no inode, uid or tcp_info (the kernel keeps only a
// minimal socket for them).
//
// Errors: a Status naming the cause: the netlink socket could not be made
// (e.g. "socket(NETLINK_SOCK_DIAG): Permission denied", seccomp or a
// kernel without inet_diag), the kernel refused the request (its errno),
// or a reply was malformed (which length was wrong). No partial result is
// returned with an error.
//
// Threading: stateless functions, safe from any thread. A dump blocks the
// caller while the kernel walks its TCP tables (a receive timeout of one
// second bounds a kernel that never answers).
#ifndef ZKROLL_AGENT_OBSERVE_SOCK_DIAG_H_
#define ZKROLL_AGENT_OBSERVE_SOCK_DIAG_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace zkroll::observe {

// TCP states as the kernel numbers them (include/net/tcp_states.h).
enum class TcpState : uint8_t {
  kEstablished = 1,
  kSynSent = 2,
  kSynRecv = 3,
  kFinWait1 = 4,
  kFinWait2 = 5,
  kTimeWait = 6,
  kClose = 7,
  kCloseWait = 8,
  kLastAck = 9,
  kListen = 10,
  kClosing = 11,
};
// "ESTABLISHED", "TIME_WAIT", ... ("STATE_<n>" for an unknown number).
std::string TcpStateName(TcpState s);

struct TcpSocket {
  int family = 0;  // AF_INET or AF_INET6
  TcpState state = TcpState::kClose;
  // Addresses in text; an IPv4-mapped IPv6 address (::ffff:a.b.c.d, an IPv4
  // caller of a dual-stack listener) is written as the IPv4 address, so
  // both sides of one loopback connection name the same addresses.
  std::string local_ip;
  uint16_t local_port = 0;
  std::string remote_ip;
  uint16_t remote_port = 0;
  uint64_t inode = 0;  // 0 for TIME_WAIT (and orphaned sockets)
  uint32_t uid = 0;
  // From tcp_info; absent for TIME_WAIT and on kernels too old to report
  // the field (tcpi_bytes_received appeared in Linux 4.1).
  std::optional<uint64_t> bytes_received;
  // tcp_info's tcpi_last_data_recv: ms since the socket last received
  // data (or, before any data, since it was established).
  std::optional<uint32_t> last_data_recv_ms;
};

// Sockets whose local or remote port is `port`, of `family`: AF_INET,
// AF_INET6, or 0 for both. Each family is one walk of the kernel's whole
// TCP hash table (the main cost of a dump), so a caller that needs only one
// asks for one.
Result<std::vector<TcpSocket>> DumpTcpByPort(uint16_t port, int family = 0);

// Parses one buffer of netlink messages answering an inet_diag dump with
// sequence number `seq`, appending sockets to `out`. Sets `*done` when the
// NLMSG_DONE message was seen. Checks every length it reads; a message of
// another sequence number is skipped. Exposed for tests.
Status ParseInetDiagReply(const uint8_t* data, size_t len, uint32_t seq,
                          std::vector<TcpSocket>* out, bool* done);

// DumpTcpByPort without the second check in user space: what the kernel's
// filter let through. Exposed for tests of the filter.
Result<std::vector<TcpSocket>> DumpTcpKernelFiltered(uint16_t port,
                                                     int family = 0);

// The inet_diag bytecode that keeps sockets whose source (local) or
// destination (remote) port equals `port`. Exposed for tests.
std::vector<uint8_t> PortFilterBytecode(uint16_t port);

}  // namespace zkroll::observe

#endif  // ZKROLL_AGENT_OBSERVE_SOCK_DIAG_H_
