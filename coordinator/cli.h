#ifndef ZKROLL_COORDINATOR_CLI_H_
#define ZKROLL_COORDINATOR_CLI_H_
namespace zkroll::coordinator {
int RunCli(int argc, char** argv);
}
#endif
