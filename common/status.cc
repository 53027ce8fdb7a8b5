#include "common/status.h"

#include <cstdlib>

#include <glog/logging.h>

namespace zkroll {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "InvalidArgument";
    case StatusCode::kNotFound: return "NotFound";
    case StatusCode::kAlreadyExists: return "AlreadyExists";
    case StatusCode::kBadVersion: return "BadVersion";
    case StatusCode::kNotEmpty: return "NotEmpty";
    case StatusCode::kPermissionDenied: return "PermissionDenied";
    case StatusCode::kConnectionLoss: return "ConnectionLoss";
    case StatusCode::kOperationTimeout: return "OperationTimeout";
    case StatusCode::kSessionExpired: return "SessionExpired";
    case StatusCode::kDeadlineExceeded: return "DeadlineExceeded";
    case StatusCode::kUnavailable: return "Unavailable";
    case StatusCode::kAborted: return "Aborted";
    case StatusCode::kFailedPrecondition: return "FailedPrecondition";
    case StatusCode::kInternal: return "Internal";
  }
  return "Unknown";
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

namespace result_internal {

void DieOkStatusWithoutValue() {
  LOG(FATAL) << "Result<T> built from an OK Status without a value";
  std::abort();  // LOG(FATAL) does not return; this tells the compiler so
}

void DieValueOfFailedResult(const Status& status) {
  LOG(FATAL) << "value() on failed Result: " << status.ToString();
  std::abort();
}

}  // namespace result_internal

}  // namespace zkroll
