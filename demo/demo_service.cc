#include "demo/demo_service.h"

#include <glog/logging.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/program_options.hpp>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <iostream>
#include <optional>

#include "common/version.h"
#include "demo/json_text.h"

namespace zkroll::demo {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;

Result<ErrorRate> ErrorRate::Parse(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument(
        "bad error rate " + QuoteForMessage(text) +
        ": use a fraction from 0 to 1 with at most 6 decimals, e.g. 0.1");
  };
  // Digits, then an optional '.' and up to 6 digits: parsed by hand so that
  // 0.1 is exactly 100000 parts per million.
  size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view frac =
      dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  auto digits = [](std::string_view d) {
    return std::all_of(d.begin(), d.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) != 0;
    });
  };
  if (whole.empty() || whole.size() > 1 || !digits(whole) || !digits(frac) ||
      frac.size() > 6 || (dot != std::string_view::npos && frac.empty())) {
    return bad();
  }
  int64_t ppm = (whole[0] - '0') * 1000000;
  int64_t scale = 100000;
  for (char c : frac) {
    ppm += (c - '0') * scale;
    scale /= 10;
  }
  if (ppm > 1000000) return bad();
  return ErrorRate(ppm);
}

bool ErrorRate::Fails(int64_t n) const {
  if (n <= 0 || ppm_ == 0) return false;
  return n * ppm_ / 1000000 > (n - 1) * ppm_ / 1000000;
}

// One client connection: reads a request, answers it, and goes on reading
// while the connection is kept alive.
class DemoSession : public std::enable_shared_from_this<DemoSession> {
 public:
  DemoSession(tcp::socket socket, std::shared_ptr<DemoServer> server,
              uint64_t id)
      : socket_(std::move(socket)),
        server_(std::move(server)),
        id_(id),
        delay_(socket_.get_executor()),
        idle_grace_(socket_.get_executor()) {}
  ~DemoSession() { server_->SessionEnded(id_); }

  void Start() { Read(); }

  // The server started draining (see "Drain" in demo_service.h). A request
  // in flight is answered with "Connection: close"; an idle connection is
  // given drain_idle_grace for a request already on its way, then closed.
  void OnDrain() {
    if (busy_ || grace_armed_) return;
    grace_armed_ = true;
    idle_grace_.expires_after(server_->options().drain_idle_grace);
    idle_grace_.async_wait([self = shared_from_this()](error_code ec) {
      // A request that arrived meanwhile closes the connection after its
      // answer.
      if (ec || self->busy_) return;
      self->Close();
    });
  }

  // The drain timeout passed: cut the connection.
  void Abort() { Close(); }

 private:
  void Read() {
    request_ = {};
    http::async_read(socket_, buffer_, request_,
                     [self = shared_from_this()](error_code ec, size_t) {
                       self->OnRead(ec);
                     });
  }

  void OnRead(error_code ec) {
    if (ec) {
      Close();  // end of stream, reset, or closed by the grace or Abort
      return;
    }
    busy_ = true;
    ++server_->in_flight_;
    Handle();
  }

  void Handle() {
    if (request_.method() != http::verb::get) {
      return Respond(http::status::method_not_allowed, "only GET\n",
                     "text/plain");
    }
    const auto raw_target = request_.target();
    std::string_view target(raw_target.data(), raw_target.size());
    std::string_view path = target.substr(0, target.find('?'));
    std::string_view query;
    if (path.size() < target.size()) query = target.substr(path.size() + 1);
    if (path == "/") {
      Millis delay = DelayFrom(query);
      if (delay.count() > 0) {
        delay_.expires_after(delay);
        delay_.async_wait(
            [self = shared_from_this()](error_code) { self->RespondRoot(); });
        return;
      }
      return RespondRoot();
    }
    if (path == "/healthz") {
      return Respond(http::status::ok, "ok\n", "text/plain");
    }
    if (path == "/stats") {
      return Respond(http::status::ok, server_->StatsJson() + "\n",
                     "application/json");
    }
    Respond(http::status::not_found, "not found\n", "text/plain");
  }

  // "delay_ms=N" anywhere in the query; capped by max_delay.
  Millis DelayFrom(std::string_view query) const {
    size_t at = query.find("delay_ms=");
    if (at == std::string_view::npos) return Millis(0);
    std::string_view digits = query.substr(at + 9);
    int64_t ms = 0;
    auto [end, err] =
        std::from_chars(digits.data(), digits.data() + digits.size(), ms);
    (void)end;
    if (err != std::errc() || ms < 0) return Millis(0);
    return std::min(Millis(ms), server_->options().max_delay);
  }

