// The journal's states are checked once where a record is read
// (CheckJournalStates), then handled as typed values (common/states.h).
#include <gtest/gtest.h>

#include <string>

#include "common/payload.h"
#include "coordinator/journal.h"

namespace zkroll::coordinator {
namespace {

// A record as the current coordinator writes it (ToJson of DeployRecord).
constexpr char kRecord[] = R"({
 "deploy_id": "20261130T094256Z-1a2b3c",
 "service": "level",
 "kind": "rollout",
 "outcome": "awaiting-promotion",
 "started_at": "2026-11-30T09:42:56.438Z",
 "instances": [
  {"instance": "127.0.0.1_54905", "outcome": "revert-failed",
   "steps": [{"name": "command", "started_at": "2026-11-30T09:42:57.001Z",
              "verdict": "running"}]},
  {"instance": "127.0.0.1_54906", "outcome": "pending"}
 ]
})";

TEST(JournalStatesTest, AWrittenRecordReadsAsTypedValues) {
  auto rec = ParsePayload<proto::DeployRecord>(kRecord, "/deploys/level/x");
  ASSERT_TRUE(rec.ok()) << rec.status().message();
  ASSERT_TRUE(CheckJournalStates(*rec, "/deploys/level/x").ok());
  EXPECT_EQ(OutcomeOf(*rec), RunOutcome::kAwaitingPromotion);
  EXPECT_EQ(OutcomeOf(rec->instances(0)), InstanceOutcome::kRevertFailed);
  EXPECT_EQ(OutcomeOf(rec->instances(1)), InstanceOutcome::kPending);
  EXPECT_EQ(VerdictOf(rec->instances(0).steps(0)), StepVerdict::kRunning);
}

TEST(JournalStatesTest, AWordOutsideItsSetIsRefusedNamingPathFieldAndWord) {
  std::string text = kRecord;
  text.replace(text.find("\"running\""), 9, "\"runing\"");
  auto rec = ParsePayload<proto::DeployRecord>(text, "/deploys/level/x");
  ASSERT_TRUE(rec.ok()) << rec.status().message();
  Status s = CheckJournalStates(*rec, "/deploys/level/x");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  for (const char* part : {"/deploys/level/x", "127.0.0.1_54905", "command",
                           "verdict", "'runing'"}) {
    EXPECT_NE(s.message().find(part), std::string::npos)
        << part << " missing in: " << s.message();
  }

  proto::DeployRecord bad = *rec;
  bad.set_outcome("done");
  s = CheckJournalStates(bad, "/deploys/level/y");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'done'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("outcome"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace zkroll::coordinator
