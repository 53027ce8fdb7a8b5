#include "common/zk_types.h"

#include <sys/stat.h>

#include <glog/logging.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>

#include "common/names.h"

namespace zkroll {

AclList OpenAcl() { return {AclEntry{perms::kAll, "world", "anyone"}}; }

std::string DigestId(const Credential& c) {
  // OpenSSL's digest and base64 are public, stable interfaces; Boost's SHA-1
  // lives in a `detail` namespace whose digest type changed between releases
  // (5 words to 20 bytes), which would silently produce a wrong ACL id.
  const std::string input = c.user + ":" + c.password;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  // SHA-1 of a memory buffer fails only if OpenSSL itself is broken.
  CHECK_EQ(EVP_Digest(input.data(), input.size(), digest, &digest_len,
                      EVP_sha1(), nullptr),
           1)
      << "OpenSSL could not compute SHA-1";
  CHECK_EQ(digest_len, 20u);
  char b64[4 * ((20 + 2) / 3) + 1];  // EVP_EncodeBlock NUL-terminates
  const int b64_len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64),
                                      digest, static_cast<int>(digest_len));
  return c.user + ":" + std::string(b64, static_cast<size_t>(b64_len));
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
