#include "coordinator/reporter.h"

#include <cinttypes>

#include "common/clock.h"

namespace zkroll::coordinator {
namespace {

// Length of the valid UTF-8 sequence at text[i], or 0 if it is invalid.
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  unsigned char c = static_cast<unsigned char>(text[i]);
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    unsigned char cc = static_cast<unsigned char>(text[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return len;
}

std::string PadRight(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

}  // namespace

std::string JsonQuote(std::string_view text) {
  std::string out = "\"";
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      size_t len = Utf8SequenceLength(text, i);
      if (len == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text.substr(i, len));
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += "\"";
  return out;
}

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
