// Periodic health checking of one instance, smoothed by rise/fall
// hysteresis, in the manner of Envoy's ActiveHealthCheckSession.
//
// A HealthMonitor owns the schedule (a jittered interval timer), the check in
// flight and the rise/fall counters for one CheckTarget, and reports each
// change of the instance's healthy/unhealthy state once. The agent runs one
// per local instance; the coordinator uses one to wait for an upgraded
// instance to come up.
//
// Thread-safety: none. Create the monitor and call every method on the thread
// that runs its executor (or before that thread starts), with an executor
// that does not run handlers concurrently (an io_context run by one thread).
// Callbacks run on that executor.
#ifndef ZKROLL_COMMON_HEALTH_MONITOR_H_
#define ZKROLL_COMMON_HEALTH_MONITOR_H_

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "common/duration.h"
#include "common/health/check.h"
#include "common/status.h"
#include "common/timer.h"

namespace zkroll::health {

// The rise/fall state machine, without any I/O. An unhealthy instance
// becomes healthy after `rise` consecutive passes; a healthy one becomes
// unhealthy after `fall` consecutive failures. A result of the other kind
// resets the streak, so a flapping instance keeps its current state.
class Hysteresis {
 public:
  // rise and fall must be >= 1 (CHECKed).
  Hysteresis(int rise, int fall, bool initially_healthy = false);

  // Feeds one check result. Returns true when this result flips the state.
  bool Observe(bool pass);

  bool healthy() const { return healthy_; }
  // Length of the current streak of passes / failures (one of them is 0
  // once anything has been observed).
  int consecutive_passes() const { return passes_; }
  int consecutive_failures() const { return failures_; }

  // Sets the state directly. The streak of the opposite kind is cleared, so
  // that e.g. after ForceUnhealthy it takes `rise` new passes to recover.
  void ForceHealthy();
  void ForceUnhealthy();

 private:
  int rise_;
  int fall_;
  bool healthy_;
  int passes_ = 0;
  int failures_ = 0;
};

struct MonitorOptions {
  CheckSpec spec;
  CheckTarget target;
  // Time from the end of one check to the start of the next.
  Millis interval{2000};
  // Limit for each check.
  Millis timeout{1000};
  int rise = 2;
  int fall = 3;
  // Each interval is stretched or shrunk by up to this fraction, at random,
  // so that monitors started together do not stay in lockstep.
  double jitter = 0.1;
  // The state before the first check. false (the default) treats the
  // instance as unknown, hence unhealthy: it needs `rise` passes to be
  // reported healthy. true suits an instance already known to be serving
  // (an agent restarting next to its registered instances): it then needs
  // `fall` failures to be reported unhealthy, and no transition is reported
  // for the initial state.
  bool initially_healthy = false;
  // The clock and timers of the schedule and of every check (their
  // timeouts and `elapsed`). Null means the machine's steady clock; tests
  // pass a ManualTimeSource and decide when each check is due and when it
  // times out. Not owned: it must outlive the monitor.
  TimeSource* time = nullptr;
};

// InvalidArgument naming the bad field unless: interval and timeout are
// positive, rise and fall are in 1..1000, jitter is in [0, 1).
Status ValidateMonitorOptions(const MonitorOptions& options);

struct HealthTransition {
  bool healthy;
  // The reason of the check result that caused the transition.
  std::string reason;
  // Length of the streak of passes (or failures) that caused it.
  int consecutive;
};

class HealthMonitor : public std::enable_shared_from_this<HealthMonitor> {
 public:
  using TransitionCallback = std::function<void(const HealthTransition&)>;
  using ResultCallback = std::function<void(const CheckResult&)>;

  // `options` must pass ValidateMonitorOptions (CHECKed: callers validate
  // configuration before building monitors). Unless initially_healthy is
  // set, the instance starts out unhealthy, as if unknown, and the first
  // transition is to healthy, after `rise` passes. `on_transition` is called
  // once per transition and `on_result` (optional) after every completed
  // check, before `on_transition`; both run on `ex` and may call Stop(),
  // CheckNow() or drop the monitor.
  //
  // The monitor lives while the caller holds the returned pointer; its
  // pending handlers hold only weak references. Dropping the last pointer
  // acts like Stop(). Like any Asio I/O object (it owns a timer), it must be
  // destroyed before its io_context.
  static std::shared_ptr<HealthMonitor> Create(boost::asio::any_io_executor ex,
                                               MonitorOptions options,
                                               TransitionCallback on_transition,
                                               ResultCallback on_result = {});

  ~HealthMonitor();
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // Starts the schedule. The first check runs after a random delay in
  // [0, min(interval, 1s)), so that many monitors started at once (an agent
  // booting) spread their load without a long interval delaying the first
  // verdict. No effect if already started or stopped.
  void Start();

  // Cancels the timer and any check in flight (an exec check's process is
  // killed). No callback runs after Stop returns. Final: a stopped monitor
  // cannot be restarted.
  void Stop();

  // Runs one check now, outside the schedule; if a check is in flight, right
  // after it. The result counts like any other. In addition, if
  // `pass_is_enough` and it passes, the state becomes healthy at once (and a
  // transition is reported if it was unhealthy): used when a pause flag
  // disappears, to register the instance on its first pass rather than
  // after `rise` of them. Works before Start() too; the periodic schedule
  // then still waits for Start(). No effect after Stop().
  void CheckNow(bool pass_is_enough);

  bool healthy() const { return hysteresis_.healthy(); }
  // The latest completed check; healthy == false and reason "no check has
  // completed yet" before the first.
  const CheckResult& last_result() const { return last_result_; }
  int64_t checks_run() const { return checks_run_; }
  const MonitorOptions& options() const { return options_; }

 private:
  HealthMonitor(boost::asio::any_io_executor ex, MonitorOptions options,
                TransitionCallback on_transition, ResultCallback on_result);

  void ScheduleNext(Millis delay);
  void BeginCheck(bool pass_is_enough);
  void OnCheckDone(uint64_t generation, bool pass_is_enough,
                   CheckResult result);
  Millis JitteredInterval();

  boost::asio::any_io_executor ex_;
  const MonitorOptions options_;
  const std::string name_;  // "127.0.0.1:9000", for logs
  TransitionCallback on_transition_;
  ResultCallback on_result_;

  TimeSource& time_;
  std::unique_ptr<Timer> timer_;
  // Bumped whenever the timer is re-armed or cancelled, so that a timer
  // handler already queued with success when we cancelled it does nothing.
  uint64_t timer_seq_ = 0;
  bool check_in_flight_ = false;
  CheckHandle in_flight_;
  // Identifies the check in flight; a result carrying another generation
  // belongs to a check that was cancelled and is dropped.
  uint64_t generation_ = 0;
  bool started_ = false;
  bool stopped_ = false;
  // CheckNow() arrived while a check was in flight.
  bool check_now_pending_ = false;
  bool pending_pass_is_enough_ = false;

  Hysteresis hysteresis_;
  CheckResult last_result_;
  int64_t checks_run_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace zkroll::health

#endif  // ZKROLL_COMMON_HEALTH_MONITOR_H_
