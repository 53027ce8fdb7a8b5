// ParseCheckSpec, DescribeCheck and DescribeTarget: the textual form of a
// health check. The grammar is documented in check.h.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/command_line.h"
#include "common/health/check.h"

namespace zkroll::health {
namespace {

constexpr std::string_view kAcceptedForms =
    "tcp, tcp:connect<200ms, http:/healthz, http:/healthz|200-299,301|body=OK "
    "or exec:/usr/bin/check --flag x";

// Renders untrusted text for an error message: control and non-ASCII bytes
// become \xNN so that a bad config line cannot garble the terminal or log.
std::string Printable(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

Status Bad(std::string_view text, const std::string& why,
           std::string_view example) {
  return InvalidArgument("bad health check '" + Printable(text) + "': " + why +
                         " (use e.g. " + std::string(example) + ")");
}

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// An origin-form request target: RFC 3986 path characters plus '?' for the
// query. Everything else must be percent-encoded, so that the path cannot
// break the request line or smuggle a header.
bool IsRequestTargetChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9')) {
    return true;
  }
  return std::string_view("-._~!$&'()*+,;=:@/?%").find(c) !=
         std::string_view::npos;
}

// "200-299,301" -> {{200, 299}, {301, 301}}.
Result<std::vector<std::pair<int, int>>> ParseStatuses(std::string_view text,
                                                       std::string_view list) {
  constexpr std::string_view kExample = "http:/healthz|200-299,301";
  std::vector<std::pair<int, int>> ranges;
  size_t start = 0;
  while (true) {
    size_t comma = list.find(',', start);
    std::string_view item = list.substr(
        start, comma == std::string_view::npos ? list.npos : comma - start);
    size_t dash = item.find('-');
    std::string_view low_text = item.substr(0, dash);
    std::string_view high_text =
        dash == std::string_view::npos ? low_text : item.substr(dash + 1);
    if (!IsDigits(low_text) || !IsDigits(high_text) || low_text.size() != 3 ||
        high_text.size() != 3) {
      return Bad(text,
                 "bad status '" + std::string(item) +
                     "': want a 3-digit code or a range like 200-299",
                 kExample);
    }
    int low = std::stoi(std::string(low_text));
    int high = std::stoi(std::string(high_text));
    if (low < 100 || high > 599 || low > high) {
      return Bad(text,
                 "bad status '" + std::string(item) +
                     "': codes are 100..599 and a range goes low-high",
                 kExample);
    }
    ranges.emplace_back(low, high);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return ranges;
}

Result<CheckSpec> ParseTcp(std::string_view text, std::string_view rest,
                           bool has_colon) {
  constexpr std::string_view kExample = "tcp or tcp:connect<200ms";
  CheckSpec spec;
  spec.kind = CheckSpec::Kind::kTcp;
  if (!has_colon) return spec;
  if (rest.empty()) return Bad(text, "nothing after 'tcp:'", kExample);
  constexpr std::string_view kConnect = "connect<";
  if (rest.substr(0, kConnect.size()) != kConnect) {
    return Bad(text, "unknown tcp option '" + std::string(rest) + "'",
               kExample);
  }
  std::string_view limit_text = rest.substr(kConnect.size());
  Result<Millis> limit = ParseDuration(limit_text);
  if (!limit.ok()) {
    return Bad(text, "connect limit: " + limit.status().message(), kExample);
  }
  if (limit->count() <= 0) {
    return Bad(text, "connect limit must be more than 0ms", kExample);
  }
  spec.max_connect_time = *limit;
  return spec;
}

Result<CheckSpec> ParseHttp(std::string_view text, std::string_view rest,
                            bool has_colon) {
  constexpr std::string_view kExample = "http:/healthz|200-299,301|body=OK";
  CheckSpec spec;
  spec.kind = CheckSpec::Kind::kHttp;
  if (!has_colon) return spec;

  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t bar = rest.find('|', start);
    parts.push_back(rest.substr(
        start, bar == std::string_view::npos ? rest.npos : bar - start));
    if (bar == std::string_view::npos) break;
    start = bar + 1;
  }

  std::string_view path = parts[0];
  if (path.empty() || path[0] != '/') {
    return Bad(text, "the path must start with '/'", kExample);
  }
  for (char c : path) {
    if (!IsRequestTargetChar(c)) {
      return Bad(text,
                 std::string("the path contains '") + c +
                     "'; percent-encode characters outside URL syntax",
                 kExample);
    }
  }
  spec.http_path = std::string(path);

  bool have_statuses = false;
  bool have_body = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view part = parts[i];
    constexpr std::string_view kBody = "body=";
    if (part.substr(0, kBody.size()) == kBody) {
      if (have_body) return Bad(text, "body= given twice", kExample);
      have_body = true;
      spec.body_contains = std::string(part.substr(kBody.size()));
      if (spec.body_contains.empty()) {
        return Bad(text, "body= needs the text to look for", kExample);
      }
    } else if (!part.empty() && part[0] >= '0' && part[0] <= '9') {
      if (have_statuses) return Bad(text, "status list given twice", kExample);
      have_statuses = true;
      auto statuses = ParseStatuses(text, part);
      if (!statuses.ok()) return statuses.status();
      spec.expect_status = std::move(statuses).value();
    } else {
      return Bad(text,
                 "unknown http option '" + std::string(part) +
                     "' (options are a status list or body=TEXT)",
                 kExample);
    }
  }
  return spec;
}

