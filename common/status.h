// Status and Result<T>: expected failures as values.
//
// Every operation that can fail for reasons outside our own code (ZooKeeper
// said no, the network dropped, a health check failed, input was malformed)
// returns a Status or a Result<T>. Exceptions are reserved for the edges
// (argument and config parsing in main). ZooKeeper's integer return codes are
// mapped into a Status in exactly one place (zk_codes.cc) so that the
// retry/expiry classification below is the only one in the project.
//
// Thread-safety: Status and Result<T> are plain values; copy freely.
#ifndef ZKROLL_COMMON_STATUS_H_
#define ZKROLL_COMMON_STATUS_H_

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace zkroll {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad user input: names, addresses, flags, payloads
  kNotFound,          // znode (or other named thing) does not exist
  kAlreadyExists,     // znode exists
  kBadVersion,        // a version check failed (someone changed the node)
  kNotEmpty,          // znode has children
  kPermissionDenied,  // ACL refused the operation, or auth failed
  kConnectionLoss,    // transient: the client library reconnects by itself
  kOperationTimeout,  // transient: the server did not answer in time
  kSessionExpired,    // the session is gone with its ephemerals and watches
  kDeadlineExceeded,  // our own deadline passed (connect, wait, check)
  kUnavailable,       // a service or endpoint cannot be reached
  kAborted,           // stopped on request (signal, shutdown)
  kFailedPrecondition,// the world is not in the state the operation needs
  kInternal,          // a bug or an unexpected library answer
};

// Short stable name of a code, e.g. "NotFound".
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // The one rule for "is this failure transient" (common/retry.h repeats
  // calls by it). Connection loss and operation timeout say nothing about
  // the outcome of the call, and the session carries on: a repeat may
  // succeed in the same session. Session expiry ends the session with its
  // ephemerals and watches; a repeat can succeed only in a later session,
  // which exists only where the session renews itself
  // (ZkOptions::renew_on_expiry): so expiry is transient for kAnySession
  // and not for kSameSession. Whoever repeats a call in kAnySession must
  // make sure its meaning does not depend on the session (or bind it:
  // ZkSession::DeleteInSessionSync, RetryOptions::bound_session). Every
  // other failure is an answer, not transient.
  enum class RetryIn { kSameSession, kAnySession };
  bool IsTransient(RetryIn where) const {
    return code_ == StatusCode::kConnectionLoss ||
           code_ == StatusCode::kOperationTimeout ||
           (where == RetryIn::kAnySession &&
            code_ == StatusCode::kSessionExpired);
  }
  // IsTransient(RetryIn::kSameSession): whether the same session may still
  // succeed (and the outcome of the failed call is unknown).
  bool IsRetryable() const { return IsTransient(RetryIn::kSameSession); }

  // Returns a copy whose message is prefixed with `context: `.
  Status WithContext(const std::string& context) const;

  // "NotFound: /services/level/10.0.0.1_80 does not exist"
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status NotFound(std::string m) {
  return Status(StatusCode::kNotFound, std::move(m));
}
inline Status FailedPrecondition(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
inline Status Internal(std::string m) {
  return Status(StatusCode::kInternal, std::move(m));
}
inline Status DeadlineExceeded(std::string m) {
  return Status(StatusCode::kDeadlineExceeded, std::move(m));
}
inline Status Unavailable(std::string m) {
  return Status(StatusCode::kUnavailable, std::move(m));
}
inline Status Aborted(std::string m) {
  return Status(StatusCode::kAborted, std::move(m));
}

namespace result_internal {
// Broken invariants of the caller's code (not expected failures): log the
// misuse and abort, like a failed CHECK. Defined in status.cc, so this
// header, included nearly everywhere, does not pull in glog.
[[noreturn]] void DieOkStatusWithoutValue();
[[noreturn]] void DieValueOfFailedResult(const Status& status);
}  // namespace result_internal

// Either a value or a non-OK Status. Building one from an OK Status, or
// taking value() of a failed one, is a bug and aborts the process.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) result_internal::DieOkStatusWithoutValue();
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  const T& value() const& {
    if (!ok()) result_internal::DieValueOfFailedResult(status_);
    return *value_;
  }
  T& value() & {
    if (!ok()) result_internal::DieValueOfFailedResult(status_);
    return *value_;
  }
  T&& value() && {
    if (!ok()) result_internal::DieValueOfFailedResult(status_);
    return std::move(*value_);
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace zkroll

// Propagates a non-OK Status from an expression returning Status.
#define ZKROLL_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::zkroll::Status zkroll_status_ = (expr); \
    if (!zkroll_status_.ok()) return zkroll_status_; \
  } while (0)

#endif  // ZKROLL_COMMON_STATUS_H_
