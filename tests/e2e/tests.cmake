add_test(NAME demo_e2e_test
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/e2e/demo_e2e_test.sh
                 ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
set_tests_properties(demo_e2e_test PROPERTIES LABELS "e2e" TIMEOUT 600
                     RUN_SERIAL TRUE)
# Rollouts that protect themselves (issue 17): bad versions of the demo
# service rolled out with a canary, a soak, a minimum healthy time, a canary
# check and an automatic revert, under load, against real ZooKeeper, agents
# and services; plus a good version and today's unprotected rollout.
zkroll_add_test(NAME rollout_safety_test LABELS e2e TIMEOUT 600
  SOURCES e2e/rollout_safety_test.cc coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib
  DEPENDS zkroll zkroll-agent zkroll-loadgen zkroll-demo-service)
target_compile_definitions(rollout_safety_test PRIVATE
  ZKROLL_DEMO_SERVICE_BIN="$<TARGET_FILE:zkroll-demo-service>"
  ZKROLL_LOADGEN_BIN="$<TARGET_FILE:zkroll-loadgen>"
  ZKROLL_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
set_tests_properties(rollout_safety_test PROPERTIES RUN_SERIAL TRUE)
