// Waiting for conditions in tests, never for a fixed time.
#ifndef ZKROLL_TESTS_SUPPORT_WAIT_H_
#define ZKROLL_TESTS_SUPPORT_WAIT_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

namespace zkroll::testing {

using std::chrono::milliseconds;

// How many times slower than a plain build this one runs the tests:
// ZKROLL_TEST_TIME_SCALE from the environment (a number >= 1; the sanitizer
// builds set it for every test, tests/sanitizers/options.cmake), 1 when
// unset. Deadlines stretch by it; nothing ever waits a fixed time.
double TimeScale();
// `d` times TimeScale(): every WaitFor deadline below is scaled so, and a
// deadline a test hands to a program it starts should be too.
milliseconds Scaled(milliseconds d);

// A notifier that callbacks poke when something changed, so WaitFor wakes
// at once instead of at its next re-check.
class Signal {
 public:
  void Notify();
  // Waits until `cond` holds or Scaled(deadline) passes; re-checks on every
  // Notify() and at least every `recheck` (conditions that live outside the
  // process, such as znodes or sockets, cannot notify us).
  bool WaitFor(const std::function<bool()>& cond, milliseconds deadline,
               milliseconds recheck = milliseconds(20));

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;
};

// Process-wide signal for conditions outside the process (deadline scaled
// as above).
bool WaitFor(const std::function<bool()>& cond, milliseconds deadline);

// Waits (as WaitFor) until `read` yields a value that satisfies `cond`.
// Every value read is stored in *last, so that the assertions after a wait,
// and the message of one that timed out, see the latest reading.
template <typename T>
bool WaitForValue(const std::function<std::optional<T>()>& read,
                  const std::function<bool(const T&)>& cond, T* last,
                  milliseconds deadline) {
  return WaitFor(
      [&] {
        std::optional<T> value = read();
        if (!value) return false;
        *last = *value;
        return cond(*value);
      },
      deadline);
}

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_SUPPORT_WAIT_H_
