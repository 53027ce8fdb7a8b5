// The security model against a real ZooKeeper server: after `zkroll init`
// only the intended identities can write each part of the tree.
#include <gtest/gtest.h>

#include "client/discovery.h"
#include "common/paths.h"
#include "common/payload.h"
#include "common/registry.h"
#include "coordinator/init.h"
#include "tests/agent/agent_fixture.h"

namespace zkroll::testing {
namespace {

const Credential kAdmin{"admin", "admin-pw"};
const Credential kAgent{"agent", "agent-pw"};
const Credential kCoordinator{"coordinator", "coord-pw"};
const Credential kCaller{"caller", "caller-pw"};

class AclTest : public AgentTest {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    ids_ = {DigestId(kAdmin), DigestId(kAgent), DigestId(kCoordinator),
            DigestId(kCaller)};
    admin_ = ConnectAs(kAdmin);
    auto r = coordinator::InitTree(*admin_, ids_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    agent_ = ConnectAs(kAgent);
    coord_ = ConnectAs(kCoordinator);
    caller_ = ConnectAs(kCaller);
    anon_ = Connect();
    svc_name_ = ServiceName::Parse(svc_).value();
    addr_ = InstanceAddress::Parse("127.0.0.1:9").value();
    // The service's nodes as the real writers make them: the agent its
    // service directory, the coordinator its pause directory, each with
    // the ACL of its root.
    services_acl_ = coordinator::InheritAcl(*agent_, paths::kServicesRoot);
    pause_acl_ = coordinator::InheritAcl(*coord_, paths::kPauseRoot);
    MultiResult d = agent_->MultiSync(
        registry::CreateServiceDirOps(svc_name_, services_acl_));
    ASSERT_TRUE(d.status.ok()) << d.status.ToString();
    ASSERT_TRUE(coord_->CreateSync(paths::PauseDir(svc_name_), "",
                                   CreateMode::kPersistent, pause_acl_).ok());
  }
  std::unique_ptr<ZkSession> ConnectAs(const Credential& c) {
    ZkOptions o;
    o.credentials = {c};
    return Connect(o);
  }
  std::string Instance() const { return paths::InstanceNode(svc_name_, addr_); }
  std::string Flag() const { return paths::PauseFlagNode(svc_name_, addr_); }
  Status RegisterAs(ZkSession* s) {
    auto kids = s->GetChildrenSync(paths::PauseDir(svc_name_));
    if (!kids.ok()) return kids.status();
    return s->MultiSync(registry::RegisterOps(
                            svc_name_, addr_, "{}",
                            {paths::PauseDir(svc_name_), kids->stat.version},
                            std::nullopt, services_acl_))
        .status;
  }

