// zkroll-tiny-service: a throwaway local service for integration tests.
//
//   zkroll-tiny-service --port P [--count N] [--ip 127.0.0.1] [--pidfile F]
//                       [--status N]
//
// With --count N it listens on the N ports P .. P+N-1 (benchmarks).
// Listens on ip:port and answers every HTTP request with `--status`
// (default 200) and the body "ok <port>\n", then closes the connection. A
// plain TCP check sees an accepting port. SIGTERM/SIGINT exit 0. Writes its
// pid to --pidfile once listening, so tests can wait for readiness.
#include <unistd.h>

#include <boost/asio.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

void Serve(std::shared_ptr<tcp::socket> sock, int status, int port) {
  auto buf = std::make_shared<std::array<char, 4096>>();
  sock->async_read_some(
      asio::buffer(*buf), [sock, buf, status, port](boost::system::error_code ec, size_t) {
        if (ec) return;
        std::string body = "ok " + std::to_string(port) + "\n";
        auto reply = std::make_shared<std::string>(
            "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
        asio::async_write(*sock, asio::buffer(*reply),
                          [sock, reply](boost::system::error_code, size_t) {
                            boost::system::error_code ignored;
                            sock->shutdown(tcp::socket::shutdown_both, ignored);
                          });
      });
}

void Accept(tcp::acceptor& acceptor, int status, int port) {
  acceptor.async_accept([&acceptor, status, port](boost::system::error_code ec,
                                                  tcp::socket s) {
    if (!ec) Serve(std::make_shared<tcp::socket>(std::move(s)), status, port);
    if (acceptor.is_open()) Accept(acceptor, status, port);
  });
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, status = 200, count = 1;
  std::string ip = "127.0.0.1", pidfile;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--port") port = std::atoi(v.c_str());
    else if (k == "--ip") ip = v;
    else if (k == "--pidfile") pidfile = v;
    else if (k == "--status") status = std::atoi(v.c_str());
    else if (k == "--count") count = std::atoi(v.c_str());
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  if (port <= 0 || count < 1 || port + count - 1 > 65535) {
    std::cerr << "usage: zkroll-tiny-service --port P [--ip A] [--pidfile F] [--status N]\n";
    return 2;
  }
  asio::io_context io;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  for (int p = port; p < port + count; ++p) {
    auto acceptor = std::make_unique<tcp::acceptor>(io);
    boost::system::error_code ec;
    tcp::endpoint ep(asio::ip::make_address(ip), static_cast<uint16_t>(p));
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(128, ec);
    if (ec) {
      std::cerr << "cannot listen on " << ip << ":" << p << ": " << ec.message() << "\n";
      return 1;
    }
    Accept(*acceptor, status, p);
    acceptors.push_back(std::move(acceptor));
  }
  if (!pidfile.empty()) {
    std::string tmp = pidfile + ".tmp";
    std::ofstream(tmp) << getpid() << "\n";
    std::rename(tmp.c_str(), pidfile.c_str());
  }
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](boost::system::error_code, int) {
    for (auto& a : acceptors) a->close();
    io.stop();
  });
  io.run();
  return 0;
}
