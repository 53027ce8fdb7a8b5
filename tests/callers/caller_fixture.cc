#include "tests/callers/caller_fixture.h"

#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "tests/support/wait.h"

namespace zkroll::testing {

namespace {

bool AcceptsOn(int port) {
  // The demo service answers once it listens; a refused connect means not yet.
  RunResult r = RunCommand({"/bin/bash", "-c",
                            "exec 3<>/dev/tcp/127.0.0.1/" +
                                std::to_string(port)},
                           milliseconds(2000));
  return r.exit_code == 0;
}

}  // namespace

const std::string& CallerLine::operator[](const std::string& k) const {
  static const std::string kNone;
  auto it = words.find(k);
  return it == words.end() ? kNone : it->second;
}

std::vector<CallerLine> ParseCallerLines(const std::string& output) {
  std::vector<CallerLine> out;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string word;
    CallerLine l;
    bool first = true;
    while (words >> word) {
      size_t eq = word.find('=');
      if (first && eq == std::string::npos) {
        l.kind = word;
      } else if (eq != std::string::npos) {
        if (first) l.kind = word.substr(0, eq);  // "second=3 sent=..."
        l.words[word.substr(0, eq)] = word.substr(eq + 1);
      }
      first = false;
    }
    if (!l.kind.empty()) out.push_back(std::move(l));
  }
  return out;
}

void CallerTest::TearDown() {
  // Instances started by the upgrade command run in sessions of their own
  // (setsid), outside the children the fixture reaps.
  const std::string dir = demo_dir() + "/instances";
  RunCommand({"/bin/bash", "-c",
              "for f in '" + dir + "'/*.pid; do [ -f \"$f\" ] && "
              "kill -KILL \"$(cat \"$f\")\" 2>/dev/null; done; true"},
             milliseconds(5000));
  CoordinatorTest::TearDown();
}

bool CallerTest::StartDemo(int port, const std::string& version) {
  ::mkdir(demo_dir().c_str(), 0755);
  ::mkdir((demo_dir() + "/instances").c_str(), 0755);
  children_.push_back(std::make_unique<ChildProcess>());
  ChildProcess* p = children_.back().get();
  const std::string base = demo_dir() + "/instances/" + std::to_string(port);
  Status s = p->Start({ZKROLL_DEMO_SERVICE_BIN, "--port", std::to_string(port),
                       "--version", version},
                      base + ".log");
  if (!s.ok()) return false;
  std::ofstream(base + ".pid") << p->pid() << "\n";
  return WaitFor([&] { return AcceptsOn(port); }, milliseconds(20000));
}

std::vector<std::string> CallerTest::UpgradeCommand() const {
  return {"/usr/bin/env",
          "DEMO_DIR=" + demo_dir(),
          std::string("DEMO_SERVICE_BIN=") + ZKROLL_DEMO_SERVICE_BIN,
          "DEMO_NEW_VERSION=v2",
          "/bin/bash",
          ZKROLL_DEMO_UPGRADE};
}

ChildProcess* CallerTest::StartAgentWithConfig(const std::string& host,
                                               const std::vector<int>& ports,
                                               const std::string& extra_keys) {
  std::string conf;
  for (int port : ports) {
    conf += "[instance.i" + std::to_string(port) + "]\nservice = " + svc_ +
            "\nip = 127.0.0.1\nport = " + std::to_string(port) + "\n" +
            extra_keys + "\n";
  }
  const std::string path = dir_.Write("agent-" + host + ".conf", conf);
  return StartAgent(host, {}, {"--config", path});
}

}  // namespace zkroll::testing
