// The instance record as both zkroll and Apache Curator read it. What
// Curator's own reader makes of a record is checked against the real jar by
// tests/callers/curator_caller_test.cc; here: the printed field names and
// JSON types, the consistency check, and the config-side parsers.
#include "common/instance_record.h"

#include <gtest/gtest.h>

#include "common/payload.h"

namespace zkroll {
namespace {

ServiceName Svc(const char* s) { return ServiceName::Parse(s).value(); }
InstanceAddress Addr(const char* s) { return InstanceAddress::Parse(s).value(); }

TEST(InstanceRecordTest, PrintsCuratorFieldsUnderCuratorNamesAndTypes) {
  // 2026-11-30T09:00:00.123Z
  WallTime t{std::chrono::milliseconds(1796029200123)};
  proto::InstanceRecord r =
      NewInstanceRecord(Svc("level"), Addr("192.168.1.10:9000"), t);
  *r.mutable_urispec() = ParseUriSpec("{scheme}://{address}:{port}").value();
  *r.mutable_payload() = ParseRecordPayload(R"({"zone": "a"})").value();
  const std::string json = ToJson(r);
  for (const char* want : {
           R"("service": "level")", R"("ip": "192.168.1.10")",
           R"("port": 9000)", R"("registered_at": "2026-11-30T09:00:00.123Z")",
           R"("name": "level")", R"("id": "192.168.1.10_9000")",
           R"("address": "192.168.1.10")",
           // A JSON number, not protobuf's quoted int64.
           R"("registrationTimeUTC": 1796029200123)",
           R"("serviceType": "DYNAMIC")", R"("enabled": true)",
           R"("uriSpec": {)", R"("parts": [)", R"("value": "scheme")",
           R"("variable": true)", R"("value": "://")", R"("payload": {)",
           R"("zone": "a")"}) {
    EXPECT_NE(json.find(want), std::string::npos) << want << " in\n" << json;
  }
  // No SSL port configured: absent, which Curator reads as null.
  EXPECT_EQ(json.find("sslPort"), std::string::npos) << json;
  r.set_sslport(9443);
  EXPECT_NE(ToJson(r).find(R"("sslPort": 9443)"), std::string::npos);

  auto back = ParsePayload<proto::InstanceRecord>(ToJson(r), "/x");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->SerializeAsString(), r.SerializeAsString());
}

TEST(InstanceRecordTest, RecordOfAnOlderAgentStillParsesAndIsUsable) {
  // Written by zkroll-agent before the Curator fields existed.
  const char* old_record = R"({
 "service": "level",
 "ip": "192.168.1.10",
 "port": 9000,
 "host": "host-1",
 "weight": 2,
 "metadata": {
  "zone": "a"
 },
 "registered_at": "2026-11-20T10:00:00.000Z",
 "check": "http:/healthz"
})";
  auto r = ParsePayload<proto::InstanceRecord>(
      old_record, "/services/level/192.168.1.10_9000");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->weight(), 2u);
  EXPECT_EQ(r->host(), "host-1");
  EXPECT_TRUE(r->name().empty());
  EXPECT_FALSE(r->has_sslport());
  EXPECT_TRUE(
      CheckInstanceRecord(*r, Svc("level"), Addr("192.168.1.10:9000")).ok());
}

TEST(InstanceRecordTest, CuratorWrittenRecordIsReadButMustMatchItsNode) {
  // What Curator 5.4's ServiceDiscovery writes for its own registration
  // (the node is named after the id, a UUID).
  const char* curator = R"({"name":"level","id":"6c1d1f0e-2a4b-4d0e-9f5e-1b2c3d4e5f60","address":"192.168.1.10","port":9000,"sslPort":null,"payload":null,"registrationTimeUTC":1796029781053,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false},{"value":"address","variable":true}]}})";
  auto r = ParsePayload<proto::InstanceRecord>(curator, "/services/level/x");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->address(), "192.168.1.10");
  EXPECT_EQ(FormatUriSpec(r->urispec()), "{scheme}://{address}");
  // Under a node named like a zkroll instance, its UUID id disagrees.
  Status s = CheckInstanceRecord(*r, Svc("level"), Addr("192.168.1.10:9000"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("6c1d1f0e"), std::string::npos) << s.message();
}

