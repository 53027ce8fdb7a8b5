#include "tests/support/zk_fixture.h"

#include <cctype>

namespace zkroll::testing {

ZooKeeperTestServer* ZooKeeperTest::server_ = nullptr;

void ZooKeeperTest::SetUpTestSuite() {
  server_ = new ZooKeeperTestServer();
  Status s = server_->Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
}

void ZooKeeperTest::TearDownTestSuite() {
  delete server_;
  server_ = nullptr;
}

void ZooKeeperTest::SetUp() {
  ASSERT_NE(server_, nullptr);
  if (!server_->running()) {
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  io_ = std::make_unique<IoThread>();
}

std::string ZooKeeperTest::TestServiceName() {
  std::string name;
  for (char c : std::string(
           ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    if (isalnum(static_cast<unsigned char>(c))) name += c;
  }
  return name;
}

std::unique_ptr<ZkSession> ZooKeeperTest::Connect(ZkOptions options) {
  if (options.connect_string.empty()) options.connect_string = connect_string();
  auto session = std::make_unique<ZkSession>(io_->executor(), options);
  Status s = session->Start();
  EXPECT_TRUE(s.ok()) << s.ToString();
  s = session->WaitConnected(milliseconds(20000));
  EXPECT_TRUE(s.ok()) << s.ToString();
  return session;
}

}  // namespace zkroll::testing
