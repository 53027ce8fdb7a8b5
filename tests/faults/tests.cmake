# Fault-injection tests (label `faults`). Included from tests/CMakeLists.txt,
# so source paths are relative to tests/. Real ZooKeeper, real zkroll and
# zkroll-agent processes, real tiny services; see docs/reliability.md.
#
# The shared fixture is compiled once, into a small library.
add_library(zkroll_fault_support STATIC)
target_sources(zkroll_fault_support PRIVATE
  faults/fault_fixture.cc
  coordinator/coordinator_fixture.cc)
target_link_libraries(zkroll_fault_support
  PUBLIC zkroll_test_support zkroll_coordinator_lib
  PRIVATE zkroll_warnings)

set(ZKROLL_FAULT_DEPS zkroll zkroll-agent zkroll-tiny-service)
zkroll_add_test(NAME fault_coordinator_kill_test LABELS faults TIMEOUT 300
  SOURCES faults/coordinator_kill_test.cc
  LIBS zkroll_fault_support DEPENDS ${ZKROLL_FAULT_DEPS})
zkroll_add_test(NAME fault_agent_test LABELS faults TIMEOUT 300
  SOURCES faults/agent_fault_test.cc
  LIBS zkroll_fault_support DEPENDS ${ZKROLL_FAULT_DEPS})
zkroll_add_test(NAME fault_zk_restart_test LABELS faults TIMEOUT 300
  SOURCES faults/zk_restart_test.cc
  LIBS zkroll_fault_support DEPENDS ${ZKROLL_FAULT_DEPS})
zkroll_add_test(NAME fault_hostile_payload_test LABELS faults TIMEOUT 300
  SOURCES faults/hostile_payload_test.cc
  LIBS zkroll_fault_support DEPENDS ${ZKROLL_FAULT_DEPS})
# Three ZooKeeper servers (Java, -Xmx128m each; tests/support/zk_ensemble.h).
zkroll_add_test(NAME fault_ensemble_test LABELS faults TIMEOUT 300
  SOURCES faults/ensemble_test.cc
  LIBS zkroll_fault_support DEPENDS ${ZKROLL_FAULT_DEPS})
# Under load: the demo service and the load generator as real processes.
zkroll_add_test(NAME fault_under_load_test LABELS faults TIMEOUT 300
  SOURCES faults/under_load_test.cc
  LIBS zkroll_fault_support
  DEPENDS ${ZKROLL_FAULT_DEPS} zkroll-demo-service zkroll-loadgen)
target_compile_definitions(fault_under_load_test PRIVATE
  ZKROLL_DEMO_SERVICE_BIN="$<TARGET_FILE:zkroll-demo-service>"
  ZKROLL_LOADGEN_BIN="$<TARGET_FILE:zkroll-loadgen>")
