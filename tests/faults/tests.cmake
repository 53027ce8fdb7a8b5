# Fault-injection tests (label `faults`). Included from tests/CMakeLists.txt,
# so source paths are relative to tests/. Real ZooKeeper, real zkroll and
# zkroll-agent processes, real tiny services; see docs/reliability.md.
set(ZKROLL_FAULT_DEPS zkroll zkroll-agent zkroll-tiny-service)
zkroll_add_test(NAME fault_coordinator_kill_test LABELS faults TIMEOUT 300
  SOURCES faults/coordinator_kill_test.cc faults/fault_fixture.cc
          coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib DEPENDS ${ZKROLL_FAULT_DEPS})
zkroll_add_test(NAME fault_agent_test LABELS faults TIMEOUT 300
  SOURCES faults/agent_fault_test.cc faults/fault_fixture.cc
          coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib DEPENDS ${ZKROLL_FAULT_DEPS})
zkroll_add_test(NAME fault_zk_restart_test LABELS faults TIMEOUT 300
  SOURCES faults/zk_restart_test.cc faults/fault_fixture.cc
          coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib DEPENDS ${ZKROLL_FAULT_DEPS})
zkroll_add_test(NAME fault_hostile_payload_test LABELS faults TIMEOUT 300
  SOURCES faults/hostile_payload_test.cc faults/fault_fixture.cc
          coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib DEPENDS ${ZKROLL_FAULT_DEPS})
# Three Java servers (-Xmx128m each) plus the suite's single server.
zkroll_add_test(NAME fault_ensemble_test LABELS faults TIMEOUT 300
  SOURCES faults/ensemble_test.cc faults/fault_fixture.cc
          coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib DEPENDS ${ZKROLL_FAULT_DEPS})
