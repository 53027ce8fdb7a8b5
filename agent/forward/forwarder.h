// Forwarder: the agent's TCP forwarder for one instance in forwarding mode.
//
// It listens on the instance's public address and splices every accepted
// connection to the current backend (a local port of this host, or a backup
// instance of the same service). SetBackend() affects new connections at
// once; a connection already spliced stays on its backend until either side
// closes it, so switching never cuts a request in flight.
//
// Fallback: when connecting to the backend fails (refused, unreachable, or
// no answer within Options::connect_timeout) and a fallback is set, the
// connection is retried once on the fallback, so the caller never sees the
// failure; the failure is still counted against the backend. This is what
// lets a switch to a bad new version roll back without a failed connection.
//
// Counters are kept per backend address (BackendStats) and never reset while
// the forwarder lives; readers take differences. In Protocol::kHttp the
// forwarder also reads the HTTP/1.x responses coming back (status line and
// framing only, bytes are forwarded unchanged) and counts 5xx answers;
// a stream it cannot parse is still forwarded and counted in
// http_unparsed, never cut.
//
// Threading: the forwarder owns Options::threads threads, each running its
// own io_context; a connection stays on one thread for its whole life.
// Every public method is thread-safe. The change callback runs on a
// forwarder thread and must not block (the agent posts to its own executor)
// nor destroy the forwarder.
//
// Errors: Start() returns the bind/listen error naming the address (e.g.
// "127.0.0.1:8080: Address already in use"); nothing else fails loudly:
// backend connect errors are counted and logged (rate-limited).
#ifndef ZKROLL_AGENT_FORWARD_FORWARDER_H_
#define ZKROLL_AGENT_FORWARD_FORWARDER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/duration.h"
#include "common/names.h"
#include "common/status.h"

namespace zkroll::forward {

enum class Protocol { kTcp, kHttp };
// "tcp" | "http"
const char* ProtocolName(Protocol p);
Result<Protocol> ParseProtocol(std::string_view text);

struct BackendStats {
  InstanceAddress backend;
  uint32_t active = 0;              // connections spliced to it right now
  uint64_t connections = 0;         // connections ever spliced to it
  uint64_t connect_failures = 0;    // connects to it that failed
  uint64_t fallbacks = 0;           // of those, saved by the fallback
  uint64_t http_responses = 0;      // kHttp only
  uint64_t http_5xx = 0;            // kHttp only
  uint64_t http_unparsed = 0;       // kHttp: streams the scanner gave up on
  // Bytes passed on in each direction, added when a connection closes and
  // after every MiB it carries (so at most 1 MiB per open connection and
  // direction is not counted yet).
  uint64_t bytes_to_backend = 0;
  uint64_t bytes_from_backend = 0;
};

struct ForwarderOptions {
  InstanceAddress listen;           // the instance's public address
  Protocol protocol = Protocol::kTcp;
  int threads = 1;                  // io threads (1..16)
  Millis connect_timeout{1000};     // per backend connect attempt
  size_t buffer_bytes = 16384;      // per direction per connection
  // Called (coalesced: at most once per 50 ms, and at once after the first
  // change following a quiet period) when any counter changes, an active
  // count or open_connections() changes, or SetBackend() succeeded. The
  // last change is always followed by a call. May be empty.
  std::function<void()> on_change;
};

class Forwarder {
 public:
  explicit Forwarder(ForwarderOptions options);
  // Stops accepting, closes every connection and joins the threads.
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // Binds and listens (SO_REUSEADDR) and starts the threads; connections
  // go to `backend` (and `fallback`, if set) until SetBackend(). Refuses a
  // loop as SetBackend() does, options out of range (InvalidArgument) and a
  // second call (FailedPrecondition).
  Status Start(const InstanceAddress& backend,
               const std::optional<InstanceAddress>& fallback);

  // New connections go to `backend` from now on. Refuses (InvalidArgument)
  // a backend or fallback equal to the listen address (a loop), or, when
  // listening on 0.0.0.0 / ::, a loopback or unspecified address with the
  // listen port. A fallback equal to the backend is kept but never tried.
  Status SetBackend(const InstanceAddress& backend,
                    const std::optional<InstanceAddress>& fallback);

  InstanceAddress backend() const;
  std::optional<InstanceAddress> fallback() const;

  // Every backend that is current, is the fallback, or has active
  // connections, plus any used before (counters are kept), sorted by
  // address text.
  std::vector<BackendStats> Stats() const;

  // Connections accepted and not yet closed (client side), all backends.
  uint32_t open_connections() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace zkroll::forward

#endif  // ZKROLL_AGENT_FORWARD_FORWARDER_H_
