#include "agent/agent_options.h"

int main(int argc, char** argv) { return zkroll::agent::RunAgentMain(argc, argv); }
