// The one mapping from ZooKeeper C client return codes to Status.
#ifndef ZKROLL_COMMON_ZK_CODES_H_
#define ZKROLL_COMMON_ZK_CODES_H_

#include <string>

#include "common/status.h"

namespace zkroll {

// Maps `rc` (a ZOO_ERRORS value) to a Status whose message is
// "<what>: <zerror text>". ZOK maps to OK.
Status StatusFromZooKeeper(int rc, const std::string& what);

}  // namespace zkroll

#endif  // ZKROLL_COMMON_ZK_CODES_H_
