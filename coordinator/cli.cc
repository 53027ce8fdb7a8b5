#include "coordinator/cli.h"

#include <iostream>
#include <string>

#include "common/version.h"

namespace zkroll::coordinator {
int RunCli(int argc, char** argv) {
  std::string a = argc > 1 ? argv[1] : "--help";
  if (a == "--version") {
    std::cout << "zkroll " << ZKROLL_VERSION << "\n";
    return 0;
  }
  std::cout << "usage: zkroll COMMAND [options]\n";
  return a == "--help" ? 0 : 2;
}
}  // namespace zkroll::coordinator
