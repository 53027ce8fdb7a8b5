// The registration guard under a race: an agent-style registration loop
// against a coordinator-style pause, 10,000 times. The invariant is that
// the pause flag and the registration never exist together afterwards.
//
// Both sides run the code the daemons run. Each round the registrar reads
// the flags and the guard through the agent's own PauseWatcher (a read that
// started after the round began) and, finding no flag, submits the agent's
// guarded multi (registry::RegisterOps); the pauser concurrently runs the
// coordinator's pause loop (registry::Pause, which `zkroll deploy`, `rollout`
// and `pause` run). Every tenth round forces the worst interleaving for the
// agent (the pause lands between the registrar's read and its write), and
// every tenth another one for the pause (the registration lands between the
// pause's reads and its transaction, through the loop's before_write hook),
// so both guards are exercised deterministically, not only when timing
// allows.
#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "agent/pause_watcher.h"
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

// The agent's view of the pause flags of one service, kept by its real
// PauseWatcher on the fixture's I/O thread.
class AgentView {
 public:
  AgentView(ZkSession* session, boost::asio::any_io_executor ex,
            const ServiceName& service)
      : ex_(ex) {
    watcher_ = agent::PauseWatcher::Create(
        session, ex, service, Millis(0), [this](const agent::PauseSnapshot& s) {
          std::lock_guard<std::mutex> l(mu_);
          latest_ = s;
          cv_.notify_all();
        });
    boost::asio::post(ex_, [w = watcher_] { w->Start(); });
  }
  ~AgentView() {
    std::promise<void> stopped;
    boost::asio::post(ex_, [&] {
      watcher_->Stop();
      stopped.set_value();
    });
    stopped.get_future().wait();
  }

  // A snapshot read entirely after this call (as the agent's registration
  // uses one), or nullopt if none came within the deadline.
  std::optional<agent::PauseSnapshot> Fresh() {
    std::promise<uint64_t> asked;
    boost::asio::post(ex_, [&] { asked.set_value(watcher_->Refresh()); });
    const uint64_t want = asked.get_future().get();
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_for(l, std::chrono::seconds(30),
                      [&] { return latest_.known && latest_.read >= want; })) {
      return std::nullopt;
    }
    return latest_;
  }

 private:
  boost::asio::any_io_executor ex_;
  std::shared_ptr<agent::PauseWatcher> watcher_;
  std::mutex mu_;
  std::condition_variable cv_;
  agent::PauseSnapshot latest_;
};

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
  AgentView view(agent.get(), io().executor(), svc);

  ZkRetryContext retry(coordinator.get());
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
      auto snap = view.Fresh();
      ASSERT_TRUE(snap) << "the agent's PauseWatcher did not read the flags";
      const bool flagged =
          snap->Forbids(addr, std::chrono::system_clock::now());
      const registry::GuardVersion guard = snap->guard;
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
    registry::PauseRequest request;
    request.service = svc;
    request.address = addr;
    request.flag_json = [] { return std::string("{}"); };
    request.flag_mode = CreateMode::kEphemeral;
    request.acl = OpenAcl();
    if (register_between) {
      // The pause has read what it needs; let the registration land, then
      // send the transaction (refused by the registry guard, read again).
      sync.arrive_and_wait();
      request.before_write = [&](int attempt) {
        if (attempt != 1) return;
        sync.arrive_and_wait();  // the registrar may write now...
        sync.arrive_and_wait();  // ...and has written
      };
    } else {
      sync.arrive_and_wait();
    }
    registry::PauseOutcome p =
        registry::Pause(*coordinator, retry, RetryOptions{}, request);
    if (pause_between) sync.arrive_and_wait();
    pauses_refused += p.races > 0 && register_between;
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
