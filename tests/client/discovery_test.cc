// ServiceDiscovery against a real ZooKeeper server. The test registers
// instance nodes itself, as the agent would: ephemeral
// /services/<service>/<ip>_<port> nodes holding InstanceRecord JSON, owned
// by a session of their own ("the agent's").
#include "client/discovery.h"

#include <gtest/gtest.h>

#include <glog/logging.h>

#include <atomic>
#include <mutex>
#include <map>
#include <set>
#include <thread>
#include <unistd.h>
#include <algorithm>
#include <optional>

#include "common/instance_record.h"
#include "common/paths.h"
#include "common/payload.h"
#include "tests/support/zk_fixture.h"
#include "zkroll.pb.h"

namespace zkroll::client {
namespace {

using std::chrono::milliseconds;
using testing::WaitFor;

class DiscoveryTest : public testing::ZooKeeperTest {
 protected:
  void SetUp() override {
    ZooKeeperTest::SetUp();
    service_ = ServiceName::Parse(TestServiceName()).value();
    // Long session timeouts: the instance nodes must survive a server
    // restart, and so must the callers' sessions.
    ZkOptions long_session;
    long_session.session_timeout = Millis(30000);
    owner_ = Connect(long_session);
    caller_ = Connect(long_session);
    ASSERT_TRUE(
        owner_->EnsurePathSync(paths::ServiceDir(service_), OpenAcl()).ok());
  }

  void TearDown() override {
    for (auto& d : discoveries_) d->Stop();
    discoveries_.clear();
  }

  static InstanceAddress Local(int port) {
    return InstanceAddress::FromParts("127.0.0.1", port).value();
  }
  std::string NodePath(int port) const {
    return paths::InstanceNode(service_, Local(port));
  }
  std::string Record(int port, uint32_t weight) const {
    proto::InstanceRecord r;
    r.set_service(service_.str());
    r.set_ip("127.0.0.1");
    r.set_port(port);
    r.set_host("test-host");
    r.set_weight(weight);
    return ToJson(r);
  }
  void Register(int port, uint32_t weight = 0) {
    auto created = owner_->CreateSync(NodePath(port), Record(port, weight),
                                      CreateMode::kEphemeral, OpenAcl());
    ASSERT_TRUE(created.ok()) << created.status().ToString();
  }
  void Deregister(int port) {
    ASSERT_TRUE(owner_->DeleteSync(NodePath(port)).ok());
  }

  std::shared_ptr<ServiceDiscovery> Start(DiscoveryMode mode,
                                          Millis poll_interval = Millis(1000),
                                          Millis resync = Millis(60000),
                                          ZkSession* session = nullptr) {
    ServiceDiscovery::Options o;
    o.service = service_;
    o.mode = mode;
    o.poll_interval = poll_interval;
    o.resync = resync;
    auto d = ServiceDiscovery::Create(io().executor(),
                                      session ? session : caller_.get(), o);
    d->Start();
    discoveries_.push_back(d);
    return d;
  }

  static std::set<int> Ports(const ServiceView& v) {
    std::set<int> ports;
    for (const auto& i : v.instances) ports.insert(i.address.port());
    return ports;
  }
  static bool Lists(const std::shared_ptr<ServiceDiscovery>& d,
                    std::set<int> ports) {
    return Ports(*d->Snapshot()) == ports;
  }
  static bool FreshWith(const std::shared_ptr<ServiceDiscovery>& d,
                        std::set<int> ports) {
    auto v = d->Snapshot();
    return v->loaded && !v->stale && Ports(*v) == ports;
  }

