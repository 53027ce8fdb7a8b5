// A zkroll-tiny-service process (tests/support/tiny_service.cc) on
// 127.0.0.1:port: the instance the agent checks and the coordinator deploys
// in integration tests, which can be stopped and started again.
#ifndef ZKROLL_TESTS_SUPPORT_TINY_SERVICE_PROCESS_H_
#define ZKROLL_TESTS_SUPPORT_TINY_SERVICE_PROCESS_H_

#include <memory>
#include <string>

#include "tests/support/process.h"

namespace zkroll::testing {

class TinyService {
 public:
  explicit TinyService(int port) : port_(port) {}
  // Starts it and waits until it listens (its pidfile appears); false if
  // it could not start or exited first. The destructor kills it.
  bool Start();
  // SIGTERM, and waits until it has exited.
  void Stop();
  bool running();
  int port() const { return port_; }
  std::string pidfile() const { return dir_.File("pid"); }

 private:
  int port_;
  TempDir dir_;
  std::unique_ptr<ChildProcess> proc_;
};

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_SUPPORT_TINY_SERVICE_PROCESS_H_
