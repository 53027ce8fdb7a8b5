// ValidateDrainRequest: what the agent accepts from /drain/<service>/<node>.
#include <gtest/gtest.h>

#include "agent/drain_watcher.h"
#include "common/payload.h"

namespace zkroll::agent {
namespace {

constexpr char kPath[] = "/drain/web/127.0.0.1_80";

std::string Json(const std::string& deploy_id, uint32_t interval_ms) {
  proto::DrainRequest q;
  q.set_deploy_id(deploy_id);
  q.set_by("ops@host");
  q.set_pid(42);
  q.set_interval_ms(interval_ms);
  return ToJson(q);
}

TEST(DrainRequestTest, ValidRequestKeepsItsFields) {
  auto v = ValidateDrainRequest(Json("web-20261130-1", 250), kPath);
  ASSERT_TRUE(v.valid) << v.error;
  EXPECT_EQ(v.request.deploy_id(), "web-20261130-1");
  EXPECT_EQ(v.request.by(), "ops@host");
  EXPECT_EQ(v.request.pid(), 42);
  EXPECT_EQ(v.request.interval_ms(), 250u);
}

TEST(DrainRequestTest, IntervalIsClamped) {
  EXPECT_EQ(ValidateDrainRequest(Json("d", 0), kPath).request.interval_ms(),
            100u);
  EXPECT_EQ(ValidateDrainRequest(Json("d", 1), kPath).request.interval_ms(),
            100u);
  EXPECT_EQ(ValidateDrainRequest(Json("d", 99999), kPath).request.interval_ms(),
            10000u);
}

TEST(DrainRequestTest, BadPayloadsAreRefusedWithTheirCause) {
  struct Case {
    std::string payload;
    std::string error_part;
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {"{not json", "not a valid"},
      {R"({"deploy_id": 7})", "not a valid"},
      {R"({"interval_ms": "fast", "deploy_id": "d"})", "not a valid"},
      {R"({"deploy_id": ""})", "deploy_id must be"},
      {Json(std::string(129, 'x'), 100), "deploy_id must be"},
      {Json("line\nbreak", 100), "deploy_id must be"},
      {std::string(70 * 1024, ' '), "bytes"},
      {std::string("\xff\xfe", 2), "UTF-8"},
  };
  for (const Case& c : cases) {
    auto v = ValidateDrainRequest(c.payload, kPath);
    EXPECT_FALSE(v.valid) << c.payload.substr(0, 40);
    EXPECT_NE(v.error.find(c.error_part), std::string::npos)
        << c.payload.substr(0, 40) << " -> " << v.error;
    EXPECT_NE(v.error.find(kPath), std::string::npos) << v.error;
  }
}

}  // namespace
}  // namespace zkroll::agent
