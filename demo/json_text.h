// Writing JSON text by hand for the demo's small, flat documents.
//
// Thread-safety: pure functions.
#ifndef ZKROLL_DEMO_JSON_TEXT_H_
#define ZKROLL_DEMO_JSON_TEXT_H_

#include <string>
#include <string_view>

namespace zkroll::demo {

// `text` as a JSON string literal, quotes included. Control characters,
// quotes and backslashes are escaped; other bytes are copied as they are
// (callers pass UTF-8).
std::string JsonQuote(std::string_view text);

// A number for JSON: integers without a fraction, others with up to three
// decimals ("0.412"); never NaN or infinity (written as 0).
std::string JsonNumber(double value);

}  // namespace zkroll::demo

#endif  // ZKROLL_DEMO_JSON_TEXT_H_
