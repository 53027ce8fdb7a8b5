#include "common/timer.h"

#include <glog/logging.h>

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace zkroll {
namespace {

class SteadyTimer final : public Timer {
 public:
  explicit SteadyTimer(const boost::asio::any_io_executor& ex) : timer_(ex) {}
  void ExpiresAt(MonoTime t) override { timer_.expires_at(t); }
  void ExpiresAfter(MonoClock::duration d) override { timer_.expires_after(d); }
  void AsyncWait(Handler handler) override {
    timer_.async_wait(std::move(handler));
  }
  void Cancel() override { timer_.cancel(); }

 private:
  boost::asio::steady_timer timer_;
};

class SteadySource final : public TimeSource {
 public:
  MonoTime Now() const override { return MonoClock::now(); }
  std::unique_ptr<Timer> MakeTimer(
      const boost::asio::any_io_executor& ex) override {
    return std::make_unique<SteadyTimer>(ex);
  }
};

}  // namespace

TimeSource& SteadyTimeSource() {
  static SteadySource* source = new SteadySource;  // never destroyed
  return *source;
}

struct ManualTimeSource::State {
  struct Wait {
    uint64_t timer_id;
    boost::asio::any_io_executor ex;
    Timer::Handler handler;
  };
  // Keyed by (expiry, order of arming): equal expiries fire in the order
  // they were armed, as a real event loop would run them.
  using WaitKey = std::pair<MonoTime, uint64_t>;

  explicit State(MonoTime start) : now(start) {}

  // Posts the handlers of the waits due by now_, in order. Called with
  // `lock` held; posts without it.
  int FireDue(std::unique_lock<std::mutex>& lock) {
    std::vector<Wait> due;
    while (!waits.empty() && waits.begin()->first.first <= now) {
      due.push_back(std::move(waits.begin()->second));
      waits.erase(waits.begin());
    }
    lock.unlock();
    for (Wait& w : due) {
      boost::asio::post(
          w.ex, [h = std::move(w.handler)] { h(boost::system::error_code()); });
    }
    lock.lock();
    return static_cast<int>(due.size());
  }

  void Add(uint64_t timer_id, MonoTime expiry, boost::asio::any_io_executor ex,
           Timer::Handler handler) {
    std::unique_lock<std::mutex> lock(mu);
    // One pending wait per timer, as with Asio timers used the usual way.
    for (const auto& [key, wait] : waits) {
      CHECK_NE(wait.timer_id, timer_id) << "second AsyncWait on one timer";
    }
    waits.emplace(WaitKey{expiry, next_id++},
                  Wait{timer_id, std::move(ex), std::move(handler)});
    // An expiry already reached fires at once, like an Asio timer set in
    // the past.
    FireDue(lock);
  }

  // Removes the pending wait of `timer_id` and posts it operation_aborted.
  void Cancel(uint64_t timer_id) {
    std::optional<Wait> cancelled;
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto it = waits.begin(); it != waits.end(); ++it) {
        if (it->second.timer_id == timer_id) {
          cancelled = std::move(it->second);
          waits.erase(it);
          break;
        }
      }
    }
    if (cancelled) {
      boost::asio::post(cancelled->ex, [h = std::move(cancelled->handler)] {
        h(boost::asio::error::operation_aborted);
      });
    }
  }

  std::mutex mu;
  MonoTime now;
  uint64_t next_id = 1;
  std::map<WaitKey, Wait> waits;
};

class ManualTimeSource::ManualTimer final : public Timer {
 public:
  ManualTimer(std::weak_ptr<State> state, uint64_t id,
              boost::asio::any_io_executor ex, MonoTime now)
      : state_(std::move(state)), id_(id), ex_(std::move(ex)), expiry_(now) {}
  ~ManualTimer() override { Cancel(); }

  void ExpiresAt(MonoTime t) override {
    Cancel();
    expiry_ = t;
  }
  void ExpiresAfter(MonoClock::duration d) override {
    std::shared_ptr<State> state = state_.lock();
    MonoTime now = expiry_;
    if (state) {
      std::lock_guard<std::mutex> lock(state->mu);
      now = state->now;
    }
    ExpiresAt(now + d);
  }
  void AsyncWait(Handler handler) override {
    // A timer whose source is gone never fires (its source's time stopped
    // for good).
    if (std::shared_ptr<State> state = state_.lock()) {
      state->Add(id_, expiry_, ex_, std::move(handler));
    }
  }
  void Cancel() override {
    if (std::shared_ptr<State> state = state_.lock()) state->Cancel(id_);
  }

 private:
  const std::weak_ptr<State> state_;
  const uint64_t id_;
  const boost::asio::any_io_executor ex_;
  MonoTime expiry_;
};

ManualTimeSource::ManualTimeSource(MonoTime start)
    : state_(std::make_shared<State>(start)) {}

ManualTimeSource::~ManualTimeSource() {
  std::map<State::WaitKey, State::Wait> left;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    left.swap(state_->waits);
  }
  // Destroyed outside the lock: a handler may own the last reference to the
  // object that owns the timer, whose destructor cancels (finding nothing).
  left.clear();
}

MonoTime ManualTimeSource::Now() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->now;
}

std::unique_ptr<Timer> ManualTimeSource::MakeTimer(
    const boost::asio::any_io_executor& ex) {
  std::lock_guard<std::mutex> lock(state_->mu);
  return std::make_unique<ManualTimer>(state_, state_->next_id++, ex,
                                       state_->now);
}

int ManualTimeSource::Advance(MonoClock::duration d) {
  CHECK(d.count() >= 0) << "time does not go backwards";
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->now += d;
  return state_->FireDue(lock);
}

bool ManualTimeSource::AdvanceToNextExpiry() {
  std::unique_lock<std::mutex> lock(state_->mu);
  if (state_->waits.empty()) return false;
  state_->now = std::max(state_->now, state_->waits.begin()->first.first);
  state_->FireDue(lock);
  return true;
}

std::optional<MonoTime> ManualTimeSource::NextExpiry() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (state_->waits.empty()) return std::nullopt;
  return state_->waits.begin()->first.first;
}

size_t ManualTimeSource::pending_waits() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->waits.size();
}

}  // namespace zkroll