  coordinator::InitIdentities ids_;
  std::unique_ptr<ZkSession> admin_, agent_, coord_, caller_, anon_;
  ServiceName svc_name_;
  InstanceAddress addr_;
  AclList services_acl_, pause_acl_;
};

TEST_F(AclTest, RootsCarryTheDocumentedAcls) {
  for (const auto& [root, want] : coordinator::RootAcls(ids_)) {
    auto acl = anon_->GetAclSync(root);
    ASSERT_TRUE(acl.ok()) << root;
    EXPECT_EQ(acl->size(), want.size()) << root;
  }
  // Init is idempotent: a second run changes nothing.
  auto again = coordinator::InitTree(*admin_, ids_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
}

TEST_F(AclTest, OnlyTheCoordinatorMayCreateOrDeletePauseFlags) {
  for (ZkSession* s : {anon_.get(), agent_.get()}) {
    auto r = s->CreateSync(Flag(), "{}", CreateMode::kPersistent, OpenAcl());
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(s->SetSync(paths::PauseDir(svc_name_), "").status().code(),
              StatusCode::kPermissionDenied)
        << "the pause guard must not be movable by others";
  }
  registry::PauseOutcome p = registry::Pause(*coord_, svc_name_, addr_, "{}",
                                  CreateMode::kPersistent, pause_acl_);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  for (ZkSession* s : {anon_.get(), agent_.get()}) {
    EXPECT_EQ(s->DeleteSync(Flag()).code(), StatusCode::kPermissionDenied);
  }
  EXPECT_TRUE(anon_->GetSync(Flag()).ok()) << "world may read flags";
  EXPECT_TRUE(coord_->DeleteSync(Flag()).ok());
}

TEST_F(AclTest, OnlyTheAgentMayRegisterAndTheCoordinatorMayDeregister) {
  EXPECT_EQ(RegisterAs(anon_.get()).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(RegisterAs(coord_.get()).code(), StatusCode::kPermissionDenied);
  ASSERT_TRUE(RegisterAs(agent_.get()).ok());
  EXPECT_EQ(anon_->DeleteSync(Instance()).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(anon_->SetSync(Instance(), "evil").status().code(),
            StatusCode::kPermissionDenied);
  // The coordinator's pause removes the registration in its transaction.
  registry::PauseOutcome p = registry::Pause(*coord_, svc_name_, addr_, "{}",
                                  CreateMode::kEphemeral, pause_acl_);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  EXPECT_FALSE(anon_->ExistsSync(Instance())->has_value());
  ASSERT_TRUE(coord_->DeleteSync(Flag()).ok());
  ASSERT_TRUE(RegisterAs(agent_.get()).ok());
  EXPECT_TRUE(agent_->DeleteSync(Instance()).ok());
}

TEST_F(AclTest, OnlyTheCoordinatorMovesTrafficAndOnlyTheAgentReportsIt) {
  const std::string node = paths::SwitchNode(svc_name_, addr_);
  const std::string deploy = paths::SwitchDeployNode(svc_name_, addr_);
  const std::string state = paths::ForwarderNode(svc_name_, addr_);
  const AclList switch_acl = coordinator::InheritAcl(*coord_, paths::kSwitchRoot);
  const AclList fwd_acl = coordinator::InheritAcl(*agent_, paths::kForwardersRoot);
  // A switch target names where a public port's traffic goes: nobody but
  // the coordinator identity may write one.
  for (ZkSession* s : {anon_.get(), agent_.get()}) {
    EXPECT_EQ(s->EnsurePathSync(node, OpenAcl()).code(),
              StatusCode::kPermissionDenied);
  }
  ASSERT_TRUE(coord_->EnsurePathSync(node, switch_acl).ok());
  for (ZkSession* s : {anon_.get(), agent_.get()}) {
    EXPECT_EQ(s->CreateSync(deploy, "{}", CreateMode::kEphemeral, OpenAcl())
                  .status().code(),
              StatusCode::kPermissionDenied);
    EXPECT_EQ(s->SetSync(node, "{}").status().code(),
              StatusCode::kPermissionDenied);
  }
  ASSERT_TRUE(coord_->CreateSync(deploy, "{}", CreateMode::kEphemeral, switch_acl).ok());
  EXPECT_EQ(agent_->DeleteSync(deploy).code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(anon_->GetSync(deploy).ok()) << "world may read switch nodes";
  // The forwarder state is the agent's: the coordinator only reads it.
  for (ZkSession* s : {anon_.get(), coord_.get()}) {
    EXPECT_EQ(s->EnsurePathSync(paths::ForwarderDir(svc_name_), OpenAcl()).code(),
              StatusCode::kPermissionDenied);
  }
  ASSERT_TRUE(agent_->EnsurePathSync(paths::ForwarderDir(svc_name_), fwd_acl).ok());
  for (ZkSession* s : {anon_.get(), coord_.get()}) {
    EXPECT_EQ(s->CreateSync(state, "{}", CreateMode::kEphemeral, OpenAcl())
                  .status().code(),
              StatusCode::kPermissionDenied);
  }
  ASSERT_TRUE(agent_->CreateSync(state, "{}", CreateMode::kEphemeral, fwd_acl).ok());
  EXPECT_EQ(coord_->SetSync(state, "{}").status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(coord_->GetSync(state).ok());
}

// Drain on evidence: callers acknowledge under /callers and nowhere else;
// the coordinator alone asks for observation (/drain), the agent alone
// reports it (/traffic); everyone reads all three.
TEST_F(AclTest, CallersWriteOnlyCallersDrainIsTheCoordinatorsTrafficTheAgents) {
  const std::string callers_dir = paths::CallersDir(svc_name_);
  const std::string caller =
      paths::CallerNode(svc_name_, HostId::Parse("h-1-1").value());
  const std::string request = paths::DrainRequestNode(svc_name_, addr_);
  const std::string report = paths::TrafficNode(svc_name_, addr_);
  const AclList callers_acl =
      coordinator::InheritAcl(*caller_, paths::kCallersRoot);
  const AclList drain_acl = coordinator::InheritAcl(*coord_, paths::kDrainRoot);
  const AclList traffic_acl =
      coordinator::InheritAcl(*agent_, paths::kTrafficRoot);

  // /callers: the caller identity only.
  for (ZkSession* s : {anon_.get(), agent_.get(), coord_.get()}) {
    EXPECT_EQ(s->EnsurePathSync(callers_dir, OpenAcl()).code(),
              StatusCode::kPermissionDenied);
  }
  ASSERT_TRUE(caller_->EnsurePathSync(callers_dir, callers_acl).ok());
  for (ZkSession* s : {anon_.get(), agent_.get(), coord_.get()}) {
    EXPECT_EQ(s->CreateSync(caller, "{}", CreateMode::kEphemeral, OpenAcl())
                  .status().code(),
              StatusCode::kPermissionDenied);
  }
  ASSERT_TRUE(
      caller_->CreateSync(caller, "{}", CreateMode::kEphemeral, callers_acl)
          .ok());
  EXPECT_EQ(coord_->SetSync(caller, "{}").status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(anon_->GetSync(caller).ok()) << "world may read callers";
  EXPECT_TRUE(caller_->SetSync(caller, "{}").ok());

  // The caller identity may write nothing else.
  EXPECT_EQ(RegisterAs(caller_.get()).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(caller_->CreateSync(Flag(), "{}", CreateMode::kEphemeral, OpenAcl())
                .status().code(),
            StatusCode::kPermissionDenied);
  for (const char* root : {paths::kDrainRoot, paths::kTrafficRoot,
                           paths::kAgentsRoot, paths::kDeploysRoot}) {
    EXPECT_EQ(caller_->EnsurePathSync(std::string(root) + "/" + svc_,
                                      OpenAcl())
                  .code(),
              StatusCode::kPermissionDenied)
        << root;
  }

  // /drain: the coordinator only.
  for (ZkSession* s : {anon_.get(), agent_.get()}) {
    EXPECT_EQ(s->EnsurePathSync(paths::DrainDir(svc_name_), OpenAcl()).code(),
              StatusCode::kPermissionDenied);
  }
  ASSERT_TRUE(coord_->EnsurePathSync(paths::DrainDir(svc_name_), drain_acl).ok());
  for (ZkSession* s : {anon_.get(), agent_.get()}) {
    EXPECT_EQ(s->CreateSync(request, "{}", CreateMode::kEphemeral, OpenAcl())
                  .status().code(),
              StatusCode::kPermissionDenied);
  }
  ASSERT_TRUE(
      coord_->CreateSync(request, "{}", CreateMode::kEphemeral, drain_acl).ok());
  EXPECT_EQ(agent_->DeleteSync(request).code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(agent_->GetSync(request).ok()) << "the agent reads requests";

  // /traffic: the agent only.
  for (ZkSession* s : {anon_.get(), coord_.get()}) {
    EXPECT_EQ(
        s->EnsurePathSync(paths::TrafficDir(svc_name_), OpenAcl()).code(),
        StatusCode::kPermissionDenied);
  }
  ASSERT_TRUE(
      agent_->EnsurePathSync(paths::TrafficDir(svc_name_), traffic_acl).ok());
  for (ZkSession* s : {anon_.get(), coord_.get()}) {
    EXPECT_EQ(s->CreateSync(report, "{}", CreateMode::kEphemeral, OpenAcl())
                  .status().code(),
              StatusCode::kPermissionDenied);
  }
  ASSERT_TRUE(
      agent_->CreateSync(report, "{}", CreateMode::kEphemeral, traffic_acl)
          .ok());
  EXPECT_EQ(coord_->SetSync(report, "{}").status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(coord_->GetSync(report).ok()) << "the coordinator reads reports";
}

// Without a caller identity only the admin may write /callers.
TEST_F(AclTest, WithoutACallerIdentityCallersCannotAcknowledge) {
  coordinator::InitIdentities no_caller = ids_;
  no_caller.caller_id.clear();
  for (const auto& [root, acl] : coordinator::RootAcls(no_caller)) {
    if (root != std::string(paths::kCallersRoot)) continue;
    for (const auto& e : acl) {
      EXPECT_TRUE(e.scheme == "world" ? e.perms == perms::kRead
                                      : e.id == ids_.admin_id)
          << e.scheme << ":" << e.id;
    }
  }
}

// The discovery client in a secured tree: with the caller identity it
// acknowledges, its node carrying the ACL of /callers; without it the
// write is refused and the list is served all the same.
TEST_F(AclTest, DiscoveryClientAcknowledgesOnlyWithTheCallerIdentity) {
  ASSERT_TRUE(RegisterAs(agent_.get()).ok());
  client::ServiceDiscovery::Options o;
  o.service = svc_name_;
  auto with = client::ServiceDiscovery::Create(io().executor(), caller_.get(), o);
  auto without = client::ServiceDiscovery::Create(io().executor(), anon_.get(), o);
  with->Start();
  without->Start();
  const std::string with_node =
      paths::CallerNode(svc_name_, HostId::Parse(with->caller_id()).value());
  const std::string without_node = paths::CallerNode(
      svc_name_, HostId::Parse(without->caller_id()).value());
  EXPECT_TRUE(WaitFor([&] { return anon_->ExistsSync(with_node)->has_value(); },
                      milliseconds(10000)));
  EXPECT_TRUE(WaitFor(
      [&] {
        auto v = without->Snapshot();
        return v->loaded && !v->stale && v->Contains(addr_);
      },
      milliseconds(10000)))
      << "a refused acknowledgement must not stop the list";
  EXPECT_FALSE(anon_->ExistsSync(without_node)->has_value());
  auto acl = anon_->GetAclSync(with_node);
  ASSERT_TRUE(acl.ok());
  bool world_write = false;
  for (const auto& e : *acl) {
    if (e.scheme == "world" && (e.perms & ~perms::kRead) != 0) world_write = true;
  }
  EXPECT_FALSE(world_write) << "a caller node must not be world-writable";
  with->Stop();
  without->Stop();
}

TEST_F(AclTest, RealAgentRegistersInSecuredTreeWithInheritedAcl) {
  int port = PickFreePort();
  TinyService svc(port);
  ASSERT_TRUE(svc.Start());
  std::string auth = dir_.Write("agent.auth", kAgent.user + ":" + kAgent.password, 0600);
  StartAgent({"--host", "secure-1", "--auth-file", auth, "--interval", "100ms",
              "--rise", "1", "--resync", "200ms", "--instance",
              svc_ + "@127.0.0.1:" + std::to_string(port)});
  ASSERT_TRUE(WaitFor([&] { return Registered(svc_, port); }, milliseconds(20000)));
  auto acl = anon_->GetAclSync(InstancePath(svc_, port));
  ASSERT_TRUE(acl.ok());
  bool world_write = false;
  for (const auto& e : *acl) {
    if (e.scheme == "world" && (e.perms & ~perms::kRead) != 0) world_write = true;
  }
  EXPECT_FALSE(world_write) << "the registration must not be world-writable";
  EXPECT_EQ(anon_->DeleteSync(InstancePath(svc_, port)).code(),
            StatusCode::kPermissionDenied);
  // The agent publishes its record shortly after it registers (coalesced).
  ASSERT_TRUE(WaitFor([&] { return anon_->ExistsSync("/agents/secure-1")->has_value(); },
                      milliseconds(20000)));
  auto agent_acl = anon_->GetAclSync("/agents/secure-1");
  ASSERT_TRUE(agent_acl.ok()) << agent_acl.status().ToString();
  EXPECT_EQ(agent_acl->size(), coordinator::RootAcls(ids_)[1].second.size());
  // Nothing in the agent's log reveals the password.
  EXPECT_EQ(AgentLog(0).find(kAgent.password), std::string::npos);
}

}  // namespace
}  // namespace zkroll::testing
