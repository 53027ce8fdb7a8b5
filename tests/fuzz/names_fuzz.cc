// Fuzz target: validation of names, addresses, durations, connect strings
// and check specs: everything that turns user or znode text into paths,
// sockets or argv. Accepted values must round-trip and stay inside the
// documented alphabets; nothing may crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/duration.h"
#include "common/health/check.h"
#include "common/names.h"
#include "common/paths.h"
#include "common/zk_session.h"

namespace {

void Require(bool ok) {
  if (!ok) __builtin_trap();
}

bool PathSafe(const std::string& s) {
  for (char c : s) {
    if (c == '/' || c == '\0' || static_cast<unsigned char>(c) < 0x20) return false;
  }
  return s != "." && s != ".." && !s.empty();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto s = zkroll::ServiceName::Parse(text); s.ok()) {
    Require(PathSafe(s->str()) && s->str().size() <= 64);
    Require(zkroll::paths::ServiceDir(*s) == "/services/" + s->str());
  }
  if (auto h = zkroll::HostId::Parse(text); h.ok()) Require(PathSafe(h->str()));
  if (auto a = zkroll::InstanceAddress::Parse(text); a.ok()) {
    Require(a->port() >= 1);
    auto back = zkroll::InstanceAddress::ParseNodeName(a->NodeName());
    Require(back.ok() && *back == *a);
    Require(PathSafe(a->NodeName()));
    auto again = zkroll::InstanceAddress::Parse(a->ToString());
    Require(again.ok() && *again == *a);
  }
  if (auto a = zkroll::InstanceAddress::ParseNodeName(text); a.ok()) {
    Require(a->NodeName() == text);
  }
  if (auto id = zkroll::InstanceId::Parse(text); id.ok()) {
    auto back = zkroll::InstanceId::Parse(id->ToString());
    Require(back.ok() && *back == *id);
  }
  if (auto d = zkroll::ParseDuration(text); d.ok()) {
    Require(d->count() >= 0);
    // Whatever was accepted prints back in a form that parses to the same
    // value, and that form is canonical (printing it again changes nothing).
    const std::string printed = zkroll::FormatDuration(*d);
    auto back = zkroll::ParseDuration(printed);
    Require(back.ok() && *back == *d);
    Require(zkroll::FormatDuration(*back) == printed);
  }
  (void)zkroll::ValidateConnectString(std::string(text));
  if (auto spec = zkroll::health::ParseCheckSpec(text); spec.ok()) {
    auto back = zkroll::health::ParseCheckSpec(zkroll::health::DescribeCheck(*spec));
    Require(back.ok());
    Require(zkroll::health::DescribeCheck(*back) ==
            zkroll::health::DescribeCheck(*spec));
  }
  zkroll::QuoteForMessage(text);
  return 0;
}
