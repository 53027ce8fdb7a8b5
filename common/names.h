// Validated names: the only way text from users, configs or znodes becomes
// part of a znode path.
//
// Each type can only be built through its Parse function, which refuses
// anything outside the documented grammar with an InvalidArgument naming the
// bad value. Paths (common/paths.h) accept only these types, so no path is
// ever built from unvalidated text.
#ifndef ZKROLL_COMMON_NAMES_H_
#define ZKROLL_COMMON_NAMES_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace zkroll {

// A service name: [A-Za-z0-9._-], 1 to 64 characters, not "." or "..".
class ServiceName {
 public:
  // An empty placeholder (for containers); building a path from it is a
  // bug in our code and CHECK-fails in common/paths.cc.
  ServiceName() = default;
  static Result<ServiceName> Parse(std::string_view text);
  bool empty() const { return name_.empty(); }
  const std::string& str() const { return name_; }
  bool operator==(const ServiceName& o) const { return name_ == o.name_; }
  bool operator<(const ServiceName& o) const { return name_ < o.name_; }

 private:
  explicit ServiceName(std::string n) : name_(std::move(n)) {}
  std::string name_;
};

// An agent host id: [A-Za-z0-9._-], 1 to 253 characters, not "." or "..".
class HostId {
 public:
  static Result<HostId> Parse(std::string_view text);
  const std::string& str() const { return name_; }
  bool operator==(const HostId& o) const { return name_ == o.name_; }

 private:
  explicit HostId(std::string n) : name_(std::move(n)) {}
  std::string name_;
};

// A deploy id: [A-Za-z0-9._-], 1 to 128 characters, not "." or "..".
class DeployId {
 public:
  static Result<DeployId> Parse(std::string_view text);
  // A fresh id: "<UTC yyyymmddThhmmssZ>-<6 hex>", sortable by start time.
  static DeployId Generate();
  const std::string& str() const { return id_; }

 private:
  explicit DeployId(std::string n) : id_(std::move(n)) {}
  std::string id_;
};

// One instance of a service: an IPv4 or IPv6 address and a TCP port 1-65535.
// The IP is kept in canonical text form (inet_ntop), so "::0001" and "::1"
// name the same znode.
class InstanceAddress {
 public:
  // An empty placeholder (port 0); see ServiceName().
  InstanceAddress() = default;
  bool empty() const { return port_ == 0; }
  // "192.168.1.10:9000" or "[::1]:9000" (brackets required for IPv6).
  static Result<InstanceAddress> Parse(std::string_view text);
  // The znode name form "<ip>_<port>", e.g. "192.168.1.10_9000",
  // "::1_9000"; the port is after the last '_'.
  static Result<InstanceAddress> ParseNodeName(std::string_view text);
  static Result<InstanceAddress> FromParts(std::string_view ip, int64_t port);

  const std::string& ip() const { return ip_; }
  uint16_t port() const { return port_; }
  bool is_v6() const { return v6_; }
  std::string NodeName() const;   // "192.168.1.10_9000"
  std::string ToString() const;   // "192.168.1.10:9000" or "[::1]:9000"

  bool operator==(const InstanceAddress& o) const {
    return ip_ == o.ip_ && port_ == o.port_;
  }
  bool operator!=(const InstanceAddress& o) const { return !(*this == o); }
  bool operator<(const InstanceAddress& o) const {
    return ip_ != o.ip_ ? ip_ < o.ip_ : port_ < o.port_;
  }

 private:
  InstanceAddress(std::string ip, uint16_t port, bool v6)
      : ip_(std::move(ip)), port_(port), v6_(v6) {}
  std::string ip_;
  uint16_t port_ = 0;
  bool v6_ = false;
};

// Canonicalises an IPv4/IPv6 literal; InvalidArgument otherwise.
Result<std::string> CanonicalIp(std::string_view text);

// A service plus an instance: "level@192.168.1.10:9000".
struct InstanceId {
  ServiceName service;
  InstanceAddress address;
  static Result<InstanceId> Parse(std::string_view text);
  std::string ToString() const;  // "level@192.168.1.10:9000"
  bool operator<(const InstanceId& o) const {
    return service == o.service ? address < o.address : service < o.service;
  }
  bool operator==(const InstanceId& o) const {
    return service == o.service && address == o.address;
  }
};

// Quotes text for an error message: printable ASCII as is, anything else
// escaped, cut at 80 characters, so a hostile value cannot garble a log.
std::string QuoteForMessage(std::string_view text);

}  // namespace zkroll

#endif  // ZKROLL_COMMON_NAMES_H_
