// Driving an Asio event loop in tests until something has happened.
#ifndef ZKROLL_TESTS_SUPPORT_IO_WAIT_H_
#define ZKROLL_TESTS_SUPPORT_IO_WAIT_H_

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>

namespace zkroll::testing {

// Runs `io`, one handler at a time, until `cond` holds or `deadline` passes;
// returns cond(). A stopped `io` is restarted; once it is out of work
// nothing can change any more, so it returns cond() at once. Waits on the
// event loop, never on a fixed sleep. Call from the thread that runs `io`.
bool RunUntil(boost::asio::io_context& io, const std::function<bool()>& cond,
              std::chrono::milliseconds deadline = std::chrono::seconds(10));

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_SUPPORT_IO_WAIT_H_
