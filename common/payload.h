// Znode payloads <-> protobuf messages, stored as protobuf's JSON mapping.
//
// Writers emit the field names as declared in proto/zkroll.proto
// (snake_case; Curator's camelCase in InstanceRecord) with whitespace so
// `zkCli.sh get` reads well. Readers ignore unknown fields (newer writers) and refuse
// malformed data: more than kMaxPayloadBytes, invalid UTF-8, invalid JSON or
// wrong field types, each with an error naming the znode path and the fault.
// A payload that parses is still only as trustworthy as its writer: callers
// validate names and addresses inside it with common/names.h before use.
#ifndef ZKROLL_COMMON_PAYLOAD_H_
#define ZKROLL_COMMON_PAYLOAD_H_

#include <string>
#include <string_view>

#include <google/protobuf/message.h>

#include "common/status.h"

namespace zkroll {

// ZooKeeper's default jute.maxbuffer is 1 MiB; none of our records come
// near 64 KiB, so anything larger is hostile or corrupt.
inline constexpr size_t kMaxPayloadBytes = 64 * 1024;

std::string ToJson(const google::protobuf::Message& message);

// `message` as one line of compact JSON with every scalar field printed,
// defaults included (unset sub-messages and proto3 `optional` fields are
// left out): the coordinator's --output json events, whose readers may
// count on every field being there. As in ToJson, 64-bit integers print as
// strings (protobuf's JSON mapping); declare a field int32, uint32 or double
// where readers need a JSON number.
std::string ToJsonLine(const google::protobuf::Message& message);

// Parses `data` (read from znode `path`, used only in the message) into
// `out`, which is cleared first.
Status FromJson(std::string_view data, std::string_view path,
                google::protobuf::Message* out);

template <typename M>
Result<M> ParsePayload(std::string_view data, std::string_view path) {
  M m;
  Status s = FromJson(data, path, &m);
  if (!s.ok()) return s;
  return m;
}

}  // namespace zkroll

#endif  // ZKROLL_COMMON_PAYLOAD_H_
