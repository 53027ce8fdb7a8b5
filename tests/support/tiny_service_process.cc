#include "tests/support/tiny_service_process.h"

#include <signal.h>
#include <unistd.h>

#include "tests/support/wait.h"

namespace zkroll::testing {

bool TinyService::Start() {
  ::unlink(pidfile().c_str());
  proc_ = std::make_unique<ChildProcess>();
  if (!proc_
           ->Start({ZKROLL_TINY_SERVICE_BIN, "--port", std::to_string(port_),
                    "--pidfile", pidfile()},
                   dir_.File("log"))
           .ok()) {
    return false;
  }
  // It writes the pidfile once it listens; one that exits at start (its
  // port taken) never will.
  return WaitFor(
             [&] {
               return ::access(pidfile().c_str(), F_OK) == 0 ||
                      !proc_->running();
             },
             milliseconds(10000)) &&
         proc_->running();
}

void TinyService::Stop() {
  if (!proc_) return;
  proc_->Signal(SIGTERM);
  proc_->Wait(milliseconds(10000));
  proc_.reset();
}

bool TinyService::running() { return proc_ && proc_->running(); }

}  // namespace zkroll::testing
