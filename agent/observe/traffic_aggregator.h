// TrafficAggregator: turns successive samples of an instance's TCP
// connections into the counters of a TrafficReport (proto/zkroll.proto,
// docs/design.md "Traffic observation"). Pure logic: the caller gives every
// sample with the monotonic time it was taken, so tests drive time.
//
// A connection is identified by the instance-side socket's local address
// and its peer's address and port. The first sample is the baseline:
// connections in it are not new, their bytes so far are not counted, but
// they make their peers known, and the kernel's per-connection
// "ms since data was last received" dates those peers' last activity even
// before observation began. After the baseline:
//   - a connection absent from the previous sample is new (counted once,
//     whatever its state, so one opened and closed between two samples and
//     found in TIME_WAIT still counts);
//   - bytes received = growth of tcpi_bytes_received since the previous
//     sample (all of it for a new connection);
//   - activity = a new connection or received bytes; it is dated by the
//     kernel's last-receive time where that is known, else by the sample.
// A connection first seen without its process (pid 0) and mapped later
// moves what it counted to its process's peer.
// quiet = time since the later of observation start and the last activity.
//
// Connections of this process's own health checks (`own` in the sample)
// are left out entirely.
//
// Memory: at most kMaxPeers peers are tracked; connections of further
// peers still count in the totals, and the report says peers_truncated.
// Threading: none (one owner).
#ifndef ZKROLL_AGENT_OBSERVE_TRAFFIC_AGGREGATOR_H_
#define ZKROLL_AGENT_OBSERVE_TRAFFIC_AGGREGATOR_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "agent/observe/sock_diag.h"
#include "zkroll.pb.h"

namespace zkroll::observe {

using MonoTime = std::chrono::steady_clock::time_point;

// The instance's side of one connection, with its peer resolved.
struct ObservedConnection {
  std::string local_ip;
  std::string peer_ip;
  uint16_t peer_port = 0;
  TcpState state = TcpState::kEstablished;
  std::optional<uint64_t> bytes_received;
  std::optional<uint32_t> last_data_recv_ms;
  pid_t peer_pid = 0;  // 0: remote host, or the process is unknown
};

class TrafficAggregator {
 public:
  static constexpr size_t kMaxPeers = 1024;

  explicit TrafficAggregator(MonoTime start) : start_(start) {}

  void Add(const std::vector<ObservedConnection>& sample, MonoTime now);

  // Fills observed_ms, connections, connections_total, bytes_received,
  // quiet_ms, peers (at most `max_peers`, most recently active first) and
  // peers_truncated of `out`; nothing else.
  void Fill(MonoTime now, size_t max_peers, proto::TrafficReport* out) const;

  bool has_baseline() const { return samples_ > 0; }
  uint64_t connections_total() const { return connections_total_; }
  uint64_t bytes_received() const { return bytes_received_; }
  uint32_t established() const { return established_; }
  // Time since the later of start and the last activity.
  std::chrono::milliseconds Quiet(MonoTime now) const;
  // The last activity seen (new connection or bytes), if any.
  std::optional<MonoTime> last_activity() const { return last_activity_; }

 private:
  using PeerKey = std::pair<std::string, pid_t>;
  using ConnKey = std::tuple<std::string, std::string, uint16_t>;
  struct Peer {
    uint32_t connections = 0;  // ESTABLISHED in the last sample
    uint64_t connections_total = 0;
    uint64_t bytes_received = 0;
    std::optional<MonoTime> last_active;
  };
  struct Conn {
    PeerKey peer;
    std::optional<uint64_t> bytes;  // tcpi_bytes_received at the last sample
    // What this connection added to its peer, to move it when its pid is
    // learnt after it was first seen.
    bool counted_new = false;
    uint64_t bytes_counted = 0;
    std::optional<MonoTime> last_active;
  };
  Peer* FindOrAddPeer(const PeerKey& key);
  void MoveToPid(Conn* conn, pid_t pid);
  void Active(Peer* peer, MonoTime when);

  MonoTime start_;
  uint64_t samples_ = 0;
  MonoTime last_sample_{};
  std::map<ConnKey, Conn> conns_;  // from the last sample
  std::map<PeerKey, Peer> peers_;
  bool peers_overflow_ = false;
  uint64_t connections_total_ = 0;
  uint64_t bytes_received_ = 0;
  uint32_t established_ = 0;
  std::optional<MonoTime> last_activity_;
};

}  // namespace zkroll::observe

#endif  // ZKROLL_AGENT_OBSERVE_TRAFFIC_AGGREGATOR_H_
