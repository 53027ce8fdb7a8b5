// The time sources of common/timer.h: the manual one tests drive, and the
// real one on Asio's steady_timer.
#include "common/timer.h"

#include <gtest/gtest.h>

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <string>
#include <vector>

namespace zkroll {
namespace {

using namespace std::chrono_literals;
using boost::system::error_code;

TEST(ManualTimeSourceTest, FiresInOrderOfExpiryOnlyWhenAdvanced) {
  boost::asio::io_context io;
  ManualTimeSource clock;
  const MonoTime start = clock.Now();
  std::vector<std::string> fired;
  auto a = clock.MakeTimer(io.get_executor());
  auto b = clock.MakeTimer(io.get_executor());
  auto c = clock.MakeTimer(io.get_executor());
  a->ExpiresAfter(30ms);
  b->ExpiresAfter(10ms);
  c->ExpiresAfter(10ms);
  for (auto& [timer, name] : {std::pair{a.get(), "a"}, std::pair{b.get(), "b"},
                              std::pair{c.get(), "c"}}) {
    timer->AsyncWait([&fired, name = std::string(name)](error_code ec) {
      fired.push_back(ec ? name + ":aborted" : name);
    });
  }
  EXPECT_EQ(clock.pending_waits(), 3u);
  EXPECT_EQ(clock.NextExpiry(), start + 10ms);
  io.poll();
  EXPECT_TRUE(fired.empty()) << "time has not moved";

  EXPECT_EQ(clock.Advance(9ms), 0);
  io.poll();
  EXPECT_TRUE(fired.empty());
  EXPECT_EQ(clock.Advance(1ms), 2);
  io.restart();
  io.poll();
  // Equal expiries fire in the order they were armed.
  EXPECT_EQ(fired, (std::vector<std::string>{"b", "c"}));

  EXPECT_TRUE(clock.AdvanceToNextExpiry());
  EXPECT_EQ(clock.Now(), start + 30ms);
  io.restart();
  io.poll();
  EXPECT_EQ(fired, (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_FALSE(clock.AdvanceToNextExpiry());
  EXPECT_EQ(clock.Now(), start + 30ms);
}

TEST(ManualTimeSourceTest, CancelRearmAndDestroyAbortTheWait) {
  boost::asio::io_context io;
  ManualTimeSource clock;
  std::vector<std::string> fired;
  auto record = [&fired](const char* name) {
    return [&fired, name = std::string(name)](error_code ec) {
      fired.push_back(ec == boost::asio::error::operation_aborted
                          ? name + ":aborted"
                          : name);
    };
  };
  auto t = clock.MakeTimer(io.get_executor());
  t->ExpiresAfter(10ms);
  t->AsyncWait(record("cancelled"));
  t->Cancel();
  t->ExpiresAfter(10ms);
  t->AsyncWait(record("rearmed"));
  t->ExpiresAfter(20ms);  // cancels the pending wait, like Asio
  t->AsyncWait(record("kept"));
  auto gone = clock.MakeTimer(io.get_executor());
  gone->ExpiresAfter(5ms);
  gone->AsyncWait(record("destroyed"));
  gone.reset();
  EXPECT_EQ(clock.pending_waits(), 1u);
  EXPECT_EQ(clock.Advance(20ms), 1);
  io.poll();
  EXPECT_EQ(fired,
            (std::vector<std::string>{"cancelled:aborted", "rearmed:aborted",
                                      "destroyed:aborted", "kept"}));
  // A wait on an expiry already reached completes without advancing.
  t->ExpiresAt(clock.Now() - 1ms);
  t->AsyncWait(record("past"));
  io.restart();
  io.poll();
  EXPECT_EQ(fired.back(), "past");
}

TEST(ManualTimeSourceTest, TimerOutlivingItsSourceIsHarmless) {
  boost::asio::io_context io;
  std::unique_ptr<Timer> t;
  {
    ManualTimeSource clock;
    t = clock.MakeTimer(io.get_executor());
  }
  bool called = false;
  t->ExpiresAfter(1ms);
  t->AsyncWait([&](error_code) { called = true; });
  t->Cancel();
  t.reset();
  io.poll();
  EXPECT_FALSE(called) << "a source that is gone never moves";
}

TEST(SteadyTimeSourceTest, TimerExpiresOnTheSteadyClock) {
  boost::asio::io_context io;
  TimeSource& steady = SteadyTimeSource();
  const MonoTime before = steady.Now();
  auto t = steady.MakeTimer(io.get_executor());
  t->ExpiresAfter(1ms);
  error_code result = boost::asio::error::would_block;
  t->AsyncWait([&](error_code ec) { result = ec; });
  io.run();  // returns once the wait completed
  EXPECT_FALSE(result) << result.message();
  EXPECT_GE(steady.Now() - before, 1ms);

  auto cancelled = steady.MakeTimer(io.get_executor());
  cancelled->ExpiresAfter(1h);
  cancelled->AsyncWait([&](error_code ec) { result = ec; });
  cancelled->Cancel();
  io.restart();
  io.run();
  EXPECT_EQ(result, boost::asio::error::operation_aborted);
}

}  // namespace
}  // namespace zkroll