  // Our /callers node's record and stat, if it exists.
  std::optional<std::pair<proto::CallerRecord, NodeStat>> CallerNode(
      const std::shared_ptr<ServiceDiscovery>& d) {
    if (d->caller_id().empty()) return std::nullopt;
    auto data = owner_->GetSync(paths::CallerNode(
        service_, HostId::Parse(d->caller_id()).value()));
    if (!data.ok()) return std::nullopt;
    auto r = ParsePayload<proto::CallerRecord>(data->data, "caller");
    if (!r.ok()) return std::nullopt;
    return std::make_pair(*r, data->stat);
  }
  int64_t ServicePzxid() {
    return (*owner_->ExistsSync(paths::ServiceDir(service_)).value()).pzxid;
  }
  // The caller's node acknowledges the current children of the service.
  bool AcknowledgesCurrentList(const std::shared_ptr<ServiceDiscovery>& d,
                               uint32_t instances) {
    auto node = CallerNode(d);
    return node && node->first.list_pzxid() == ServicePzxid() &&
           node->first.instances() == instances;
  }

  ServiceName service_;
  std::unique_ptr<ZkSession> owner_;   // owns the instance nodes
  std::unique_ptr<ZkSession> caller_;  // the calling application's session
  std::vector<std::shared_ptr<ServiceDiscovery>> discoveries_;
};

class BothModesTest : public DiscoveryTest,
                      public ::testing::WithParamInterface<DiscoveryMode> {};

INSTANTIATE_TEST_SUITE_P(Modes, BothModesTest,
                         ::testing::Values(DiscoveryMode::kWatch,
                                           DiscoveryMode::kPoll),
                         [](const auto& info) {
                           return std::string(DiscoveryModeName(info.param));
                         });

TEST_F(DiscoveryTest, WatchModeSeesAddAndRemovePromptly) {
  Register(9001);
  Register(9002);
  // A resync far beyond the deadlines below: only watches can explain a
  // prompt update.
  auto d = Start(DiscoveryMode::kWatch, Millis(1000), Millis(600000));
  ASSERT_TRUE(WaitFor(
      [&] {
        return FreshWith(d, {9001, 9002});
      },
      milliseconds(10000)))
      << d->Snapshot()->Describe();
  const uint64_t g0 = d->generation();

  Register(9003);
  EXPECT_TRUE(WaitFor(
      [&] {
        return Lists(d, {9001, 9002, 9003});
      },
      milliseconds(5000)))
      << d->Snapshot()->Describe();
  Deregister(9001);
  EXPECT_TRUE(WaitFor(
      [&] {
        return Lists(d, {9002, 9003});
      },
      milliseconds(5000)))
      << d->Snapshot()->Describe();
  EXPECT_GE(d->generation(), g0 + 2);
  auto v = d->Snapshot();
  EXPECT_FALSE(v->stale) << v->stale_reason;
  EXPECT_TRUE(v->service_exists);
  EXPECT_TRUE(v->zk_connected);
  ASSERT_EQ(v->instances.size(), 2u);
  EXPECT_EQ(v->instances[0].record.host(), "test-host");
  EXPECT_EQ(v->instances[0].weight, 1u) << "weight 0 counts as 1";
}

TEST_F(DiscoveryTest, PollModeSeesChangesOnlyAfterARefresh) {
  Register(9001);
  auto watch = Start(DiscoveryMode::kWatch);
  auto poll = Start(DiscoveryMode::kPoll, Millis(1000), Millis(0));
  ASSERT_TRUE(
      WaitFor([&] { return FreshWith(poll, {9001}); }, milliseconds(10000)));
  ASSERT_TRUE(
      WaitFor([&] { return FreshWith(watch, {9001}); }, milliseconds(10000)));

  // An addition: the watcher sees it at once, the poller with its next
  // refresh and never before.
  uint64_t r0 = poll->Snapshot()->refreshes;
  Register(9002);
  ASSERT_TRUE(WaitFor(
      [&] {
        return Lists(watch, {9001, 9002});
      },
      milliseconds(5000)));
  bool early = false;
  auto not_before_refresh = [&](uint64_t r, int port, bool listed) {
    return [&, r, port, listed] {
      auto v = poll->Snapshot();
      if (v->refreshes == r && v->Contains(Local(port)) == listed) {
        early = true;
      }
      // Two refreshes: the first may have started before the change.
      return v->refreshes >= r + 2;
    };
  };
  ASSERT_TRUE(WaitFor(not_before_refresh(r0, 9002, true), milliseconds(10000)));
  EXPECT_FALSE(early) << "the poller listed an instance before a refresh";
  EXPECT_TRUE(Lists(poll, {9001, 9002})) << poll->Snapshot()->Describe();

  // A removal, the same way round.
  uint64_t r1 = poll->Snapshot()->refreshes;
  Deregister(9002);
  ASSERT_TRUE(
      WaitFor([&] { return Lists(watch, {9001}); }, milliseconds(5000)));
  ASSERT_TRUE(
      WaitFor(not_before_refresh(r1, 9002, false), milliseconds(10000)));
  EXPECT_FALSE(early) << "the poller dropped an instance before a refresh";
  EXPECT_TRUE(Lists(poll, {9001})) << poll->Snapshot()->Describe();
}

TEST_P(BothModesTest, RemovedInstanceIsNeverPickedOnceTheRemovalIsSeen) {
  Register(9001);
  Register(9002);
  Register(9003);
  auto d = Start(GetParam(), Millis(200));
  ASSERT_TRUE(WaitFor(
      [&] {
        return FreshWith(d, {9001, 9002, 9003});
      },
      milliseconds(10000)));
  Deregister(9002);
  ASSERT_TRUE(WaitFor([&] { return !d->Snapshot()->Contains(Local(9002)); },
                      milliseconds(10000)));
  std::map<int, int> picks;
  for (int i = 0; i < 1000; ++i) {
    auto e = d->Pick();
    ASSERT_TRUE(e.has_value());
    ++picks[e->address.port()];
  }
  EXPECT_EQ(picks.count(9002), 0u);
  EXPECT_EQ(picks[9001], 500);
  EXPECT_EQ(picks[9003], 500);
}

TEST_P(BothModesTest, WeightsAreHonoured) {
  Register(9001, 1);
  Register(9002, 2);
  Register(9003, 3);
  auto d = Start(GetParam(), Millis(200), Millis(500));
  ASSERT_TRUE(WaitFor(
      [&] {
        return FreshWith(d, {9001, 9002, 9003});
      },
      milliseconds(10000)));
  std::map<int, int> picks;
  for (int i = 0; i < 600; ++i) ++picks[d->Pick()->address.port()];
  EXPECT_EQ(picks[9001], 100);
  EXPECT_EQ(picks[9002], 200);
  EXPECT_EQ(picks[9003], 300);

  // A weight changed in place (same node, new data): a data watch in watch
  // mode, the stat check of the resync in poll mode.
  ASSERT_TRUE(owner_->SetSync(NodePath(9001), Record(9001, 3)).ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto v = d->Snapshot();
        return !v->instances.empty() && v->instances[0].weight == 3;
      },
      milliseconds(10000)))
      << d->Snapshot()->Describe();
  picks.clear();
  for (int i = 0; i < 800; ++i) ++picks[d->Pick()->address.port()];
  EXPECT_EQ(picks[9001], 300);
  EXPECT_EQ(picks[9002], 200);
  EXPECT_EQ(picks[9003], 300);
}

