// LoadGenerator: an open-loop HTTP load of one service, through the
// caller-side discovery client or on a fixed list of instances, that counts
// every failure by cause.
//
// Open loop: request i is due at start + i / rate, whatever happened to
// the requests before it. A sender that falls behind (a stalled thread)
// sends the overdue requests at once and counts them as late; a pool that
// cannot keep up lets them wait for a connection, and they fail as
// timeouts at their deadline (due time + timeout). Nothing is skipped,
// nothing is retried: each due request is counted once as sent and once as
// ok or failed (refused, reset, timeout, non2xx, no_instance, other).
// Latency is measured from the due time, not from the actual send, so a
// backlog shows up in the latencies too (no coordinated omission).
//
// Each second (by due time) is reported once all of its requests have an
// outcome, which is at most `timeout` after the second ended.
//
// Where requests go and how they are carried (keep-alive or a connection
// per request) is given by an InstanceSource and a RequestSender
// (demo/load_io.h).
//
// Threading: runs on one executor that must not run handlers concurrently
// (one thread running the io_context); the discovery client may run on
// the same io_context.
#ifndef ZKROLL_DEMO_LOADGEN_H_
#define ZKROLL_DEMO_LOADGEN_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "client/http_pool.h"
#include "common/duration.h"
#include "demo/load_io.h"
#include "demo/load_stats.h"

namespace zkroll::demo {

// Sent more than this after its due time, a request counts as late.
inline constexpr std::chrono::milliseconds kLateThreshold{5};

class LoadGenerator : public std::enable_shared_from_this<LoadGenerator> {
 public:
  using Clock = std::chrono::steady_clock;
  struct Settings {
    double rate = 2000;      // requests per second, > 0
    Millis duration{30000};  // how long requests are due
    Millis timeout{1000};    // per request, from its due time
    std::string target = "/";
    std::string stop_file;  // stop sending once this file exists
  };
  // Called for each second, in order, when all its requests have an outcome.
  using SecondReport = std::function<void(int64_t second, const Tally&)>;
  // Called for each failed request when its outcome is known, with its due
  // time as wall-clock milliseconds since the epoch (so failures can be
  // set against the timestamps of a deploy's events).
  using FailureReport =
      std::function<void(int64_t due_unix_ms, const RequestOutcome&)>;

  LoadGenerator(boost::asio::any_io_executor ex, Settings settings,
                std::shared_ptr<InstanceSource> source,
                std::shared_ptr<RequestSender> sender, SecondReport on_second);
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Set before Start().
  void set_failure_report(FailureReport report) {
    on_failure_ = std::move(report);
  }
  // Starts sending; `done` runs once every due request has an outcome.
  void Start(std::function<void()> done);
  // Stops sending early (signal, stop file); requests in flight finish.
  void StopSending(const std::string& why);

  const Tally& totals() const { return totals_; }
  // "duration", "stop file <path>", "signal", ...
  const std::string& stopped_by() const { return stopped_by_; }
  // From the start to the last due request actually sent.
  double sending_seconds() const;
  // Wall-clock time of second 0 of the report and the timeline.
  std::chrono::system_clock::time_point start_wall() const {
    return start_wall_;
  }

 private:
  Clock::time_point DueAt(int64_t i) const;
  void Tick();
  void Issue(Clock::time_point due, Clock::time_point now);
  void OnResult(int64_t second, Clock::time_point due,
                const std::string& instance, client::HttpResult result);
  void EndSending();
  void Flush();
  void MaybeFinish();
  void ForceFinish();
  void CheckStopFile();
  void ReportFailure(Clock::time_point due, const RequestOutcome& o);

  struct Second {
    Tally tally;
    int64_t outstanding = 0;
  };

  boost::asio::any_io_executor ex_;
  Settings settings_;
  std::shared_ptr<InstanceSource> source_;
  std::shared_ptr<RequestSender> sender_;
  SecondReport on_second_;
  FailureReport on_failure_;
  boost::asio::steady_timer send_timer_;
  boost::asio::steady_timer stop_file_timer_;
  boost::asio::steady_timer guard_timer_;
  std::function<void()> done_;

  Clock::time_point start_;
  std::chrono::system_clock::time_point
      start_wall_;  // second 0 of the timeline
  Clock::time_point sending_ended_;
  int64_t planned_ = 0;
  int64_t issued_ = 0;
  int64_t outstanding_ = 0;
  bool sending_done_ = false;
  bool finished_ = false;
  std::string stopped_by_;
  std::map<int64_t, Second> seconds_;  // not yet reported
  Tally totals_;
};

// The version that answered: the X-Zkroll-Version header, else the
// "version" field of a JSON body; empty if neither.
std::string VersionOf(
    const boost::beast::http::response<boost::beast::http::string_body>& r);

// zkroll-loadgen. Exit codes: 0 when the run ended (failures are data),
// 2 bad flags (an unwritable --timeline/--summary-json included), 1 could
// not start (ZooKeeper could not be read within --startup-timeout; never
// with --targets, which uses no ZooKeeper).
int LoadgenMain(int argc, char** argv);

}  // namespace zkroll::demo

#endif  // ZKROLL_DEMO_LOADGEN_H_
