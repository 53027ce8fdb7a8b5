// Typed states (common/states.h) and the Timestamp fields of payloads
// (common/clock.h ToTimestamp/FromTimestamp): the words and the JSON that
// znodes and events carry stay what they were.
#include "common/states.h"

#include <gtest/gtest.h>

#include <string>

#include "common/clock.h"
#include "common/payload.h"
#include "zkroll.pb.h"

namespace zkroll {
namespace {

template <typename State>
void ExpectRoundTrip(std::initializer_list<std::pair<State, const char*>> all) {
  for (const auto& [state, word] : all) {
    EXPECT_EQ(WireName(state), word);
    auto back = Parse<State>(word);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(*back, state) << word;
  }
}

TEST(StatesTest, EveryWordIsTheOneWrittenBefore) {
  ExpectRoundTrip<RunOutcome>(
      {{RunOutcome::kRunning, "running"},
       {RunOutcome::kSucceeded, "succeeded"},
       {RunOutcome::kFailed, "failed"},
       {RunOutcome::kAborted, "aborted"},
       {RunOutcome::kUnfinished, "unfinished"},
       {RunOutcome::kAwaitingPromotion, "awaiting-promotion"},
       {RunOutcome::kReverted, "reverted"},
       {RunOutcome::kRevertIncomplete, "revert-incomplete"}});
  ExpectRoundTrip<InstanceOutcome>(
      {{InstanceOutcome::kPending, "pending"},
       {InstanceOutcome::kRunning, "running"},
       {InstanceOutcome::kSucceeded, "succeeded"},
       {InstanceOutcome::kFailed, "failed"},
       {InstanceOutcome::kAborted, "aborted"},
       {InstanceOutcome::kUnfinished, "unfinished"},
       {InstanceOutcome::kReverting, "reverting"},
       {InstanceOutcome::kReverted, "reverted"},
       {InstanceOutcome::kRevertFailed, "revert-failed"}});
  ExpectRoundTrip<StepVerdict>({{StepVerdict::kStarted, "started"},
                                {StepVerdict::kRunning, "running"},
                                {StepVerdict::kOk, "ok"},
                                {StepVerdict::kFailed, "failed"},
                                {StepVerdict::kAborted, "aborted"},
                                {StepVerdict::kSkipped, "skipped"}});
  ExpectRoundTrip<AgentState>({{AgentState::kHealthy, "healthy"},
                               {AgentState::kUnhealthy, "unhealthy"},
                               {AgentState::kPaused, "paused"},
                               {AgentState::kRegistered, "registered"},
                               {AgentState::kUnknown, "unknown"}});
}

TEST(StatesTest, AWordOutsideTheSetIsRefusedByName) {
  auto bad = Parse<RunOutcome>("Succeeded");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'Succeeded'"), std::string::npos)
      << bad.status().message();
  EXPECT_NE(bad.status().message().find("awaiting-promotion"),
            std::string::npos)
      << "the message lists the words allowed: " << bad.status().message();
  EXPECT_FALSE(Parse<InstanceOutcome>("").ok());
  EXPECT_FALSE(Parse<StepVerdict>("revert-failed").ok());
  EXPECT_FALSE(Parse<AgentState>("sick").ok());
}

TEST(StatesTest, AgentStatePausedBeforeRegisteredBeforeHealthy) {
  EXPECT_EQ(AgentStateOf(true, true, true), AgentState::kPaused);
  EXPECT_EQ(AgentStateOf(false, true, false), AgentState::kRegistered);
  EXPECT_EQ(AgentStateOf(false, false, true), AgentState::kHealthy);
  EXPECT_EQ(AgentStateOf(false, false, false), AgentState::kUnhealthy);
}

TEST(TimestampTest, ConvertsMillisecondsBothWays) {
  for (const char* text :
       {"2026-11-26T12:17:30.123Z", "1970-01-01T00:00:00.000Z",
        "2255-01-01T00:00:00.001Z"}) {
    auto t = ParseRfc3339(text);
    ASSERT_TRUE(t.ok()) << text;
    const auto ts = ToTimestamp(*t);
    EXPECT_GE(ts.nanos(), 0) << text;
    EXPECT_LT(ts.nanos(), 1000000000) << text;
    EXPECT_EQ(FromTimestamp(ts), *t) << text;
    EXPECT_EQ(FormatTimestamp(ts, true), text);
  }
  // Before 1970 the nanos stay in [0, 1e9), as Timestamp requires.
  const WallTime before = WallTime(std::chrono::milliseconds(-1));
  const auto ts = ToTimestamp(before);
  EXPECT_EQ(ts.seconds(), -1);
  EXPECT_EQ(ts.nanos(), 999000000);
  EXPECT_EQ(FromTimestamp(ts), before);
  EXPECT_EQ(FormatTimestamp(google::protobuf::Timestamp(), false), "");
}

// Every form the RFC 3339 string fields held (FormatRfc3339's, and the
// others ParseRfc3339 accepted) reads into the Timestamp fields as the same
// time.
TEST(TimestampTest, RecordsWrittenAsStringsStillParse) {
  for (const char* text :
       {"2026-11-26T12:17:30.123Z", "2026-11-26T12:17:30Z",
        "2026-11-26T12:17:30.1Z", "2026-11-26T12:17:30.12Z",
        "2026-11-26T12:17:30.123456Z", "2026-11-26T12:17:30.123456789Z"}) {
    const std::string json =
        std::string(R"({"by": "ops@host", "reason": "x",)") + R"( "since": ")" +
        text + R"(", "expires_at": ")" + text + R"("})";
    auto flag = ParsePayload<proto::PauseFlag>(json, "/pause/s/x");
    ASSERT_TRUE(flag.ok()) << text << ": " << flag.status().message();
    auto want = ParseRfc3339(text);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(FromTimestamp(flag->expires_at()), *want) << text;
    EXPECT_EQ(FromTimestamp(flag->since()), *want) << text;
  }
  // The deploy's flag of the earlier schema: no expires_at at all.
  auto deploy = ParsePayload<proto::PauseFlag>(
      R"({"by": "a@b", "since": "2026-11-26T12:17:30.123Z", "deploy_id": "d"})",
      "/pause/s/x");
  ASSERT_TRUE(deploy.ok()) << deploy.status().message();
  EXPECT_FALSE(deploy->has_expires_at());
}

