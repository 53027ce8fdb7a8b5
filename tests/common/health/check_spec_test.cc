// ParseCheckSpec / DescribeCheck / DescribeTarget: the textual form of a
// health check.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "common/health/check.h"

namespace zkroll::health {
namespace {

using Kind = CheckSpec::Kind;
using Ranges = std::vector<std::pair<int, int>>;
using Argv = std::vector<std::string>;

CheckSpec MustParse(const std::string& text) {
  Result<CheckSpec> spec = ParseCheckSpec(text);
  EXPECT_TRUE(spec.ok()) << text << ": " << spec.status().ToString();
  return spec.ok() ? *spec : CheckSpec{};
}

void ExpectSameSpec(const CheckSpec& a, const CheckSpec& b,
                    const std::string& context) {
  EXPECT_EQ(a.kind, b.kind) << context;
  EXPECT_EQ(a.max_connect_time, b.max_connect_time) << context;
  EXPECT_EQ(a.http_path, b.http_path) << context;
  EXPECT_EQ(a.expect_status, b.expect_status) << context;
  EXPECT_EQ(a.body_contains, b.body_contains) << context;
  EXPECT_EQ(a.exec_argv, b.exec_argv) << context;
}

TEST(ParseCheckSpecTest, Tcp) {
  CheckSpec plain = MustParse("tcp");
  EXPECT_EQ(plain.kind, Kind::kTcp);
  EXPECT_FALSE(plain.max_connect_time.has_value());

  CheckSpec limited = MustParse("tcp:connect<200ms");
  EXPECT_EQ(limited.kind, Kind::kTcp);
  EXPECT_EQ(limited.max_connect_time, Millis(200));
  EXPECT_EQ(MustParse("tcp:connect<1s").max_connect_time, Millis(1000));
}

TEST(ParseCheckSpecTest, Http) {
  CheckSpec root = MustParse("http");
  EXPECT_EQ(root.kind, Kind::kHttp);
  EXPECT_EQ(root.http_path, "/");
  EXPECT_TRUE(root.expect_status.empty());
  EXPECT_TRUE(root.body_contains.empty());

  CheckSpec path = MustParse("http:/healthz");
  EXPECT_EQ(path.http_path, "/healthz");
  EXPECT_TRUE(path.expect_status.empty());

  CheckSpec full = MustParse("http:/healthz|200-299,301|body=OK");
  EXPECT_EQ(full.http_path, "/healthz");
  EXPECT_EQ(full.expect_status, (Ranges{{200, 299}, {301, 301}}));
  EXPECT_EQ(full.body_contains, "OK");

  CheckSpec body_first = MustParse("http:/x?verbose=1&a=%20|body=all good|503");
  EXPECT_EQ(body_first.http_path, "/x?verbose=1&a=%20");
  EXPECT_EQ(body_first.expect_status, (Ranges{{503, 503}}));
  EXPECT_EQ(body_first.body_contains, "all good");

  // Everything after body= is the text, '=' and quotes included.
  EXPECT_EQ(MustParse("http:/|body=\"a=b\"").body_contains, "\"a=b\"");
}

TEST(ParseCheckSpecTest, Exec) {
  CheckSpec simple = MustParse("exec:/usr/bin/check --flag x");
  EXPECT_EQ(simple.kind, Kind::kExec);
  EXPECT_EQ(simple.exec_argv, (Argv{"/usr/bin/check", "--flag", "x"}));

  EXPECT_EQ(MustParse("exec:check").exec_argv, (Argv{"check"}));
  EXPECT_EQ(MustParse("exec:  /bin/a   b  ").exec_argv, (Argv{"/bin/a", "b"}));
  EXPECT_EQ(MustParse("exec:/bin/a 'x y' \"p q\" r\\ s").exec_argv,
            (Argv{"/bin/a", "x y", "p q", "r s"}));
  // No shell: $VAR, globs and pipes are plain text; '' is an empty word.
  EXPECT_EQ(MustParse("exec:/bin/a $HOME * | ''").exec_argv,
            (Argv{"/bin/a", "$HOME", "*", "|", ""}));
  EXPECT_EQ(MustParse("exec:/bin/a \"say \\\"hi\\\" \\\\ \\n\"").exec_argv,
            (Argv{"/bin/a", "say \"hi\" \\ \\n"}));
  EXPECT_EQ(MustParse("exec:/bin/a 'it'\"'\"'s'").exec_argv,
            (Argv{"/bin/a", "it's"}));
}

struct BadCase {
  const char* text;
  const char* message_part;  // the error must name the problem
};

TEST(ParseCheckSpecTest, RefusesWithReasonAndExample) {
  const BadCase cases[] = {
      {"", "empty"},
      {"udp", "unknown kind 'udp'"},
      {"TCP", "unknown kind 'TCP'"},
      {"tcp:", "nothing after 'tcp:'"},
      {"tcp:fast", "unknown tcp option 'fast'"},
      {"tcp:connect<", "connect limit"},
      {"tcp:connect<200", "missing unit"},
      {"tcp:connect<0ms", "more than 0ms"},
      {"http:", "must start with '/'"},
      {"http:healthz", "must start with '/'"},
      {"http:/a b", "contains ' '"},
      {"http:/a\"b", "contains '\"'"},
      {"http:/|abc", "unknown http option 'abc'"},
      {"http:/|2xx", "bad status '2xx'"},
      {"http:/|299-200", "bad status '299-200'"},
      {"http:/|99", "bad status '99'"},
      {"http:/|600", "bad status '600'"},
      {"http:/|200,", "bad status ''"},
      {"http:/|200|300", "status list given twice"},
      {"http:/|body=", "needs the text"},
      {"http:/|body=a|body=b", "body= given twice"},
      {"http:/|", "unknown http option ''"},
      {"exec", "needs a command"},
      {"exec:", "needs a command"},
      {"exec:   ", "needs a command"},
      {"exec:./check", "relative path"},
      {"exec:bin/check", "relative path"},
      {"exec:''", "command is empty"},
      {"exec:/bin/a 'x", "unterminated ' quote"},
      {"exec:/bin/a \"x", "unterminated \" quote"},
      {"exec:/bin/a x\\", "backslash at the end"},
      {"tcp\n", "control character at offset 3"},
      {"exec:/bin/a\tb", "control character at offset 11"},
      {"http:/\x7f", "control character at offset 6"},
  };
  for (const BadCase& c : cases) {
    Result<CheckSpec> spec = ParseCheckSpec(c.text);
    ASSERT_FALSE(spec.ok()) << "accepted: " << c.text;
    const std::string& message = spec.status().message();
    EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(message.find(c.message_part), std::string::npos)
        << "for '" << c.text << "': " << message;
    EXPECT_NE(message.find("(use e.g. "), std::string::npos) << message;
  }
}

TEST(ParseCheckSpecTest, ErrorNamesTheTextWithControlCharactersEscaped) {
  Result<CheckSpec> spec = ParseCheckSpec("http:/x\x1b[2J");
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("'http:/x\\x1b[2J'"),
            std::string::npos)
      << spec.status().message();
  EXPECT_EQ(spec.status().message().find('\x1b'), std::string::npos);
}

TEST(DescribeCheckTest, CanonicalForms) {
  EXPECT_EQ(DescribeCheck(MustParse("tcp")), "tcp");
  EXPECT_EQ(DescribeCheck(MustParse("tcp:connect<1500ms")),
            "tcp:connect<1.5s");
  // Found by the names fuzzer: a limit above 10^9 ms printed as one number
  // of milliseconds that ParseDuration refuses.
  EXPECT_EQ(DescribeCheck(MustParse("tcp:connect<1105h00m10m01ms")),
            "tcp:connect<1105h10m0.001s");
  EXPECT_EQ(DescribeCheck(MustParse("tcp:connect<2000ms")), "tcp:connect<2s");
  EXPECT_EQ(DescribeCheck(MustParse("http")), "http:/");
  EXPECT_EQ(DescribeCheck(MustParse("http:/h|body=OK|200-299,301")),
            "http:/h|200-299,301|body=OK");
  EXPECT_EQ(DescribeCheck(MustParse("exec:/bin/a 'x y' \"it's\"")),
            "exec:/bin/a 'x y' \"it's\"");
}

TEST(DescribeCheckTest, RoundTripsThroughParse) {
  for (const char* text : {
           "tcp",
           "tcp:connect<1m30s",
           "tcp:connect<7ms",
           "http",
           "http:/healthz?x=1",
           "http:/|100-599",
           "http:/a|204,301-302|body=x y \"z\"",
           "exec:check",
           "exec:/bin/a '' \"\" 'a b' \"a'b\" a\\\"b a\\\\b \"a\\\"'b\"",
       }) {
    CheckSpec first = MustParse(text);
    std::string described = DescribeCheck(first);
    CheckSpec second = MustParse(described);
    ExpectSameSpec(first, second, std::string(text) + " -> " + described);
  }
}

TEST(DescribeTargetTest, BracketsIpv6) {
  EXPECT_EQ(DescribeTarget({"127.0.0.1", 9000}), "127.0.0.1:9000");
  EXPECT_EQ(DescribeTarget({"::1", 80}), "[::1]:80");
  EXPECT_EQ(DescribeTarget({"fd00::5", 65535}), "[fd00::5]:65535");
}

}  // namespace
}  // namespace zkroll::health