  void RespondRoot() {
    response_extra_ = true;
    const int64_t n = ++server_->root_requests_;
    unsigned status = server_->options().root_status;
    if (server_->options().error_rate.Fails(n)) status = 500;
    if (status >= 500) ++server_->root_errors_;
    Respond(static_cast<http::status>(status), server_->root_body() + "\n",
            "application/json");
  }

  void Respond(http::status status, std::string body,
               const char* content_type) {
    // Read the drain state now, not when the request arrived: a request
    // held in flight across SIGTERM must close its connection.
    const bool keep_alive = request_.keep_alive() && !server_->draining();
    response_ = {};
    response_.version(11);
    response_.result(status);
    response_.set(http::field::server, "zkroll-demo-service");
    response_.set(http::field::content_type, content_type);
    if (response_extra_) {
      response_.set("X-Zkroll-Version", server_->options().version);
      response_.set("X-Zkroll-Instance", server_->options().address.ToString());
      response_extra_ = false;
    }
    response_.keep_alive(keep_alive);
    response_.body() = std::move(body);
    response_.prepare_payload();
    http::async_write(
        socket_, response_,
        [self = shared_from_this(), keep_alive](error_code ec, size_t) {
          self->OnWrite(ec, keep_alive);
        });
  }

  void OnWrite(error_code ec, bool keep_alive) {
    busy_ = false;
    --server_->in_flight_;
    if (!ec) ++server_->served_;
    const int64_t crash_after = server_->options().crash_after;
    if (crash_after > 0 && server_->served_ >= crash_after) {
      LOG(WARNING) << "--crash-after " << crash_after
                   << ": exiting at once, like a crash";
      std::_Exit(3);
    }
    if (ec || !keep_alive) {
      Close();
      return;
    }
    if (server_->draining()) {
      OnDrain();
      if (!socket_.is_open()) return;
    }
    Read();
  }

  void Close() {
    error_code ignored;
    delay_.cancel();
    idle_grace_.cancel();
    if (!socket_.is_open()) return;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    socket_.close(ignored);
  }

  tcp::socket socket_;
  std::shared_ptr<DemoServer> server_;
  uint64_t id_;
  asio::steady_timer delay_;
  asio::steady_timer idle_grace_;  // while draining and idle
  boost::beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  bool busy_ = false;  // a request was read and is not answered yet
  bool grace_armed_ = false;
  bool response_extra_ = false;
};

Result<std::shared_ptr<DemoServer>> DemoServer::Listen(asio::any_io_executor ex,
                                                       Options options) {
  auto server =
      std::shared_ptr<DemoServer>(new DemoServer(ex, std::move(options)));
  const InstanceAddress& a = server->options_.address;
  error_code ec;
  tcp::endpoint ep(asio::ip::make_address(a.ip(), ec), a.port());
  auto& acceptor = server->acceptor_;
  if (!ec) acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Unavailable("cannot listen on " + a.ToString() + ": " +
                       ec.message());
  }
  return server;
}

DemoServer::DemoServer(asio::any_io_executor ex, Options options)
    : ex_(ex), options_(std::move(options)), acceptor_(ex), drain_timer_(ex) {
  root_body_ = "{\"version\":" + JsonQuote(options_.version) +
               ",\"instance\":" + JsonQuote(options_.address.ToString()) + "}";
}

DemoServer::~DemoServer() = default;

void DemoServer::Start() { Accept(); }

void DemoServer::Accept() {
  acceptor_.async_accept([self = shared_from_this()](error_code ec,
                                                     tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || self->draining_) return;
      LOG(WARNING) << "accept failed: " << ec.message();
    } else {
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      uint64_t id = self->next_id_++;
      auto session = std::make_shared<DemoSession>(std::move(socket), self, id);
      self->SessionStarted(id, session);
      session->Start();
    }
    if (!self->draining_) self->Accept();
  });
}

void DemoServer::SessionStarted(uint64_t id,
                                std::weak_ptr<DemoSession> session) {
  sessions_.emplace(id, std::move(session));
}

void DemoServer::SessionEnded(uint64_t id) {
  sessions_.erase(id);
  MaybeDrained();
}

void DemoServer::Drain(std::function<void(bool)> done) {
  if (draining_) return;
  draining_ = true;
  drained_ = std::move(done);
  // Closing the listening socket at once makes new connects fail fast
  // with "refused" instead of hanging in the backlog.
  error_code ignored;
  acceptor_.close(ignored);
  LOG(INFO) << "draining: " << in_flight_ << " requests in flight, "
            << sessions_.size() << " connections";
  std::vector<std::shared_ptr<DemoSession>> live;
  for (auto& [id, weak] : sessions_) {
    if (auto s = weak.lock()) live.push_back(s);
  }
  for (auto& s : live) s->OnDrain();
  drain_timer_.expires_after(options_.drain_timeout);
  drain_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (ec || !self->drained_) return;
    LOG(WARNING) << "drain timeout "
                 << FormatDuration(self->options_.drain_timeout)
                 << " passed with " << self->sessions_.size()
                 << " connections left; closing them";
    std::vector<std::shared_ptr<DemoSession>> rest;
    for (auto& [id, weak] : self->sessions_) {
      if (auto s = weak.lock()) rest.push_back(s);
    }
    for (auto& s : rest) s->Abort();
    auto done = std::move(self->drained_);
    self->drained_ = nullptr;
    done(false);
  });
  MaybeDrained();
}

