#include "common/payload.h"

#include <glog/logging.h>

#include <google/protobuf/util/json_util.h>

#include "common/names.h"
#include "common/utf8.h"

namespace zkroll {
namespace {

std::string Serialise(const google::protobuf::Message& message,
                      const google::protobuf::util::JsonPrintOptions& opts) {
  std::string out;
  auto st = google::protobuf::util::MessageToJsonString(message, &out, opts);
  // Serialising our own, already-built message cannot fail except on a bug.
  CHECK(st.ok()) << "cannot serialise " << message.GetTypeName() << ": "
                 << st.ToString();
  return out;
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  return Serialise(message, opts);
}

std::string ToJsonLine(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = false;
  opts.always_print_primitive_fields = true;
  opts.preserve_proto_field_names = true;
  return Serialise(message, opts);
}

Status FromJson(std::string_view data, std::string_view path,
                google::protobuf::Message* out) {
  out->Clear();
  const std::string where = "payload of " + std::string(path);
  if (data.size() > kMaxPayloadBytes) {
    return InvalidArgument(where + " is " + std::to_string(data.size()) +
                           " bytes, more than the " +
                           std::to_string(kMaxPayloadBytes) +
                           " allowed; rewrite it with zkroll or delete it");
  }
  if (data.empty()) {
    return InvalidArgument(where + " is empty; expected a JSON " +
                           out->GetTypeName());
  }
  if (!IsValidUtf8(data)) {
    return InvalidArgument(where + " is not valid UTF-8");
  }
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(data.data(), data.size()), out, opts);
  if (!st.ok()) {
    out->Clear();
    return InvalidArgument(where + " is not a valid " + out->GetTypeName() +
                           " JSON document: " + std::string(st.message()));
  }
  return Status::Ok();
}

}  // namespace zkroll
