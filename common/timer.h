// Monotonic time and one-shot timers behind an interface, so that code that
// decides by elapsed time (a health check's schedule and timeouts) can run on
// the machine's steady clock in production and on a clock a test moves by
// hand. Wall-clock timestamps for payloads and logs are in clock.h.
//
// SteadyTimeSource() is the real one: Now() is std::chrono::steady_clock and
// its timers are Asio steady_timers. ManualTimeSource stands still until the
// test calls Advance(); waits that fall due then have their handlers posted
// to their timer's executor, so they run when the test runs its io_context,
// in the order they fell due. A test can therefore assert which check ran
// when, in virtual time, whatever the machine's load.
//
// Thread-safety: SteadyTimeSource() may be used from any thread; each of its
// timers, like an Asio timer, from one thread at a time. A ManualTimeSource
// may be read and advanced from any thread (it locks); handlers run on their
// executors. A timer must not outlive the source that made it; destroying a
// timer cancels its pending wait (the handler gets operation_aborted), as
// destroying an Asio timer does. A ManualTimeSource holds the handlers of
// pending waits (and whatever they own) until they fire, are cancelled or
// the source is destroyed: declare it after the io_context it serves, so
// that it goes first and those handlers die while their executor lives.
#ifndef ZKROLL_COMMON_TIMER_H_
#define ZKROLL_COMMON_TIMER_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

namespace zkroll {

using MonoClock = std::chrono::steady_clock;
using MonoTime = MonoClock::time_point;

// A one-shot timer with at most one pending wait, like asio::steady_timer.
class Timer {
 public:
  // Called once per AsyncWait: with no error when the expiry time is
  // reached, with boost::asio::error::operation_aborted when cancelled.
  using Handler = std::function<void(boost::system::error_code)>;

  virtual ~Timer() = default;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Sets the expiry time; a pending wait is cancelled.
  virtual void ExpiresAt(MonoTime t) = 0;
  // Sets the expiry time to the source's Now() + d; a pending wait is
  // cancelled.
  virtual void ExpiresAfter(MonoClock::duration d) = 0;
  // Starts a wait for the expiry time; `handler` runs on the timer's
  // executor, never inside AsyncWait.
  virtual void AsyncWait(Handler handler) = 0;
  // Cancels a pending wait (its handler gets operation_aborted). No effect
  // without one.
  virtual void Cancel() = 0;

 protected:
  Timer() = default;
};

class TimeSource {
 public:
  virtual ~TimeSource() = default;
  virtual MonoTime Now() const = 0;
  // A timer whose handlers run on `ex`.
  virtual std::unique_ptr<Timer> MakeTimer(
      const boost::asio::any_io_executor& ex) = 0;
};

// The machine's steady clock and Asio's steady_timer. Lives for the whole
// process.
TimeSource& SteadyTimeSource();

// Virtual time for tests. It starts at `start` and moves only in Advance().
class ManualTimeSource final : public TimeSource {
 public:
  // The default start is an hour past the steady clock's epoch, so that
  // code subtracting small durations from Now() stays positive.
  explicit ManualTimeSource(MonoTime start = MonoTime(std::chrono::hours(1)));
  ~ManualTimeSource() override;
  ManualTimeSource(const ManualTimeSource&) = delete;
  ManualTimeSource& operator=(const ManualTimeSource&) = delete;

  MonoTime Now() const override;
  std::unique_ptr<Timer> MakeTimer(
      const boost::asio::any_io_executor& ex) override;

  // Moves time forward by `d` (>= 0) and posts, in order of expiry, the
  // handler of every wait that is due by then. Returns how many it posted.
  int Advance(MonoClock::duration d);
  // Moves time to the earliest pending expiry (if it is in the future) and
  // posts the waits due then. False, and time unchanged, if none is
  // pending.
  bool AdvanceToNextExpiry();
  // The earliest pending expiry, if any wait is pending.
  std::optional<MonoTime> NextExpiry() const;
  // How many waits are pending.
  size_t pending_waits() const;

 private:
  class ManualTimer;
  struct State;
  // Shared with the timers (weakly), so that a timer destroyed after its
  // source, e.g. inside a handler an io_context destroys later, is harmless.
  std::shared_ptr<State> state_;
};

}  // namespace zkroll

#endif  // ZKROLL_COMMON_TIMER_H_
