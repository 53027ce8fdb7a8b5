#include "common/zk_codes.h"

#include <zookeeper/zookeeper.h>

namespace zkroll {

Status StatusFromZooKeeper(int rc, const std::string& what) {
  if (rc == ZOK) return Status::Ok();
  StatusCode code;
  switch (rc) {
    case ZNONODE: code = StatusCode::kNotFound; break;
    case ZNODEEXISTS: code = StatusCode::kAlreadyExists; break;
    case ZBADVERSION: code = StatusCode::kBadVersion; break;
    case ZNOTEMPTY: code = StatusCode::kNotEmpty; break;
    case ZNOAUTH:
    case ZAUTHFAILED:
    case ZSESSIONCLOSEDREQUIRESASLAUTH:
      code = StatusCode::kPermissionDenied;
      break;
    // The outcome of the call is unknown and the session may still be
    // alive: the caller may retry on the same session.
    case ZCONNECTIONLOSS:
    case ZSESSIONMOVED:
    case ZTHROTTLEDOP:
      code = StatusCode::kConnectionLoss;
      break;
    case ZOPERATIONTIMEOUT: code = StatusCode::kOperationTimeout; break;
    // The handle is dead (expired, or being closed by us): nothing submitted
    // on it will ever succeed.
    case ZSESSIONEXPIRED:
    case ZINVALIDSTATE:
    case ZCLOSING:
      code = StatusCode::kSessionExpired;
      break;
    case ZBADARGUMENTS:
    case ZINVALIDACL:
    case ZNOCHILDRENFOREPHEMERALS:
      code = StatusCode::kInvalidArgument;
      break;
    default: code = StatusCode::kInternal; break;
  }
  const char* text = zerror(rc);
  return Status(code, what + ": " + (text ? text : "unknown error") + " (" +
                          std::to_string(rc) + ")");
}

const char* ZooKeeperCodeName(int rc) {
  switch (rc) {
    case ZOK: return "ok";
    case ZNONODE: return "no_node";
    case ZNODEEXISTS: return "node_exists";
    case ZBADVERSION: return "bad_version";
    case ZNOTEMPTY: return "not_empty";
    case ZNOAUTH: return "no_auth";
    case ZAUTHFAILED: return "auth_failed";
    case ZSESSIONCLOSEDREQUIRESASLAUTH: return "sasl_auth_required";
    case ZCONNECTIONLOSS: return "connection_loss";
    case ZSESSIONMOVED: return "session_moved";
    case ZTHROTTLEDOP: return "throttled";
    case ZOPERATIONTIMEOUT: return "operation_timeout";
    case ZSESSIONEXPIRED: return "session_expired";
    case ZINVALIDSTATE: return "invalid_state";
    case ZCLOSING: return "closing";
    case ZBADARGUMENTS: return "bad_arguments";
    case ZINVALIDACL: return "invalid_acl";
    case ZNOCHILDRENFOREPHEMERALS: return "no_children_for_ephemerals";
    case ZMARSHALLINGERROR: return "marshalling_error";
    default: return "other";
  }
}

}  // namespace zkroll
