// Fuzz target: znode payload parsing. Any byte string read from a znode
// must either parse or be refused with a message; never crash, hang or
// leak. What we write back from a parsed payload must be a fixed point.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <google/protobuf/util/field_comparator.h>
#include <google/protobuf/util/message_differencer.h>

#include "agent/switch_watcher.h"
#include "common/payload.h"
#include "common/utf8.h"
#include "zkroll.pb.h"

namespace {

template <typename M>
void RoundTrip(std::string_view data) {
  auto parsed = zkroll::ParsePayload<M>(data, "/fuzz");
  if (!parsed.ok()) {
    if (parsed.status().message().empty()) __builtin_trap();
    return;
  }
  // What we write back parses, and is a fixed point: writing and reading it
  // again gives an equal message. (Compared as messages: protobuf keeps some
  // ignored JSON keys, e.g. an empty one, as unknown fields of the first
  // parse, and prints map entries in no fixed order.)
  auto again = zkroll::ParsePayload<M>(zkroll::ToJson(*parsed), "/fuzz");
  if (!again.ok()) __builtin_trap();
  auto third = zkroll::ParsePayload<M>(zkroll::ToJson(*again), "/fuzz");
  if (!third.ok()) __builtin_trap();
  // NaN is a fixed point too ("NaN" in a double field, e.g. an instance
  // record's registrationTimeUTC, prints and parses as NaN).
  google::protobuf::util::DefaultFieldComparator nan_equal;
  nan_equal.set_treat_nan_as_equal(true);
  google::protobuf::util::MessageDifferencer differ;
  differ.set_field_comparator(&nan_equal);
  if (!differ.Compare(*again, *third)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  zkroll::IsValidUtf8(text);
  RoundTrip<zkroll::proto::PauseFlag>(text);
  RoundTrip<zkroll::proto::InstanceRecord>(text);
  RoundTrip<zkroll::proto::AgentRecord>(text);
  RoundTrip<zkroll::proto::DeployRecord>(text);
  RoundTrip<zkroll::proto::LockHolder>(text);
  RoundTrip<zkroll::proto::ForwardTarget>(text);
  RoundTrip<zkroll::proto::ForwarderState>(text);
  // A switch node decides where a public port's traffic goes: whatever it
  // holds, the decision is a valid address that is never the public one.
  static const zkroll::InstanceId id{
      zkroll::ServiceName::Parse("web").value(),
      zkroll::InstanceAddress::Parse("10.0.0.5:8080").value()};
  static const zkroll::agent::ForwardConfig cfg = [] {
    zkroll::agent::ForwardConfig c;
    c.backend = zkroll::InstanceAddress::Parse("127.0.0.1:18080").value();
    c.ports = {18081};
    return c;
  }();
  zkroll::agent::SwitchView view;
  view.committed = std::string(text);
  view.in_flight = std::string(text);
  auto d = zkroll::agent::DecideForward(id, cfg, view);
  if (d.backend.empty() || d.backend == id.address) __builtin_trap();
  if (d.fallback && *d.fallback == id.address) __builtin_trap();
  return 0;
}
