# Coordinator (`zkroll`) tests. Included from tests/CMakeLists.txt, so source
# paths are relative to tests/.
#  unit: the child-process runner, output formats (every JSON event against
#        the documented schema: event_check.h) and argument validation
#        (real processes, no ZooKeeper).
#  zk:   the coordinator against a real ZooKeeper server, with the agent
#        simulated by the test (coordinator_zk_test) or real zkroll-agent
#        processes and tiny services (coordinator_agent_flow_test).
#  zk faults: the protocol races of issue 18, forced (protocol_race_test).
zkroll_add_test(NAME coordinator_unit_test LABELS unit TIMEOUT 120
  SOURCES coordinator/command_test.cc coordinator/reporter_test.cc
          coordinator/cli_test.cc coordinator/event_schema_test.cc
          coordinator/rollout_plan_test.cc coordinator/rollout_request_test.cc
          coordinator/rollout_safety_unit_test.cc
          coordinator/journal_states_test.cc
  LIBS zkroll_coordinator_lib)
zkroll_add_test(NAME coordinator_zk_test LABELS zk TIMEOUT 300
  SOURCES coordinator/coordinator_zk_test.cc coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib)
zkroll_add_test(NAME coordinator_agent_flow_test LABELS zk TIMEOUT 600
  SOURCES coordinator/agent_flow_test.cc coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib)
zkroll_add_test(NAME coordinator_init_test LABELS zk TIMEOUT 300
  SOURCES coordinator/init_test.cc coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib)
zkroll_add_test(NAME coordinator_switch_test LABELS zk TIMEOUT 600
  SOURCES coordinator/switch_test.cc coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib)
# The interleavings found by the protocol model (issue 18), forced against a
# real ZooKeeper: coordinator code driven in-process with a session the test
# expires on demand, and the real `zkroll` for status and resume.
zkroll_add_test(NAME coordinator_protocol_race_test LABELS zk faults
  TIMEOUT 300
  SOURCES coordinator/protocol_race_test.cc coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib DEPENDS zkroll)
# WaitForNode against a real server: watch, deadline, stop, cleanup wait.
zkroll_add_test(NAME coordinator_node_wait_test LABELS zk TIMEOUT 120
  SOURCES coordinator/node_wait_test.cc
  LIBS zkroll_coordinator_lib)
zkroll_add_test(NAME coordinator_drain_decision_test LABELS unit TIMEOUT 120
  SOURCES coordinator/drain_decision_test.cc
  LIBS zkroll_coordinator_lib)
# --drain auto with real agents, demo services and loadgen callers.
zkroll_add_test(NAME coordinator_drain_auto_test LABELS zk faults TIMEOUT 600
  SOURCES coordinator/drain_auto_test.cc coordinator/coordinator_fixture.cc
          demo/demo_fixture.cc
  LIBS zkroll_coordinator_lib zkroll_client
  DEPENDS zkroll zkroll-agent zkroll-loadgen zkroll-demo-service)
target_compile_definitions(coordinator_drain_auto_test PRIVATE
  ZKROLL_DEMO_SERVICE_BIN="$<TARGET_FILE:zkroll-demo-service>"
  ZKROLL_LOADGEN_BIN="$<TARGET_FILE:zkroll-loadgen>")
# rollout --resume and promote: the coordinator SIGKILLed at each step of an
# instance, then resumed (every instance upgraded exactly once); refusals.
zkroll_add_test(NAME coordinator_resume_test LABELS zk faults TIMEOUT 600
  SOURCES coordinator/resume_test.cc
  LIBS zkroll_fault_support DEPENDS zkroll zkroll-agent zkroll-tiny-service)
# A rollout that protects itself (issue 17): --min-healthy-time, canaries,
# --auto-revert, --progress-deadline, with a real agent checking real demo
# services over HTTP, replaced by a version-switching script.
zkroll_add_test(NAME coordinator_rollout_safety_test LABELS zk e2e
  TIMEOUT 600
  SOURCES coordinator/rollout_safety_test.cc coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib
  DEPENDS zkroll zkroll-agent zkroll-demo-service)
target_compile_definitions(coordinator_rollout_safety_test PRIVATE
  ZKROLL_DEMO_SERVICE_BIN="$<TARGET_FILE:zkroll-demo-service>")
