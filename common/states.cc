#include "common/states.h"

#include <array>
#include <utility>

#include "common/names.h"

namespace zkroll {

namespace {

// The tables: each enumerator once, with its word. Order does not matter.
template <typename State, size_t N>
using Table = std::array<std::pair<State, std::string_view>, N>;

constexpr Table<RunOutcome, 8> kRunOutcomes = {{
    {RunOutcome::kRunning, "running"},
    {RunOutcome::kSucceeded, "succeeded"},
    {RunOutcome::kFailed, "failed"},
    {RunOutcome::kAborted, "aborted"},
    {RunOutcome::kUnfinished, "unfinished"},
    {RunOutcome::kAwaitingPromotion, "awaiting-promotion"},
    {RunOutcome::kReverted, "reverted"},
    {RunOutcome::kRevertIncomplete, "revert-incomplete"},
}};

constexpr Table<InstanceOutcome, 9> kInstanceOutcomes = {{
    {InstanceOutcome::kPending, "pending"},
    {InstanceOutcome::kRunning, "running"},
    {InstanceOutcome::kSucceeded, "succeeded"},
    {InstanceOutcome::kFailed, "failed"},
    {InstanceOutcome::kAborted, "aborted"},
    {InstanceOutcome::kUnfinished, "unfinished"},
    {InstanceOutcome::kReverting, "reverting"},
    {InstanceOutcome::kReverted, "reverted"},
    {InstanceOutcome::kRevertFailed, "revert-failed"},
}};

constexpr Table<StepVerdict, 6> kStepVerdicts = {{
    {StepVerdict::kStarted, "started"},
    {StepVerdict::kRunning, "running"},
    {StepVerdict::kOk, "ok"},
    {StepVerdict::kFailed, "failed"},
    {StepVerdict::kAborted, "aborted"},
    {StepVerdict::kSkipped, "skipped"},
}};

constexpr Table<AgentState, 5> kAgentStates = {{
    {AgentState::kHealthy, "healthy"},
    {AgentState::kUnhealthy, "unhealthy"},
    {AgentState::kPaused, "paused"},
    {AgentState::kRegistered, "registered"},
    {AgentState::kUnknown, "unknown"},
}};

template <typename State, size_t N>
std::string_view NameIn(const Table<State, N>& table, State state) {
  for (const auto& [s, name] : table) {
    if (s == state) return name;
  }
  return "?";  // unreachable: every enumerator is in its table
}

template <typename State, size_t N>
Result<State> ParseIn(const Table<State, N>& table, std::string_view text,
                      const char* what) {
  std::string allowed;
  for (const auto& [s, name] : table) {
    if (name == text) return s;
    allowed += (allowed.empty() ? "" : " | ") + std::string(name);
  }
  return InvalidArgument(std::string("unknown ") + what + " " +
                         QuoteForMessage(text) + "; expected " + allowed);
}

}  // namespace

std::string_view WireName(RunOutcome state) {
  return NameIn(kRunOutcomes, state);
}
std::string_view WireName(InstanceOutcome state) {
  return NameIn(kInstanceOutcomes, state);
}
std::string_view WireName(StepVerdict state) {
  return NameIn(kStepVerdicts, state);
}
std::string_view WireName(AgentState state) {
  return NameIn(kAgentStates, state);
}

AgentState AgentStateOf(bool paused, bool registered, bool healthy) {
  return paused       ? AgentState::kPaused
         : registered ? AgentState::kRegistered
         : healthy    ? AgentState::kHealthy
                      : AgentState::kUnhealthy;
}

template <>
Result<RunOutcome> Parse<RunOutcome>(std::string_view text) {
  return ParseIn(kRunOutcomes, text, "deploy outcome");
}
template <>
Result<InstanceOutcome> Parse<InstanceOutcome>(std::string_view text) {
  return ParseIn(kInstanceOutcomes, text, "instance outcome");
}
template <>
Result<StepVerdict> Parse<StepVerdict>(std::string_view text) {
  return ParseIn(kStepVerdicts, text, "step verdict");
}
template <>
Result<AgentState> Parse<AgentState>(std::string_view text) {
  return ParseIn(kAgentStates, text, "agent state");
}

}  // namespace zkroll
