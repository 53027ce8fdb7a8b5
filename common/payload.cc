#include "common/payload.h"

#include <glog/logging.h>

#include <google/protobuf/util/json_util.h>

#include "common/names.h"

namespace zkroll {

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  std::string out;
  auto st = google::protobuf::util::MessageToJsonString(message, &out, opts);
  // Serialising our own, already-built message cannot fail except on a bug.
  CHECK(st.ok()) << "cannot serialise " << message.GetTypeName() << ": "
                 << st.ToString();
  return out;
}

std::string ToJsonLine(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = false;
  opts.always_print_primitive_fields = true;
  opts.preserve_proto_field_names = true;
  std::string out;
  auto st = google::protobuf::util::MessageToJsonString(message, &out, opts);
  CHECK(st.ok()) << "cannot serialise " << message.GetTypeName() << ": "
                 << st.ToString();
  return out;
}

bool IsValidUtf8(std::string_view data) {
  size_t i = 0;
  const auto* s = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
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
