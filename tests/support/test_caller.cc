// zkroll-test-caller: a caller process for traffic observation tests.
//
//   zkroll-test-caller --connect IP:PORT [--every-ms N]
//
// Opens one TCP connection and sends an HTTP/1.1 keep-alive request on it
// every N ms (default 20), reading whatever comes back. Prints
// "connected <local port>" once connected. SIGUSR1: stop sending but keep
// the connection open (a silent, established caller). SIGTERM/SIGINT: exit
// 0. Exits 1 if it cannot connect or the connection is closed by the peer.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int signal_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  char c = static_cast<char>(sig);
  ssize_t ignored = write(signal_pipe[1], &c, 1);
  (void)ignored;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target;
  int every_ms = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--connect")
      target = argv[i + 1];
    else if (k == "--every-ms")
      every_ms = std::atoi(argv[i + 1]);
  }
  size_t colon = target.rfind(':');
  if (target.empty() || colon == std::string::npos || every_ms <= 0) {
    std::fprintf(
        stderr, "usage: zkroll-test-caller --connect IP:PORT [--every-ms N]\n");
    return 2;
  }
  std::string ip = target.substr(0, colon);
  int port = std::atoi(target.c_str() + colon + 1);
  if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1 ||
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::fprintf(stderr, "cannot connect to %s: %s\n", target.c_str(),
                 strerror(errno));
    return 1;
  }
  sockaddr_in local{};
  socklen_t len = sizeof local;
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  std::printf("connected %d\n", ntohs(local.sin_port));
  std::fflush(stdout);

  const std::string request = "GET / HTTP/1.1\r\nHost: " + target +
                              "\r\nConnection: keep-alive\r\n\r\n";
  bool sending = true;
  auto next = std::chrono::steady_clock::now();
  char buf[4096];
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (sending && now >= next) {
      if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) {
        std::fprintf(stderr, "send: %s\n", strerror(errno));
        return 1;
      }
      next = now + std::chrono::milliseconds(every_ms);
    }
    int wait_ms = -1;
    if (sending) {
      wait_ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(
              next - std::chrono::steady_clock::now())
              .count());
      if (wait_ms < 0) wait_ms = 0;
    }
    pollfd fds[2] = {{fd, POLLIN, 0}, {signal_pipe[0], POLLIN, 0}};
    if (poll(fds, 2, wait_ms) < 0 && errno != EINTR) return 1;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        std::fprintf(stderr, "connection closed by the peer\n");
        return 1;
      }
    }
    if (fds[1].revents & POLLIN) {
      char sig = 0;
      while (read(signal_pipe[0], &sig, 1) == 1) {
        if (sig == SIGUSR1) {
          sending = false;
          std::printf("silent\n");
          std::fflush(stdout);
        } else {
          close(fd);
          return 0;
        }
      }
    }
  }
}
