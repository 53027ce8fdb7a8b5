// Reporter: what the coordinator tells the person (or tool) that ran it.
//
// Text format (default): one line per instance step on stdout, prefixed with
// the time since the coordinator started, in the spirit of `kubectl rollout
// status`; COMMAND's output is copied to stdout/stderr with a
// "[service@ip:port] " prefix. JSON format (--output json): stdout carries
// only JSON objects, one per line, each with "schema" (kEventSchema) and
// "event": "step", "drain", "output", "notice", "batch", "result", and the
// rows of status ("instance"), history ("deploy") and dry-runs ("plan").
// Every event is a protobuf message of proto/zkroll.proto printed by
// ToJsonLine (common/payload.h), so numbers are JSON numbers and every
// field is present. Diagnostics (glog, usage errors) always go to stderr.
//
// Thread-safety: every method may be called from any thread; lines of
// concurrent instances never interleave within a line.
#ifndef ZKROLL_COORDINATOR_REPORTER_H_
#define ZKROLL_COORDINATOR_REPORTER_H_

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/duration.h"
#include "coordinator/command.h"
#include "zkroll.pb.h"

namespace zkroll::coordinator {

enum class OutputFormat { kText, kJson };

// The version of every JSON event's layout, printed as "schema" in each
// (docs/coordinator.md). Bump it only for an incompatible change: a field
// removed, renamed or retyped, an enum value removed.
inline constexpr uint32_t kEventSchema = 1;

// Sets the fields every event message of proto/zkroll.proto shares:
// schema (kEventSchema), event (`name`) and, where the message has one,
// time (now, RFC 3339 UTC).
void Stamp(google::protobuf::Message* event, const char* name);

class Reporter {
 public:
  Reporter(OutputFormat format, std::FILE* out, std::FILE* err);
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  OutputFormat format() const { return format_; }
  bool json() const { return format_ == OutputFormat::kJson; }

  // A step of `instance` ("service@ip:port") began. Text mode prints it
  // only for steps that take a while (`announce`).
  void StepStarted(const std::string& instance, const std::string& step,
                   const std::string& detail, bool announce);
  // A step ended with `verdict` (ok | failed | aborted | skipped).
  void StepEnded(const std::string& instance, const std::string& step,
                 const std::string& verdict, Millis took,
                 const std::string& detail);
  // How a drain ended: `mode` fixed | auto, `ended` fixed | evidence |
  // cap, `reason` the drain step's detail, `missing` what was still
  // missing at the cap. JSON: a "drain" event, for tools that chart drain
  // times. Text: nothing (the drain step's line carries `reason`).
  void Drain(const std::string& instance, const std::string& mode,
             const std::string& ended, Millis took, Millis cap,
             const std::string& reason,
             const std::vector<std::string>& missing);
  // One line of a child's output.
  void Output(const std::string& instance, const std::string& label,
              OutputStream stream, std::string_view line);
  // A message about the run as a whole ("lock taken", "removed an expired
  // pause flag ...").
  void Notice(const std::string& message);
  // Rollout progress: batch `index` (1-based) of `count` with `instances`.
  void Batch(int index, int count, const std::vector<std::string>& instances);
  // The final word. Text: `summary` on stdout (or stderr when exit_code
  // is not 0). JSON: a "result" event: `extra`'s fields (deploy id,
  // journal, counts) with outcome, exit_code, message and the stamp set.
  void Result(const std::string& outcome, int exit_code,
              const std::string& summary, proto::ResultEvent extra = {});
  // JSON mode: `event` (whose schema, event and time fields, where it has
  // them, the caller set with Stamp) as one line, invalid UTF-8 in any of
  // its strings replaced by U+FFFD. Text mode: nothing.
  void Emit(const google::protobuf::Message& event);
  // A text line (status and history blocks, the plan).
  void Line(const std::string& text);

 private:
  std::string Elapsed() const;
  void Write(std::FILE* f, const std::string& line);

  OutputFormat format_;
  std::FILE* out_;
  std::FILE* err_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
};

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_REPORTER_H_
