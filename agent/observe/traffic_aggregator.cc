#include "agent/observe/traffic_aggregator.h"

#include <algorithm>

namespace zkroll::observe {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

uint64_t Ms(std::chrono::steady_clock::duration d) {
  auto ms = duration_cast<milliseconds>(d).count();
  return ms < 0 ? 0 : static_cast<uint64_t>(ms);
}

}  // namespace

TrafficAggregator::Peer* TrafficAggregator::FindOrAddPeer(const PeerKey& key) {
  auto it = peers_.find(key);
  if (it != peers_.end()) return &it->second;
  if (peers_.size() >= kMaxPeers) {
    peers_overflow_ = true;
    return nullptr;
  }
  return &peers_[key];
}

void TrafficAggregator::Active(Peer* peer, MonoTime when) {
  if (!last_activity_ || when > *last_activity_) last_activity_ = when;
  if (peer && (!peer->last_active || when > *peer->last_active)) {
    peer->last_active = when;
  }
}

void TrafficAggregator::MoveToPid(Conn* conn, pid_t pid) {
  auto old = peers_.find(conn->peer);
  if (old != peers_.end()) {
    Peer& p = old->second;
    if (conn->counted_new && p.connections_total > 0) --p.connections_total;
    p.bytes_received -= std::min(p.bytes_received, conn->bytes_counted);
    // A pid-0 peer that was only this connection would otherwise stay
    // listed as an unknown process that talked recently.
    if (p.connections == 0 && p.connections_total == 0 &&
        p.bytes_received == 0) {
      peers_.erase(old);
    }
  }
  conn->peer.second = pid;
  Peer* now = FindOrAddPeer(conn->peer);
  if (!now) return;
  if (conn->counted_new) ++now->connections_total;
  now->bytes_received += conn->bytes_counted;
  if (conn->last_active &&
      (!now->last_active || *conn->last_active > *now->last_active)) {
    now->last_active = conn->last_active;
  }
}

void TrafficAggregator::Add(const std::vector<ObservedConnection>& sample,
                            MonoTime now) {
  const bool baseline = samples_ == 0;
  // New activity happened after the previous sample; the kernel's
  // last-receive time dates it more finely, but never before that sample.
  const MonoTime floor = baseline ? start_ : last_sample_;
  std::map<ConnKey, Conn> seen;
  for (auto& [key, peer] : peers_) peer.connections = 0;
  established_ = 0;
  for (const ObservedConnection& c : sample) {
    ConnKey key{c.local_ip, c.peer_ip, c.peer_port};
    if (seen.count(key)) continue;  // listed twice in one dump
    auto prev = conns_.find(key);
    Conn conn;
    if (prev != conns_.end()) {
      conn = prev->second;
      // A pid learnt later (the peer's socket was found only now): what
      // this connection counted moves to its process.
      if (conn.peer.second == 0 && c.peer_pid != 0) {
        MoveToPid(&conn, c.peer_pid);
      }
    } else {
      conn.peer = {c.peer_ip, c.peer_pid};
    }
    conn.bytes = c.bytes_received;
    Peer* peer = FindOrAddPeer(conn.peer);
    if (c.state == TcpState::kEstablished) {
      ++established_;
      if (peer) ++peer->connections;
    }
    MonoTime dated = now;
    if (c.last_data_recv_ms) {
      dated = std::max(floor, now - milliseconds(*c.last_data_recv_ms));
    }
    if (baseline) {
      // Known before observation: date the peer's last activity by the
      // kernel (it may be long ago), but it is not new activity.
      if (peer && c.last_data_recv_ms) {
        MonoTime before = now - milliseconds(*c.last_data_recv_ms);
        if (!peer->last_active || before > *peer->last_active) {
          peer->last_active = before;
        }
      }
    } else if (prev == conns_.end()) {
      ++connections_total_;
      uint64_t bytes = c.bytes_received.value_or(0);
      bytes_received_ += bytes;
      if (peer) {
        ++peer->connections_total;
        peer->bytes_received += bytes;
      }
      conn.counted_new = true;
      conn.bytes_counted = bytes;
      conn.last_active = dated;
      Active(peer, dated);
    } else if (c.bytes_received && prev->second.bytes &&
               *c.bytes_received > *prev->second.bytes) {
      uint64_t delta = *c.bytes_received - *prev->second.bytes;
      bytes_received_ += delta;
      if (peer) peer->bytes_received += delta;
      conn.bytes_counted += delta;
      if (!conn.last_active || dated > *conn.last_active) {
        conn.last_active = dated;
      }
      Active(peer, dated);
    }
    seen.emplace(std::move(key), std::move(conn));
  }
  conns_ = std::move(seen);
  last_sample_ = now;
  ++samples_;
}

std::chrono::milliseconds TrafficAggregator::Quiet(MonoTime now) const {
  MonoTime since = start_;
  if (last_activity_ && *last_activity_ > since) since = *last_activity_;
  return milliseconds(Ms(now - since));
}

void TrafficAggregator::Fill(MonoTime now, size_t max_peers,
                             proto::TrafficReport* out) const {
  out->set_observed_ms(Ms(now - start_));
  out->set_connections(established_);
  out->set_connections_total(connections_total_);
  out->set_bytes_received(bytes_received_);
  out->set_quiet_ms(static_cast<uint64_t>(Quiet(now).count()));
  struct Row {
    const PeerKey* key;
    const Peer* peer;
    uint64_t idle_ms;
  };
  std::vector<Row> rows;
  rows.reserve(peers_.size());
  for (const auto& [key, peer] : peers_) {
    // A peer known only from a TIME_WAIT socket of the baseline: it closed
    // at some time before observation, and nothing was seen since.
    uint64_t idle =
        peer.last_active ? Ms(now - *peer.last_active) : Ms(now - start_);
    rows.push_back({&key, &peer, idle});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    if (a.idle_ms != b.idle_ms) return a.idle_ms < b.idle_ms;
    if (a.peer->connections != b.peer->connections) {
      return a.peer->connections > b.peer->connections;
    }
    return *a.key < *b.key;
  });
  for (size_t i = 0; i < rows.size() && i < max_peers; ++i) {
    auto* p = out->add_peers();
    p->set_ip(rows[i].key->first);
    p->set_pid(rows[i].key->second);
    p->set_connections(rows[i].peer->connections);
    p->set_connections_total(rows[i].peer->connections_total);
    p->set_bytes_received(rows[i].peer->bytes_received);
    p->set_idle_ms(rows[i].idle_ms);
  }
  out->set_peers_truncated(peers_overflow_ || rows.size() > max_peers);
}

}  // namespace zkroll::observe
