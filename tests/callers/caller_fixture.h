// Shared pieces of the caller tests (tests/callers): real zkroll-demo-service
// instances managed by a real agent, upgraded by the real coordinator with
// scripts/lib/demo-upgrade.sh (the demo's own upgrade command), and callers
// that are not zkroll's client (Curator in Java, kazoo in Python) as real
// processes whose line-oriented output the tests read.
#ifndef ZKROLL_TESTS_CALLERS_CALLER_FIXTURE_H_
#define ZKROLL_TESTS_CALLERS_CALLER_FIXTURE_H_

#include <map>
#include <string>
#include <vector>

#include "tests/coordinator/coordinator_fixture.h"

namespace zkroll::testing {

// The words of one "kind key=value key=value" output line.
struct CallerLine {
  std::string kind;
  std::map<std::string, std::string> words;
  const std::string& operator[](const std::string& k) const;
};
std::vector<CallerLine> ParseCallerLines(const std::string& output);

class CallerTest : public CoordinatorTest {
 protected:
  void TearDown() override;

  // Starts zkroll-demo-service on 127.0.0.1:port answering `version`, with
  // its pid where scripts/lib/demo-upgrade.sh looks for it, and waits until
  // it accepts connections.
  bool StartDemo(int port, const std::string& version);
  // The COMMAND that upgrades the instance zkroll names to v2.
  std::vector<std::string> UpgradeCommand() const;
  // Writes an agent config declaring svc_@127.0.0.1:port for each port
  // (`extra_keys` added to every section) and starts the agent with it.
  ChildProcess* StartAgentWithConfig(const std::string& host,
                                     const std::vector<int>& ports,
                                     const std::string& extra_keys = "");
  std::string Instance(int port) const { return svc_ + "@" + Addr(port); }

  std::string demo_dir() const { return dir_.File("demo"); }
};

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_CALLERS_CALLER_FIXTURE_H_
