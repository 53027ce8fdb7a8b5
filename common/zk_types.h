// Plain value types for talking to ZooKeeper, free of the C client's
// headers: node stats, ACLs, credentials and transaction operations.
#ifndef ZKROLL_COMMON_ZK_TYPES_H_
#define ZKROLL_COMMON_ZK_TYPES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace zkroll {

struct NodeStat {
  int64_t czxid = 0;
  int64_t mzxid = 0;
  int64_t ctime_ms = 0;
  int64_t mtime_ms = 0;
  int32_t version = 0;    // data version: bumped by every set
  int32_t cversion = 0;   // children version: bumped by child create/delete
  int64_t ephemeral_owner = 0;  // session id of the owner, 0 if persistent
  int32_t data_length = 0;
  int32_t num_children = 0;
  int64_t pzxid = 0;
};

struct NodeData {
  std::string data;
  NodeStat stat;
};

// Children of a node and the node's own stat, read at one point in time.
struct Children {
  std::vector<std::string> names;  // sorted
  NodeStat stat;
};

enum class CreateMode {
  kPersistent,
  kEphemeral,
  kPersistentSequential,
  kEphemeralSequential,
};

// Permission bits, as ZooKeeper defines them.
namespace perms {
inline constexpr int32_t kRead = 1;
inline constexpr int32_t kWrite = 2;
inline constexpr int32_t kCreate = 4;
inline constexpr int32_t kDelete = 8;
inline constexpr int32_t kAdmin = 16;
inline constexpr int32_t kAll = 31;
}  // namespace perms

struct AclEntry {
  int32_t perms = 0;
  std::string scheme;  // "world", "digest", "auth", "ip"
  std::string id;      // "anyone", "user:base64(sha1(user:password))", ...
};
using AclList = std::vector<AclEntry>;

// world:anyone with every permission: what ZooKeeper uses when no ACL is
// given. Used for the test tree and for deployments without `zkroll init`.
AclList OpenAcl();

// A digest credential for zoo_add_auth.
struct Credential {
  std::string user;
  std::string password;
};

// The digest ACL id ZooKeeper derives from a credential:
// "user:" + base64(sha1("user:password")).
std::string DigestId(const Credential& c);

// Reads "user:password" (one line; surrounding whitespace trimmed) from
// `path`. Refuses a file that group or others can read (mode & 077), that
// is not a regular file, or whose content is malformed; the error names the
// file and what to do, never the password.
Result<Credential> ReadCredentialFile(const std::string& path);

// One operation of a transaction (zoo_multi). Build with the factories.
struct ZkOp {
  enum class Kind { kCreate, kDelete, kSetData, kCheck };
  Kind kind = Kind::kCheck;
  std::string path;
  std::string data;
  int32_t version = -1;  // -1: any version
  CreateMode mode = CreateMode::kPersistent;
  AclList acl;

  static ZkOp Create(std::string path, std::string data, CreateMode mode,
                     AclList acl);
  static ZkOp Delete(std::string path, int32_t version = -1);
  static ZkOp SetData(std::string path, std::string data,
                      int32_t version = -1);
  static ZkOp Check(std::string path, int32_t version);

  // "create /pause/level/10.0.0.1_80" for messages.
  std::string Describe() const;
};

struct ZkOpResult {
  Status status;
  std::string created_path;  // kCreate
  NodeStat stat;             // kSetData
};

// Outcome of a transaction. status is OK when every op applied. When an op
// failed, nothing applied, status is the first failing op's error (its
// message names the op), failed_op is its index and results[failed_op].status
// says why. When the transaction as a whole failed (connection loss, timeout,
// session expired or moved), failed_op is -1 and status is that error: a
// connection loss or timeout may have applied it, its reply lost.
struct MultiResult {
  Status status;
  int failed_op = -1;
  std::vector<ZkOpResult> results;
};

// An event from a one-shot watch.
struct WatchEvent {
  enum class Type { kCreated, kDeleted, kDataChanged, kChildrenChanged,
                    kNotWatching };
  Type type;
  std::string path;
};
const char* WatchEventTypeName(WatchEvent::Type t);

// Session life as the owner sees it.
struct SessionEvent {
  enum class Kind {
    kNewSession,    // connected with a session id we have not had before:
                    // ephemerals and watches must be (re)built
    kReconnected,   // the same session is back after a connection loss:
                    // everything survived; re-read what watches may have missed
    kDisconnected,  // connection lost; the client library reconnects itself.
                    // Keep all state, delete nothing.
    kExpired,       // the session is gone; a new one is being built if the
                    // options ask for it (kNewSession follows)
    kAuthFailed,    // the server refused our credentials
  };
  Kind kind;
  int64_t session_id = 0;
};
const char* SessionEventKindName(SessionEvent::Kind k);

}  // namespace zkroll

#endif  // ZKROLL_COMMON_ZK_TYPES_H_
