#include "agent/agent_main.h"

int main(int argc, char** argv) { return zkroll::agent::AgentMain(argc, argv); }