TEST_P(BothModesTest, MalformedChildrenAreSkippedAndCounted) {
  const std::string dir = paths::ServiceDir(service_);
  auto create = [&](const std::string& name, const std::string& data) {
    auto r = owner_->CreateSync(dir + "/" + name, data, CreateMode::kEphemeral,
                                OpenAcl());
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
  };
  Register(9003);
  create("not-an-address", Record(1, 0));
  create("10.0.0.1_99999", "");
  create("0:0:0:0:0:0:0:1_80", "");  // not the canonical spelling (::1)
  create("127.0.0.1_9001", "{{{ not json");
  create("127.0.0.1_9002", Record(9005, 0));  // names another port
  create("127.0.0.1_9004", "");               // empty payload
  auto d = Start(GetParam(), Millis(200), Millis(500));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto v = d->Snapshot();
        return v->loaded && v->skipped.size() == 6;
      },
      milliseconds(10000)))
      << d->Snapshot()->Describe();
  auto v = d->Snapshot();
  EXPECT_EQ(Ports(*v), std::set<int>{9003});
  std::set<std::string> skipped;
  for (const auto& s : v->skipped) {
    skipped.insert(s.name);
    EXPECT_FALSE(s.reason.empty()) << s.name;
  }
  EXPECT_EQ(skipped,
            (std::set<std::string>{"not-an-address", "10.0.0.1_99999",
                                   "0:0:0:0:0:0:0:1_80", "127.0.0.1_9001",
                                   "127.0.0.1_9002", "127.0.0.1_9004"}));
  EXPECT_FALSE(v->stale) << "bad children are not a ZooKeeper failure";
  for (int i = 0; i < 10; ++i) EXPECT_EQ(d->Pick()->address.port(), 9003);

  // A repaired payload makes the instance usable: noticed by the data
  // watch in watch mode, by the resync's stat check in poll mode.
  ASSERT_TRUE(owner_->SetSync(NodePath(9001), Record(9001, 0)).ok());
  EXPECT_TRUE(WaitFor(
      [&] {
        auto now = d->Snapshot();
        return Ports(*now) == std::set<int>{9001, 9003} &&
               now->skipped.size() == 5;
      },
      milliseconds(10000)))
      << d->Snapshot()->Describe();
}

