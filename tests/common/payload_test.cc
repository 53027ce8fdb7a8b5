#include "common/payload.h"

#include <gtest/gtest.h>

#include "common/utf8.h"
#include "zkroll.pb.h"

namespace zkroll {
namespace {

TEST(PayloadTest, InstanceRecordRoundTripIsReadableJson) {
  proto::InstanceRecord r;
  r.set_service("level");
  r.set_ip("192.168.1.10");
  r.set_port(9000);
  r.set_host("host-1");
  r.set_weight(3);
  (*r.mutable_metadata())["zone"] = "a";
  std::string json = ToJson(r);
  EXPECT_NE(json.find("\"service\": \"level\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"registered_at\"") == std::string::npos, false);
  auto back = ParsePayload<proto::InstanceRecord>(json, "/x");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->port(), 9000u);
  EXPECT_EQ(back->metadata().at("zone"), "a");
  EXPECT_EQ(back->SerializeAsString(), r.SerializeAsString());
}

TEST(PayloadTest, PauseFlagAndDeployRecordRoundTrip) {
  proto::PauseFlag f;
  f.set_service("level");
  f.set_by("ops@host");
  f.set_pid(42);
  f.set_reason("deploy 1");
  auto back = ParsePayload<proto::PauseFlag>(ToJson(f), "/p");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->pid(), 42);

  proto::DeployRecord d;
  d.set_deploy_id("x");
  auto* inst = d.add_instances();
  inst->set_instance("10.0.0.1_80");
  inst->add_steps()->set_name("pause");
  auto dback = ParsePayload<proto::DeployRecord>(ToJson(d), "/d");
  ASSERT_TRUE(dback.ok());
  EXPECT_EQ(dback->instances(0).steps(0).name(), "pause");
}

TEST(PayloadTest, AcceptsCamelCaseAndIgnoresUnknownFields) {
  auto r = ParsePayload<proto::InstanceRecord>(
      R"({"service":"s","registeredAt":"t","future_field":{"x":[1,2]},"port":80})",
      "/services/s/1.2.3.4_80");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->registered_at(), "t");
  EXPECT_EQ(r->port(), 80u);
}

TEST(PayloadTest, RefusesMalformedWithPathInMessage) {
  const std::string path = "/pause/level/10.0.0.1_80";
  struct Case {
    std::string data;
    std::string expect;
  } cases[] = {
      {"", "is empty"},
      {"not json", "not a valid zkroll.proto.PauseFlag"},
      {"{\"pid\": \"abc\"}", "not a valid"},
      {"{\"pid\": 1.5}", "not a valid"},
      {"{\"reason\": 7}", "not a valid"},
      {"[1,2,3]", "not a valid"},
      {"{\"reason\": \"\xff\xfe\"}", "not valid UTF-8"},
      {std::string(kMaxPayloadBytes + 1, ' '), "more than"},
      {"{\"reason\": \"x\"", "not a valid"},
  };
  for (const auto& c : cases) {
    auto r = ParsePayload<proto::PauseFlag>(c.data, path);
    ASSERT_FALSE(r.ok()) << c.data.substr(0, 40);
    EXPECT_NE(r.status().message().find(path), std::string::npos);
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << r.status().message();
  }
}

TEST(Utf8Test, Validation) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));   // U+10FFFF itself
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));       // overlong, 3 bytes
  EXPECT_FALSE(IsValidUtf8("a\x80" "b"));          // stray continuation
  EXPECT_FALSE(IsValidUtf8("\xf5\x80\x80\x80"));  // lead byte past F4
  EXPECT_EQ(Utf8SequenceLength("\xe2\x82\xac!", 0), 3u);
  EXPECT_EQ(Utf8SequenceLength("\xe2\x82\xac!", 3), 1u);
}

}  // namespace
}  // namespace zkroll
