// Reading validated values out of parsed command-line options
// (boost::program_options), shared by the CLI (cli.cc) and the typed
// request of deploy and rollout (rollout_request.h).
//
// Each reader throws OptionError with a message naming the option and the
// bad value; the parsing edges catch it (the CLI prints it with exit 2,
// RolloutRequest turns it into InvalidArgument). Exceptions stop here: this
// is the argument-parsing edge of the program.
//
// Thread-safety: pure functions.
#ifndef ZKROLL_COORDINATOR_OPTIONS_H_
#define ZKROLL_COORDINATOR_OPTIONS_H_

#include <boost/program_options.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/duration.h"
#include "common/names.h"

namespace zkroll::coordinator {

struct OptionError {
  std::string message;
};

using OptionValues = boost::program_options::variables_map;

// Throws "--NAME is required" when the option is absent.
void Require(const OptionValues& vm, const char* name);
// The text of a string option (present: call Require or count first).
std::string Get(const OptionValues& vm, const char* name);
// The text of a string option, "" when absent.
std::string OptionalString(const OptionValues& vm, const char* name);
// A bool_switch option.
bool SwitchOption(const OptionValues& vm, const char* name);
// A duration option (common/duration.h); `allow_zero` false refuses 0.
Millis DurationOption(const OptionValues& vm, const char* name,
                      bool allow_zero);
// An int option within [min, max].
int IntOption(const OptionValues& vm, const char* name, int min, int max);
// --service (required).
ServiceName ServiceOption(const OptionValues& vm);
// --instance (required).
InstanceAddress InstanceOption(const OptionValues& vm);
// --deploy-id, or a generated id when absent.
DeployId DeployIdOption(const OptionValues& vm);
// The deploy id given as --NAME (required): --deploy of promote and revert,
// --resume of rollout.
DeployId RequiredDeployId(const OptionValues& vm, const char* name);
// A free text (--reason): not empty, at most 512 bytes of UTF-8 without
// control characters. `option` names it in messages ("--reason").
std::string ReasonText(const std::string& text, const char* option);
// A one-line command option (--on-failure, --stop-old) as an argv whose
// program can be run; never given to a shell.
std::vector<std::string> CommandOption(const OptionValues& vm,
                                       const char* name);

// The text of an option's value as the journal records it (strings as
// given, ints in decimal, switches "true"/"false"); nullopt for other types.
std::optional<std::string> OptionText(const boost::any& value);

}  // namespace zkroll::coordinator

#endif  // ZKROLL_COORDINATOR_OPTIONS_H_