// Nodes that other writers leave under /services/<service>: Apache
// Curator's own registrations (named after a UUID, or under an address name
// with a UUID id), and records naming another service, zkroll's or
// Curator's way. Each is skipped with one log line, however often the list
// is re-read; zkroll's records of both formats are used.
TEST_P(BothModesTest, ForeignNodesAreSkippedWithOneLogLineEach) {
  struct SkipLines : google::LogSink {
    void send(google::LogSeverity, const char*, const char*, int,
              const google::LogMessageTime&, const char* message,
              size_t length) override {
      std::string m(message, length);
      std::lock_guard<std::mutex> lock(mu);
      if (m.rfind("skipping ", 0) == 0) ++lines[m.substr(0, m.find(':'))];
    }
    std::map<std::string, int> Lines() {
      std::lock_guard<std::mutex> lock(mu);
      return lines;
    }
    std::mutex mu;
    std::map<std::string, int> lines;
  } sink;
  google::AddLogSink(&sink);
  const std::string dir = paths::ServiceDir(service_);
  auto create = [&](const std::string& name, const std::string& data) {
    auto r = owner_->CreateSync(dir + "/" + name, data, CreateMode::kEphemeral,
                                OpenAcl());
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
  };
  // As Curator 5.4's ServiceDiscovery.registerService writes it.
  auto curator = [&](const std::string& name, const std::string& id,
                     int port) {
    return R"({"name":")" + name + R"(","id":")" + id +
           R"(","address":"127.0.0.1","port":)" + std::to_string(port) +
           R"(,"sslPort":null,"payload":null,"registrationTimeUTC":1796029781053,"serviceType":"DYNAMIC","uriSpec":null})";
  };
  const std::string uuid = "6c1d1f0e-2a4b-4d0e-9f5e-1b2c3d4e5f60";
  create(uuid, curator(service_.str(), uuid, 9101));
  create("127.0.0.1_9102", curator(service_.str(), uuid, 9102));
  create("127.0.0.1_9103", curator("other", "127.0.0.1_9103", 9103));
  proto::InstanceRecord other_service =
      NewInstanceRecord(ServiceName::Parse("other").value(), Local(9104),
                        std::chrono::system_clock::now());
  create("127.0.0.1_9104", ToJson(other_service));
  // Usable: the current agent's record and an older agent's.
  proto::InstanceRecord current = NewInstanceRecord(
      service_, Local(9105), std::chrono::system_clock::now());
  current.set_host("host-a");
  create("127.0.0.1_9105", ToJson(current));
  Register(9106);
  auto d = Start(GetParam(), Millis(200), Millis(300));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto v = d->Snapshot();
        return v->loaded && v->skipped.size() == 4 && v->refreshes >= 4;
      },
      milliseconds(10000)))
      << d->Snapshot()->Describe();
  auto v = d->Snapshot();
  EXPECT_EQ(Ports(*v), (std::set<int>{9105, 9106}));
  std::map<std::string, std::string> reasons;
  for (const auto& s : v->skipped) reasons[s.name] = s.reason;
  EXPECT_NE(reasons[uuid], "");
  EXPECT_NE(reasons["127.0.0.1_9102"].find(uuid), std::string::npos);
  EXPECT_NE(reasons["127.0.0.1_9103"].find("'other'"), std::string::npos);
  EXPECT_NE(reasons["127.0.0.1_9104"].find("'other'"), std::string::npos);
  EXPECT_FALSE(v->stale) << "foreign children are not a ZooKeeper failure";
  google::RemoveLogSink(&sink);
  // One line per foreign node, however many reads.
  EXPECT_EQ(sink.Lines()["skipping child '" + uuid + "' of " + dir], 1);
  for (const char* port : {"9102", "9103", "9104"}) {
    EXPECT_EQ(sink.Lines()["skipping " + dir + "/127.0.0.1_" + port], 1)
        << port;
  }
}

