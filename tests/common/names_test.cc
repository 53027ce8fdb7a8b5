#include "common/names.h"

#include <gtest/gtest.h>

#include "common/paths.h"

namespace zkroll {
namespace {

TEST(ServiceNameTest, AcceptsDocumentedGrammar) {
  for (const char* ok : {"level", "a", "svc-1.prod_2", "A.B-C_D",
                         "x234567890123456789012345678901234567890123456789012345678901234"}) {
    auto r = ServiceName::Parse(ok);
    EXPECT_TRUE(r.ok()) << ok << ": " << r.status().ToString();
  }
}

TEST(ServiceNameTest, RefusesWithNamedValue) {
  struct Case {
    std::string text;
    std::string expect;
  } cases[] = {
      {"", "empty"},
      {".", "'.' or '..'"},
      {"..", "'.' or '..'"},
      {"a/b", "'a/b'"},
      {"a b", "'a b'"},
      {"l\xc3\xa9vel", "'l\\xc3\\xa9vel'"},
      {std::string(65, 'x'), "longer than 64"},
      {"svc\n", "'svc\\x0a'"},
      {"zookeeper/../x", "may only contain"},
  };
  for (const auto& c : cases) {
    auto r = ServiceName::Parse(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << r.status().message();
  }
}

TEST(InstanceAddressTest, ParsesIpv4AndIpv6) {
  auto a = InstanceAddress::Parse("192.168.1.10:9000");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->ip(), "192.168.1.10");
  EXPECT_EQ(a->port(), 9000);
  EXPECT_EQ(a->NodeName(), "192.168.1.10_9000");
  EXPECT_EQ(a->ToString(), "192.168.1.10:9000");

  auto b = InstanceAddress::Parse("[::0001]:80");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->ip(), "::1");
  EXPECT_TRUE(b->is_v6());
  EXPECT_EQ(b->NodeName(), "::1_80");
  EXPECT_EQ(b->ToString(), "[::1]:80");

  auto c = InstanceAddress::Parse("[2001:db8::a:b]:65535");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->NodeName(), "2001:db8::a:b_65535");
}

TEST(InstanceAddressTest, NodeNameRoundTripUsesLastUnderscore) {
  for (const char* text : {"10.0.0.1_1", "::1_9000", "2001:db8::1_443",
                           "::ffff:10.1.2.3_8080"}) {
    auto a = InstanceAddress::ParseNodeName(text);
    ASSERT_TRUE(a.ok()) << text << ": " << a.status().ToString();
    EXPECT_EQ(a->NodeName(), text);
  }
}

TEST(InstanceAddressTest, RefusesBadAddresses) {
  struct Case {
    std::string text;
    std::string expect;
  } cases[] = {
      {"192.168.1.10", "expected IP:PORT"},
      {"192.168.1.10:0", "bad port"},
      {"192.168.1.10:65536", "bad port"},
      {"192.168.1.10:-1", "bad port"},
      {"192.168.1.10:80x", "bad port"},
      {"192.168.1.300:80", "bad IP address '192.168.1.300'"},
      {"host.example:80", "no host names"},
      {"::1:80", "brackets"},
      {"[10.0.0.1]:80", "IPv6 addresses only"},
      {"[::1]80", "[IPv6]:PORT"},
      {":80", "bad IP address"},
      {"10.0.0.1:", "bad port"},
      {"../../x:80", "bad IP address"},
  };
  for (const auto& c : cases) {
    auto r = InstanceAddress::Parse(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.text << " -> " << r.status().message();
  }
}

TEST(InstanceAddressTest, NodeNameMustBeCanonical) {
  EXPECT_FALSE(InstanceAddress::ParseNodeName("::0001_80").ok());
  EXPECT_FALSE(InstanceAddress::ParseNodeName("010.0.0.1_80").ok());
  EXPECT_FALSE(InstanceAddress::ParseNodeName("10.0.0.1-80").ok());
  EXPECT_FALSE(InstanceAddress::ParseNodeName("_80").ok());
  EXPECT_FALSE(InstanceAddress::ParseNodeName("10.0.0.1_").ok());
  EXPECT_FALSE(InstanceAddress::ParseNodeName("10.0.0.1_99999").ok());
  // Found by the names fuzzer: a second spelling of the same node.
  EXPECT_FALSE(InstanceAddress::ParseNodeName("::1_0090").ok());
}

TEST(InstanceIdTest, ParsesShortcut) {
  auto r = InstanceId::Parse("level@192.168.1.10:9000");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->service.str(), "level");
  EXPECT_EQ(r->address.port(), 9000);
  EXPECT_EQ(r->ToString(), "level@192.168.1.10:9000");
  EXPECT_FALSE(InstanceId::Parse("level:9000").ok());
  EXPECT_FALSE(InstanceId::Parse("bad name@1.2.3.4:5").ok());
  EXPECT_FALSE(InstanceId::Parse("level@1.2.3.4").ok());
}

TEST(PathsTest, LayoutMatchesDesign) {
  auto s = ServiceName::Parse("level").value();
  auto a = InstanceAddress::Parse("192.168.1.10:9000").value();
  auto h = HostId::Parse("host-1").value();
  auto d = DeployId::Parse("20261126T121730Z-abcdef").value();
  EXPECT_EQ(paths::ServiceDir(s), "/services/level");
  EXPECT_EQ(paths::InstanceNode(s, a), "/services/level/192.168.1.10_9000");
  EXPECT_EQ(paths::PauseDir(s), "/pause/level");
  EXPECT_EQ(paths::PauseFlagNode(s, a), "/pause/level/192.168.1.10_9000");
  EXPECT_EQ(paths::AgentNode(h), "/agents/host-1");
  EXPECT_EQ(paths::DeployDir(s), "/deploys/level");
  EXPECT_EQ(paths::DeployNode(s, d), "/deploys/level/20261126T121730Z-abcdef");
  EXPECT_EQ(paths::LockDir(s), "/locks/level");
  EXPECT_EQ(paths::DeployInstanceNode(s, d, a),
            "/deploys/level/20261126T121730Z-abcdef/192.168.1.10_9000");
  EXPECT_EQ(paths::Ancestors("/a/b/c"),
            (std::vector<std::string>{"/a", "/a/b"}));
  EXPECT_TRUE(paths::Ancestors("/a").empty());
}

TEST(DeployIdTest, GeneratedIdsAreValidAndDistinct) {
  DeployId a = DeployId::Generate();
  DeployId b = DeployId::Generate();
  EXPECT_TRUE(DeployId::Parse(a.str()).ok());
  EXPECT_NE(a.str(), b.str());
}

TEST(QuoteForMessageTest, EscapesAndTruncates) {
  EXPECT_EQ(QuoteForMessage("ab"), "'ab'");
  EXPECT_EQ(QuoteForMessage("a'\n"), "'a\\x27\\x0a'");
  EXPECT_NE(QuoteForMessage(std::string(200, 'x')).find("..."),
            std::string::npos);
}

}  // namespace
}  // namespace zkroll
