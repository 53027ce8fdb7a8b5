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
    if (!self || !self->running_) return;
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
      ex_(ex),
      path_(std::move(path)),
      resync_(resync),
      on_update_(std::move(on_update)),
      timer_(ex) {}

void ChildrenWatch::Start() {
  running_ = true;
  Refresh();
  ArmResync();
}

void ChildrenWatch::Stop() {
  running_ = false;
  ++epoch_;
  timer_.cancel();
}

void ChildrenWatch::Refresh() {
  if (!running_) return;
  if (in_flight_) {
    again_ = true;
    return;
  }
  Read();
}

ZkSession::WatchCallback ChildrenWatch::MakeWatcher() {
  std::weak_ptr<ChildrenWatch> weak = shared_from_this();
  return [weak](const WatchEvent&) {
    auto self = weak.lock();
    if (!self) return;
    self->armed_ = false;
    self->Refresh();
  };
}

void ChildrenWatch::Read() {
  in_flight_ = true;
  again_ = false;
  ++reads_;
  bool with_watch = !armed_;
  auto self = shared_from_this();
  uint64_t epoch = epoch_;
  session_->GetChildren(path_, with_watch ? MakeWatcher() : nullptr,
                        [self, epoch, with_watch](Result<Children> r) {
                          self->ReadDone(epoch, r, with_watch);
                        });
}

void ChildrenWatch::ReadDone(uint64_t epoch, const Result<Children>& r,
                             bool with_watch) {
  if (epoch != epoch_) return;
  if (r.ok()) {
    if (with_watch) armed_ = true;
    in_flight_ = false;
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
    in_flight_ = false;
    on_update_(r.status());
  }
  if (again_) Read();
}

void ChildrenWatch::ExistsDone(uint64_t epoch,
                               const Result<std::optional<NodeStat>>& r) {
  if (epoch != epoch_) return;
  in_flight_ = false;
  if (!r.ok()) {
    on_update_(r.status());
  } else if (r->has_value()) {
    again_ = true;  // created between our two calls: read it now
  } else {
    armed_ = true;  // the exists watch fires on creation
    on_update_(ChildrenSnapshot{});
  }
  if (again_) Read();
}

void ChildrenWatch::ArmResync() {
  if (resync_.count() <= 0) return;
  std::weak_ptr<ChildrenWatch> weak = shared_from_this();
  uint64_t epoch = epoch_;
  timer_.expires_after(resync_);
  timer_.async_wait([weak, epoch](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || epoch != self->epoch_) return;
    self->Refresh();
    self->ArmResync();
  });
}

}  // namespace zkroll
