// Retry (common/retry.h) driven by a scripted clock and session: which
// failures are repeated, when it gives up, how long it waits between
// attempts, and that a bound call is never repeated in a later session.
// No real time passes: the context's WaitForChange moves the clock.
#include "common/retry.h"

#include <gtest/gtest.h>

#include <deque>
#include <vector>

namespace zkroll {
namespace {

using TimePoint = SteadyClock::TimePoint;

class ManualClock : public SteadyClock {
 public:
  TimePoint Now() const override { return now_; }
  void Set(TimePoint t) { now_ = t; }
  Millis Elapsed() const {
    return std::chrono::duration_cast<Millis>(now_ - TimePoint{});
  }

 private:
  TimePoint now_{};
};

// A session whose changes happen at scripted times. WaitForChange moves the
// clock to the next scripted change (applying it) if that comes before
// `until`, otherwise to `until`.
class ScriptedContext : public RetryContext {
 public:
  struct Change {
    Millis at;
    SessionState state;
  };
  explicit ScriptedContext(SessionState initial) : state_(initial) {}

  const SteadyClock& clock() const override { return clock_; }
  SessionState session() const override { return state_; }
  void WaitForChange(const SessionState& seen, TimePoint until) override {
    waits_.push_back(std::chrono::duration_cast<Millis>(until - clock_.Now()));
    if (state_ != seen) return;
    if (!changes_.empty() && TimePoint{} + changes_.front().at < until) {
      clock_.Set(std::max(clock_.Now(), TimePoint{} + changes_.front().at));
      state_ = changes_.front().state;
      changes_.pop_front();
      return;
    }
    clock_.Set(until);
  }
  bool stop_requested() const override { return stop_; }

  void Script(Millis at, SessionState s) { changes_.push_back({at, s}); }
  void RequestStop() { stop_ = true; }
  ManualClock& manual_clock() { return clock_; }
  const std::vector<Millis>& waits() const { return waits_; }

