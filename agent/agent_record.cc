#include "agent/agent_record.h"

#include <algorithm>

#include "common/paths.h"
#include "common/payload.h"

namespace zkroll::agent {
namespace {

// The record without what changes at every check (or every write): two
// records that compare equal here show the same states to a reader.
std::string Shown(proto::AgentRecord rec) {
  rec.clear_updated_at();
  for (auto& inst : *rec.mutable_instances()) {
    inst.clear_last_check();
    inst.clear_last_check_at();
  }
  return ToJson(rec);
}

}  // namespace

std::shared_ptr<AgentRecordPublisher> AgentRecordPublisher::Create(
    ZkSession* session, boost::asio::any_io_executor ex, const HostId& host,
    std::function<proto::AgentRecord()> build) {
  return std::shared_ptr<AgentRecordPublisher>(
      new AgentRecordPublisher(session, ex, host, std::move(build)));
}

AgentRecordPublisher::AgentRecordPublisher(
    ZkSession* session, boost::asio::any_io_executor ex, const HostId& host,
    std::function<proto::AgentRecord()> build)
    : session_(session),
      timer_(ex),
      node_(EphemeralNode::Create(session, paths::AgentNode(host))),
      build_(std::move(build)) {}

void AgentRecordPublisher::Changed(Change change) {
  const auto now = std::chrono::steady_clock::now();
  if (change == Change::kDeclaration) {
    Arm(now + kDeclarationDelay, false);
    return;
  }
  if (!first_change_) first_change_ = now;
  Arm(std::min(now + kStateDelay, *first_change_ + kStateMaxDelay), true);
}

void AgentRecordPublisher::Refresh() {
  force_ = true;
  Arm(std::chrono::steady_clock::now() + kDeclarationDelay, false);
}

void AgentRecordPublisher::SetAcl(AclList acl) {
  acl_ = std::move(acl);
  Arm(std::chrono::steady_clock::now() + kDeclarationDelay, false);
}

void AgentRecordPublisher::Forget() {
  node_->Forget();
  acl_.reset();
  written_.clear();
  in_flight_ = false;  // a reply of the old session changes nothing now
}

void AgentRecordPublisher::Delete(std::function<void()> done) {
  stopped_ = true;
  timer_.cancel();
  due_.reset();
  node_->Delete(std::move(done));
}

void AgentRecordPublisher::Arm(std::chrono::steady_clock::time_point due,
                               bool postpone) {
  if (stopped_) return;
  if (due_) {
    // A write armed for earlier covers this change; so does an urgent one
    // (declaration, refresh), which a state change never postpones.
    if (!postpone && *due_ <= due) return;
    if (postpone && urgent_) return;
  }
  urgent_ = urgent_ || !postpone;
  due_ = due;
  timer_.expires_at(due);
  std::weak_ptr<AgentRecordPublisher> weak = shared_from_this();
  timer_.async_wait([weak](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self) return;  // re-armed (cancelled), or gone
    self->due_.reset();
    self->urgent_ = false;
    self->Write();
  });
}

void AgentRecordPublisher::Write() {
  if (stopped_ || !acl_ || !session_->connected()) return;
  if (in_flight_) {
    again_ = true;  // one write at a time; this one follows
    return;
  }
  first_change_.reset();  // everything changed so far is in this record
  proto::AgentRecord rec = build_();
  std::string shown = Shown(rec);
  if (!force_ && node_->ours() && shown == written_) return;
  force_ = false;
  in_flight_ = true;
  std::weak_ptr<AgentRecordPublisher> weak = shared_from_this();
  node_->Publish(
      ToJson(rec), *acl_,
      [weak] {
        if (auto self = weak.lock()) self->Changed(Change::kDeclaration);
      },
      [weak, shown] {
        auto self = weak.lock();
        if (!self) return;
        self->in_flight_ = false;
        // Not ours after the attempt: it failed; write in full next time.
        self->written_ = self->node_->ours() ? shown : std::string();
        if (self->again_) {
          self->again_ = false;
          self->Write();
        }
      });
}

}  // namespace zkroll::agent
