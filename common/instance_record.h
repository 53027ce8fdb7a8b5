// The instance record (/services/<service>/<ip>_<port>, proto
// InstanceRecord): how it is built and when a reader may trust it.
//
// One record serves two kinds of caller: zkroll's (service, ip, port, ...)
// and Apache Curator's ServiceDiscovery (name, id, address, port, ...; see
// proto/zkroll.proto and docs/callers.md). Both sets name the same
// instance, so a record whose fields disagree with each other or with its
// node's path was written by a confused or foreign writer, and a reader
// skips it rather than guess which half is right.
//
// Pure functions, no I/O; thread-safe.
#ifndef ZKROLL_COMMON_INSTANCE_RECORD_H_
#define ZKROLL_COMMON_INSTANCE_RECORD_H_

#include <string_view>

#include <google/protobuf/struct.pb.h>

#include "common/clock.h"
#include "common/names.h"
#include "common/status.h"
#include "zkroll.pb.h"

namespace zkroll {

// Curator's serviceType for an instance that lives as long as its owner's
// session (an ephemeral node).
inline constexpr char kCuratorDynamic[] = "DYNAMIC";

// The identity part of a record: zkroll's service, ip, port and
// registered_at, and Curator's name, id (the node name), address,
// registrationTimeUTC, serviceType and enabled. The writer adds the rest.
proto::InstanceRecord NewInstanceRecord(const ServiceName& service,
                                        const InstanceAddress& address,
                                        WallTime registered);

// Ok when `record`, read from the node of `node` under
// /services/<service>, may be used: every name and address it carries,
// zkroll's or Curator's, agrees with the path. A field the writer left out
// is not checked (records of older agents have no Curator fields). The
// error says which field disagrees, for a one-line "skipping" log.
Status CheckInstanceRecord(const proto::InstanceRecord& record,
                           const ServiceName& service,
                           const InstanceAddress& node);

// Parses a Curator URI template such as "{scheme}://{address}:{port}/api"
// into its parts, as Curator's UriSpec(String) does. Refused: an unclosed
// or nested '{', a '}' without '{', an empty "{}", a variable name outside
// [A-Za-z0-9._-], control characters, more than 1024 bytes.
Result<proto::InstanceRecord::UriSpec> ParseUriSpec(std::string_view text);

// The template text of `spec` (the inverse of ParseUriSpec).
std::string FormatUriSpec(const proto::InstanceRecord::UriSpec& spec);

// Parses the `payload` of a record: a JSON object of at most 8 KiB.
Result<google::protobuf::Struct> ParseRecordPayload(std::string_view text);

}  // namespace zkroll

#endif  // ZKROLL_COMMON_INSTANCE_RECORD_H_
