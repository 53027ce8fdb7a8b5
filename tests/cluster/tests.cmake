# The history checker's own tests: hand-made transaction logs, each breaking
# one invariant, must be reported (no ZooKeeper, no root).
add_test(NAME history_check_test
         COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/cluster/history_check_test.py)
set_tests_properties(history_check_test PROPERTIES LABELS "unit" TIMEOUT 120)
