// HttpPool: keep-alive HTTP/1.1 connections to the instances of a service,
// for a caller that picks instances with ServiceDiscovery.
//
// What it does
// - Get() sends one GET to an instance: on an idle keep-alive connection
//   to it if there is one, else on a new connection (at most
//   Options::max_connections_per_instance per instance); beyond that the
//   request waits for a connection of that instance. Waiting, connecting,
//   sending and reading must all end by the request's deadline, or the
//   result is kTimeout.
// - Failures are reported with their cause and never retried: the caller
//   sees every one. A connection that the server closed while it sat idle
//   (a FIN or RST already in the socket) is noticed before a request is
//   written to it and discarded; no request is lost to it. A connection
//   that dies after the request was written fails that request (kReset).
// - Retain(instances) is how the caller follows the discovery list: an
//   instance not in it is retired. Its idle connections close at once, its
//   busy ones right after their current response; requests already waiting
//   for it still run (they were picked while it was listed). An instance
//   that comes back is simply used again.
// - Shutdown() closes idle connections and keeps no connection after its
//   response; requests in flight finish.
//
// Destroying the pool closes idle connections; requests in flight still
// complete and call back, requests still waiting for a connection are
// dropped uncalled.
//
// Threading: not thread-safe. Call every method on the thread that runs
// the executor (a single-threaded io_context, or post there). Callbacks run
// on the executor, exactly once per Get(), never inside Get().
#ifndef ZKROLL_CLIENT_HTTP_POOL_H_
#define ZKROLL_CLIENT_HTTP_POOL_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/names.h"

namespace zkroll::client {

enum class HttpOutcome {
  kOk,       // a 2xx response
  kNon2xx,   // a complete response with another status
  kRefused,  // the connect was refused (nothing listens there)
  kReset,    // the connection was reset or closed before a full response
  kTimeout,  // the deadline passed (waiting, connecting, writing, reading)
  kOther,    // anything else (unreachable host, malformed response, ...)
};
// "ok", "non2xx", "refused", "reset", "timeout", "other".
const char* HttpOutcomeName(HttpOutcome outcome);

// The outcome an I/O error means (never kOk/kNon2xx/kTimeout).
HttpOutcome ClassifyError(const boost::system::error_code& ec);

struct HttpResult {
  HttpOutcome outcome = HttpOutcome::kOther;
  // The response, when one was read (kOk, kNon2xx).
  boost::beast::http::response<boost::beast::http::string_body> response;
  // What went wrong, for failures: "connection refused", "timeout after 1s
  // (reading)", "end of stream", ...
  std::string error;
  bool reused_connection = false;
};

class HttpPool : public std::enable_shared_from_this<HttpPool> {
 public:
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void(HttpResult)>;

  struct Options {
    size_t max_connections_per_instance = 32;
    size_t max_body_bytes = 64 * 1024;  // larger responses fail (kOther)
    std::string user_agent = "zkroll-client";
  };

  struct Stats {
    size_t open = 0;  // connecting, busy or idle
    size_t idle = 0;
    size_t queued = 0;            // requests waiting for a connection
    uint64_t connects = 0;        // connection attempts, refused ones too
    uint64_t discarded_dead = 0;  // idle ones found closed by the server
    uint64_t closed_retired = 0;  // closed because the instance left
  };

  static std::shared_ptr<HttpPool> Create(boost::asio::any_io_executor ex,
                                          Options options);
  ~HttpPool();
  HttpPool(const HttpPool&) = delete;
  HttpPool& operator=(const HttpPool&) = delete;

  // GET `target` (origin form, e.g. "/") from `instance`; `done` gets the
  // outcome by `deadline` (plus scheduling delay).
  void Get(const InstanceAddress& instance, std::string target,
           Clock::time_point deadline, Callback done);

  // Keeps using only `instances`; see above.
  void Retain(const std::vector<InstanceAddress>& instances);

  void Shutdown();

  Stats stats() const;
  // Open connections to one instance (0 if unknown).
  size_t OpenConnections(const InstanceAddress& instance) const;

 private:
  class Connection;
  struct Request;
  struct Instance;

  HttpPool(boost::asio::any_io_executor ex, Options options);
  Instance* FindOrAdd(const InstanceAddress& address, std::string* error);
  void Dispatch(Instance* inst, const std::shared_ptr<Request>& req);
  void Queue(Instance* inst, const std::shared_ptr<Request>& req);
  void OnQueueTimeout(const InstanceAddress& address,
                      const std::shared_ptr<Request>& req);
  // A connection finished a request; `reusable` if it may carry another.
  void Release(const std::shared_ptr<Connection>& conn, bool reusable);
  void CloseIdle(Instance* inst, uint64_t* counter);
  void MaybeForget(const InstanceAddress& address);

  boost::asio::any_io_executor ex_;
  Options options_;
  std::map<InstanceAddress, Instance> instances_;
  bool shutdown_ = false;
  Stats counters_;  // the cumulative fields
};

}  // namespace zkroll::client

#endif  // ZKROLL_CLIENT_HTTP_POOL_H_
