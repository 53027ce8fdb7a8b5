// Splitting a command line into argv words, without a shell.
//
// Grammar: words are separated by spaces; 'single quotes' keep everything
// up to the next ' literally; "double quotes" keep everything but allow \"
// and \\ escapes; outside quotes a backslash escapes the next character.
// Nothing is expanded: no variables, globs, pipes or redirections. Used for
// `exec:` health checks and the coordinator's --on-failure command.
#ifndef ZKROLL_COMMON_COMMAND_LINE_H_
#define ZKROLL_COMMON_COMMAND_LINE_H_

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace zkroll {

// The words of `text`. On a malformed line (an unterminated quote, a
// trailing backslash) the InvalidArgument message is only the reason, e.g.
// "unterminated ' quote"; callers add which flag or spec it was.
Result<std::vector<std::string>> SplitCommandLine(std::string_view text);

}  // namespace zkroll

#endif  // ZKROLL_COMMON_COMMAND_LINE_H_
