// gtest fixture: one real ZooKeeper server per test suite, and helpers to
// open sessions on an io_context running in a background thread.
#ifndef ZKROLL_TESTS_SUPPORT_ZK_FIXTURE_H_
#define ZKROLL_TESTS_SUPPORT_ZK_FIXTURE_H_

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <thread>

#include "common/zk_session.h"
#include "tests/support/wait.h"
#include "tests/support/zk_server.h"

namespace zkroll::testing {

// Runs an io_context on its own thread until destroyed.
class IoThread {
 public:
  IoThread() : guard_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~IoThread() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  boost::asio::any_io_executor executor() { return io_.get_executor(); }
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type>
      guard_;
  std::thread thread_;
};

class ZooKeeperTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;

  // A connected session on io(); fails the test if it cannot connect.
  std::unique_ptr<ZkSession> Connect(ZkOptions options = {});

  // The running test's name with only its letters and digits: a valid
  // service name that no other test of the suite uses, so tests sharing
  // the suite's server do not see each other's nodes.
  static std::string TestServiceName();

  static ZooKeeperTestServer* server() { return server_; }
  static std::string connect_string() { return server_->connect_string(); }
  IoThread& io() { return *io_; }

  static ZooKeeperTestServer* server_;
  std::unique_ptr<IoThread> io_;
};

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_SUPPORT_ZK_FIXTURE_H_
