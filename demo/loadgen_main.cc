#include "demo/loadgen.h"

int main(int argc, char** argv) {
  return zkroll::demo::LoadgenMain(argc, argv);
}