TEST(InstanceRecordTest, CheckNamesTheFieldThatDisagrees) {
  const ServiceName svc = Svc("level");
  const InstanceAddress node = Addr("10.0.0.1:80");
  proto::InstanceRecord good = NewInstanceRecord(svc, node, WallTime{});
  EXPECT_TRUE(CheckInstanceRecord(good, svc, node).ok());
  EXPECT_TRUE(CheckInstanceRecord(proto::InstanceRecord(), svc, node).ok());

  struct Case {
    const char* field;
    std::function<void(proto::InstanceRecord*)> spoil;
    const char* in_message;
  };
  const Case cases[] = {
      {"service", [](auto* r) { r->set_service("other"); }, "'other'"},
      {"name", [](auto* r) { r->set_name("other"); }, "'other'"},
      {"id", [](auto* r) { r->set_id("10.0.0.2_80"); }, "10.0.0.2_80"},
      {"ip", [](auto* r) { r->set_ip("10.0.0.2"); }, "10.0.0.2:80"},
      {"address", [](auto* r) { r->set_address("10.0.0.3"); }, "10.0.0.3:80"},
      {"port", [](auto* r) { r->set_port(81); }, "10.0.0.1:81"},
      {"bad address", [](auto* r) { r->set_address("not-an-ip"); },
       "not-an-ip"},
  };
  for (const Case& c : cases) {
    proto::InstanceRecord r = good;
    c.spoil(&r);
    Status s = CheckInstanceRecord(r, svc, node);
    ASSERT_FALSE(s.ok()) << c.field;
    EXPECT_NE(s.message().find(c.in_message), std::string::npos)
        << c.field << ": " << s.message();
  }
}

TEST(InstanceRecordTest, UriSpecParsesLikeCuratorAndRoundTrips) {
  auto spec = ParseUriSpec("{scheme}://{address}:{port}/api/{name}");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->parts_size(), 7);
  EXPECT_EQ(spec->parts(0).value(), "scheme");
  EXPECT_TRUE(spec->parts(0).variable());
  EXPECT_EQ(spec->parts(1).value(), "://");
  EXPECT_FALSE(spec->parts(1).variable());
  EXPECT_EQ(spec->parts(5).value(), "/api/");
  EXPECT_EQ(FormatUriSpec(*spec), "{scheme}://{address}:{port}/api/{name}");
  EXPECT_TRUE(ParseUriSpec("http://fixed.example/x").ok());

  for (const char* bad : {"", "{scheme", "{a{b}}", "x}", "{}", "{a b}",
                          "http://x/\n", "{sch;eme}"}) {
    auto r = ParseUriSpec(bad);
    ASSERT_FALSE(r.ok()) << QuoteForMessage(bad);
    EXPECT_NE(r.status().message().find(QuoteForMessage(bad)),
              std::string::npos)
        << r.status().message();
  }
  EXPECT_FALSE(ParseUriSpec(std::string(1025, 'a')).ok());
}

TEST(InstanceRecordTest, PayloadMustBeAJsonObject) {
  auto ok = ParseRecordPayload(R"( {"zone": "a", "n": 1, "tags": ["x"]} )");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->fields().at("zone").string_value(), "a");
  for (const char* bad : {"", "[1]", "\"x\"", "42", "{\"a\":", "{\"a\" 1}",
                          "null"}) {
    auto r = ParseRecordPayload(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_FALSE(
      ParseRecordPayload("{\"a\": \"" + std::string(9000, 'x') + "\"}").ok());
}

}  // namespace
}  // namespace zkroll
