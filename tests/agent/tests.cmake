zkroll_add_test(NAME agent_test LABELS zk TIMEOUT 900
  SOURCES agent/agent_test.cc agent/agent_fixture.cc
  LIBS zkroll_agent_lib DEPENDS zkroll-agent zkroll-tiny-service)
zkroll_add_test(NAME agent_config_test LABELS unit
  SOURCES agent/config_test.cc agent/switch_decision_test.cc agent/summary_test.cc
          agent/drain_request_test.cc agent/reload_plan_test.cc
  LIBS zkroll_agent_lib)
zkroll_add_test(NAME pause_guard_stress_test LABELS zk faults TIMEOUT 900
  SOURCES agent/pause_guard_stress_test.cc
  LIBS zkroll_agent_lib)
zkroll_add_test(NAME agent_systemd_test LABELS zk TIMEOUT 300
  SOURCES agent/systemd_test.cc agent/agent_fixture.cc
  LIBS zkroll_agent_lib DEPENDS zkroll-agent zkroll-tiny-service)
zkroll_add_test(NAME traffic_observe_test LABELS zk TIMEOUT 300
  SOURCES agent/traffic_observe_test.cc agent/agent_fixture.cc
  LIBS zkroll_agent_lib
  DEPENDS zkroll-agent zkroll-tiny-service zkroll-demo-service zkroll-test-caller)
target_compile_definitions(traffic_observe_test PRIVATE
  ZKROLL_DEMO_SERVICE_BIN="$<TARGET_FILE:zkroll-demo-service>")
zkroll_add_test(NAME traffic_observer_test LABELS zk
  SOURCES agent/traffic_observer_test.cc
  LIBS zkroll_agent_lib)
zkroll_add_test(NAME agent_metrics_test LABELS unit
  SOURCES agent/metrics_test.cc
  LIBS zkroll_agent_lib)
# A real Prometheus server (Debian's /usr/bin/prometheus) scrapes a real
# agent; skipped with a message when it is not installed.
zkroll_add_test(NAME agent_metrics_endpoint_test LABELS zk TIMEOUT 600
  SOURCES agent/metrics_endpoint_test.cc agent/agent_fixture.cc
  LIBS zkroll_agent_lib DEPENDS zkroll-agent zkroll-tiny-service)