TEST_P(BothModesTest, MissingServiceNodeIsAnEmptyFreshList) {
  ServiceName other = ServiceName::Parse(service_.str() + "-none").value();
  ServiceDiscovery::Options o;
  o.service = other;
  o.mode = GetParam();
  o.poll_interval = Millis(200);
  auto d = ServiceDiscovery::Create(io().executor(), caller_.get(), o);
  discoveries_.push_back(d);
  d->Start();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto v = d->Snapshot();
        return v->loaded && !v->stale;
      },
      milliseconds(10000)))
      << d->Snapshot()->Describe();
  EXPECT_FALSE(d->Snapshot()->service_exists);
  EXPECT_FALSE(d->Pick().has_value());

  // The node appears later (the first agent creates it).
  ASSERT_TRUE(owner_->EnsurePathSync(paths::ServiceDir(other), OpenAcl()).ok());
  proto::InstanceRecord r;
  r.set_port(9001);
  r.set_ip("127.0.0.1");
  ASSERT_TRUE(owner_
                  ->CreateSync(paths::InstanceNode(other, Local(9001)),
                               ToJson(r), CreateMode::kEphemeral, OpenAcl())
                  .ok());
  EXPECT_TRUE(
      WaitFor([&] { return FreshWith(d, {9001}); }, milliseconds(10000)))
      << d->Snapshot()->Describe();
  EXPECT_TRUE(d->Snapshot()->service_exists);
}

