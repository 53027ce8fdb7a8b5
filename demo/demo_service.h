// DemoServer: the tiny HTTP service of the rolling-upgrade demo.
//
//   GET /            200 {"version":"V","instance":"ip:port"}
//                    (also headers X-Zkroll-Version and X-Zkroll-Instance;
//                    the status is Options::root_status);
//                    "?delay_ms=N" delays the answer by N ms (at most
//                    Options::max_delay), to hold a request in flight.
//   GET /healthz     200 "ok"
//   GET /stats       200 {"in_flight":n,"served":n,"connections":n,
//                    "draining":bool,...} (in_flight counts this request)
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

#include "common/duration.h"
#include "common/names.h"
#include "common/status.h"

namespace zkroll::demo {

class DemoSession;

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
  int64_t in_flight_ = 0;  // requests read and not yet answered
  int64_t served_ = 0;     // responses written
};

// zkroll-demo-service --port P --version V [--ip A]. Exit codes: 0 after
// SIGTERM/SIGINT, 2 bad flags, 1 cannot listen.
int DemoServiceMain(int argc, char** argv);

}  // namespace zkroll::demo

#endif  // ZKROLL_DEMO_DEMO_SERVICE_H_
