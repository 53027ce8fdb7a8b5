#include "coordinator/error_text.h"

#include "coordinator/exit_codes.h"

namespace zkroll::coordinator {

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
      return kExitUsage;
    case StatusCode::kFailedPrecondition:
      return kExitFailed;
    default:
      return kExitUnavailable;
  }
}

std::string Hint(const Status& s) {
  switch (s.code()) {
    case StatusCode::kPermissionDenied:
      return "; ZooKeeper refused access: pass --auth-file with a credential "
             "that may write /pause, /locks and /deploys and delete under "
             "/services/<service>";
    case StatusCode::kConnectionLoss:
    case StatusCode::kOperationTimeout:
    case StatusCode::kSessionExpired:
      return "; the connection to ZooKeeper is unstable: check the servers "
             "and the network, then run the command again";
    default:
      return "; check ZooKeeper's health and run the command again";
  }
}

std::string Explain(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kFailedPrecondition:
      return s.message();
    default:
      return s.ToString() + Hint(s);
  }
}

}  // namespace zkroll::coordinator
