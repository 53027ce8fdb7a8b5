// How an expected failure reaches the user of `zkroll`: its exit code
// (exit_codes.h) and the advice printed beside it.
//
// Our own refusals (InvalidArgument, NotFound, FailedPrecondition) already
// say what to do; ZooKeeper errors get a hint about the connection or the
// credential.
//
// Thread-safety: pure functions.
#ifndef ZKROLL_COORDINATOR_ERROR_TEXT_H_
#define ZKROLL_COORDINATOR_ERROR_TEXT_H_

#include <string>

#include "common/status.h"

namespace zkroll::coordinator {

// The exit code of a failed ZooKeeper-facing step: 2 for InvalidArgument
// and NotFound, 1 for FailedPrecondition, 3 otherwise.
int ExitCodeFor(const Status& s);

// "; ZooKeeper refused access: ..." and the like, for ZooKeeper errors.
std::string Hint(const Status& s);

// The message of our own refusals; a ZooKeeper error with its hint.
std::string Explain(const Status& s);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_ERROR_TEXT_H_
