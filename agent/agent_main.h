// Entry point of zkroll-agent, kept in the library so tests and the binary
// run the same code.
#ifndef ZKROLL_AGENT_AGENT_MAIN_H_
#define ZKROLL_AGENT_AGENT_MAIN_H_

namespace zkroll::agent {

// Exit codes: 0 clean shutdown (SIGTERM/SIGINT), 2 bad flags or config,
// 1 anything else that stops the agent at start.
int AgentMain(int argc, char** argv);

}  // namespace zkroll::agent

#endif  // ZKROLL_AGENT_AGENT_MAIN_H_
