#include "coordinator/reporter.h"

#include "common/json_text.h"

#include <cinttypes>

#include "common/clock.h"

namespace zkroll::coordinator {
namespace {


std::string PadRight(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

}  // namespace


void JsonLine::Key(std::string_view key) {
  if (!body_.empty()) body_ += ",";
  body_ += JsonQuote(key);
  body_ += ":";
}

JsonLine& JsonLine::Add(std::string_view key, std::string_view value) {
  Key(key);
  body_ += JsonQuote(value);
  return *this;
}

JsonLine& JsonLine::Add(std::string_view key, int64_t value) {
  Key(key);
  body_ += std::to_string(value);
  return *this;
}

JsonLine& JsonLine::Add(std::string_view key, bool value) {
  Key(key);
  body_ += value ? "true" : "false";
  return *this;
}

JsonLine& JsonLine::Add(std::string_view key,
                        const std::vector<std::string>& values) {
  Key(key);
  body_ += "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) body_ += ",";
    body_ += JsonQuote(values[i]);
  }
  body_ += "]";
  return *this;
}

JsonLine& JsonLine::AddRaw(std::string_view key, std::string_view raw_json) {
  Key(key);
  body_.append(raw_json);
  return *this;
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

void Reporter::StepStarted(const std::string& instance, const std::string& step,
                           const std::string& detail, bool announce) {
  if (json()) {
    Write(out_, JsonLine()
                    .Add("event", "step")
                    .Add("time", NowRfc3339())
                    .Add("instance", instance)
                    .Add("step", step)
                    .Add("verdict", "started")
                    .Add("detail", detail)
                    .str());
    return;
  }
  if (!announce) return;
  Write(out_, Elapsed() + "  " + PadRight(instance, 24) + " " +
                  PadRight(step, 11) + " " + PadRight("started", 8) + " " +
                  PadRight("", 8) + " " + detail);
}

void Reporter::StepEnded(const std::string& instance, const std::string& step,
                         const std::string& verdict, Millis took,
                         const std::string& detail) {
  if (json()) {
    Write(out_, JsonLine()
                    .Add("event", "step")
                    .Add("time", NowRfc3339())
                    .Add("instance", instance)
                    .Add("step", step)
                    .Add("verdict", verdict)
                    .Add("duration_ms", static_cast<int64_t>(took.count()))
                    .Add("detail", detail)
                    .str());
    return;
  }
  Write(out_, Elapsed() + "  " + PadRight(instance, 24) + " " +
                  PadRight(step, 11) + " " + PadRight(verdict, 8) + " " +
                  PadRight(FormatDuration(took), 8) + " " + detail);
}

void Reporter::Drain(const std::string& instance, const std::string& mode,
                     const std::string& ended, Millis took, Millis cap,
                     const std::string& reason,
                     const std::vector<std::string>& missing) {
  if (!json()) return;
  Write(out_, JsonLine()
                  .Add("event", "drain")
                  .Add("time", NowRfc3339())
                  .Add("instance", instance)
                  .Add("mode", mode)
                  .Add("ended", ended)
                  .Add("duration_ms", static_cast<int64_t>(took.count()))
                  .Add("cap_ms", static_cast<int64_t>(cap.count()))
                  .Add("reason", reason)
                  .Add("missing", missing)
                  .str());
}

void Reporter::Output(const std::string& instance, const std::string& label,
                      OutputStream stream, std::string_view line) {
  const char* name = stream == OutputStream::kStdout ? "stdout" : "stderr";
  if (json()) {
    Write(out_, JsonLine()
                    .Add("event", "output")
                    .Add("time", NowRfc3339())
                    .Add("instance", instance)
                    .Add("source", label)
                    .Add("stream", name)
                    .Add("line", line)
                    .str());
    return;
  }
  std::string prefix =
      "[" + instance + (label == "command" ? "" : " " + label) + "] ";
  Write(stream == OutputStream::kStdout ? out_ : err_,
        prefix + std::string(line));
}

void Reporter::Notice(const std::string& message) {
  if (json()) {
    Write(out_, JsonLine()
                    .Add("event", "notice")
                    .Add("time", NowRfc3339())
                    .Add("message", message)
                    .str());
    return;
  }
  Write(out_, Elapsed() + "  " + message);
}

void Reporter::Batch(int index, int count,
                     const std::vector<std::string>& instances) {
  if (json()) {
    std::string list = "[";
    for (size_t i = 0; i < instances.size(); ++i) {
      if (i) list += ",";
      list += JsonQuote(instances[i]);
    }
    list += "]";
    Write(out_, JsonLine()
                    .Add("event", "batch")
                    .Add("time", NowRfc3339())
                    .Add("batch", index)
                    .Add("batches", count)
                    .AddRaw("instances", list)
                    .str());
    return;
  }
  std::string names;
  for (size_t i = 0; i < instances.size(); ++i) {
    names += (i ? ", " : "") + instances[i];
  }
  Write(out_, Elapsed() + "  batch " + std::to_string(index) + "/" +
                  std::to_string(count) + ": " + names);
}

void Reporter::Result(
    const std::string& outcome, int exit_code, const std::string& summary,
    const std::vector<std::pair<std::string, std::string>>& fields) {
  if (json()) {
    JsonLine line;
    line.Add("event", "result")
        .Add("time", NowRfc3339())
        .Add("outcome", outcome)
        .Add("exit_code", exit_code)
        .Add("message", summary);
    for (const auto& [k, v] : fields) line.Add(k, v);
    Write(out_, line.str());
    return;
  }
  Write(exit_code == 0 ? out_ : err_, summary);
}

void Reporter::Line(const std::string& text) { Write(out_, text); }

}  // namespace zkroll::coordinator
