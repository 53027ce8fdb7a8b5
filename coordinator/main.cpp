#include <cstdlib>

#include "coordinator/cli.h"

int main(int argc, char** argv) {
  // A CLI reports unreachable servers in its own words (exit 3); the C
  // client's per-attempt error lines would only repeat it. An operator can
  // still ask for them with ZKROLL_ZK_LOG_LEVEL=error (or debug).
  setenv("ZKROLL_ZK_LOG_LEVEL", "none", /*overwrite=*/0);
  return zkroll::coordinator::RunCli(argc, argv);
}
