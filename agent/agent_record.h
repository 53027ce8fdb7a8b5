// AgentRecordPublisher: keeps /agents/<host> (AgentRecord, ephemeral)
// current with few ZooKeeper writes.
//
// Readers are people and tools (`zkroll status`, a rollout's inventory),
// not the protocol: no registration decision depends on the record. So a
// change is written after a short delay that coalesces bursts:
//   kDeclaration  what the agent manages changed, or the node must be
//                 (re)created (a new session, the ACLs just learnt, a
//                 failed write): within 50 ms;
//   kState        an instance's health, pause or registration changed:
//                 once the states have been still for 1 s, and at most 5 s
//                 after the first unwritten change. An instance paused and
//                 registered again meanwhile (a quick deploy; a rollout of
//                 quick deploys) leaves the record as it was, and then
//                 nothing is written: a write happens only when what the
//                 record shows differs from the last write, the last
//                 check's text and time aside.
// Refresh() writes even when only the last checks changed (the slow
// resync), so their times in the record stay at most one resync old.
//
// Nothing is written before SetAcl() (the ACL of /agents, learnt by the
// agent) or while disconnected; the next change or Refresh() writes.
//
// Threading: executor only. Hold by shared_ptr (Create): pending timers and
// ZooKeeper callbacks keep it alive.
#ifndef ZKROLL_AGENT_AGENT_RECORD_H_
#define ZKROLL_AGENT_AGENT_RECORD_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/ephemeral_node.h"
#include "common/names.h"
#include "common/zk_session.h"
#include "zkroll.pb.h"

namespace zkroll::agent {

class AgentRecordPublisher
    : public std::enable_shared_from_this<AgentRecordPublisher> {
 public:
  enum class Change { kDeclaration, kState };
  static constexpr std::chrono::milliseconds kDeclarationDelay{50};
  static constexpr std::chrono::milliseconds kStateDelay{1000};
  static constexpr std::chrono::milliseconds kStateMaxDelay{5000};

  // `build` returns the record as it is now (called when a write is due).
  static std::shared_ptr<AgentRecordPublisher> Create(
      ZkSession* session, boost::asio::any_io_executor ex,
      const HostId& host, std::function<proto::AgentRecord()> build);
  AgentRecordPublisher(const AgentRecordPublisher&) = delete;
  AgentRecordPublisher& operator=(const AgentRecordPublisher&) = delete;

  void Changed(Change change);
  // Writes within kDeclarationDelay even if only the last checks changed.
  void Refresh();
  // The ACL for the node; until set, nothing is written.
  void SetAcl(AclList acl);
  // A new or expired session: the node is no longer ours, the ACL must be
  // learnt again.
  void Forget();
  // Stops writing and deletes the node if it is ours; `done` runs once.
  void Delete(std::function<void()> done);
  bool ours() const { return node_->ours(); }

 private:
  AgentRecordPublisher(ZkSession* session, boost::asio::any_io_executor ex,
                       const HostId& host,
                       std::function<proto::AgentRecord()> build);
  // Arms the timer for `due`, unless it is armed for earlier; with
  // `postpone`, a later `due` replaces the one armed (a state change).
  void Arm(std::chrono::steady_clock::time_point due, bool postpone);
  void Write();

  ZkSession* session_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<EphemeralNode> node_;
  std::function<proto::AgentRecord()> build_;
  std::optional<AclList> acl_;
  // When the armed timer fires; nullopt: not armed.
  std::optional<std::chrono::steady_clock::time_point> due_;
  bool urgent_ = false;  // the armed write is not a state change's
  // The first state change not written yet (bounds the postponing).
  std::optional<std::chrono::steady_clock::time_point> first_change_;
  bool force_ = false;     // Refresh() asked for a write
  bool in_flight_ = false;
  bool again_ = false;     // a write became due while one was in flight
  bool stopped_ = false;
  // What the last successful write showed (checks' texts and times, and
  // the update time, cleared); empty: write whatever comes next.
  std::string written_;
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_AGENT_RECORD_H_
