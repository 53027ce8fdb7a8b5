// Writing JSON text by hand for the demo's small, flat documents.
//
// Thread-safety: pure functions.
#ifndef ZKROLL_DEMO_JSON_TEXT_H_
#define ZKROLL_DEMO_JSON_TEXT_H_

#include <string>
#include <string_view>

#include "common/json_text.h"

namespace zkroll::demo {


// A number for JSON: integers without a fraction, others with up to three
// decimals ("0.412"); never NaN or infinity (written as 0).
std::string JsonNumber(double value);

}  // namespace zkroll::demo

#endif  // ZKROLL_DEMO_JSON_TEXT_H_
