#include "agent/observe/traffic_sampler.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <tuple>

#include "common/health/own_connections.h"

namespace zkroll::observe {
namespace {

std::set<std::string> HostAddresses() {
  std::set<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    if (i->ifa_addr->sa_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr,
                buf, sizeof buf);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      inet_ntop(AF_INET6,
                &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, buf,
                sizeof buf);
    } else {
      continue;
    }
    out.insert(buf);
  }
  freeifaddrs(list);
  return out;
}

bool IsLoopback(const std::string& ip) {
  return ip == "::1" || ip.rfind("127.", 0) == 0;
}

}  // namespace

TrafficSampler::TrafficSampler(InstanceAddress instance, pid_t self)
    : instance_(std::move(instance)),
      self_(self),
      any_address_(instance_.ip() == "0.0.0.0" || instance_.ip() == "::") {}

bool TrafficSampler::IsLocalAddress(const std::string& ip) {
  if (IsLoopback(ip)) return true;
  if (local_addresses_.count(ip)) return true;
  // Addresses change rarely: read them again for an unknown one, at most
  // once per sample (remote peers are unknown every time).
  if (!addresses_read_) {
    local_addresses_ = HostAddresses();
    addresses_read_ = true;
  }
  return local_addresses_.count(ip) > 0;
}

Result<TrafficSample> TrafficSampler::Take() {
  const uint16_t port = instance_.port();
  addresses_read_ = false;
  // The instance's sockets are of its address's family (a dual-stack ::
  // listener's IPv4 callers included, as mapped addresses). One family is
  // one walk of the kernel's table, so the other is read only when needed.
  const bool v6 = instance_.ip().find(':') != std::string::npos;
  auto dump = DumpTcpByPort(port, v6 ? AF_INET6 : AF_INET);
  if (!dump.ok()) return dump.status();

  // Peers' own sockets on this host: (their ip, their port, instance ip).
  std::map<std::tuple<std::string, uint16_t, std::string>, uint64_t> peer_side;
  auto add_peer_sides = [&](const std::vector<TcpSocket>& sockets) {
    for (const TcpSocket& s : sockets) {
      if (s.remote_port == port && s.inode != 0) {
        peer_side[{s.local_ip, s.local_port, s.remote_ip}] = s.inode;
      }
    }
  };
  add_peer_sides(*dump);
  // A local caller connected now whose socket is not of that family: an
  // IPv6 socket connected to an IPv4 address (what Java makes by default),
  // or the reverse. Its socket is in the other family's table.
  for (const TcpSocket& s : *dump) {
    if (s.local_port == port && s.state == TcpState::kEstablished &&
        IsLocalAddress(s.remote_ip) &&
        !peer_side.count({s.remote_ip, s.remote_port, s.local_ip})) {
      auto other = DumpTcpByPort(port, v6 ? AF_INET : AF_INET6);
      if (other.ok()) add_peer_sides(*other);
      break;
    }
  }

  TrafficSample out;
  std::vector<uint64_t> wanted;
  std::vector<std::pair<size_t, uint64_t>> to_resolve;  // index, inode
  for (const TcpSocket& s : *dump) {
    if (s.local_port != port) continue;
    if (!any_address_ && s.local_ip != instance_.ip()) continue;
    if (health::IsOwnConnection(s.remote_ip, s.remote_port)) continue;
    ObservedConnection c;
    c.local_ip = s.local_ip;
    c.peer_ip = s.remote_ip;
    c.peer_port = s.remote_port;
    c.state = s.state;
    c.bytes_received = s.bytes_received;
    c.last_data_recv_ms = s.last_data_recv_ms;
    if (IsLocalAddress(s.remote_ip)) {
      auto it = peer_side.find({s.remote_ip, s.remote_port, s.local_ip});
      if (it != peer_side.end()) {
        to_resolve.emplace_back(out.connections.size(), it->second);
        wanted.push_back(it->second);
      }
    }
    out.connections.push_back(std::move(c));
  }
  if (!wanted.empty()) {
    SocketOwners::Answer a = owners_.Resolve(wanted);
    for (const auto& [index, inode] : to_resolve) {
      out.connections[index].peer_pid = a.pids[inode];
    }
    if (!a.error.empty()) {
      out.pids_known = false;
      out.pid_error = a.error;
    }
  }
  // Our own connections that the check registry missed (a check still
  // connecting when the dump was taken) are found by their owner.
  std::vector<ObservedConnection> kept;
  kept.reserve(out.connections.size());
  for (auto& c : out.connections) {
    if (c.peer_pid == 0 || c.peer_pid != self_) kept.push_back(std::move(c));
  }
  out.connections = std::move(kept);
  return out;
}

}  // namespace zkroll::observe