// ZooKeeper goes away: both modes keep serving the last list, say it is
// stale, and are fresh again once the server is back.
TEST_F(DiscoveryTest, ZooKeeperDownKeepsTheListAndSaysStale) {
  Register(9001);
  Register(9002);
  auto watch = Start(DiscoveryMode::kWatch);
  auto poll = Start(DiscoveryMode::kPoll, Millis(200), Millis(0));
  for (auto& d : {watch, poll}) {
    ASSERT_TRUE(WaitFor(
        [&] {
          return FreshWith(d, {9001, 9002});
        },
        milliseconds(10000)));
  }
  const uint64_t poll_refreshes = poll->Snapshot()->refreshes;
  const uint64_t poll_failed = poll->Snapshot()->failed_reads;

  server()->Stop();
  const auto stopped_at = std::chrono::steady_clock::now();
  for (auto& d : {watch, poll}) {
    ASSERT_TRUE(
        WaitFor([&] { return d->Snapshot()->stale; }, milliseconds(10000)))
        << DiscoveryModeName(d->options().mode);
  }
  // The poller keeps trying and failing meanwhile; its list survives.
  EXPECT_TRUE(
      WaitFor([&] { return poll->Snapshot()->failed_reads >= poll_failed + 2; },
              milliseconds(15000)))
      << poll->Snapshot()->Describe();
  for (auto& d : {watch, poll}) {
    auto v = d->Snapshot();
    SCOPED_TRACE(DiscoveryModeName(d->options().mode));
    EXPECT_TRUE(v->stale);
    EXPECT_FALSE(v->zk_connected);
    EXPECT_NE(v->stale_reason.find("ZooKeeper"), std::string::npos)
        << v->stale_reason;
    EXPECT_TRUE(v->stale_since.has_value());
    EXPECT_EQ(Ports(*v), (std::set<int>{9001, 9002}));
    std::set<int> picked;
    for (int i = 0; i < 10; ++i) {
      auto e = d->Pick();
      ASSERT_TRUE(e.has_value());
      picked.insert(e->address.port());
    }
    EXPECT_EQ(picked, (std::set<int>{9001, 9002}));
  }
  EXPECT_LE(poll->Snapshot()->refreshes, poll_refreshes + 1);

  ASSERT_TRUE(server()->Start().ok());
  for (auto& d : {watch, poll}) {
    EXPECT_TRUE(WaitFor(
        [&] {
          return FreshWith(d, {9001, 9002});
        },
        milliseconds(30000)))
        << d->Snapshot()->Describe();
    EXPECT_TRUE(d->Snapshot()->zk_connected);
  }
  EXPECT_GT(poll->Snapshot()->refreshes, poll_refreshes);
  const double outage_s = std::chrono::duration<double>(
                              std::chrono::steady_clock::now() - stopped_at)
                              .count();
  std::cout << "[ measured ] ZooKeeper outage incl. restart: " << outage_s
            << "s; both modes served 2 instances throughout\n";

  // And they follow changes again. The test's own session reconnects on
  // its own schedule (the client's backoff after the outage): register
  // through it once it has.
  ASSERT_TRUE(WaitFor([&] { return owner_->connected(); },
                      milliseconds(30000)));
  Register(9003);
  for (auto& d : {watch, poll}) {
    EXPECT_TRUE(WaitFor(
        [&] {
          return Lists(d, {9001, 9002, 9003});
        },
        milliseconds(10000)));
  }
}

// Our own session expires: the list is kept through the expiry and re-read
// with new watches on the new session.
TEST_F(DiscoveryTest, SessionExpiryKeepsTheListAndRebuildsWatches) {
  Register(9001);
  Register(9002);
  auto d = Start(DiscoveryMode::kWatch);
  ASSERT_TRUE(WaitFor(
      [&] {
        return FreshWith(d, {9001, 9002});
      },
      milliseconds(10000)));
  const int64_t old_session = caller_->session_id();
  bool shrank = false;
  ASSERT_TRUE(
      server()->ExpireSession(old_session, caller_->session_password()).ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        shrank = shrank || d->Snapshot()->instances.size() < 2;
        return caller_->session_id() != old_session && caller_->connected() &&
               FreshWith(d, {9001, 9002});
      },
      milliseconds(30000)))
      << d->Snapshot()->Describe();
  EXPECT_FALSE(shrank) << "the list shrank during the expiry";
  // Watches of the new session work.
  Deregister(9001);
  EXPECT_TRUE(WaitFor([&] { return Lists(d, {9002}); }, milliseconds(5000)));
  Register(9004);
  EXPECT_TRUE(WaitFor(
      [&] {
        return Lists(d, {9002, 9004});
      },
      milliseconds(5000)));
}

