// TrafficSampler: one sample of an instance's inbound connections, with the
// process of each peer that runs on this host.
//
// Take() dumps the TCP sockets of the instance's port (sock_diag.h), of the
// instance address's family, and of the other family only when a local
// peer's socket is missing from the first (a peer whose socket family
// differs from the instance's, e.g. an IPv6 socket with a mapped IPv4
// address). The
// instance's side of a connection is a socket whose local address is the
// instance's (any local address when the instance listens on 0.0.0.0 or
// ::) and local port its port. When the peer's address is one of this
// host's (loopback included), the peer's own socket is in the same dump
// (local = the peer's address and port, remote = the instance) and its
// inode leads to the peer's process (socket_owners.h). Connections made by
// this process itself (the agent's health checks, health/own_connections.h)
// are left out.
//
// Errors: Take() fails only when the dump fails (the Status says why); a
// peer process that cannot be found leaves pid 0, and `pid_error` says why
// when the cause is a missing privilege.
//
// Threading: not thread-safe; one owner.
#ifndef ZKROLL_AGENT_OBSERVE_TRAFFIC_SAMPLER_H_
#define ZKROLL_AGENT_OBSERVE_TRAFFIC_SAMPLER_H_

#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "agent/observe/socket_owners.h"
#include "agent/observe/traffic_aggregator.h"
#include "common/names.h"
#include "common/status.h"

namespace zkroll::observe {

struct TrafficSample {
  std::vector<ObservedConnection> connections;
  // False when some local peer's process could not be looked up for lack
  // of a privilege; `pid_error` names it.
  bool pids_known = true;
  std::string pid_error;
};

class TrafficSampler {
 public:
  // Connections whose peer is process `self` (normally this process, the
  // agent) are left out.
  explicit TrafficSampler(InstanceAddress instance, pid_t self = getpid());
  Result<TrafficSample> Take();

 private:
  bool IsLocalAddress(const std::string& ip);

  InstanceAddress instance_;
  pid_t self_;
  bool any_address_;  // the instance listens on 0.0.0.0 or ::
  SocketOwners owners_;
  std::set<std::string> local_addresses_;
  bool addresses_read_ = false;  // in this Take()
};

}  // namespace zkroll::observe

#endif  // ZKROLL_AGENT_OBSERVE_TRAFFIC_SAMPLER_H_
