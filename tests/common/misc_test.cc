#include <sys/stat.h>

#include <gtest/gtest.h>

#include "common/clock.h"
#include "common/json_text.h"
#include "common/status.h"
#include "common/zk_session.h"
#include "common/zk_types.h"
#include "tests/support/process.h"

namespace zkroll {
namespace {

TEST(StatusTest, RetryableIsOnlyTransient) {
  EXPECT_TRUE(Status(StatusCode::kConnectionLoss, "x").IsRetryable());
  EXPECT_TRUE(Status(StatusCode::kOperationTimeout, "x").IsRetryable());
  EXPECT_FALSE(Status(StatusCode::kSessionExpired, "x").IsRetryable());
  EXPECT_FALSE(Status(StatusCode::kNotFound, "x").IsRetryable());
  EXPECT_FALSE(Status::Ok().IsRetryable());
  EXPECT_EQ(NotFound("a").WithContext("b").ToString(), "NotFound: b: a");
}

TEST(ClockTest, Rfc3339RoundTrip) {
  auto t = ParseRfc3339("2026-11-26T12:17:30.123Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(FormatRfc3339(*t), "2026-11-26T12:17:30.123Z");
  EXPECT_TRUE(ParseRfc3339("2026-11-26T12:17:30Z").ok());
  EXPECT_FALSE(ParseRfc3339("2026-11-26 12:17:30").ok());
  EXPECT_FALSE(ParseRfc3339("2026-13-26T12:17:30Z").ok());
  EXPECT_FALSE(ParseRfc3339("yesterday").ok());
}

TEST(ConnectStringTest, Validation) {
  EXPECT_TRUE(ValidateConnectString("127.0.0.1:2181").ok());
  EXPECT_TRUE(ValidateConnectString("a:1,b:2,[::1]:3/zkroll-prod").ok());
  EXPECT_TRUE(ValidateConnectString("zk1.example:2181/env/prod").ok());
  for (const char* bad : {"", "127.0.0.1", "h:port", "h:1/", "h:1//x",
                          "h:1/a b", ",h:1", "h:1;rm -rf /"}) {
    Status s = ValidateConnectString(bad);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.message().find("expected host:port"), std::string::npos);
  }
}

TEST(CredentialTest, DigestIdMatchesZooKeeper) {
  // Values printed by ZooKeeper's own DigestAuthenticationProvider.
  EXPECT_EQ(DigestId({"super", "superpw"}),
            "super:g9oN2HttPfn8MMWJZ2r45Np/LIA=");
  EXPECT_EQ(DigestId({"agent", "s3cret"}),
            "agent:84jKaVdBZrQ9BW2XvHQtW64duy8=");
  // printf 'user:pw' | openssl sha1 -binary | base64
  EXPECT_EQ(DigestId({"user", "pw"}), "user:2Om+GBbT2q/tS6pdvACZbbm7/1A=");
  // The password is digested verbatim, spaces and colons included.
  EXPECT_EQ(DigestId({"zkroll-coordinator", "pw with spaces & :colons"}),
            "zkroll-coordinator:dqT6+2cWZCOIVxVrssc7nGxxd/g=");
}

TEST(CredentialTest, FileMustBePrivateAndWellFormed) {
  testing::TempDir dir;
  auto ok = ReadCredentialFile(dir.Write("ok", "agent:s3cret\n", 0600));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->user, "agent");
  EXPECT_EQ(ok->password, "s3cret");

  auto open = ReadCredentialFile(dir.Write("open", "agent:s3cret\n", 0644));
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("chmod 600"), std::string::npos);
  EXPECT_EQ(open.status().message().find("s3cret"), std::string::npos);

  EXPECT_FALSE(ReadCredentialFile(dir.Write("nocolon", "agent\n", 0600)).ok());
  EXPECT_FALSE(ReadCredentialFile(dir.Write("two", "a:b\nc:d\n", 0600)).ok());
  EXPECT_FALSE(ReadCredentialFile(dir.Write("baduser", "a b:c\n", 0600)).ok());
  EXPECT_FALSE(ReadCredentialFile(dir.File("missing")).ok());
  EXPECT_FALSE(ReadCredentialFile(dir.path()).ok());
}

TEST(JsonQuoteTest, EscapesControlsQuotesAndInvalidUtf8) {
  EXPECT_EQ(JsonQuote("a\"b\\c\n\t\x01"), "\"a\\\"b\\\\c\\n\\t\\u0001\"");
  EXPECT_EQ(JsonQuote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(JsonQuote("bad\xff\xc3"), "\"bad\\ufffd\\ufffd\"");
  EXPECT_EQ(JsonQuote("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"")
      << "a UTF-16 surrogate is not valid UTF-8";
}


}  // namespace
}  // namespace zkroll
