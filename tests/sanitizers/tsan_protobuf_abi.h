// Force-included into every C++ file of the ThreadSanitizer build
// (CMakeLists.txt, ZKROLL_SANITIZE=thread).
//
// protobuf's MapFieldBase gains two members (seq1_, seq2_) when a file is
// compiled with __SANITIZE_THREAD__ defined (google/protobuf/map_field.h),
// but Debian's libprotobuf, which our code links and calls into, was built
// without TSan. Code compiled with the macro therefore disagrees with the
// library on the layout of every map field: google.protobuf.Struct (the
// instance record's payload) came out empty or crashed in Map lookups
// under TSan. The macro is removed for the rest of the translation unit,
// after the two other headers that read it took what they need from it:
// libstdc++'s race-detector annotations (_GLIBCXX_TSAN, set in c++config.h)
// and glog's (GLOG_SANITIZE_THREAD). No other header on this system reads
// it; TSan's instrumentation itself does not depend on the macro.
#ifndef ZKROLL_TESTS_SANITIZERS_TSAN_PROTOBUF_ABI_H_
#define ZKROLL_TESTS_SANITIZERS_TSAN_PROTOBUF_ABI_H_

#include <bits/c++config.h>

#if defined(__SANITIZE_THREAD__)
#define GLOG_SANITIZE_THREAD 1
#undef __SANITIZE_THREAD__
#endif

#endif  // ZKROLL_TESTS_SANITIZERS_TSAN_PROTOBUF_ABI_H_
