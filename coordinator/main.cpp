#include "coordinator/cli.h"

int main(int argc, char** argv) {
  return zkroll::coordinator::RunCli(argc, argv);
}
