// DemoServer: the tiny HTTP service of the rolling-upgrade demo.
//
//   GET /            200 {"version":"V","instance":"ip:port"}
//                    (also headers X-Zkroll-Version and X-Zkroll-Instance;
//                    the status is Options::root_status);
//                    "?delay_ms=N" delays the answer by N ms (at most
//                    Options::max_delay), to hold a request in flight.
//                    With Options::error_rate, a fixed fraction of them
//                    answers 500 instead (see ErrorRate).
//   GET /healthz     200 "ok"
//   GET /stats       200 {"in_flight":n,"served":n,"connections":n,
//                    "draining":bool,"root_requests":n,"root_errors":n,...}
//                    (in_flight counts this request; root_errors: answers
//                    of GET / with a status of 500 or more)
//   anything else    404 (unknown path) or 405 (not GET)
//
// HTTP/1.1 with keep-alive. Drain() is the SIGTERM behaviour: the listening
// socket is closed at once (new connects are refused), requests in flight
// are answered with "Connection: close", and `done` runs when the last
// connection is gone or Options::drain_timeout passed (then the rest are
// cut). Idle keep-alive connections are not closed at once: the client may
// have sent its next request already (behind a forwarder it is still on
// its way), and a close under it fails that request; many clients (wrk)
// also count a close of an idle connection as an error. So an idle
// connection stays open for Options::drain_idle_grace: a request arriving
// meanwhile is answered with "Connection: close", and a connection still
// idle after the grace is closed.
//
// Threading: everything runs on the executor given to Listen(), which must
// not run handlers concurrently (one thread running the io_context).
#ifndef ZKROLL_DEMO_DEMO_SERVICE_H_
#define ZKROLL_DEMO_DEMO_SERVICE_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/duration.h"
#include "common/names.h"
#include "common/status.h"

namespace zkroll::demo {

class DemoSession;

// A fraction of requests that a bad version fails, chosen by request
// number rather than at random, so a test sees exactly the same answers on
// every run: with fraction F the n-th request (from 1) fails when
// floor(n*F) > floor((n-1)*F), i.e. every 10th request for 0.1, and any
// run of k consecutive requests holds floor(k*F) or ceil(k*F) failures.
// Kept in parts per million, so that 0.1 is exact. Pure value type.
class ErrorRate {
 public:
  ErrorRate() = default;  // fails nothing
  // "0.1", "0.25", "1", "0": a decimal fraction from 0 to 1 with at most 6
  // decimals. InvalidArgument naming the text otherwise.
  static Result<ErrorRate> Parse(std::string_view text);
  // Whether request number n (from 1) fails.
  bool Fails(int64_t n) const;
  int64_t parts_per_million() const { return ppm_; }

 private:
  explicit ErrorRate(int64_t ppm) : ppm_(ppm) {}
  int64_t ppm_ = 0;
};

class DemoServer : public std::enable_shared_from_this<DemoServer> {
 public:
  struct Options {
    InstanceAddress address;  // where to listen
    std::string version;      // what GET / answers
    Millis drain_timeout{10000};
    Millis drain_idle_grace{1000};
    Millis max_delay{60000};
    // Plays a bad version: GET / answers this status (the body is the
    // same; /healthz still answers 200).
    unsigned root_status = 200;
    // Plays a crash: if > 0, the process exits at once (_Exit(3), no
    // drain, connections reset by the kernel) after writing this many
    // responses.
    int64_t crash_after = 0;
    // Plays a version that fails some requests: GET / answers 500 to this
    // fraction of its requests (/healthz still answers 200).
    ErrorRate error_rate;
  };

  // Binds and listens. Unavailable naming the address if it cannot.
  static Result<std::shared_ptr<DemoServer>> Listen(
      boost::asio::any_io_executor ex, Options options);
  ~DemoServer();
  DemoServer(const DemoServer&) = delete;
  DemoServer& operator=(const DemoServer&) = delete;

  void Start();
  // `done(clean)`: clean is false if drain_timeout cut connections.
  void Drain(std::function<void(bool clean)> done);

  bool draining() const { return draining_; }
  const Options& options() const { return options_; }
  // The JSON of GET /.
  const std::string& root_body() const { return root_body_; }
  std::string StatsJson() const;
  int64_t in_flight() const { return in_flight_; }
  int64_t served() const { return served_; }
  int64_t root_requests() const { return root_requests_; }
  int64_t root_errors() const { return root_errors_; }

 private:
  friend class DemoSession;
  DemoServer(boost::asio::any_io_executor ex, Options options);
  void Accept();
  void SessionStarted(uint64_t id, std::weak_ptr<DemoSession> session);
  void SessionEnded(uint64_t id);
  void MaybeDrained();

  boost::asio::any_io_executor ex_;
  Options options_;
  std::string root_body_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer drain_timer_;
  std::map<uint64_t, std::weak_ptr<DemoSession>> sessions_;
  uint64_t next_id_ = 1;
  bool draining_ = false;
  std::function<void(bool)> drained_;
  int64_t in_flight_ = 0;      // requests read and not yet answered
  int64_t served_ = 0;         // responses written
  int64_t root_requests_ = 0;  // GET / answered (or being answered)
  int64_t root_errors_ = 0;    // ... with a status of 500 or more
};

// zkroll-demo-service --port P --version V [--ip A] [bad-version flags:
// --root-status, --crash-after, --error-rate, --exit-after, --start-delay].
// Exit codes: 0 after SIGTERM/SIGINT, 2 bad flags, 1 cannot listen or
// --exit-after passed, 3 --crash-after reached.
int DemoServiceMain(int argc, char** argv);

}  // namespace zkroll::demo

#endif  // ZKROLL_DEMO_DEMO_SERVICE_H_