void DemoServer::MaybeDrained() {
  if (!draining_ || !sessions_.empty() || !drained_) return;
  drain_timer_.cancel();
  auto done = std::move(drained_);
  drained_ = nullptr;
  // Not from inside a session's destructor.
  asio::post(ex_, [done] { done(true); });
}

std::string DemoServer::StatsJson() const {
  return "{\"version\":" + JsonQuote(options_.version) +
         ",\"instance\":" + JsonQuote(options_.address.ToString()) +
         ",\"in_flight\":" + std::to_string(in_flight_) +
         ",\"served\":" + std::to_string(served_) +
         ",\"connections\":" + std::to_string(sessions_.size()) +
         ",\"draining\":" + (draining_ ? "true" : "false") +
         ",\"root_requests\":" + std::to_string(root_requests_) +
         ",\"root_errors\":" + std::to_string(root_errors_) + "}";
}

// --- main -------------------------------------------------------------------

namespace {

namespace po = boost::program_options;

constexpr char kUsage[] =
    R"(zkroll-demo-service: the tiny HTTP service of the rolling-upgrade demo.

Usage:
  zkroll-demo-service --port PORT --version VERSION [--ip IP]
                      [--root-status 500] [--crash-after N]
                      [--error-rate F] [--exit-after D] [--start-delay D]

  GET /          200 {"version":"VERSION","instance":"IP:PORT"}
                 (?delay_ms=N holds the answer N ms)
  GET /healthz   200 ok
  GET /stats     200 JSON counters

SIGTERM/SIGINT: stop accepting at once (new connects are refused), answer
the requests in flight with "Connection: close", and exit 0 once every
connection is closed (connections still open after --drain-timeout are
cut). An idle keep-alive connection stays open for --drain-idle-grace: a
request that arrives meanwhile (a client may have sent it already) is
answered with "Connection: close", then the connection is closed; closing
it at once would fail that request.

Bad versions, for tests and demos of rollouts that protect themselves:
  --root-status 500   GET / always fails, /healthz still passes
  --error-rate 0.1    GET / answers 500 to every 10th request (by request
                      number, so every run fails the same requests)
  --exit-after 2s     exits with status 1, like a crash, 2 s after it
                      started listening (so it passes its first checks)
  --start-delay 30s   waits 30 s before listening (starts too slowly for
                      the checks of a deploy); SIGTERM meanwhile exits 0
  --crash-after N     exits with status 3 after N responses

Exit codes: 0 stopped by a signal; 2 bad flag; 1 cannot listen, or
--exit-after passed; 3 --crash-after reached.

Options)";

}  // namespace

