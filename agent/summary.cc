#include "agent/summary.h"

namespace zkroll::agent {

namespace {

std::string Plural(int n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

std::string ZkText(const AgentSummary& s) {
  switch (s.zk) {
    case AgentSummary::Zk::kConnected:
      return "zk connected";
    case AgentSummary::Zk::kDisconnected:
      return "zk disconnected, reconnecting to " + s.zk_address;
    case AgentSummary::Zk::kConnecting:
      break;
  }
  return "zk connecting to " + s.zk_address;
}

}  // namespace

std::string StatusLine(const AgentSummary& s) {
  if (!s.started) {
    return "starting: " + std::to_string(s.settled) + " of " +
           Plural(s.instances, "instance") + " settled; " + ZkText(s);
  }
  std::string line = Plural(s.instances, "instance") + ": " +
                     std::to_string(s.registered) + " registered";
  if (s.paused > 0) line += ", " + std::to_string(s.paused) + " paused";
  if (s.healthy > 0) {
    line += ", " + std::to_string(s.healthy) + " healthy (not registered)";
  }
  if (s.unhealthy > 0) {
    line += ", " + std::to_string(s.unhealthy) + " unhealthy";
  }
  return line + "; " + ZkText(s);
}

}  // namespace zkroll::agent
