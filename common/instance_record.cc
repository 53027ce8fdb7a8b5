#include "common/instance_record.h"

#include <google/protobuf/util/json_util.h>

#include <cctype>

#include "common/payload.h"
#include "common/utf8.h"

namespace zkroll {

namespace {

constexpr size_t kMaxUriSpecBytes = 1024;
constexpr size_t kMaxRecordPayloadBytes = 8 * 1024;

bool IsVariableChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
         c == '-';
}

}  // namespace

proto::InstanceRecord NewInstanceRecord(const ServiceName& service,
                                        const InstanceAddress& address,
                                        WallTime registered) {
  proto::InstanceRecord r;
  r.set_service(service.str());
  r.set_ip(address.ip());
  r.set_port(address.port());
  r.set_registered_at(FormatRfc3339(registered));
  r.set_name(service.str());
  r.set_id(address.NodeName());
  r.set_address(address.ip());
  r.set_registrationtimeutc(static_cast<double>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          registered.time_since_epoch())
          .count()));
  r.set_servicetype(kCuratorDynamic);
  r.set_enabled(true);
  return r;
}

Status CheckInstanceRecord(const proto::InstanceRecord& record,
                           const ServiceName& service,
                           const InstanceAddress& node) {
  for (const std::string* named : {&record.service(), &record.name()}) {
    if (!named->empty() && *named != service.str()) {
      return InvalidArgument("record names service " +
                             QuoteForMessage(*named));
    }
  }
  if (!record.id().empty() && record.id() != node.NodeName()) {
    return InvalidArgument("record has id " + QuoteForMessage(record.id()) +
                           ", not the node name " + node.NodeName());
  }
  // The node name is the address callers use; a record naming another one
  // means a confused writer, and neither can be trusted.
  for (const std::string* ip : {&record.ip(), &record.address()}) {
    // A port without zkroll's ip is refused (as before Curator's fields),
    // but Curator's address is only checked where a writer set it.
    if (ip->empty() && (record.port() == 0 || ip == &record.address())) {
      continue;
    }
    auto named = InstanceAddress::FromParts(*ip, record.port());
    if (!named.ok()) {
      return InvalidArgument("record names a bad address: " +
                             named.status().message());
    }
    if (*named != node) {
      return InvalidArgument("record names " + named->ToString() +
                             ", the node name " + node.ToString());
    }
  }
  return Status::Ok();
}

Result<proto::InstanceRecord::UriSpec> ParseUriSpec(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("URI template " + QuoteForMessage(text) + " " +
                           why +
                           " (expected text and {variable} parts, e.g. "
                           "{scheme}://{address}:{port}/api)");
  };
  if (text.empty()) return bad("is empty");
  if (text.size() > kMaxUriSpecBytes) {
    return bad("is longer than " + std::to_string(kMaxUriSpecBytes) +
               " bytes");
  }
  if (!IsValidUtf8(text)) return bad("is not valid UTF-8");
  proto::InstanceRecord::UriSpec spec;
  std::string current;
  bool in_variable = false;
  auto flush = [&](bool variable) {
    if (current.empty()) return;
    auto* part = spec.add_parts();
    part->set_value(current);
    part->set_variable(variable);
    current.clear();
  };
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return bad("contains a control character");
    }
    if (c == '{') {
      if (in_variable) return bad("has a '{' inside a {variable}");
      flush(false);
      in_variable = true;
    } else if (c == '}') {
      if (!in_variable) return bad("has a '}' without its '{'");
      if (current.empty()) return bad("has an empty {}");
      flush(true);
      in_variable = false;
    } else {
      if (in_variable && !IsVariableChar(c)) {
        return bad("has a variable name with " + QuoteForMessage({&c, 1}) +
                   " (letters, digits, . _ - only)");
      }
      current += c;
    }
  }
  if (in_variable) return bad("has a '{' that is never closed");
  flush(false);
  return spec;
}

std::string FormatUriSpec(const proto::InstanceRecord::UriSpec& spec) {
  std::string out;
  for (const auto& part : spec.parts()) {
    out += part.variable() ? "{" + part.value() + "}" : part.value();
  }
  return out;
}

Result<google::protobuf::Struct> ParseRecordPayload(std::string_view text) {
  if (text.size() > kMaxRecordPayloadBytes) {
    return InvalidArgument("payload is " + std::to_string(text.size()) +
                           " bytes, more than the " +
                           std::to_string(kMaxRecordPayloadBytes) + " allowed");
  }
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || text[first] != '{') {
    return InvalidArgument("payload " + QuoteForMessage(text) +
                           " must be a JSON object, e.g. {\"zone\": \"a\"}");
  }
  if (!IsValidUtf8(text)) {
    return InvalidArgument("payload is not valid UTF-8");
  }
  google::protobuf::Struct out;
  auto st = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(text.data(), text.size()), &out);
  if (!st.ok()) {
    return InvalidArgument("payload " + QuoteForMessage(text) +
                           " is not a valid JSON object: " +
                           std::string(st.message()));
  }
  return out;
}

}  // namespace zkroll