// Splits an exec command line into words; see the grammar in check.h
// (the same as common/command_line.h).
Result<std::vector<std::string>> SplitCommand(std::string_view text,
                                              std::string_view command) {
  auto words = SplitCommandLine(command);
  if (!words.ok()) {
    return Bad(text, words.status().message(),
               "exec:/usr/bin/check --flag 'a b'");
  }
  return words;
}

Result<CheckSpec> ParseExec(std::string_view text, std::string_view rest,
                            bool has_colon) {
  constexpr std::string_view kExample = "exec:/usr/bin/check --flag x";
  if (!has_colon) return Bad(text, "exec needs a command", kExample);
  auto words = SplitCommand(text, rest);
  if (!words.ok()) return words.status();
  if (words->empty()) return Bad(text, "exec needs a command", kExample);
  const std::string& program = words->front();
  if (program.empty()) return Bad(text, "the command is empty", kExample);
  if (program[0] != '/' && program.find('/') != std::string::npos) {
    return Bad(text,
               "command '" + program +
                   "' is a relative path; give an absolute path or a bare "
                   "name found in $PATH",
               kExample);
  }
  CheckSpec spec;
  spec.kind = CheckSpec::Kind::kExec;
  spec.exec_argv = std::move(words).value();
  return spec;
}

// Quotes one exec word so that SplitCommand gives it back unchanged.
std::string QuoteWord(const std::string& word) {
  bool plain = !word.empty();
  for (char c : word) {
    if (c == ' ' || c == '\'' || c == '"' || c == '\\') plain = false;
  }
  if (plain) return word;
  if (word.find('\'') == std::string::npos) return "'" + word + "'";
  std::string out = "\"";
  for (char c : word) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

Result<CheckSpec> ParseCheckSpec(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      return Bad(text,
                 "control character at offset " + std::to_string(i) +
                     " (tabs and newlines included)",
                 kAcceptedForms);
    }
  }
  size_t colon = text.find(':');
  bool has_colon = colon != std::string_view::npos;
  std::string_view kind = text.substr(0, colon);
  std::string_view rest = has_colon ? text.substr(colon + 1) : "";
  if (kind == "tcp") return ParseTcp(text, rest, has_colon);
  if (kind == "http") return ParseHttp(text, rest, has_colon);
  if (kind == "exec") return ParseExec(text, rest, has_colon);
  if (text.empty()) return Bad(text, "empty", kAcceptedForms);
  return Bad(text, "unknown kind '" + Printable(kind) + "'", kAcceptedForms);
}

std::string DescribeCheck(const CheckSpec& spec) {
  switch (spec.kind) {
    case CheckSpec::Kind::kTcp:
      if (!spec.max_connect_time) return "tcp";
      return "tcp:connect<" + FormatDuration(*spec.max_connect_time);
    case CheckSpec::Kind::kHttp: {
      std::string out = "http:" + spec.http_path;
      if (!spec.expect_status.empty()) {
        out += '|';
        for (size_t i = 0; i < spec.expect_status.size(); ++i) {
          const auto& [low, high] = spec.expect_status[i];
          if (i > 0) out += ',';
          out += std::to_string(low);
          if (high != low) out += "-" + std::to_string(high);
        }
      }
      if (!spec.body_contains.empty()) out += "|body=" + spec.body_contains;
      return out;
    }
    case CheckSpec::Kind::kExec: {
      std::string out = "exec:";
      for (size_t i = 0; i < spec.exec_argv.size(); ++i) {
        if (i > 0) out += ' ';
        out += QuoteWord(spec.exec_argv[i]);
      }
      return out;
    }
  }
  return "unknown";
}

std::string DescribeTarget(const CheckTarget& target) {
  if (target.ip.find(':') != std::string::npos) {
    return "[" + target.ip + "]:" + std::to_string(target.port);
  }
  return target.ip + ":" + std::to_string(target.port);
}

}  // namespace zkroll::health
