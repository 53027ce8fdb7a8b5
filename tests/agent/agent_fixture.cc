#include "tests/agent/agent_fixture.h"

#include <algorithm>
#include <fstream>
#include <set>

#include "common/clock.h"

namespace zkroll::testing {

void AgentTest::SetUp() {
  ZooKeeperTest::SetUp();
  svc_ = TestServiceName();
  zk_ = Connect();
}

void AgentTest::TearDown() {
  for (auto& a : agents_) {
    a->Signal(SIGKILL);
    a->Wait(milliseconds(5000));
  }
  if (HasFailure()) {
    for (size_t i = 0; i < agents_.size(); ++i) {
      std::cerr << "---- agent " << i << " log ----\n" << AgentLog(i) << "\n";
    }
  }
  agents_.clear();
  zk_.reset();
}

ChildProcess* AgentTest::StartAgent(const std::vector<std::string>& args,
                                    const std::map<std::string, std::string>& env,
                                    const std::vector<std::string>& wrapper) {
  std::vector<std::string> argv = wrapper;
  for (const std::string& a :
       {std::string(ZKROLL_AGENT_BIN), std::string("--zk"),
        agent_zk_.empty() ? connect_string() : agent_zk_}) {
    argv.push_back(a);
  }
  // Several agents run at once: each serves its metrics on a free port,
  // unless the test chose an address.
  if (std::find(args.begin(), args.end(), "--metrics-listen") == args.end()) {
    argv.insert(argv.end(), {"--metrics-listen", "127.0.0.1:0"});
  }
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = std::make_unique<ChildProcess>();
  Status s = p->Start(argv, dir_.File("agent" + std::to_string(agents_.size()) + ".log"),
                      env);
  EXPECT_TRUE(s.ok()) << s.ToString();
  agents_.push_back(std::move(p));
  return agents_.back().get();
}

std::string AgentTest::AgentLog(size_t i) const { return agents_.at(i)->Output(); }

std::string AgentTest::InstancePath(const std::string& service, int port) const {
  return paths::InstanceNode(ServiceName::Parse(service).value(),
                             InstanceAddress::FromParts("127.0.0.1", port).value());
}

std::string AgentTest::FlagPath(const std::string& service, int port) const {
  return paths::PauseFlagNode(ServiceName::Parse(service).value(),
                              InstanceAddress::FromParts("127.0.0.1", port).value());
}

std::optional<NodeData> AgentTest::InstanceNode(const std::string& service,
                                                int port) {
  auto r = zk_->GetSync(InstancePath(service, port));
  if (!r.ok()) return std::nullopt;
  return *r;
}

bool AgentTest::Registered(const std::string& service, int port) {
  return InstanceNode(service, port).has_value();
}

Status AgentTest::Pause(ZkSession* who, const std::string& service, int port,
                        const std::string& payload, CreateMode mode) {
  ZKROLL_RETURN_IF_ERROR(who->EnsurePathSync(paths::kPauseRoot, OpenAcl()));
  return registry::Pause(*who, ServiceName::Parse(service).value(),
                         InstanceAddress::FromParts("127.0.0.1", port).value(),
                         payload, mode, OpenAcl())
      .status;
}

std::optional<proto::AgentRecord::Instance> AgentTest::AgentView(
    const std::string& host, const std::string& service, int port) {
  auto node = zk_->GetSync(paths::AgentNode(HostId::Parse(host).value()));
  if (!node.ok()) return std::nullopt;
  auto rec = ParsePayload<proto::AgentRecord>(node->data, "agent");
  if (!rec.ok()) return std::nullopt;
  for (const auto& i : rec->instances()) {
    if (i.service() == service && i.port() == static_cast<uint32_t>(port)) {
      return i;
    }
  }
  return std::nullopt;
}

bool AgentTest::WaitForChecks(const std::string& host,
                              const std::string& service, int port, int n,
                              milliseconds deadline) {
  // last_check_at changes with every published check result; the agent
  // republishes at least on every resync, so use a short --resync.
  std::set<std::string> seen;
  return WaitFor(
      [&] {
        auto v = AgentView(host, service, port);
        if (v && v->has_last_check_at()) {
          seen.insert(FormatTimestamp(v->last_check_at(), true));
        }
        return static_cast<int>(seen.size()) > n;
      },
      deadline);
}

}  // namespace zkroll::testing
