#include "demo/demo_service.h"

int main(int argc, char** argv) {
  return zkroll::demo::DemoServiceMain(argc, argv);
}
