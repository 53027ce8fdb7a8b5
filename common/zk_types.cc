#include "common/zk_types.h"

#include <sys/stat.h>

#include <boost/beast/core/detail/base64.hpp>
#include <boost/uuid/detail/sha1.hpp>
#include <fstream>
#include <sstream>

#include "common/names.h"

namespace zkroll {

AclList OpenAcl() { return {AclEntry{perms::kAll, "world", "anyone"}}; }

std::string DigestId(const Credential& c) {
  boost::uuids::detail::sha1 sha;
  std::string input = c.user + ":" + c.password;
  sha.process_bytes(input.data(), input.size());
  boost::uuids::detail::sha1::digest_type words;
  sha.get_digest(words);
  unsigned char bytes[20];
  for (int i = 0; i < 5; ++i) {
    bytes[4 * i] = static_cast<unsigned char>((words[i] >> 24) & 0xff);
    bytes[4 * i + 1] = static_cast<unsigned char>((words[i] >> 16) & 0xff);
    bytes[4 * i + 2] = static_cast<unsigned char>((words[i] >> 8) & 0xff);
    bytes[4 * i + 3] = static_cast<unsigned char>(words[i] & 0xff);
  }
  std::string b64(boost::beast::detail::base64::encoded_size(20), '\0');
  b64.resize(boost::beast::detail::base64::encode(b64.data(), bytes, 20));
  return c.user + ":" + b64;
}

Result<Credential> ReadCredentialFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return InvalidArgument("cannot read credential file " +
                           QuoteForMessage(path) + ": " + strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgument("credential file " + QuoteForMessage(path) +
                           " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return Status(StatusCode::kPermissionDenied,
                  "credential file " + QuoteForMessage(path) + " has mode " +
                      mode +
                      ": group and others must not have access; run "
                      "'chmod 600 " + path + "'");
  }
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' ||
                           text.back() == ' ' || text.back() == '\t')) {
    text.pop_back();
  }
  size_t start = text.find_first_not_of(" \t\r\n");
  text = start == std::string::npos ? "" : text.substr(start);
  size_t colon = text.find(':');
  if (text.find('\n') != std::string::npos || colon == std::string::npos ||
      colon == 0 || colon + 1 == text.size()) {
    return InvalidArgument("credential file " + QuoteForMessage(path) +
                           " must hold one line 'user:password'");
  }
  Credential c{text.substr(0, colon), text.substr(colon + 1)};
  for (char ch : c.user) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
    if (!ok) {
      return InvalidArgument("credential file " + QuoteForMessage(path) +
                             ": the user name may only contain letters, "
                             "digits, '.', '_' and '-'");
    }
  }
  return c;
}

ZkOp ZkOp::Create(std::string path, std::string data, CreateMode mode,
                  AclList acl) {
  ZkOp op;
  op.kind = Kind::kCreate;
  op.path = std::move(path);
  op.data = std::move(data);
  op.mode = mode;
  op.acl = std::move(acl);
  return op;
}
ZkOp ZkOp::Delete(std::string path, int32_t version) {
  ZkOp op;
  op.kind = Kind::kDelete;
  op.path = std::move(path);
  op.version = version;
  return op;
}
ZkOp ZkOp::SetData(std::string path, std::string data, int32_t version) {
  ZkOp op;
  op.kind = Kind::kSetData;
  op.path = std::move(path);
  op.data = std::move(data);
  op.version = version;
  return op;
}
ZkOp ZkOp::Check(std::string path, int32_t version) {
  ZkOp op;
  op.kind = Kind::kCheck;
  op.path = std::move(path);
  op.version = version;
  return op;
}

std::string ZkOp::Describe() const {
  std::string v = version >= 0 ? " version " + std::to_string(version) : "";
  switch (kind) {
    case Kind::kCreate: return "create " + path;
    case Kind::kDelete: return "delete " + path + v;
    case Kind::kSetData: return "set " + path + v;
    case Kind::kCheck: return "check " + path + v;
  }
  return path;
}

const char* WatchEventTypeName(WatchEvent::Type t) {
  switch (t) {
    case WatchEvent::Type::kCreated: return "created";
    case WatchEvent::Type::kDeleted: return "deleted";
    case WatchEvent::Type::kDataChanged: return "data-changed";
    case WatchEvent::Type::kChildrenChanged: return "children-changed";
    case WatchEvent::Type::kNotWatching: return "not-watching";
  }
  return "unknown";
}

const char* SessionEventKindName(SessionEvent::Kind k) {
  switch (k) {
    case SessionEvent::Kind::kNewSession: return "new-session";
    case SessionEvent::Kind::kReconnected: return "reconnected";
    case SessionEvent::Kind::kDisconnected: return "disconnected";
    case SessionEvent::Kind::kExpired: return "expired";
    case SessionEvent::Kind::kAuthFailed: return "auth-failed";
  }
  return "unknown";
}

}  // namespace zkroll
