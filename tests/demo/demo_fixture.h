// Shared pieces of the demo and client integration tests: real
// zkroll-demo-service processes, TCP probes, and HTTP requests through the
// client's connection pool on a background io_context.
#ifndef ZKROLL_TESTS_DEMO_DEMO_FIXTURE_H_
#define ZKROLL_TESTS_DEMO_DEMO_FIXTURE_H_

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "client/http_pool.h"
#include "tests/support/process.h"
#include "tests/support/zk_fixture.h"

namespace zkroll::testing {

// True if a TCP connect to 127.0.0.1:port is refused right now.
bool ConnectRefused(int port);
// True if a TCP connect to 127.0.0.1:port succeeds right now.
bool Accepts(int port);

InstanceAddress LocalInstance(int port);

// A zkroll-demo-service on 127.0.0.1:port answering `version`, with
// `extra` flags (e.g. {"--root-status", "500"}).
class DemoService {
 public:
  DemoService(int port, std::string version,
              std::vector<std::string> extra = {})
      : port_(port), version_(std::move(version)), extra_(std::move(extra)) {}
  // Starts it and waits until it accepts connections.
  bool Start();
  void Signal(int sig) { proc_->Signal(sig); }
  std::optional<int> Wait(milliseconds timeout) { return proc_->Wait(timeout); }
  bool running() { return proc_ && proc_->running(); }
  std::string Output() const { return proc_ ? proc_->Output() : ""; }
  int port() const { return port_; }
  InstanceAddress address() const { return LocalInstance(port_); }

 private:
  int port_;
  std::string version_;
  std::vector<std::string> extra_;
  TempDir dir_;
  std::unique_ptr<ChildProcess> proc_;
};

// Sends GET `target` through `pool` (which lives on `io`) and returns the
// future outcome; the deadline is `timeout` from now.
std::future<client::HttpResult> StartGet(IoThread& io,
                                         std::shared_ptr<client::HttpPool> pool,
                                         const InstanceAddress& to,
                                         const std::string& target,
                                         milliseconds timeout);
// StartGet and wait (at most timeout + 10s).
client::HttpResult Get(IoThread& io, std::shared_ptr<client::HttpPool> pool,
                       const InstanceAddress& to, const std::string& target,
                       milliseconds timeout = milliseconds(5000));

// Runs `fn` on the io thread and waits for it (for pool calls).
void OnIo(IoThread& io, std::function<void()> fn);

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_DEMO_DEMO_FIXTURE_H_
