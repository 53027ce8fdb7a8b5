// Where the load generator's requests go and how they are carried.
//
// InstanceSource picks the instance of each request: DiscoverySource follows
// the registry through the discovery client; FixedTargets is a list given
// on the command line that never changes (callers that never refresh their
// instance list, e.g. ones pointed at one address by configuration).
//
// RequestSender carries one GET and reports its outcome exactly once:
// PooledSender reuses keep-alive connections (client::HttpPool);
// ConnectionPerRequest opens a new TCP connection for every request, sends
// it with "Connection: close" and closes the connection after the
// response. The difference matters behind a forwarder that switches
// backends: a switch applies to new connections only, so keep-alive
// callers stay on the old backend until it closes their connections, while
// connection-per-request callers move at once.
//
// Threading: not thread-safe; every call on the thread that runs the
// executor (a single-threaded io_context). Callbacks run on the executor,
// never inside Get().
#ifndef ZKROLL_DEMO_LOAD_IO_H_
#define ZKROLL_DEMO_LOAD_IO_H_

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/discovery.h"
#include "client/http_pool.h"
#include "common/names.h"

namespace zkroll::demo {

class InstanceSource {
 public:
  virtual ~InstanceSource() = default;
  // The list the next pick is made from (never null).
  virtual std::shared_ptr<const client::ServiceView> Snapshot() const = 0;
  // The next instance, or nullopt if the list is empty.
  virtual std::optional<client::Endpoint> Pick() = 0;
};

// The discovery client's list and its weighted round robin.
class DiscoverySource : public InstanceSource {
 public:
  explicit DiscoverySource(std::shared_ptr<client::ServiceDiscovery> discovery)
      : discovery_(std::move(discovery)) {}
  std::shared_ptr<const client::ServiceView> Snapshot() const override {
    return discovery_->Snapshot();
  }
  std::optional<client::Endpoint> Pick() override { return discovery_->Pick(); }

 private:
  std::shared_ptr<client::ServiceDiscovery> discovery_;
};

// A fixed, non-empty list, in round robin; always loaded and fresh.
class FixedTargets : public InstanceSource {
 public:
  // `service` only labels the view (may be empty).
  FixedTargets(ServiceName service, std::vector<InstanceAddress> targets);
  std::shared_ptr<const client::ServiceView> Snapshot() const override {
    return view_;
  }
  std::optional<client::Endpoint> Pick() override;

 private:
  std::shared_ptr<const client::ServiceView> view_;
  size_t next_ = 0;
};

// "127.0.0.1:8080,127.0.0.1:8081": a non-empty list of distinct
// InstanceAddress texts; InvalidArgument naming the bad entry otherwise.
Result<std::vector<InstanceAddress>> ParseTargets(std::string_view text);

class RequestSender {
 public:
  virtual ~RequestSender() = default;
  // GET `target` from `instance`; `done` gets the outcome by `deadline`
  // (plus scheduling delay), exactly once, never inside Get().
  virtual void Get(const InstanceAddress& instance, std::string target,
                   client::HttpPool::Clock::time_point deadline,
                   client::HttpPool::Callback done) = 0;
  // Keeps sending only to `instances` (the discovery list changed).
  virtual void Retain(const std::vector<InstanceAddress>& instances) = 0;
  // Keeps no connection after its response; requests in flight finish.
  virtual void Shutdown() = 0;
  // connects counts every connection attempt, refused ones too.
  virtual client::HttpPool::Stats stats() const = 0;
};

class PooledSender : public RequestSender {
 public:
  explicit PooledSender(std::shared_ptr<client::HttpPool> pool)
      : pool_(std::move(pool)) {}
  void Get(const InstanceAddress& instance, std::string target,
           client::HttpPool::Clock::time_point deadline,
           client::HttpPool::Callback done) override {
    pool_->Get(instance, std::move(target), deadline, std::move(done));
  }
  void Retain(const std::vector<InstanceAddress>& instances) override {
    pool_->Retain(instances);
  }
  void Shutdown() override { pool_->Shutdown(); }
  client::HttpPool::Stats stats() const override { return pool_->stats(); }

 private:
  std::shared_ptr<client::HttpPool> pool_;
};

// One connection per request, never reused. No limit on concurrent
// connections: at most rate x timeout are open, since every request ends
// by its deadline. Failures are classified like HttpPool's
// (client::ClassifyError), a deadline that passes is kTimeout.
class ConnectionPerRequest
    : public RequestSender,
      public std::enable_shared_from_this<ConnectionPerRequest> {
 public:
  ConnectionPerRequest(boost::asio::any_io_executor ex, std::string user_agent,
                       size_t max_body_bytes = 64 * 1024);
  ConnectionPerRequest(const ConnectionPerRequest&) = delete;
  ConnectionPerRequest& operator=(const ConnectionPerRequest&) = delete;

  void Get(const InstanceAddress& instance, std::string target,
           client::HttpPool::Clock::time_point deadline,
           client::HttpPool::Callback done) override;
  void Retain(const std::vector<InstanceAddress>&) override {}
  void Shutdown() override {}
  client::HttpPool::Stats stats() const override;

 private:
  class Call;
  boost::asio::any_io_executor ex_;
  const std::string user_agent_;
  const size_t max_body_bytes_;
  uint64_t connects_ = 0;
  std::shared_ptr<size_t> open_ = std::make_shared<size_t>(0);
};

}  // namespace zkroll::demo

#endif  // ZKROLL_DEMO_LOAD_IO_H_
