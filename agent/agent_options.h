#ifndef ZKROLL_AGENT_AGENT_OPTIONS_H_
#define ZKROLL_AGENT_AGENT_OPTIONS_H_
namespace zkroll::agent {
int RunAgentMain(int argc, char** argv);
}
#endif
