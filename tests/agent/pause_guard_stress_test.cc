// The registration guard under a race: an agent-style registration loop
// against a coordinator-style pause, 10,000 times. The invariant is that
// the pause flag and the registration never exist together afterwards.
//
// Each round the registrar reads the guard exactly as the agent does
// (version of /pause, then children and version of /pause/<service>) and,
// finding no flag, submits its guarded multi; the pauser concurrently
// submits the pause multi. Every tenth round forces the worst interleaving
// (the pause lands between the registrar's read and its write) so the
// guard is exercised deterministically, not only when timing allows.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/paths.h"
#include "common/registry.h"
#include "tests/support/zk_fixture.h"

namespace zkroll::testing {
namespace {

constexpr int kRounds = 10000;

// A reusable two-party rendezvous (std::barrier is C++20).
class Rendezvous {
 public:
  void arrive_and_wait() {
    std::unique_lock<std::mutex> l(mu_);
    uint64_t gen = generation_;
    if (++waiting_ == 2) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(l, [&] { return generation_ != gen; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  uint64_t generation_ = 0;
};

class PauseGuardStressTest : public ZooKeeperTest {};

registry::GuardVersion ReadGuard(ZkSession* s, const ServiceName& svc,
                                 const InstanceAddress& addr, bool* flagged) {
  auto root = s->ExistsSync(paths::kPauseRoot);
  EXPECT_TRUE(root.ok() && root->has_value());
  auto kids = s->GetChildrenSync(paths::PauseDir(svc));
  if (!kids.ok()) {
    EXPECT_EQ(kids.status().code(), StatusCode::kNotFound);
    *flagged = false;
    return {paths::kPauseRoot, (*root)->version};
  }
  *flagged = std::find(kids->names.begin(), kids->names.end(),
                       addr.NodeName()) != kids->names.end();
  return {paths::PauseDir(svc), kids->stat.version};
}

TEST_F(PauseGuardStressTest, FlagAndRegistrationNeverCoexist) {
  auto agent = Connect();
  auto coordinator = Connect();
  auto observer = Connect();
  auto svc = ServiceName::Parse("stress").value();
  auto addr = InstanceAddress::Parse("127.0.0.1:7000").value();
  const std::string node = paths::InstanceNode(svc, addr);
  const std::string flag = paths::PauseFlagNode(svc, addr);
  ASSERT_TRUE(agent->EnsurePathSync(paths::kServicesRoot, OpenAcl()).ok());
  ASSERT_TRUE(agent->EnsurePathSync(paths::kPauseRoot, OpenAcl()).ok());

  int both = 0, registered_first = 0, paused_first = 0;
  int registrations_refused = 0, pauses_refused = 0;
  for (int round = 0; round < kRounds; ++round) {
    // Round 0..99 run without /pause/<service> and /services/<service>, so
    // the root guards are raced too.
    if (round == 100) {
      ASSERT_TRUE(coordinator->EnsurePathSync(paths::PauseDir(svc), OpenAcl()).ok());
    }
    const bool pause_between = round % 10 == 0;     // worst case for the agent
    const bool register_between = round % 10 == 5;  // worst case for the pause
    Rendezvous sync;
    bool registered = false;
    std::thread registrar([&] {
      if (round < 100 || !agent->ExistsSync(paths::ServiceDir(svc))->has_value()) {
        MultiResult d = agent->MultiSync(registry::CreateServiceDirOps(svc, OpenAcl()));
        ASSERT_TRUE(d.status.ok() || d.failed_op == 0) << d.status.ToString();
      }
      bool flagged = false;
      auto guard = ReadGuard(agent.get(), svc, addr, &flagged);
      sync.arrive_and_wait();  // start together
      // Forced orders: the pause lands, or the pause has read, first.
      if (pause_between || register_between) sync.arrive_and_wait();
      if (!flagged) {
        MultiResult r = agent->MultiSync(registry::RegisterOps(
            svc, addr, "{}", guard, std::nullopt, OpenAcl()));
        registered = r.status.ok();
        registrations_refused += r.failed_op == 0;
      }
      if (register_between) sync.arrive_and_wait();
    });
    MultiResult p;
    if (register_between) {
      // Read what the pause needs, let the registration land, then write.
      sync.arrive_and_wait();
      auto ctx = registry::ReadPauseContext(*coordinator, svc, addr);
      ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
      sync.arrive_and_wait();  // the registrar may write now...
      sync.arrive_and_wait();  // ...and has written
      p = coordinator->MultiSync(registry::PauseOps(
          svc, addr, "{}", CreateMode::kEphemeral, *ctx, OpenAcl()));
      if (!p.status.ok()) {
        ++pauses_refused;
        p = registry::Pause(*coordinator, svc, addr, "{}",
                            CreateMode::kEphemeral, OpenAcl());
      }
    } else {
      sync.arrive_and_wait();
      p = registry::Pause(*coordinator, svc, addr, "{}", CreateMode::kEphemeral,
                          OpenAcl());
      if (pause_between) sync.arrive_and_wait();
    }
    registrar.join();
    ASSERT_TRUE(p.status.ok()) << p.status.ToString();
    (registered ? registered_first : paused_first) += 1;
    bool flag_there = observer->ExistsSync(flag)->has_value();
    bool node_there = observer->ExistsSync(node)->has_value();
    ASSERT_TRUE(flag_there);
    if (flag_there && node_there) ++both;
    ASSERT_TRUE(coordinator->DeleteSync(flag).ok());
    if (node_there) {
      ASSERT_TRUE(agent->DeleteSync(node).ok());
    }
    if (round == 99) {
      // From now on the service nodes exist; before, every round made them.
      ASSERT_TRUE(agent->EnsurePathSync(paths::ServiceDir(svc), OpenAcl()).ok());
    } else if (round < 99) {
      ASSERT_TRUE(coordinator->DeleteSync(paths::ServiceDir(svc)).ok());
      auto pd = coordinator->ExistsSync(paths::PauseDir(svc));
      if (pd.ok() && pd->has_value()) {
        ASSERT_TRUE(coordinator->DeleteSync(paths::PauseDir(svc)).ok());
      }
    }
  }
  std::cout << "rounds " << kRounds << ": registered before the pause "
            << registered_first << ", paused first " << paused_first
            << ", registrations refused by the pause guard "
            << registrations_refused << ", pauses refused by the registry guard "
            << pauses_refused << ", flag and registration together " << both
            << "\n";
  EXPECT_EQ(both, 0);
  // The forced rounds alone must have exercised both guards 1,000 times.
  EXPECT_GE(registrations_refused, kRounds / 10);
  EXPECT_GE(pauses_refused, kRounds / 10);
}

}  // namespace
}  // namespace zkroll::testing
