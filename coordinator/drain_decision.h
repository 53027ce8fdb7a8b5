// DecideDrain: when a `--drain auto` drain may end (docs/design.md, "Drain
// on evidence"). A pure function of what the deploy step has read from
// ZooKeeper and of the time since the pause, so that every rule can be
// tested without a clock or a server; the deploy step (deploy.cc) only feeds
// it events and acts on its answer.
//
// The drain ends at the first moment all of these hold, and at the cap at
// the latest:
//  1. every caller node that exists now acknowledges a list without the
//     instance: its list_pzxid is at least the pzxid the pause transaction
//     produced. A caller whose node existed at the pause and vanished
//     counts as gone; a caller that appeared after the pause must
//     acknowledge too (its first list may have been read before it).
//  2. a traffic report written after the pause says the instance has had
//     no new connection and no received byte for `quiet`;
//  3. no peer in the latest report belongs to no registered caller. A peer
//     with a pid is matched by (report hostname, pid) with a caller's
//     (host, pid). A peer without a pid is matched by address with a
//     caller's IPs, except loopback and addresses of the agent's own host,
//     which several processes share (it stays unknown: IP matching cannot
//     tell processes of one host apart, see the design doc);
//  4. `min` has passed.
// Where traffic cannot be observed (no report, a report for another
// deploy, source "none", or "forwarder" alone, which names no peers)
// conditions 2 and 3 cannot hold: the drain runs to the cap and the reason
// says why.
#ifndef ZKROLL_COORDINATOR_DRAIN_DECISION_H_
#define ZKROLL_COORDINATOR_DRAIN_DECISION_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/duration.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator {

struct DrainConfig {
  Millis cap{20000};  // --drain-wait
  Millis quiet{500};  // --drain-quiet, > 0
  Millis min{0};      // --drain-min, <= cap
};

// One caller node as last read. Times are on the coordinator's clock,
// measured from the pause.
struct CallerObservation {
  proto::CallerRecord record;
  // When the step first saw this caller acknowledge (list_pzxid at least
  // the pause's), if it has.
  std::optional<Millis> acked_at;
};

// The agent's latest report for this drain.
struct TrafficObservation {
  proto::TrafficReport report;
  bool written_after_pause = false;  // the node's mzxid > the pause's zxid
  Millis read_at{0};
};

struct DrainInputs {
  std::string deploy_id;  // reports for another deploy are not ours
  int64_t pause_pzxid = 0;
  // Caller nodes (by node name) that existed at the pause.
  std::set<std::string> callers_at_pause;
  // Caller nodes that exist now and whose payload is valid, by node name.
  std::map<std::string, CallerObservation> callers;
  // Caller nodes that exist now but were skipped (bad payload): they cannot
  // acknowledge, so they hold the drain to the cap. Name -> why.
  std::map<std::string, std::string> bad_callers;
  // The last valid record of every caller node that vanished during the
  // drain: only to recognise its process among the peers (if it still
  // sends, the quiet condition sees that).
  std::map<std::string, proto::CallerRecord> departed;
  std::optional<TrafficObservation> traffic;
  // Why there is no report, when the step knows more than "none yet" (e.g.
  // "the agent did not answer the request within 2s").
  std::string traffic_note;
  Millis now{0};  // since the pause
};

struct DrainDecision {
  bool done = false;
  bool at_cap = false;  // ended (or will end) only because of the cap
  // One line for people, e.g. "drained in 0.61 s of 20 s: 12/12 callers
  // acknowledged (last 18 ms), no traffic for 500 ms".
  std::string reason;
  // What keeps the drain open (empty when every condition holds).
  std::vector<std::string> missing;
  // When the decision changes without a new event (drain-min or the cap).
  Millis next_wake{0};
};

DrainDecision DecideDrain(const DrainConfig& config, const DrainInputs& in);

// "0.61 s", "20 s", "1.5 s": seconds for drain summaries.
std::string FormatSeconds(Millis d);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_DRAIN_DECISION_H_
