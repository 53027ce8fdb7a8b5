#include "common/zk_watch.h"

namespace zkroll {

std::shared_ptr<ChildrenWatch> ChildrenWatch::Create(
    ZkSession* session, boost::asio::any_io_executor ex, std::string path,
    Millis resync, OnUpdate on_update) {
  auto w = std::shared_ptr<ChildrenWatch>(new ChildrenWatch(
      session, ex, std::move(path), resync, std::move(on_update)));
  std::weak_ptr<ChildrenWatch> weak = w;
  session->AddListener([weak](const SessionEvent& e) {
    auto self = weak.lock();
    if (!self || !self->loop_.running()) return;
    if (e.kind == SessionEvent::Kind::kNewSession ||
        e.kind == SessionEvent::Kind::kExpired) {
      self->armed_ = false;  // watches die with the session
    }
    // Re-read after every reconnect: the client re-registers our watches,
    // but a change made while we were away may already have fired for a
    // connection we no longer see.
    if (e.kind == SessionEvent::Kind::kNewSession ||
        e.kind == SessionEvent::Kind::kReconnected) {
      self->Refresh();
    }
  });
  return w;
}

ChildrenWatch::ChildrenWatch(ZkSession* session,
                             boost::asio::any_io_executor ex, std::string path,
                             Millis resync, OnUpdate on_update)
    : session_(session),
      path_(std::move(path)),
      on_update_(std::move(on_update)),
      loop_(std::move(ex), resync) {}

void ChildrenWatch::Start() {
  std::weak_ptr<ChildrenWatch> weak = shared_from_this();
  loop_.Start(weak, [weak](uint64_t epoch) {
    if (auto self = weak.lock()) self->Read(epoch);
  });
}

void ChildrenWatch::Stop() { loop_.Stop(); }

void ChildrenWatch::Refresh() { loop_.Refresh(); }

ZkSession::WatchCallback ChildrenWatch::MakeWatcher() {
  std::weak_ptr<ChildrenWatch> weak = shared_from_this();
  return [weak](const WatchEvent&) {
    auto self = weak.lock();
    if (!self) return;
    self->armed_ = false;
    self->Refresh();
  };
}

void ChildrenWatch::Read(uint64_t epoch) {
  ++reads_;
  bool with_watch = !armed_;
  auto self = shared_from_this();
  session_->GetChildren(path_, with_watch ? MakeWatcher() : nullptr,
                        [self, epoch, with_watch](Result<Children> r) {
                          self->ReadDone(epoch, r, with_watch);
                        });
}

void ChildrenWatch::ReadDone(uint64_t epoch, const Result<Children>& r,
                             bool with_watch) {
  if (!loop_.Current(epoch)) return;
  if (r.ok()) {
    if (with_watch) armed_ = true;
    loop_.End(epoch);
    on_update_(ChildrenSnapshot{true, *r});
  } else if (r.status().code() == StatusCode::kNotFound) {
    // No children watch could be set on a missing node: wait for it.
    auto self = shared_from_this();
    session_->Exists(path_, MakeWatcher(),
                     [self, epoch](Result<std::optional<NodeStat>> e) {
                       self->ExistsDone(epoch, e);
                     });
    return;  // still in flight
  } else {
    loop_.End(epoch);
    on_update_(r.status());
  }
  loop_.Next();
}

void ChildrenWatch::ExistsDone(uint64_t epoch,
                               const Result<std::optional<NodeStat>>& r) {
  if (!loop_.Current(epoch)) return;
  if (r.ok() && r->has_value()) {
    loop_.Restart();  // created between our two calls: read it now
    return;
  }
  loop_.End(epoch);
  if (!r.ok()) {
    on_update_(r.status());
  } else {
    armed_ = true;  // the exists watch fires on creation
    on_update_(ChildrenSnapshot{});
  }
  loop_.Next();
}

}  // namespace zkroll
