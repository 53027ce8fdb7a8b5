#include "agent/agent_options.h"

#include <boost/program_options.hpp>
#include <iostream>

#include "common/version.h"

namespace zkroll::agent {
int RunAgentMain(int argc, char** argv) {
  namespace po = boost::program_options;
  po::options_description desc("zkroll-agent options");
  desc.add_options()("help", "show this help")("version", "print the version");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "zkroll-agent " << ZKROLL_VERSION << "\n";
    return 0;
  }
  return 0;
}
}  // namespace zkroll::agent