TEST(TimestampTest, PrintsRfc3339AndLeavesNoneOut) {
  proto::PauseFlag flag;
  flag.set_by("ops@host");
  *flag.mutable_since() =
      ToTimestamp(*ParseRfc3339("2026-11-26T12:17:30.123Z"));
  std::string json = ToJson(flag);
  EXPECT_NE(json.find(R"("since": "2026-11-26T12:17:30.123Z")"),
            std::string::npos)
      << json;
  EXPECT_EQ(json.find("expires_at"), std::string::npos)
      << "an unset time is left out, as \"\" was: " << json;
  *flag.mutable_expires_at() =
      ToTimestamp(*ParseRfc3339("2026-11-26T13:00:00.000Z"));
  json = ToJson(flag);
  EXPECT_NE(json.find(R"("expires_at": "2026-11-26T13:00:00Z")"),
            std::string::npos)
      << "protobuf leaves out a zero fraction: " << json;
}

TEST(TimestampTest, ABadTimeFailsThePayloadNamingIt) {
  auto flag = ParsePayload<proto::PauseFlag>(R"({"expires_at": "tomorrow"})",
                                             "/pause/s/10.0.0.1_80");
  ASSERT_FALSE(flag.ok());
  EXPECT_NE(flag.status().message().find("/pause/s/10.0.0.1_80"),
            std::string::npos)
      << flag.status().message();
  EXPECT_NE(flag.status().message().find("tomorrow"), std::string::npos)
      << flag.status().message();
  // "" was never written (an empty string field is left out of the JSON),
  // and is not a time.
  EXPECT_FALSE(
      ParsePayload<proto::PauseFlag>(R"({"expires_at": ""})", "/p").ok());
}

}  // namespace
}  // namespace zkroll
