#include "common/names.h"

#include <arpa/inet.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>

namespace zkroll {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

Status ValidateName(std::string_view text, size_t max_len, const char* what) {
  if (text.empty()) {
    return InvalidArgument(std::string(what) + " is empty");
  }
  if (text.size() > max_len) {
    return InvalidArgument(std::string(what) + " " + QuoteForMessage(text) +
                           " is longer than " + std::to_string(max_len) +
                           " characters");
  }
  if (text == "." || text == "..") {
    return InvalidArgument(std::string(what) + " may not be '.' or '..'");
  }
  for (char c : text) {
    if (!IsNameChar(c)) {
      return InvalidArgument(std::string(what) + " " + QuoteForMessage(text) +
                             " may only contain letters, digits, '.', '_' "
                             "and '-'");
    }
  }
  return Status::Ok();
}

Result<uint16_t> ParsePort(std::string_view text, std::string_view whole) {
  auto bad = [&] {
    return InvalidArgument("bad port in " + QuoteForMessage(whole) +
                           ": expected a number from 1 to 65535");
  };
  if (text.empty() || text.size() > 5) return bad();
  int64_t p = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return bad();
    p = p * 10 + (c - '0');
  }
  if (p < 1 || p > 65535) return bad();
  return static_cast<uint16_t>(p);
}

}  // namespace

std::string QuoteForMessage(std::string_view text) {
  std::string out = "'";
  size_t n = 0;
  for (unsigned char c : text) {
    if (++n > 80) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  out += "'";
  return out;
}

Result<ServiceName> ServiceName::Parse(std::string_view text) {
  Status s = ValidateName(text, 64, "service name");
  if (!s.ok()) return s;
  return ServiceName(std::string(text));
}

Result<HostId> HostId::Parse(std::string_view text) {
  Status s = ValidateName(text, 253, "host id");
  if (!s.ok()) return s;
  return HostId(std::string(text));
}

Result<DeployId> DeployId::Parse(std::string_view text) {
  Status s = ValidateName(text, 128, "deploy id");
  if (!s.ok()) return s;
  return DeployId(std::string(text));
}

DeployId DeployId::Generate() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%06x", rd() & 0xffffff);
  return DeployId(std::string(stamp) + "-" + suffix);
}

Result<std::string> CanonicalIp(std::string_view text) {
  if (text.empty() || text.size() > 45) {
    return InvalidArgument("bad IP address " + QuoteForMessage(text) +
                           ": expected an IPv4 or IPv6 literal");
  }
  std::string s(text);
  char buf[INET6_ADDRSTRLEN];
  in_addr a4;
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) {
    inet_ntop(AF_INET, &a4, buf, sizeof buf);
    return std::string(buf);
  }
  in6_addr a6;
  if (inet_pton(AF_INET6, s.c_str(), &a6) == 1) {
    inet_ntop(AF_INET6, &a6, buf, sizeof buf);
    return std::string(buf);
  }
  return InvalidArgument("bad IP address " + QuoteForMessage(text) +
                         ": expected an IPv4 or IPv6 literal (no host names)");
}

Result<InstanceAddress> InstanceAddress::FromParts(std::string_view ip,
                                                   int64_t port) {
  auto canon = CanonicalIp(ip);
  if (!canon.ok()) return canon.status();
  if (port < 1 || port > 65535) {
    return InvalidArgument("bad port " + std::to_string(port) +
                           ": expected a number from 1 to 65535");
  }
  bool v6 = canon->find(':') != std::string::npos;
  return InstanceAddress(*canon, static_cast<uint16_t>(port), v6);
}

Result<InstanceAddress> InstanceAddress::Parse(std::string_view text) {
  std::string_view ip, port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return InvalidArgument("bad instance address " + QuoteForMessage(text) +
                             ": expected [IPv6]:PORT, e.g. [::1]:9000");
    }
    ip = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (ip.find(':') == std::string_view::npos) {
      return InvalidArgument("bad instance address " + QuoteForMessage(text) +
                             ": brackets are for IPv6 addresses only");
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return InvalidArgument("bad instance address " + QuoteForMessage(text) +
                             ": expected IP:PORT, e.g. 192.168.1.10:9000 or "
                             "[::1]:9000");
    }
    ip = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (ip.find(':') != std::string_view::npos) {
      return InvalidArgument("bad instance address " + QuoteForMessage(text) +
                             ": write IPv6 addresses in brackets, e.g. "
                             "[::1]:9000");
    }
  }
  auto canon = CanonicalIp(ip);
  if (!canon.ok()) return canon.status();
  auto p = ParsePort(port, text);
  if (!p.ok()) return p.status();
  bool v6 = canon->find(':') != std::string::npos;
  return InstanceAddress(*canon, *p, v6);
}

Result<InstanceAddress> InstanceAddress::ParseNodeName(std::string_view text) {
  size_t us = text.rfind('_');
  if (us == std::string_view::npos || us == 0) {
    return InvalidArgument("bad instance node name " + QuoteForMessage(text) +
                           ": expected <ip>_<port>, e.g. 192.168.1.10_9000");
  }
  std::string_view ip = text.substr(0, us);
  auto canon = CanonicalIp(ip);
  if (!canon.ok()) return canon.status();
  // The node name must already be canonical: two spellings of one address
  // must never become two registrations.
  if (*canon != ip) {
    return InvalidArgument("instance node name " + QuoteForMessage(text) +
                           " is not in canonical form (expected " + *canon +
                           "_<port>)");
  }
  std::string_view port = text.substr(us + 1);
  if (port.size() > 1 && port[0] == '0') {
    return InvalidArgument("instance node name " + QuoteForMessage(text) +
                           " is not in canonical form (port with a leading "
                           "zero)");
  }
  auto p = ParsePort(port, text);
  if (!p.ok()) return p.status();
  bool v6 = canon->find(':') != std::string::npos;
  return InstanceAddress(*canon, *p, v6);
}

std::string InstanceAddress::NodeName() const {
  return ip_ + "_" + std::to_string(port_);
}

std::string InstanceAddress::ToString() const {
  if (v6_) return "[" + ip_ + "]:" + std::to_string(port_);
  return ip_ + ":" + std::to_string(port_);
}

Result<InstanceId> InstanceId::Parse(std::string_view text) {
  size_t at = text.find('@');
  if (at == std::string_view::npos) {
    return InvalidArgument("bad instance " + QuoteForMessage(text) +
                           ": expected SERVICE@IP:PORT, e.g. "
                           "level@192.168.1.10:9000");
  }
  auto service = ServiceName::Parse(text.substr(0, at));
  if (!service.ok()) return service.status();
  auto addr = InstanceAddress::Parse(text.substr(at + 1));
  if (!addr.ok()) return addr.status();
  return InstanceId{*service, *addr};
}

std::string InstanceId::ToString() const {
  return service.str() + "@" + address.ToString();
}

}  // namespace zkroll
