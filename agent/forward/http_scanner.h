// HttpScanner: follows one HTTP/1.x connection as its bytes pass through the
// forwarder and reports the status code of every response, without changing
// or holding up a single byte.
//
// It is fed both directions in the order they are read: the bytes going to
// the server (requests) and the bytes coming back (responses). Requests are
// framed (Content-Length, chunked) only to learn their methods in order,
// because the framing of a response depends on its request: the answer to a
// HEAD has no body whatever its headers say. Responses are framed by
// Content-Length, chunked encoding (with trailers), "no body" (1xx, 204,
// 304, answers to HEAD) or the end of the stream (then nothing after it is
// a response). Parsing is done by Boost.Beast's basic_parser; the scanner
// copies only an incomplete header or chunk line left at the end of a read,
// at most `header_limit` bytes per direction (a longer one makes it give up).
//
// Reported: every final response (status >= 200, and 101), once its header
// is complete. Interim 1xx responses (100 Continue, 103) are not reported.
// After a 101 Switching Protocols, or a 2xx answer to CONNECT, the bytes are
// no longer HTTP: the scanner stops (state kTunnel) without complaint.
//
// Anything it cannot parse (not HTTP/1.x, a malformed header, conflicting
// framing, a header or chunk line over the limit, more than kMaxPipelined
// requests waiting for their answers) makes it give up for good (state
// kGaveUp, failure() says why); the caller keeps forwarding the bytes.
//
// Not thread-safe: one connection, one thread (the forwarder runs both
// directions of a connection on the same thread, so the requests are always
// scanned before the backend can have answered them).
#ifndef ZKROLL_AGENT_FORWARD_HTTP_SCANNER_H_
#define ZKROLL_AGENT_FORWARD_HTTP_SCANNER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace zkroll::forward {

class HttpScanner {
 public:
  enum class State { kScanning, kTunnel, kGaveUp };
  using ResponseCallback = std::function<void(int status)>;

  static constexpr size_t kDefaultHeaderLimit = 64 * 1024;
  // Requests scanned but not yet answered; a client pipelining more than this
  // is either hostile or talking to a dead server.
  static constexpr size_t kMaxPipelined = 4096;

  // `on_response` is called from inside OnResponseBytes, once per reported
  // response, in order.
  explicit HttpScanner(ResponseCallback on_response,
                       size_t header_limit = kDefaultHeaderLimit);
  ~HttpScanner();
  HttpScanner(const HttpScanner&) = delete;
  HttpScanner& operator=(const HttpScanner&) = delete;

  // Bytes from the client towards the server, as they are read. Ignored
  // unless state() is kScanning.
  void OnRequestBytes(const char* data, size_t size);
  // Bytes from the server towards the client, as they are read. Ignored
  // unless state() is kScanning.
  void OnResponseBytes(const char* data, size_t size);

  State state() const;
  // Why the scanner gave up ("response: bad version"); empty otherwise.
  const std::string& failure() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zkroll::forward

#endif  // ZKROLL_AGENT_FORWARD_HTTP_SCANNER_H_
