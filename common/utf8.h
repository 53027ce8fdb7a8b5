// UTF-8 well-formedness: the one validator behind every check of text that
// came from outside (znode payloads, flags, a command's output).
//
// Well-formed means RFC 3629: no overlong forms, no surrogates (U+D800 to
// U+DFFF), nothing above U+10FFFF, no truncated sequence. Pure functions.
#ifndef ZKROLL_COMMON_UTF8_H_
#define ZKROLL_COMMON_UTF8_H_

#include <cstddef>
#include <string_view>

namespace zkroll {

// Length (1 to 4) of the well-formed UTF-8 sequence starting at text[i], or
// 0 if the bytes there are not one. Requires i < text.size().
size_t Utf8SequenceLength(std::string_view text, size_t i);

// True when all of `text` is well-formed UTF-8.
bool IsValidUtf8(std::string_view text);

}  // namespace zkroll

#endif  // ZKROLL_COMMON_UTF8_H_
