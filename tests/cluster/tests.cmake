# The history checker's own tests: hand-made transaction logs, each breaking
# one invariant, must be reported (no ZooKeeper, no root).
add_test(NAME history_check_test
         COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/cluster/history_check_test.py)
set_tests_properties(history_check_test PROPERTIES LABELS "unit" TIMEOUT 120)

# The verdict on callers' failed requests (fault windows), pure logic.
add_test(NAME cluster_verdict_test
         COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/cluster/verdict_test.py)
set_tests_properties(cluster_verdict_test PROPERTIES LABELS "unit" TIMEOUT 60)

# The cluster on one machine (needs root for network namespaces; skipped
# with a message otherwise). ZKROLL_CLUSTER_HOSTS / _PER_HOST shrink it.
add_test(NAME cluster_test
         COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/cluster/cluster_test.py
                 ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
set_tests_properties(cluster_test PROPERTIES LABELS "cluster" TIMEOUT 600
                     RUN_SERIAL TRUE SKIP_RETURN_CODE 77)
