// HttpScanner on canned HTTP/1.x streams: framing of every kind, pipelining,
// arbitrary read boundaries, tunnels, and giving up on what is not HTTP.
#include "agent/forward/http_scanner.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace zkroll::forward {
namespace {

using State = HttpScanner::State;

// A scanner that records the statuses it reports.
struct Recorder {
  explicit Recorder(size_t header_limit = HttpScanner::kDefaultHeaderLimit)
      : scanner([this](int status) { statuses.push_back(status); },
                header_limit) {}
  void Requests(const std::string& s) {
    scanner.OnRequestBytes(s.data(), s.size());
  }
  void Responses(const std::string& s) {
    scanner.OnResponseBytes(s.data(), s.size());
  }
  // One byte per call: every read boundary at once.
  void ResponsesByteByByte(const std::string& s) {
    for (char c : s) scanner.OnResponseBytes(&c, 1);
  }
  std::vector<int> statuses;
  HttpScanner scanner;
};

const char kGet[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
const char kHead[] = "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n";

std::string Gets(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += kGet;
  return s;
}

TEST(HttpScannerTest, ContentLengthKeepAlive) {
  Recorder r;
  r.Requests(Gets(3));
  // The second body looks like a response: it must be skipped as body.
  r.Responses(
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
      "HTTP/1.1 503 Unavailable\r\nContent-Length: 25\r\n\r\n"
      "HTTP/1.1 500 Not Me\r\n\r\nxy"
      "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
  EXPECT_EQ(r.statuses, (std::vector<int>{200, 503, 404}));
  EXPECT_EQ(r.scanner.state(), State::kScanning);
}

TEST(HttpScannerTest, ChunkedWithExtensionsAndTrailers) {
  Recorder r;
  r.Requests(Gets(2));
  r.Responses(
      "HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n"
      "Trailer: X-Checksum\r\n\r\n"
      "5;name=value\r\nHTTP/\r\n"
      "1A\r\n1.1 500 Inside A Chunk\r\n\r\n\r\n"
      "0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(r.statuses, (std::vector<int>{502, 200}));
  EXPECT_EQ(r.scanner.state(), State::kScanning) << r.scanner.failure();
}

TEST(HttpScannerTest, ResponsesWithoutBody) {
  Recorder r;
  r.Requests(Gets(3));
  // 100 is interim (not reported, same request); 204 and 304 carry no body
  // even when they name a length, so the next response follows at once.
  r.Responses(
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
      "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"
      "HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(r.statuses, (std::vector<int>{204, 304, 500}));
  EXPECT_EQ(r.scanner.state(), State::kScanning) << r.scanner.failure();
}

TEST(HttpScannerTest, HeadResponsesHaveNoBody) {
  Recorder r;
  r.Requests(std::string(kHead) + kGet + kHead);
  // Content-Length on a HEAD answer describes the GET answer; a scanner
  // that waited for those 10 bytes would swallow the next response.
  r.Responses(
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
      "HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\nno"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "HTTP/1.1 504 Late\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(r.statuses, (std::vector<int>{200, 503, 200, 504}));
  EXPECT_EQ(r.scanner.state(), State::kScanning) << r.scanner.failure();
}

TEST(HttpScannerTest, RequestBodiesAreFramed) {
  Recorder r;
  // The bodies contain request lines; only the real HEAD (the fourth
  // request) may make a response bodiless.
  r.Requests(
      "POST /a HTTP/1.1\r\nContent-Length: 28\r\n\r\n"
      "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "1C\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n"
      "\r\n"  // a stray CRLF after a body, tolerated (RFC 7230 3.5)
      "GET /c HTTP/1.1\r\n\r\n"
      "HEAD /d HTTP/1.1\r\n\r\n");
  r.Responses(
      "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc"
      "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc"
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
      "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
  // Requests: POST, POST, GET, HEAD; the fifth response has no request.
  EXPECT_EQ(r.statuses, (std::vector<int>{201, 201, 200, 200, 500}));
  EXPECT_EQ(r.scanner.state(), State::kScanning) << r.scanner.failure();
}

TEST(HttpScannerTest, BodiesOfAnySize) {
  // Beast's default limits are 1 MiB per request and 8 MiB per response
  // body; the scanner never holds a body, so it has no limit.
  const size_t big = 20 << 20;
  Recorder r;
  r.Requests("PUT /big HTTP/1.1\r\nContent-Length: " + std::to_string(big) +
             "\r\n\r\n");
  const std::string block(64 << 10, 'z');
  for (size_t sent = 0; sent < big; sent += block.size()) r.Requests(block);
  r.Requests(kGet);
  r.Responses("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(big) +
              "\r\n\r\n");
  for (size_t sent = 0; sent < big; sent += block.size()) r.Responses(block);
  r.Responses("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (size_t sent = 0; sent < big; sent += block.size()) {
    r.Responses("10000\r\n" + block + "\r\n");
  }
  r.Responses("0\r\n\r\n");
  EXPECT_EQ(r.statuses, (std::vector<int>{200, 200}));
  EXPECT_EQ(r.scanner.state(), State::kScanning) << r.scanner.failure();
}

TEST(HttpScannerTest, ReadUntilCloseBody) {
  Recorder r;
  r.Requests(Gets(2));
  r.Responses("HTTP/1.0 200 OK\r\nServer: old\r\n\r\nHTTP/1.1 500 Nope\r\n");
  r.Responses("Content-Length: 0\r\n\r\nHTTP/1.1 502 Neither\r\n\r\n");
  // Everything after the header is body until the connection ends.
  EXPECT_EQ(r.statuses, (std::vector<int>{200}));
  EXPECT_EQ(r.scanner.state(), State::kScanning);
}

// The pipelined stream of the split tests: a chunked 500 with an extension
// and a trailer, a Content-Length 200, a HEAD's answer (a length and no
// body), a 503.
const char kPipelinedRequests[] =
    "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"
    "HEAD /3 HTTP/1.1\r\n\r\nGET /4 HTTP/1.1\r\n\r\n";
const char kPipelinedResponses[] =
    "HTTP/1.1 500 Internal\r\nTransfer-Encoding: chunked\r\n\r\n"
    "4;x=y\r\nbody\r\n0\r\nTrailer-A: 1\r\n\r\n"
    "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
    "HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n"
    "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n";
const std::vector<int> kPipelinedStatuses{500, 200, 200, 503};

TEST(HttpScannerTest, PipelinedResponsesSplitAtEveryPosition) {
  const std::string all = kPipelinedResponses;
  for (size_t cut = 0; cut <= all.size(); ++cut) {
    Recorder r;
    r.Requests(kPipelinedRequests);
    r.Responses(all.substr(0, cut));
    r.Responses(all.substr(cut));
    EXPECT_EQ(r.statuses, kPipelinedStatuses) << "cut at " << cut;
    EXPECT_EQ(r.scanner.state(), State::kScanning)
        << "cut at " << cut << ": " << r.scanner.failure();
  }
}

TEST(HttpScannerTest, PipelinedResponsesSplitAtEveryPairOfPositions) {
  const std::string all = kPipelinedResponses;
  for (size_t a = 0; a <= all.size(); a += 3) {
    for (size_t b = a; b <= all.size(); ++b) {
      Recorder r;
      r.Requests(kPipelinedRequests);
      r.Responses(all.substr(0, a));
      r.Responses(all.substr(a, b - a));
      r.Responses(all.substr(b));
      ASSERT_EQ(r.statuses, kPipelinedStatuses) << "cuts " << a << "," << b;
    }
  }
}

TEST(HttpScannerTest, RequestsSplitAtEveryPosition) {
  // A request stream split anywhere, interleaved with the responses as a
  // real connection would: each response only after its request.
  const std::string requests =
      "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n"
      "HEAD /b HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
  for (size_t cut = 0; cut <= requests.size(); ++cut) {
    Recorder r;
    r.Requests(requests.substr(0, cut));
    r.Requests(requests.substr(cut));
    r.Responses(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
        "HTTP/1.1 502 Bad\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(r.statuses, (std::vector<int>{200, 200, 502})) << "cut " << cut;
  }
}

TEST(HttpScannerTest, ByteByByte) {
  Recorder r;
  for (char c : std::string(kPipelinedRequests)) {
    r.scanner.OnRequestBytes(&c, 1);
  }
  r.ResponsesByteByByte(kPipelinedResponses);
  EXPECT_EQ(r.statuses, kPipelinedStatuses);
  EXPECT_EQ(r.scanner.state(), State::kScanning) << r.scanner.failure();
}

TEST(HttpScannerTest, GivesUpOnGarbageAndIgnoresTheRest) {
  Recorder r;
  r.Requests(Gets(2));
  r.Responses("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  r.Responses("SSH-2.0-OpenSSH_9.2\r\n");
  EXPECT_EQ(r.scanner.state(), State::kGaveUp);
  EXPECT_NE(r.scanner.failure().find("response"), std::string::npos)
      << r.scanner.failure();
  r.Responses("HTTP/1.1 500 Late\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(r.statuses, (std::vector<int>{200}));
  EXPECT_EQ(r.scanner.state(), State::kGaveUp);
}

TEST(HttpScannerTest, GivesUpOnNonHttpRequests) {
  Recorder r;
  r.Requests("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  EXPECT_EQ(r.scanner.state(), State::kGaveUp);
  EXPECT_NE(r.scanner.failure().find("request"), std::string::npos)
      << r.scanner.failure();
}

TEST(HttpScannerTest, GivesUpOnConflictingFraming) {
  Recorder r;
  r.Requests(kGet);
  r.Responses(
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
  EXPECT_EQ(r.scanner.state(), State::kGaveUp);
  EXPECT_TRUE(r.statuses.empty());
}

TEST(HttpScannerTest, HeaderLimitBoundsBuffering) {
  Recorder r(1024);
  r.Requests(kGet);
  r.Responses("HTTP/1.1 200 OK\r\n");
  std::string field = "X-Filler: " + std::string(90, 'a') + "\r\n";
  for (int i = 0; i < 10; ++i) r.Responses(field);  // ~1 KiB, no end yet
  for (int i = 0; i < 10 && r.scanner.state() == State::kScanning; ++i) {
    r.Responses(field);
  }
  EXPECT_EQ(r.scanner.state(), State::kGaveUp);
  EXPECT_TRUE(r.statuses.empty());
}

TEST(HttpScannerTest, ChunkLineLimitBoundsBuffering) {
  // Beast does not bound a chunk line; the scanner must.
  Recorder r(1024);
  r.Requests(kGet);
  r.Responses("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=");
  for (int i = 0; i < 20 && r.scanner.state() == State::kScanning; ++i) {
    r.Responses(std::string(100, 'v'));
  }
  EXPECT_EQ(r.scanner.state(), State::kGaveUp);
  EXPECT_EQ(r.statuses, (std::vector<int>{200}));
}

TEST(HttpScannerTest, LargeHeaderWithinLimitIsFine) {
  Recorder r;
  r.Requests(kGet);
  std::string response =
      "HTTP/1.1 503 Busy\r\nX-Big: " + std::string(40000, 'b') +
      "\r\nContent-Length: 0\r\n\r\n";
  for (size_t i = 0; i < response.size(); i += 1000) {
    r.Responses(response.substr(i, 1000));
  }
  EXPECT_EQ(r.statuses, (std::vector<int>{503}));
  EXPECT_EQ(r.scanner.state(), State::kScanning) << r.scanner.failure();
}

TEST(HttpScannerTest, SwitchingProtocolsIsATunnel) {
  Recorder r;
  r.Requests(
      "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  r.Responses(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
      "Upgrade: websocket\r\n\r\n\x81\x05hello");
  EXPECT_EQ(r.statuses, (std::vector<int>{101}));
  EXPECT_EQ(r.scanner.state(), State::kTunnel);
  EXPECT_TRUE(r.scanner.failure().empty());
  r.Requests("\x81\x85garbage");
  r.Responses("HTTP/1.1 500 Not HTTP any more\r\n\r\n");
  EXPECT_EQ(r.statuses, (std::vector<int>{101}));
  EXPECT_EQ(r.scanner.state(), State::kTunnel);
}

TEST(HttpScannerTest, ConnectIsATunnelOnlyWhenAccepted) {
  Recorder refused;
  refused.Requests("CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n");
  refused.Requests(kGet);
  refused.Responses(
      "HTTP/1.1 407 Proxy Auth\r\nContent-Length: 3\r\n\r\nno!"
      "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(refused.statuses, (std::vector<int>{407, 500}));
  EXPECT_EQ(refused.scanner.state(), State::kScanning);

  Recorder accepted;
  accepted.Requests("CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n");
  accepted.Responses(
      std::string("HTTP/1.1 200 Connection Established\r\n\r\n"
                  "R\0\0\0\x08",
                  44));
  EXPECT_EQ(accepted.statuses, (std::vector<int>{200}));
  EXPECT_EQ(accepted.scanner.state(), State::kTunnel);
}

TEST(HttpScannerTest, TooManyUnansweredRequests) {
  Recorder r;
  std::string many = Gets(static_cast<int>(HttpScanner::kMaxPipelined));
  r.Requests(many);
  EXPECT_EQ(r.scanner.state(), State::kScanning);
  r.Requests(kGet);
  EXPECT_EQ(r.scanner.state(), State::kGaveUp);
}

TEST(HttpScannerTest, ResponseWithoutRequestIsCounted) {
  // A server may answer before the request is complete (408, 400).
  Recorder r;
  r.Requests("GET / HTTP/1.1\r\nHost:");
  r.Responses("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(r.statuses, (std::vector<int>{408}));
}

}  // namespace
}  // namespace zkroll::forward