 private:
  ManualClock clock_;
  SessionState state_;
  std::deque<Change> changes_;
  std::vector<Millis> waits_;
  bool stop_ = false;
};

Status Loss() { return Status(StatusCode::kConnectionLoss, "lost"); }
Status Expired() { return Status(StatusCode::kSessionExpired, "expired"); }

RetryOptions Options(Millis window, Status::RetryIn scope) {
  RetryOptions o;
  o.window = window;
  o.scope = scope;
  return o;
}

TEST(TransientRuleTest, ExpiryIsTransientOnlyForARenewingSession) {
  using In = Status::RetryIn;
  for (In in : {In::kSameSession, In::kAnySession}) {
    EXPECT_TRUE(Loss().IsTransient(in));
    EXPECT_TRUE(Status(StatusCode::kOperationTimeout, "t").IsTransient(in));
    EXPECT_FALSE(NotFound("n").IsTransient(in));
    EXPECT_FALSE(Status(StatusCode::kBadVersion, "v").IsTransient(in));
    EXPECT_FALSE(Status::Ok().IsTransient(in));
  }
  EXPECT_FALSE(Expired().IsTransient(In::kSameSession));
  EXPECT_TRUE(Expired().IsTransient(In::kAnySession));
  EXPECT_EQ(Loss().IsRetryable(), Loss().IsTransient(In::kSameSession));
  EXPECT_EQ(Expired().IsRetryable(), Expired().IsTransient(In::kSameSession));
}

TEST(RetryTest, RepeatsTransientFailuresWithDoublingBackoff) {
  ScriptedContext ctx({1, true});
  int calls = 0;
  Status s = Retry(ctx, Options(Millis(10000), Status::RetryIn::kSameSession),
                   [&] { return ++calls < 4 ? Loss() : Status::Ok(); });
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(ctx.waits(), (std::vector<Millis>{Millis(50), Millis(100),
                                              Millis(200)}));
  EXPECT_EQ(ctx.manual_clock().Elapsed(), Millis(350));
}

TEST(RetryTest, BackoffIsCappedAtMaxBackoff) {
  ScriptedContext ctx({1, true});
  RetryOptions o = Options(Millis(100000), Status::RetryIn::kSameSession);
  o.max_backoff = Millis(300);
  int calls = 0;
  Status s = Retry(ctx, o, [&] { return ++calls < 6 ? Loss() : Status::Ok(); });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(ctx.waits(),
            (std::vector<Millis>{Millis(50), Millis(100), Millis(200),
                                 Millis(300), Millis(300)}));
}

TEST(RetryTest, AnswersAreReturnedAtOnce) {
  ScriptedContext ctx({1, true});
  int calls = 0;
  Result<int> r = Retry(ctx, Options(Millis(10000), Status::RetryIn::kAnySession),
                        [&]() -> Result<int> {
                          ++calls;
                          return NotFound("/x does not exist");
                        });
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(ctx.waits().empty());
}

TEST(RetryTest, GivesUpWhenTheWindowIsOverAndReturnsTheLastFailure) {
  ScriptedContext ctx({1, false});
  int calls = 0;
  MultiResult m =
      Retry(ctx, Options(Millis(1000), Status::RetryIn::kSameSession), [&] {
        ++calls;
        MultiResult r;
        r.status = Status(StatusCode::kConnectionLoss,
                          "attempt " + std::to_string(calls));
        return r;
      });
  // Waits 50, 100, 200, 400, then the 250 ms left: attempts at 0, 50, 150,
  // 350, 750 and 1000 ms.
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(m.status.message(), "attempt 6");
  EXPECT_EQ(ctx.manual_clock().Elapsed(), Millis(1000));
  EXPECT_EQ(ctx.waits().back(), Millis(250));
}

TEST(RetryTest, AReconnectEndsTheWaitAtOnce) {
  ScriptedContext ctx({1, false});
  ctx.Script(Millis(420), {1, true});
  std::vector<Millis> attempts;
  Status s = Retry(ctx, Options(Millis(10000), Status::RetryIn::kSameSession),
                   [&] {
                     attempts.push_back(ctx.manual_clock().Elapsed());
                     return ctx.session().connected ? Status::Ok() : Loss();
                   });
  EXPECT_TRUE(s.ok());
  // 0, 50, 150, 350, then the reconnect at 420 (not the backoff's 750).
  EXPECT_EQ(attempts, (std::vector<Millis>{Millis(0), Millis(50), Millis(150),
                                           Millis(350), Millis(420)}));
}

TEST(RetryTest, ExpiryIsRepeatedInANewSessionOnlyWhenAllowed) {
  {
    ScriptedContext ctx({1, true});
    int calls = 0;
    Status s = Retry(ctx, Options(Millis(10000), Status::RetryIn::kSameSession),
                     [&] {
                       ++calls;
                       return Expired();
                     });
    EXPECT_EQ(s.code(), StatusCode::kSessionExpired);
    EXPECT_EQ(calls, 1);
  }
  ScriptedContext ctx({1, true});
  ctx.Script(Millis(30), {2, true});  // the renewed session
  std::vector<int64_t> sessions;
  Status s = Retry(ctx, Options(Millis(10000), Status::RetryIn::kAnySession),
                   [&] {
                     sessions.push_back(ctx.session().id);
                     return ctx.session().id == 1 ? Expired() : Status::Ok();
                   });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(sessions, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(ctx.manual_clock().Elapsed(), Millis(30));
}

TEST(RetryTest, ABoundCallIsNeverRepeatedInALaterSession) {
  ScriptedContext ctx({7, false});
  ctx.Script(Millis(60), {8, true});  // session 7 expired, 8 replaced it
  RetryOptions o = Options(Millis(10000), Status::RetryIn::kAnySession);
  o.bound_session = 7;
  std::vector<int64_t> sessions;
  Status s = Retry(ctx, o, [&] {
    sessions.push_back(ctx.session().id);
    return Loss();
  });
  EXPECT_EQ(s.code(), StatusCode::kConnectionLoss);
  // Attempts in session 7 only (at 0 and 50 ms); none once 8 is current.
  EXPECT_EQ(sessions, (std::vector<int64_t>{7, 7}));
  EXPECT_EQ(ctx.manual_clock().Elapsed(), Millis(60));
}

TEST(RetryTest, AStopEndsRetriesOnlyWhenAsked) {
  for (bool stop_on_abort : {false, true}) {
    SCOPED_TRACE(stop_on_abort);
    ScriptedContext ctx({1, true});
    RetryOptions o = Options(Millis(500), Status::RetryIn::kAnySession);
    o.stop_on_abort = stop_on_abort;
    int calls = 0;
    Status s = Retry(ctx, o, [&] {
      if (++calls == 2) ctx.RequestStop();
      return Loss();
    });
    EXPECT_EQ(s.code(), StatusCode::kConnectionLoss);
    // Cleanup (no stop_on_abort) keeps retrying to the end of the window.
    EXPECT_EQ(calls, stop_on_abort ? 2 : 5);
  }
}

}  // namespace
}  // namespace zkroll
