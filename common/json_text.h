// JSON text for hand-written JSON lines (the coordinator's --output json,
// the load generator's summary), where a protobuf message would be overkill.
#ifndef ZKROLL_COMMON_JSON_TEXT_H_
#define ZKROLL_COMMON_JSON_TEXT_H_

#include <string>
#include <string_view>

namespace zkroll {

// `text` as a JSON string literal, quotes included. Control characters are
// escaped and invalid UTF-8 becomes U+FFFD, so the result is always valid
// JSON whatever bytes a command printed.
std::string JsonQuote(std::string_view text);

// `text` with every invalid UTF-8 sequence replaced by U+FFFD: what a
// protobuf string field must hold before it is printed as JSON (the
// coordinator's events carry whatever bytes a command printed).
std::string ValidUtf8(std::string_view text);

}  // namespace zkroll

#endif  // ZKROLL_COMMON_JSON_TEXT_H_
