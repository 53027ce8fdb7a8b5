#include "tests/demo/demo_fixture.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

namespace zkroll::testing {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

boost::system::error_code Connect(int port) {
  asio::io_context ctx;
  tcp::socket s(ctx);
  boost::system::error_code ec;
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                          static_cast<uint16_t>(port)),
            ec);
  return ec;
}

}  // namespace

bool ConnectRefused(int port) {
  return Connect(port) == asio::error::connection_refused;
}

bool Accepts(int port) { return !Connect(port); }

InstanceAddress LocalInstance(int port) {
  return InstanceAddress::FromParts("127.0.0.1", port).value();
}

bool DemoService::Start() {
  proc_ = std::make_unique<ChildProcess>();
  std::vector<std::string> argv = {ZKROLL_DEMO_SERVICE_BIN, "--port",
                                   std::to_string(port_), "--version",
                                   version_};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  Status s = proc_->Start(argv, dir_.File("log"));
  if (!s.ok()) return false;
  return WaitFor([&] { return Accepts(port_) || !proc_->running(); },
                 milliseconds(10000)) &&
         proc_->running();
}

std::future<client::HttpResult> StartGet(IoThread& io,
                                         std::shared_ptr<client::HttpPool> pool,
                                         const InstanceAddress& to,
                                         const std::string& target,
                                         milliseconds timeout) {
  auto p = std::make_shared<std::promise<client::HttpResult>>();
  auto f = p->get_future();
  asio::post(io.executor(), [p, pool, to, target, timeout] {
    pool->Get(to, target, client::HttpPool::Clock::now() + timeout,
              [p](client::HttpResult r) { p->set_value(std::move(r)); });
  });
  return f;
}

client::HttpResult Get(IoThread& io, std::shared_ptr<client::HttpPool> pool,
                       const InstanceAddress& to, const std::string& target,
                       milliseconds timeout) {
  auto f = StartGet(io, std::move(pool), to, target, timeout);
  if (f.wait_for(timeout + milliseconds(10000)) != std::future_status::ready) {
    ADD_FAILURE() << "no outcome for GET " << target << " from "
                  << to.ToString();
    client::HttpResult r;
    r.error = "test gave up waiting";
    return r;
  }
  return f.get();
}

void OnIo(IoThread& io, std::function<void()> fn) {
  std::promise<void> done;
  asio::post(io.executor(), [&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace zkroll::testing
