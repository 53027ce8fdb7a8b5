// Checks one line of `zkroll --output json` against the documented event
// schema (docs/coordinator.md, "JSON events"): it parses as a JSON object,
// its "event" names a known event, "schema" is 1, every field its message
// declares is present (sub-messages and optional counts may be absent),
// every numeric field is a JSON number, every bool a JSON bool, and every
// enum-like string holds one of the documented values.
//
// The line is parsed twice: as google.protobuf.Struct (what a generic JSON
// reader sees: the kinds of the values) and walked along the event's
// message descriptor, which says what each field must be.
#ifndef ZKROLL_TESTS_COORDINATOR_EVENT_CHECK_H_
#define ZKROLL_TESTS_COORDINATOR_EVENT_CHECK_H_

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "zkroll.pb.h"

namespace zkroll::testing {

// The documented values of every enum-like field, by "Message.field" (full
// proto names without the package).
inline const std::map<std::string, std::set<std::string>>& DocumentedEnums() {
  static const std::set<std::string> steps = {
      "pause",     "drain",          "verify",      "command",
      "health",    "resume",         "registered",  "on-failure",
      "prepare",   "forward-backup", "forward-new", "commit",
      "drain-old", "drain-new",      "stop-old",    "rollback",
      // a rollout's own steps (--min-healthy-time, the canary stage)
      "healthy-time", "canary-soak", "canary-check",
      // a revert (--auto-revert): the deploy's steps, prefixed
      "revert-pause", "revert-drain", "revert-verify", "revert-command",
      "revert-health", "revert-resume", "revert-registered"};
  static const auto* enums = new std::map<std::string, std::set<std::string>>{
      {"StepEvent.step", steps},
      {"DeployRecord.Step.name", steps},
      {"StepEvent.verdict", {"started", "ok", "failed", "aborted", "skipped"}},
      {"DrainEvent.mode", {"fixed", "auto"}},
      {"DrainEvent.ended", {"fixed", "evidence", "cap"}},
      {"OutputEvent.source",
       {"command", "on-failure", "stop-old", "revert", "canary-check"}},
      {"OutputEvent.stream", {"stdout", "stderr"}},
      {"ResultEvent.outcome",
       {"ok", "error", "succeeded", "failed", "aborted", "ready", "blocked",
        "awaiting-promotion", "reverted", "revert-incomplete"}},
      {"AgentView.state",
       {"healthy", "unhealthy", "paused", "registered", "unknown"}},
      {"StatusEvent.Forwarding.source", {"config", "committed", "deploy"}},
      {"StatusEvent.LastDeploy.kind", {"deploy", "rollout"}},
      {"StatusEvent.LastDeploy.outcome",
       {"running", "succeeded", "failed", "aborted", "unfinished",
        "reverting", "reverted", "revert-failed"}},
      {"HistoryEvent.kind", {"deploy", "rollout"}},
      {"HistoryEvent.outcome",
       {"running", "succeeded", "failed", "aborted", "unfinished",
        "awaiting-promotion", "reverted", "revert-incomplete"}},
      {"PlanEvent.kind", {"deploy", "rollout"}},
      {"PlanEvent.canary_promote", {"", "auto", "manual"}},
      {"JournalEvent.kind", {"deploy", "rollout"}},
      {"JournalEvent.outcome",
       {"running", "succeeded", "failed", "aborted", "unfinished",
        "awaiting-promotion", "reverted", "revert-incomplete"}},
      {"DeployRecord.InstanceProgress.outcome",
       {"pending", "running", "succeeded", "failed", "aborted", "reverting",
        "reverted", "revert-failed"}},
      {"DeployRecord.Step.verdict", {"ok", "failed", "aborted", "skipped"}},
  };
  return *enums;
}

// The message behind each value of "event".
inline const google::protobuf::Descriptor* EventDescriptor(
    const std::string& event) {
  static const auto* by_name =
      new std::map<std::string, const google::protobuf::Descriptor*>{
          {"step", proto::StepEvent::descriptor()},
          {"drain", proto::DrainEvent::descriptor()},
          {"output", proto::OutputEvent::descriptor()},
          {"notice", proto::NoticeEvent::descriptor()},
          {"batch", proto::BatchEvent::descriptor()},
          {"result", proto::ResultEvent::descriptor()},
          {"instance", proto::StatusEvent::descriptor()},
          {"deploy", proto::HistoryEvent::descriptor()},
          {"plan", proto::PlanEvent::descriptor()},
          {"journal", proto::JournalEvent::descriptor()},
      };
  auto it = by_name->find(event);
  return it == by_name->end() ? nullptr : it->second;
}

namespace event_check_detail {

using google::protobuf::FieldDescriptor;
using google::protobuf::Value;

inline std::string ShortName(const google::protobuf::Descriptor* d) {
  const std::string prefix = "zkroll.proto.";
  return d->full_name().substr(prefix.size());
}

inline void CheckValue(const FieldDescriptor* f, const Value& v,
                       const std::string& where,
                       std::vector<std::string>* problems);

inline void CheckObject(const google::protobuf::Descriptor* d,
                        const google::protobuf::Struct& s,
                        const std::string& where,
                        std::vector<std::string>* problems) {
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    auto it = s.fields().find(f->name());
    const std::string at = where + "." + f->name();
    if (it == s.fields().end()) {
      // Sub-messages and proto3 `optional` counts are left out when unset.
      if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE &&
          !f->has_presence()) {
        problems->push_back(at + " is missing");
      }
      continue;
    }
    if (f->is_map()) {
      if (it->second.kind_case() != Value::kStructValue) {
        problems->push_back(at + " is not a JSON object");
      }
      continue;
    }
    if (f->is_repeated()) {
      if (it->second.kind_case() != Value::kListValue) {
        problems->push_back(at + " is not a JSON array");
        continue;
      }
      for (const Value& item : it->second.list_value().values()) {
        CheckValue(f, item, at + "[]", problems);
      }
    } else {
      CheckValue(f, it->second, at, problems);
    }
  }
  for (const auto& [name, value] : s.fields()) {
    if (d->FindFieldByName(name) == nullptr) {
      problems->push_back(where + "." + name + " is not in the schema");
    }
  }
}