int DemoServiceMain(int argc, char** argv) {
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  po::options_description desc(kUsage);
  // clang-format off
  desc.add_options()
    ("help,h", "show this help and exit")
    ("port", po::value<int>(), "TCP port to listen on (1-65535)")
    ("version", po::value<std::string>(),
     "version string GET / answers with, e.g. v2 or 1.4.0 "
     "(A-Z a-z 0-9 . _ - +, up to 64 characters)")
    ("ip", po::value<std::string>()->default_value("127.0.0.1"),
     "address to listen on, IPv4 or IPv6")
    ("drain-timeout", po::value<std::string>()->default_value("10s"),
     "after SIGTERM, cut connections still open after this long")
    ("drain-idle-grace", po::value<std::string>()->default_value("1s"),
     "after SIGTERM, close an idle keep-alive connection only after this "
     "long without a request")
    ("root-status", po::value<int>()->default_value(200),
     "status GET / answers with (200-599), e.g. 500 to play a broken "
     "version whose /healthz still passes")
    ("crash-after", po::value<int64_t>()->default_value(0),
     "exit at once (code 3, no drain) after writing this many responses, "
     "to play a version that crashes; 0: never")
    ("error-rate", po::value<std::string>()->default_value("0"),
     "fraction of GET / requests answered 500 (0 to 1, e.g. 0.1: every "
     "10th request), to play a version that fails some requests")
    ("exit-after", po::value<std::string>()->default_value("0s"),
     "exit with status 1 this long after listening started (no drain, "
     "like a crash), to play a version that crashes after passing its "
     "checks; 0s: never")
    ("start-delay", po::value<std::string>()->default_value("0s"),
     "wait this long before listening, to play a version that starts "
     "slower than the checks allow");
  // clang-format on
  po::variables_map vm;
  auto usage_error = [](const std::string& message) {
    std::cerr << "zkroll-demo-service: " << message
              << "\nRun 'zkroll-demo-service --help' for the options.\n";
    return 2;
  };
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(e.what());
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (!vm.count("port")) return usage_error("--port is required");
  if (!vm.count("version")) return usage_error("--version is required");
  const std::string version = vm["version"].as<std::string>();
  if (version.empty() || version.size() > 64 ||
      std::any_of(version.begin(), version.end(), [](char c) {
        return !std::isalnum(static_cast<unsigned char>(c)) && c != '.' &&
               c != '_' && c != '-' && c != '+';
      })) {
    return usage_error("bad --version " + QuoteForMessage(version) +
                       ": use 1 to 64 characters of A-Z a-z 0-9 . _ - +, "
                       "e.g. v2");
  }
  auto address = InstanceAddress::FromParts(vm["ip"].as<std::string>(),
                                            vm["port"].as<int>());
  if (!address.ok()) return usage_error(address.status().message());
  auto drain_timeout = ParseDuration(vm["drain-timeout"].as<std::string>());
  if (!drain_timeout.ok()) {
    return usage_error("--drain-timeout: " + drain_timeout.status().message());
  }
  auto idle_grace = ParseDuration(vm["drain-idle-grace"].as<std::string>());
  if (!idle_grace.ok()) {
    return usage_error("--drain-idle-grace: " + idle_grace.status().message());
  }

  const int root_status = vm["root-status"].as<int>();
  if (root_status < 200 || root_status > 599) {
    return usage_error("--root-status must be between 200 and 599");
  }
  const int64_t crash_after = vm["crash-after"].as<int64_t>();
  if (crash_after < 0) return usage_error("--crash-after must be 0 or more");
  auto error_rate = ErrorRate::Parse(vm["error-rate"].as<std::string>());
  if (!error_rate.ok()) {
    return usage_error("--error-rate: " + error_rate.status().message());
  }
  auto exit_after = ParseDuration(vm["exit-after"].as<std::string>());
  if (!exit_after.ok()) {
    return usage_error("--exit-after: " + exit_after.status().message());
  }
  auto start_delay = ParseDuration(vm["start-delay"].as<std::string>());
  if (!start_delay.ok()) {
    return usage_error("--start-delay: " + start_delay.status().message());
  }

  asio::io_context io;
  DemoServer::Options options;
  options.address = *address;
  options.version = version;
  options.drain_timeout = *drain_timeout;
  options.drain_idle_grace = *idle_grace;
  options.root_status = static_cast<unsigned>(root_status);
  options.crash_after = crash_after;
  options.error_rate = *error_rate;

  std::shared_ptr<DemoServer> server;
  int exit_code = 0;
  asio::steady_timer start_timer(io);
  asio::steady_timer exit_timer(io);
  // Signals are handled from the start, so that a version that starts
  // slowly can still be stopped while it waits.
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const error_code& ec, int sig) {
    if (ec) return;
    start_timer.cancel();
    exit_timer.cancel();
    if (!server) {
      LOG(INFO) << "signal " << sig << " before listening: exiting";
      io.stop();
      return;
    }
    LOG(INFO) << "signal " << sig
              << ": refusing new connections, finishing requests in flight";
    server->Drain([&](bool clean) {
      LOG(INFO) << "stopped after serving " << server->served() << " requests"
                << (clean ? "" : " (drain timeout cut some)");
      io.stop();
    });
  });

  auto listen = [&] {
    auto listening = DemoServer::Listen(io.get_executor(), options);
    if (!listening.ok()) {
      std::cerr << "zkroll-demo-service: " << listening.status().message()
                << "\n";
      exit_code = 1;
      io.stop();
      return;
    }
    server = *listening;
    server->Start();
    LOG(INFO) << "zkroll-demo-service " << ZKROLL_VERSION << " listening on "
              << address->ToString() << ", answering version " << version;
    if (exit_after->count() > 0) {
      exit_timer.expires_after(*exit_after);
      exit_timer.async_wait([&](const error_code& ec) {
        if (ec) return;
        LOG(WARNING) << "--exit-after " << FormatDuration(*exit_after)
                     << ": exiting with status 1, like a crash";
        std::_Exit(1);
      });
    }
  };
  if (start_delay->count() > 0) {
    LOG(INFO) << "--start-delay " << FormatDuration(*start_delay)
              << ": listening on " << address->ToString() << " only then";
    start_timer.expires_after(*start_delay);
    start_timer.async_wait([&](const error_code& ec) {
      if (!ec) listen();
    });
  } else {
    listen();
  }
  io.run();
  return exit_code;
}

}  // namespace zkroll::demo
