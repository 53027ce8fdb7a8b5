// What the agent tells its supervisor about itself: a count of its
// instances by state, the ZooKeeper connection, and whether its start-up is
// over. systemd shows the status line in `systemctl status zkroll-agent`.
#ifndef ZKROLL_AGENT_SUMMARY_H_
#define ZKROLL_AGENT_SUMMARY_H_

#include <string>

namespace zkroll::agent {

struct AgentSummary {
  enum class Zk { kConnecting, kConnected, kDisconnected };
  Zk zk = Zk::kConnecting;
  std::string zk_address;  // the connect string, for "waiting for ..."
  // The first reconcile is done (see Agent::Summary); stays true after.
  bool started = false;
  int instances = 0;
  // Instances whose first registration decision is made (start-up only).
  int settled = 0;
  // Each instance is counted in exactly one of these, as in its AgentRecord
  // state: paused wins, then registered, then healthy (not yet registered).
  int registered = 0;
  int paused = 0;
  int healthy = 0;
  int unhealthy = 0;
};

// One line, e.g. "12 instances: 11 registered, 1 paused; zk connected", or
// during start-up "starting: 1 of 3 instances settled; zk connecting to
// 10.0.0.1:2181". Zero counts other than "registered" are left out.
std::string StatusLine(const AgentSummary& s);

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_SUMMARY_H_