TEST_P(BothModesTest, AcknowledgesTheListItServesOncePerChange) {
  Register(9001);
  Register(9002);
  // Watch mode re-reads on its resync; both re-read every 200ms.
  auto d = Start(GetParam(), Millis(200), Millis(200));
  ASSERT_FALSE(d->caller_id().empty());
  ASSERT_TRUE(WaitFor([&] { return AcknowledgesCurrentList(d, 2); },
                      milliseconds(10000)));
  auto node = CallerNode(d);
  ASSERT_TRUE(node.has_value());
  const proto::CallerRecord& r = node->first;
  EXPECT_EQ(r.service(), service_.str());
  EXPECT_EQ(r.caller_id(), d->caller_id());
  EXPECT_EQ(r.pid(), ::getpid());
  EXPECT_EQ(r.mode(), DiscoveryModeName(GetParam()));
  EXPECT_FALSE(r.host().empty());
  EXPECT_NE(std::find(r.ips().begin(), r.ips().end(), "127.0.0.1"),
            r.ips().end());
  EXPECT_EQ(node->second.ephemeral_owner, caller_->session_id());
  EXPECT_EQ(d->caller_id().rfind(r.host() + "-" + std::to_string(::getpid()) +
                                     "-",
                                 0),
            0u);
  const int32_t version = node->second.version;
  // A removal: the caller acknowledges a list read after it, at most once
  // per change.
  Deregister(9002);
  const int64_t removal = ServicePzxid();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto n = CallerNode(d);
        return n && n->first.list_pzxid() >= removal &&
               n->first.instances() == 1;
      },
      milliseconds(10000)));
  EXPECT_FALSE(d->Snapshot()->Contains(Local(9002)));
  // Reads that change nothing write nothing.
  uint64_t refreshes = d->Snapshot()->refreshes;
  ASSERT_TRUE(WaitFor([&] { return d->Snapshot()->refreshes >= refreshes + 3; },
                      milliseconds(10000)));
  EXPECT_EQ(CallerNode(d)->second.version, version + 1);
}

TEST_F(DiscoveryTest, AcknowledgementsCoalesceABurstOfChanges) {
  Register(9001);
  auto d = Start(DiscoveryMode::kWatch);
  ASSERT_TRUE(WaitFor([&] { return AcknowledgesCurrentList(d, 1); },
                      milliseconds(10000)));
  const int32_t version = CallerNode(d)->second.version;
  constexpr int kChanges = 20;
  for (int i = 0; i < kChanges; ++i) Register(9100 + i);
  ASSERT_TRUE(WaitFor([&] { return AcknowledgesCurrentList(d, 1 + kChanges); },
                      milliseconds(10000)));
  const int32_t writes = CallerNode(d)->second.version - version;
  EXPECT_GE(writes, 1);
  EXPECT_LE(writes, kChanges) << "more than one write per change";
}

TEST_F(DiscoveryTest, AcknowledgementIsRecreatedOnANewSessionAndGoesOnStop) {
  Register(9001);
  auto d = Start(DiscoveryMode::kWatch);
  ASSERT_TRUE(WaitFor([&] { return AcknowledgesCurrentList(d, 1); },
                      milliseconds(10000)));
  const int64_t old_session = caller_->session_id();
  ASSERT_TRUE(
      server()->ExpireSession(old_session, caller_->session_password()).ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto n = CallerNode(d);
        return caller_->session_id() != old_session && n &&
               n->second.ephemeral_owner == caller_->session_id() &&
               n->first.list_pzxid() == ServicePzxid();
      },
      milliseconds(30000)));
  d->Stop();
  EXPECT_TRUE(WaitFor([&] { return !CallerNode(d).has_value(); },
                      milliseconds(10000)))
      << "Stop() leaves the caller's node behind";
}

TEST_F(DiscoveryTest, AcknowledgementsCanBeTurnedOff) {
  Register(9001);
  ServiceDiscovery::Options o;
  o.service = service_;
  o.acknowledge = false;
  auto d = ServiceDiscovery::Create(io().executor(), caller_.get(), o);
  d->Start();
  discoveries_.push_back(d);
  auto on = Start(DiscoveryMode::kWatch);  // one that does, to wait for
  ASSERT_TRUE(WaitFor([&] { return AcknowledgesCurrentList(on, 1); },
                      milliseconds(10000)));
  ASSERT_TRUE(WaitFor([&] { return FreshWith(d, {9001}); },
                      milliseconds(10000)));
  EXPECT_TRUE(d->caller_id().empty());
  auto kids = owner_->GetChildrenSync(paths::CallersDir(service_));
  ASSERT_TRUE(kids.ok());
  EXPECT_EQ(kids->names, std::vector<std::string>{on->caller_id()});
}

