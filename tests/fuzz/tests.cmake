# Fuzz targets replayed over their seed corpus in every build (gcc, no
# libFuzzer); the clang build in tests/fuzz/CMakeLists.txt runs the real
# fuzzers for a bounded time.
foreach(target payload names config)
  add_executable(${target}_fuzz_replay fuzz/${target}_fuzz.cc fuzz/replay_main.cc)
  target_link_libraries(${target}_fuzz_replay PRIVATE zkroll_agent_lib zkroll_warnings)
  add_test(NAME ${target}_fuzz_replay
           COMMAND ${target}_fuzz_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${target})
  set_tests_properties(${target}_fuzz_replay PROPERTIES LABELS "unit;faults" TIMEOUT 120)
endforeach()
