#include "coordinator/reporter.h"

#include <glog/logging.h>

#include <cinttypes>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/json_text.h"
#include "common/payload.h"

namespace zkroll::coordinator {
namespace {

std::string PadRight(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

// A step's line in the text output, after the elapsed time: the columns
// line up across instances and steps.
std::string StepColumns(const std::string& instance, const std::string& step,
                        const std::string& verdict, const std::string& took,
                        const std::string& detail) {
  return PadRight(instance, 24) + " " + PadRight(step, 11) + " " +
         PadRight(verdict, 8) + " " + PadRight(took, 8) + " " + detail;
}

// Milliseconds as an event's uint32 field: negative durations cannot
// happen, and 49 days is beyond every timeout zkroll accepts.
uint32_t Ms(Millis m) {
  if (m.count() <= 0) return 0;
  if (m.count() > static_cast<int64_t>(UINT32_MAX)) return UINT32_MAX;
  return static_cast<uint32_t>(m.count());
}

// Replaces invalid UTF-8 in every string of `m`, recursively: protobuf
// refuses to print such a string as JSON, and event text comes from
// commands and znodes (a JSON escape of a lone surrogate in a payload
// parses into one).
void MakeStringsValidUtf8(google::protobuf::Message* m) {
  const auto* r = m->GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  r->ListFields(*m, &fields);
  for (const auto* f : fields) {
    using FD = google::protobuf::FieldDescriptor;
    if (f->is_map()) continue;  // keys and values: parsed payloads only
    if (f->cpp_type() == FD::CPPTYPE_STRING) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(*m, f); ++i) {
          r->SetRepeatedString(m, f, i,
                               ValidUtf8(r->GetRepeatedString(*m, f, i)));
        }
      } else {
        r->SetString(m, f, ValidUtf8(r->GetString(*m, f)));
      }
    } else if (f->cpp_type() == FD::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int i = 0; i < r->FieldSize(*m, f); ++i) {
          MakeStringsValidUtf8(r->MutableRepeatedMessage(m, f, i));
        }
      } else {
        MakeStringsValidUtf8(r->MutableMessage(m, f));
      }
    }
  }
}

}  // namespace

void Stamp(google::protobuf::Message* event, const char* name) {
  const auto* d = event->GetDescriptor();
  const auto* r = event->GetReflection();
  const auto* schema = d->FindFieldByName("schema");
  const auto* kind = d->FindFieldByName("event");
  CHECK(schema != nullptr && kind != nullptr)
      << d->full_name() << " is not an event message";
  r->SetUInt32(event, schema, kEventSchema);
  r->SetString(event, kind, name);
  if (const auto* time = d->FindFieldByName("time")) {
    r->SetString(event, time, NowRfc3339());
  }
}

Reporter::Reporter(OutputFormat format, std::FILE* out, std::FILE* err)
    : format_(format),
      out_(out),
      err_(err),
      start_(std::chrono::steady_clock::now()) {}

std::string Reporter::Elapsed() const {
  auto ms = std::chrono::duration_cast<Millis>(
                std::chrono::steady_clock::now() - start_)
                .count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%7" PRId64 ".%03" PRId64 "s", ms / 1000,
                ms % 1000);
  return buf;
}

void Reporter::Write(std::FILE* f, const std::string& line) {
  std::lock_guard<std::mutex> l(mu_);
  std::fwrite(line.data(), 1, line.size(), f);
  std::fputc('\n', f);
  std::fflush(f);
}

void Reporter::Emit(const google::protobuf::Message& event) {
  if (!json()) return;
  std::unique_ptr<google::protobuf::Message> clean(event.New());
  clean->CopyFrom(event);
  MakeStringsValidUtf8(clean.get());
  Write(out_, ToJsonLine(*clean));
}

void Reporter::StepStarted(const std::string& instance, const std::string& step,
                           const std::string& detail, bool announce) {
  if (json()) {
    proto::StepEvent e;
    Stamp(&e, "step");
    e.set_instance(instance);
    e.set_step(step);
    e.set_verdict("started");
    e.set_detail(detail);
    Emit(e);
    return;
  }
  if (!announce) return;
  Write(out_,
        Elapsed() + "  " + StepColumns(instance, step, "started", "", detail));
}

void Reporter::StepEnded(const std::string& instance, const std::string& step,
                         const std::string& verdict, Millis took,
                         const std::string& detail) {
  if (json()) {
    proto::StepEvent e;
    Stamp(&e, "step");
    e.set_instance(instance);
    e.set_step(step);
    e.set_verdict(verdict);
    e.set_duration_ms(Ms(took));
    e.set_detail(detail);
    Emit(e);
    return;
  }
  Write(out_,
        Elapsed() + "  " +
            StepColumns(instance, step, verdict, FormatDuration(took), detail));
}

void Reporter::Drain(const std::string& instance, const std::string& mode,
                     const std::string& ended, Millis took, Millis cap,
                     const std::string& reason,
                     const std::vector<std::string>& missing) {
  if (!json()) return;
  proto::DrainEvent e;
  Stamp(&e, "drain");
  e.set_instance(instance);
  e.set_mode(mode);
  e.set_ended(ended);
  e.set_duration_ms(Ms(took));
  e.set_cap_ms(Ms(cap));
  e.set_reason(reason);
  for (const auto& m : missing) e.add_missing(m);
  Emit(e);
}

void Reporter::Output(const std::string& instance, const std::string& label,
                      OutputStream stream, std::string_view line) {
  const char* name = stream == OutputStream::kStdout ? "stdout" : "stderr";
  if (json()) {
    proto::OutputEvent e;
    Stamp(&e, "output");
    e.set_instance(instance);
    e.set_source(label);
    e.set_stream(name);
    e.set_line(std::string(line));
    Emit(e);
    return;
  }
  std::string prefix =
      "[" + instance + (label == "command" ? "" : " " + label) + "] ";
  Write(stream == OutputStream::kStdout ? out_ : err_,
        prefix + std::string(line));
}

void Reporter::Notice(const std::string& message) {
  if (json()) {
    proto::NoticeEvent e;
    Stamp(&e, "notice");
    e.set_message(message);
    Emit(e);
    return;
  }
  Write(out_, Elapsed() + "  " + message);
}

void Reporter::Batch(int index, int count,
                     const std::vector<std::string>& instances) {
  if (json()) {
    proto::BatchEvent e;
    Stamp(&e, "batch");
    e.set_batch(static_cast<uint32_t>(index));
    e.set_batches(static_cast<uint32_t>(count));
    for (const auto& i : instances) e.add_instances(i);
    Emit(e);
    return;
  }
  std::string names;
  for (size_t i = 0; i < instances.size(); ++i) {
    names += (i ? ", " : "") + instances[i];
  }
  Write(out_, Elapsed() + "  batch " + std::to_string(index) + "/" +
                  std::to_string(count) + ": " + names);
}

void Reporter::Result(const std::string& outcome, int exit_code,
                      const std::string& summary, proto::ResultEvent extra) {
  if (json()) {
    Stamp(&extra, "result");
    extra.set_outcome(outcome);
    extra.set_exit_code(exit_code);
    extra.set_message(summary);
    Emit(extra);
    return;
  }
  Write(exit_code == 0 ? out_ : err_, summary);
}

void Reporter::Line(const std::string& text) { Write(out_, text); }

}  // namespace zkroll::coordinator