TEST_F(DiscoveryTest, ChangeListenersSeeEveryNewGeneration) {
  Register(9001);
  ServiceDiscovery::Options o;
  o.service = service_;
  auto d = ServiceDiscovery::Create(io().executor(), caller_.get(), o);
  discoveries_.push_back(d);
  std::mutex mu;
  std::vector<std::pair<uint64_t, std::set<int>>> seen;
  d->AddChangeListener([&](const std::shared_ptr<const ServiceView>& v) {
    std::lock_guard<std::mutex> l(mu);
    seen.emplace_back(v->generation, Ports(*v));
  });
  d->Start();
  ASSERT_TRUE(WaitFor([&] { return Lists(d, {9001}); }, milliseconds(10000)));
  Deregister(9001);
  ASSERT_TRUE(WaitFor([&] { return Lists(d, {}); }, milliseconds(10000)));
  std::lock_guard<std::mutex> l(mu);
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.front().second, std::set<int>{9001});
  EXPECT_EQ(seen.back().second, std::set<int>{});
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GT(seen[i].first, seen[i - 1].first);
  }
}

TEST_F(DiscoveryTest, PickIsThreadSafeWhileTheListChanges) {
  Register(9001);
  auto d = Start(DiscoveryMode::kWatch);
  ASSERT_TRUE(
      WaitFor([&] { return FreshWith(d, {9001}); }, milliseconds(10000)));
  std::atomic<bool> stop{false};
  std::atomic<int64_t> picks{0}, foreign{0};
  std::vector<std::thread> pickers;
  for (int t = 0; t < 4; ++t) {
    pickers.emplace_back([&] {
      while (!stop) {
        auto e = d->Pick();
        if (e && (e->address.port() < 9001 || e->address.port() > 9003)) {
          ++foreign;
        }
        ++picks;
      }
    });
  }
  for (int round = 0; round < 10; ++round) {
    Register(9002);
    Register(9003);
    EXPECT_TRUE(WaitFor(
        [&] {
          return Lists(d, {9001, 9002, 9003});
        },
        milliseconds(5000)));
    Deregister(9002);
    Deregister(9003);
    EXPECT_TRUE(WaitFor([&] { return Lists(d, {9001}); }, milliseconds(5000)));
  }
  stop = true;
  for (auto& t : pickers) t.join();
  EXPECT_GT(picks.load(), 1000);
  EXPECT_EQ(foreign.load(), 0);
}

TEST_F(DiscoveryTest, StopEndsCallsSoTheSessionMayGo) {
  Register(9001);
  auto session = Connect();
  auto d = Start(DiscoveryMode::kPoll, Millis(50), Millis(100), session.get());
  ASSERT_TRUE(
      WaitFor([&] { return FreshWith(d, {9001}); }, milliseconds(10000)));
  d->Stop();
  session.reset();  // must not be touched by d from now on
  const uint64_t r = d->Snapshot()->refreshes;
  // Timers keep no life in it: a few poll periods later nothing changed
  // (and nothing crashed). Wait on the other discovery's progress rather
  // than on time.
  auto other = Start(DiscoveryMode::kPoll, Millis(50));
  ASSERT_TRUE(WaitFor([&] { return other->Snapshot()->refreshes >= 5; },
                      milliseconds(10000)));
  EXPECT_EQ(d->Snapshot()->refreshes, r);
  EXPECT_TRUE(d->Pick().has_value()) << "the last list is still served";
}

}  // namespace
}  // namespace zkroll::client
