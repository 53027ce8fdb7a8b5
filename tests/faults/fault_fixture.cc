#include "tests/faults/fault_fixture.h"

#include <algorithm>
#include <iostream>
#include <set>
#include <sstream>

#include "common/clock.h"
#include "tests/support/wait.h"

namespace zkroll::testing {

void FaultTest::TearDown() {
  for (auto& h : handshakes_) {
    if (h.handshake->Started() && !h.released) (void)h.handshake->Release();
  }
  handshakes_.clear();
  CoordinatorTest::TearDown();
  services_.clear();
}

Handshake* FaultTest::NewHandshake(const std::string& name) {
  handshakes_.push_back({std::make_unique<Handshake>(dir_, name), false});
  return handshakes_.back().handshake.get();
}

bool FaultTest::Release(Handshake* h) {
  for (auto& owned : handshakes_) {
    if (owned.handshake.get() == h) owned.released = true;
  }
  return h->Release();
}

void FaultTest::StartFleet(int n, const std::string& host) {
  std::vector<std::string> instances;
  for (int i = 0; i < n; ++i) {
    services_.push_back(std::make_unique<TinyService>(PickFreePort()));
    ASSERT_TRUE(services_.back()->Start());
    instances.push_back(Instance(services_.back()->port()));
  }
  StartAgent(host, instances);
  for (const auto& s : services_) {
    int port = s->port();
    ASSERT_TRUE(
        WaitFor([&] { return Registered(port) && AgentDeclares(host, port); },
                milliseconds(20000)))
        << "agent never registered and declared " << port << "\n"
        << AgentLogs();
  }
}

std::vector<int> FaultTest::Ports() const {
  std::vector<int> ports;
  for (const auto& s : services_) ports.push_back(s->port());
  std::sort(ports.begin(), ports.end());
  return ports;
}

bool FaultTest::HasLine(ChildProcess* p,
                        const std::vector<std::string>& parts) {
  std::istringstream lines(p->Output());
  for (std::string line; std::getline(lines, line);) {
    bool all = true;
    for (const auto& part : parts) {
      if (line.find(part) == std::string::npos) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

bool FaultTest::WaitForLine(ChildProcess* p,
                            const std::vector<std::string>& parts,
                            milliseconds deadline) {
  return WaitFor([&] { return HasLine(p, parts); }, deadline);
}

bool FaultTest::WaitForAgentsToNoticeOutage(milliseconds deadline) {
  return WaitFor(
      [&] {
        return AgentLogs().find("lost the connection to ZooKeeper") !=
               std::string::npos;
      },
      deadline);
}

std::optional<proto::AgentRecord::Instance> FaultTest::AgentView(
    const std::string& host, int port) {
  auto node = Get(paths::AgentNode(*HostId::Parse(host)));
  if (!node) return std::nullopt;
  auto rec = ParsePayload<proto::AgentRecord>(node->data, "agent");
  if (!rec.ok()) return std::nullopt;
  for (const auto& i : rec->instances()) {
    if (i.service() == svc_ && i.port() == static_cast<uint32_t>(port)) {
      return i;
    }
  }
  return std::nullopt;
}

bool FaultTest::WaitForChecks(const std::string& host, int port, int n,
                              milliseconds deadline) {
  // last_check_at changes with every published check result; the fixture's
  // agents republish at least every second (--resync 1s).
  std::set<std::string> seen;
  std::optional<std::string> first;
  return WaitFor(
      [&] {
        auto v = AgentView(host, port);
        if (!v || !v->has_last_check_at()) return false;
        const std::string at = FormatTimestamp(v->last_check_at(), true);
        if (!first) first = at;
        if (at != *first) seen.insert(at);
        return static_cast<int>(seen.size()) >= n;
      },
      deadline);
}

int FaultTest::RegistrationCount(int port) {
  const std::string name = "127.0.0.1_" + std::to_string(port);
  auto kids = Children(paths::ServiceDir(*ServiceName::Parse(svc_)));
  return static_cast<int>(std::count(kids.begin(), kids.end(), name));
}

RunResult FaultTest::FollowUpRollout() {
  return Zkroll({"rollout", "--service", svc_, "--batch", "1", "--min-healthy",
                 "0", "--drain-wait", "0s", "--health-interval", "100ms",
                 "--register-timeout", "20s", "--", "/bin/true"},
                milliseconds(60000));
}

void FaultTest::Report(const std::string& fault, const std::string& what,
                       long long ms) {
  std::cout << "[fault] " << fault << ": " << what << " after " << ms << " ms\n"
            << std::flush;
}

}  // namespace zkroll::testing
