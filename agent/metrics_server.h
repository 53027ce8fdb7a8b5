// MetricsServer: answers Prometheus' scrapes (GET /metrics) on the agent's
// own io_context, with Boost.Beast.
//
// Why not prometheus-cpp's Exposer: it runs a civetweb server with threads
// of its own, and when its port cannot be bound it throws a
// std::runtime_error that does not say which address or why. Here the bind
// happens in Listen(), before the agent touches ZooKeeper, and its error
// names the address and the reason, so a bad metrics_listen stops the
// agent at start (exit 2) instead of leaving it half-started. Serving from
// the event loop also means a scrape sees the agent's state without a lock
// (`body` runs on the loop); the cost is one serialisation per scrape
// (bench/README.md, "Agent metrics").
//
// Only GET (and HEAD) of /metrics is served (404 elsewhere, 405 for other
// methods); keep-alive is honoured; a connection idle for 30s, or slower
// than that to send its request, is closed; at most kMaxConnections are
// open at once (further ones are closed at accept).
//
// Threading: create, use and destroy on the io_context's thread (or before
// it runs); destroy before the io_context.
#ifndef ZKROLL_AGENT_METRICS_SERVER_H_
#define ZKROLL_AGENT_METRICS_SERVER_H_

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace zkroll::agent {

// The validated metrics_listen address: an IP literal and a port (0: any
// free port, for tests).
struct ListenAddress {
  std::string ip;
  uint16_t port = 0;
  // "127.0.0.1:9479" or "[::1]:9479".
  std::string ToString() const;
};

// Parses "IP:PORT" ("[IPv6]:PORT"); the error names the text.
Result<ListenAddress> ParseListenAddress(const std::string& text);

class MetricsServer {
 public:
  static constexpr int kMaxConnections = 16;

  // What a scrape gets: the body and its content type.
  struct Page {
    std::string body;
    std::string content_type;
  };

  // Binds and listens on `address` (SO_REUSEADDR). Unavailable naming the
  // address and the system's reason if that fails.
  static Result<std::unique_ptr<MetricsServer>> Listen(
      boost::asio::io_context& io, const ListenAddress& address,
      std::function<Page()> page);

  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port actually bound (the configured one unless it was 0).
  uint16_t port() const;

  class Impl;

 private:
  explicit MetricsServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_METRICS_SERVER_H_
