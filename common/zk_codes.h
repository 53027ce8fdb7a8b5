// The one mapping from ZooKeeper C client return codes to Status.
#ifndef ZKROLL_COMMON_ZK_CODES_H_
#define ZKROLL_COMMON_ZK_CODES_H_

#include <string>

#include "common/status.h"

namespace zkroll {

// Maps `rc` (a ZOO_ERRORS value) to a Status whose message is
// "<what>: <zerror text>". ZOK maps to OK.
Status StatusFromZooKeeper(int rc, const std::string& what);

// A short stable name of `rc` for metric labels: "ok", "no_node",
// "node_exists", "bad_version", "not_empty", "no_auth", "connection_loss",
// "operation_timeout", "session_expired", "invalid_state", ...; "other" for
// a code not listed here.
const char* ZooKeeperCodeName(int rc);

}  // namespace zkroll

#endif  // ZKROLL_COMMON_ZK_CODES_H_
