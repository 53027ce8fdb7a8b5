// Reading files that the programs under test wrote (logs, pid files,
// summaries, /proc entries), for assertions and failure messages.
#ifndef ZKROLL_TESTS_SUPPORT_FILES_H_
#define ZKROLL_TESTS_SUPPORT_FILES_H_

#include <string>
#include <vector>

namespace zkroll::testing {

// The whole content of `path`; "" if it does not exist or cannot be read
// (a program that has not written it yet: callers wait for it with
// WaitFor, never treat the absence as an error here).
std::string ReadFile(const std::string& path);

// The non-empty lines of `text`, without their '\n'.
std::vector<std::string> Lines(const std::string& text);

}  // namespace zkroll::testing

#endif  // ZKROLL_TESTS_SUPPORT_FILES_H_