inline void CheckValue(const FieldDescriptor* f, const Value& v,
                       const std::string& where,
                       std::vector<std::string>* problems) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      if (v.kind_case() != Value::kNumberValue) {
        problems->push_back(where + " is not a JSON number");
      }
      break;
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT64:
      problems->push_back(where +
                          " is a 64-bit integer, which protobuf prints as a "
                          "JSON string");
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      if (v.kind_case() != Value::kBoolValue) {
        problems->push_back(where + " is not a JSON bool");
      }
      break;
    case FieldDescriptor::CPPTYPE_STRING: {
      if (v.kind_case() != Value::kStringValue) {
        problems->push_back(where + " is not a JSON string");
        break;
      }
      const std::string key = ShortName(f->containing_type()) + "." + f->name();
      auto e = DocumentedEnums().find(key);
      if (e != DocumentedEnums().end() &&
          e->second.count(v.string_value()) == 0) {
        problems->push_back(where + " = \"" + v.string_value() +
                            "\" is not a documented value of " + key);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      if (v.kind_case() != Value::kStructValue) {
        problems->push_back(where + " is not a JSON object");
        break;
      }
      CheckObject(f->message_type(), v.struct_value(), where, problems);
      break;
    default:
      problems->push_back(where + ": enum fields are not used in events");
  }
}

}  // namespace event_check_detail

// The problems of `line` (empty: it is a valid event). `event`, when not
// null, receives the value of its "event" field.
inline std::vector<std::string> CheckEventLine(const std::string& line,
                                               std::string* event = nullptr) {
  std::vector<std::string> problems;
  google::protobuf::Struct s;
  auto st = google::protobuf::util::JsonStringToMessage(line, &s);
  if (!st.ok()) return {"not a JSON object: " + line};
  auto ev = s.fields().find("event");
  if (ev == s.fields().end() ||
      ev->second.kind_case() != google::protobuf::Value::kStringValue) {
    return {"no \"event\" string: " + line};
  }
  if (event != nullptr) *event = ev->second.string_value();
  const auto* d = EventDescriptor(ev->second.string_value());
  if (d == nullptr) return {"unknown event " + ev->second.string_value()};
  auto schema = s.fields().find("schema");
  if (schema == s.fields().end() ||
      schema->second.kind_case() != google::protobuf::Value::kNumberValue ||
      schema->second.number_value() != 1) {
    problems.push_back("\"schema\" is not the number 1");
  }
  event_check_detail::CheckObject(d, s, ev->second.string_value(), &problems);
  for (auto& p : problems) p += "  in: " + line;
  return problems;
}

// Checks every line of `output` that starts with '{' (glog and the
// ZooKeeper client write other lines to the merged stderr); returns the
// problems and counts the lines per event in `*seen`.
inline std::vector<std::string> CheckEventLines(
    const std::string& output, std::map<std::string, int>* seen = nullptr) {
  std::vector<std::string> problems;
  size_t start = 0;
  while (start < output.size()) {
    size_t nl = output.find('\n', start);
    if (nl == std::string::npos) nl = output.size();
    const std::string line = output.substr(start, nl - start);
    start = nl + 1;
    if (line.empty() || line[0] != '{') continue;
    std::string event;
    auto p = CheckEventLine(line, &event);
    problems.insert(problems.end(), p.begin(), p.end());
    if (seen != nullptr) ++(*seen)[event];
  }
  return problems;
}

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_COORDINATOR_EVENT_CHECK_H_
