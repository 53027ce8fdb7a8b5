#include "common/refresh_loop.h"

#include <utility>

namespace zkroll {

RefreshLoop::RefreshLoop(boost::asio::any_io_executor ex, Millis resync)
    : resync_timer_(std::move(ex)), resync_(resync) {}

void RefreshLoop::Start(std::weak_ptr<void> owner, ReadFn read) {
  owner_ = std::move(owner);
  read_ = std::move(read);
  running_ = true;
  Refresh();
  ArmResync();
}

void RefreshLoop::Stop() {
  running_ = false;
  Invalidate();
  resync_timer_.cancel();
}

void RefreshLoop::Invalidate() {
  ++epoch_;
  in_flight_ = false;
}

void RefreshLoop::Refresh() {
  if (!running_) return;
  if (in_flight_) {
    again_ = true;
    return;
  }
  Read();
}

void RefreshLoop::Restart() {
  if (!running_) return;
  ++epoch_;
  Read();
}

bool RefreshLoop::End(uint64_t epoch) {
  if (epoch != epoch_) return false;
  in_flight_ = false;
  return true;
}

void RefreshLoop::Next() {
  if (again_ && running_ && !in_flight_) Read();
}

void RefreshLoop::Read() {
  in_flight_ = true;
  again_ = false;
  read_(epoch_);
}

void RefreshLoop::ArmResync() {
  if (!running_ || resync_.count() <= 0) return;
  resync_timer_.expires_after(resync_);
  resync_timer_.async_wait(
      [owner = owner_, this](const boost::system::error_code& ec) {
        // The owner is locked before `this` is touched: a handler queued
        // before the owner died still runs, with success.
        auto alive = owner.lock();
        if (ec || !alive || !running_) return;
        Refresh();
        ArmResync();
      });
}

}  // namespace zkroll
