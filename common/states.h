// The fixed sets of state words that payloads and events carry as strings
// (proto/zkroll.proto), as typed values with ONE table of wire strings each.
//
// Production code compares and assigns these enums, never the words: a typo
// in a string literal compiles and silently never matches, a typo in an
// enumerator does not compile. Text becomes a value only in Parse<State>()
// at the proto boundary, which refuses a word outside the set with an error
// naming it; WireName() is the only way back to text.
//
// Why not proto enums: protobuf's JSON mapping prints an enum value's name,
// and several words here ("awaiting-promotion", "revert-incomplete",
// "revert-failed") are not identifiers, so the printed znode contents and
// --output json events would change. The sets whose words are all
// identifiers (step verdicts, agent states) would need an extra zero value
// that ToJson() leaves out of the payload, and a parser set to ignore
// unknown fields maps an unknown enum name to that zero value silently
// instead of refusing it. docs/design.md, "Payloads", states the rule.
#ifndef ZKROLL_COMMON_STATES_H_
#define ZKROLL_COMMON_STATES_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace zkroll {

// A journal's outcome (DeployRecord.outcome; HistoryEvent.outcome and
// JournalEvent.outcome add kUnfinished: "running" with no live coordinator).
enum class RunOutcome {
  kRunning,
  kSucceeded,
  kFailed,
  kAborted,
  kUnfinished,
  kAwaitingPromotion,
  kReverted,
  kRevertIncomplete,
};

// One instance's outcome in a journal (DeployRecord.InstanceProgress
// .outcome, StatusEvent.LastDeploy.outcome; kUnfinished only as shown).
enum class InstanceOutcome {
  kPending,
  kRunning,
  kSucceeded,
  kFailed,
  kAborted,
  kUnfinished,
  kReverting,
  kReverted,
  kRevertFailed,
};

// A journalled step's verdict (DeployRecord.Step.verdict, StepEvent.verdict).
enum class StepVerdict {
  kStarted,  // events only: the step began
  kRunning,  // journal only: the step began and has not ended
  kOk,
  kFailed,
  kAborted,
  kSkipped,
};

// An instance's state as its agent reports it (AgentRecord.Instance.state,
// AgentView.state).
enum class AgentState {
  kHealthy,
  kUnhealthy,
  kPaused,
  kRegistered,
  kUnknown,
};

// What an agent shows for an instance: paused before registered before
// healthy (the record's state and the agent's state metric agree).
AgentState AgentStateOf(bool paused, bool registered, bool healthy);

// The word written for `state`: "awaiting-promotion", "ok", ... Every word
// is a string literal, so data() is NUL-terminated and lives forever.
std::string_view WireName(RunOutcome state);
std::string_view WireName(InstanceOutcome state);
std::string_view WireName(StepVerdict state);
std::string_view WireName(AgentState state);

// WireName(state) as a std::string, for proto setters and messages.
template <typename State>
std::string WireString(State state) {
  return std::string(WireName(state));
}

// The value whose WireName is `text`; InvalidArgument naming `text`, what
// it was read as and the words allowed otherwise. Specialised for the four
// enums above.
template <typename State>
Result<State> Parse(std::string_view text);

template <>
Result<RunOutcome> Parse<RunOutcome>(std::string_view text);
template <>
Result<InstanceOutcome> Parse<InstanceOutcome>(std::string_view text);
template <>
Result<StepVerdict> Parse<StepVerdict>(std::string_view text);
template <>
Result<AgentState> Parse<AgentState>(std::string_view text);

}  // namespace zkroll

#endif  // ZKROLL_COMMON_STATES_H_
