#include "common/health/monitor.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>

namespace zkroll::health {

Hysteresis::Hysteresis(int rise, int fall, bool initially_healthy)
    : rise_(rise), fall_(fall), healthy_(initially_healthy) {
  CHECK_GE(rise, 1);
  CHECK_GE(fall, 1);
}

bool Hysteresis::Observe(bool pass) {
  if (pass) {
    failures_ = 0;
    if (passes_ < std::numeric_limits<int>::max()) ++passes_;
    if (!healthy_ && passes_ >= rise_) {
      healthy_ = true;
      return true;
    }
  } else {
    passes_ = 0;
    if (failures_ < std::numeric_limits<int>::max()) ++failures_;
    if (healthy_ && failures_ >= fall_) {
      healthy_ = false;
      return true;
    }
  }
  return false;
}

void Hysteresis::ForceHealthy() {
  healthy_ = true;
  failures_ = 0;
}

void Hysteresis::ForceUnhealthy() {
  healthy_ = false;
  passes_ = 0;
}

Status ValidateMonitorOptions(const MonitorOptions& options) {
  if (options.interval.count() <= 0) {
    return InvalidArgument("health check interval must be positive, got " +
                           FormatDuration(options.interval));
  }
  if (options.timeout.count() <= 0) {
    return InvalidArgument("health check timeout must be positive, got " +
                           FormatDuration(options.timeout));
  }
  if (options.rise < 1 || options.rise > 1000) {
    return InvalidArgument("health check rise must be 1..1000, got " +
                           std::to_string(options.rise));
  }
  if (options.fall < 1 || options.fall > 1000) {
    return InvalidArgument("health check fall must be 1..1000, got " +
                           std::to_string(options.fall));
  }
  if (!(options.jitter >= 0.0 && options.jitter < 1.0)) {
    return InvalidArgument(
        "health check jitter must be a fraction in [0, 1), got " +
        std::to_string(options.jitter));
  }
  return Status::Ok();
}

std::shared_ptr<HealthMonitor> HealthMonitor::Create(
    boost::asio::any_io_executor ex, MonitorOptions options,
    TransitionCallback on_transition, ResultCallback on_result) {
  Status valid = ValidateMonitorOptions(options);
  CHECK(valid.ok()) << "HealthMonitor for " << DescribeTarget(options.target)
                    << ": " << valid.ToString();
  return std::shared_ptr<HealthMonitor>(
      new HealthMonitor(std::move(ex), std::move(options),
                        std::move(on_transition), std::move(on_result)));
}

HealthMonitor::HealthMonitor(boost::asio::any_io_executor ex,
                             MonitorOptions options,
                             TransitionCallback on_transition,
                             ResultCallback on_result)
    : ex_(std::move(ex)),
      options_(std::move(options)),
      name_(DescribeTarget(options_.target)),
      on_transition_(std::move(on_transition)),
      on_result_(std::move(on_result)),
      time_(options_.time != nullptr ? *options_.time : SteadyTimeSource()),
      timer_(time_.MakeTimer(ex_)),
      hysteresis_(options_.rise, options_.fall, options_.initially_healthy),
      rng_(std::random_device{}()) {
  last_result_.reason = "no check has completed yet";
}

HealthMonitor::~HealthMonitor() { Stop(); }

void HealthMonitor::Start() {
  if (started_ || stopped_) return;
  started_ = true;
  // A check started by CheckNow() schedules the next one when it completes.
  if (check_in_flight_) return;
  // Spread the first checks of many monitors over up to a second, but do
  // not make a long interval delay the first verdict after a start.
  int64_t spread = std::min<int64_t>(options_.interval.count(), 1000);
  std::uniform_int_distribution<int64_t> first(0, spread - 1);
  ScheduleNext(Millis(first(rng_)));
}

void HealthMonitor::Stop() {
  if (stopped_) return;
  stopped_ = true;
  timer_->Cancel();
  ++timer_seq_;
  ++generation_;
  check_now_pending_ = false;
  if (check_in_flight_) {
    check_in_flight_ = false;
    in_flight_.Cancel();
  }
}

void HealthMonitor::CheckNow(bool pass_is_enough) {
  if (stopped_) return;
  if (check_in_flight_) {
    // Never two checks of one instance at a time: queue it. The check in
    // flight may have started before whatever prompted this call (a pause
    // flag vanishing), so its result does not stand in for a fresh one.
    check_now_pending_ = true;
    pending_pass_is_enough_ = pending_pass_is_enough_ || pass_is_enough;
    return;
  }
  BeginCheck(pass_is_enough);
}

void HealthMonitor::ScheduleNext(Millis delay) {
  uint64_t seq = ++timer_seq_;
  // Round the wake-up up to a 16ms grid of the monitor's clock: an agent with
  // a thousand monitors then wakes for a batch of due checks instead of
  // once per check (measured with bench/agent/run.sh). Jitter still spreads
  // the checks over the grid slots.
  constexpr int64_t kGridMs = 16;
  // Rounded up from the first step too: truncating to whole milliseconds
  // could wake up to 1ms before `delay` has passed.
  auto due = time_.Now() + delay;
  auto since_epoch =
      std::chrono::ceil<Millis>(due.time_since_epoch()).count();
  auto rounded = ((since_epoch + kGridMs - 1) / kGridMs) * kGridMs;
  timer_->ExpiresAt(MonoTime(Millis(rounded)));
  timer_->AsyncWait(
      [weak = weak_from_this(), seq](boost::system::error_code ec) {
        if (ec) return;
        std::shared_ptr<HealthMonitor> self = weak.lock();
        if (!self || self->stopped_ || seq != self->timer_seq_ ||
            self->check_in_flight_) {
          return;
        }
        self->BeginCheck(false);
      });
}

void HealthMonitor::BeginCheck(bool pass_is_enough) {
  timer_->Cancel();
  ++timer_seq_;
  uint64_t generation = ++generation_;
  check_in_flight_ = true;
  in_flight_ = StartCheck(
      ex_, options_.spec, options_.target, options_.timeout,
      [weak = weak_from_this(), generation, pass_is_enough](CheckResult r) {
        if (std::shared_ptr<HealthMonitor> self = weak.lock()) {
          self->OnCheckDone(generation, pass_is_enough, std::move(r));
        }
      },
      time_);
}

void HealthMonitor::OnCheckDone(uint64_t generation, bool pass_is_enough,
                                CheckResult result) {
  if (stopped_ || generation != generation_) return;
  check_in_flight_ = false;
  in_flight_ = CheckHandle();
  ++checks_run_;
  last_result_ = std::move(result);

  bool pass = last_result_.healthy;
  bool flipped = hysteresis_.Observe(pass);
  bool forced = false;
  if (pass_is_enough && pass && !hysteresis_.healthy()) {
    hysteresis_.ForceHealthy();
    flipped = true;
    forced = true;
  }

  std::optional<HealthTransition> transition;
  if (flipped) {
    bool healthy = hysteresis_.healthy();
    int streak = healthy ? hysteresis_.consecutive_passes()
                         : hysteresis_.consecutive_failures();
    transition = HealthTransition{healthy, last_result_.reason, streak};
    const char* noun = streak == 1 ? "check" : "checks";
    if (forced) {
      LOG(INFO) << name_ << " became healthy on its first passed check "
                << "(check requested now): " << last_result_.reason
                << " [check " << DescribeCheck(options_.spec) << "]";
    } else {
      LOG(INFO) << name_ << " became " << (healthy ? "healthy" : "unhealthy")
                << " after " << streak << (healthy ? " passed " : " failed ")
                << noun << ": " << last_result_.reason << " [check "
                << DescribeCheck(options_.spec) << "]";
    }
  }

  // The callbacks may Stop() us, drop us (the caller of this function holds
  // a reference for its duration) or start a check with CheckNow().
  if (on_result_) on_result_(last_result_);
  if (stopped_) return;
  if (transition && on_transition_) on_transition_(*transition);
  if (stopped_ || check_in_flight_) return;

  if (check_now_pending_) {
    bool queued_pass_is_enough = pending_pass_is_enough_;
    check_now_pending_ = false;
    pending_pass_is_enough_ = false;
    BeginCheck(queued_pass_is_enough);
  } else if (started_) {
    ScheduleNext(JitteredInterval());
  }
}

Millis HealthMonitor::JitteredInterval() {
  double factor = 1.0;
  if (options_.jitter > 0) {
    std::uniform_real_distribution<double> spread(-options_.jitter,
                                                  options_.jitter);
    factor += spread(rng_);
  }
  auto ms = static_cast<int64_t>(
      std::llround(static_cast<double>(options_.interval.count()) * factor));
  return Millis(std::max<int64_t>(ms, 1));
}

}  // namespace zkroll::health
