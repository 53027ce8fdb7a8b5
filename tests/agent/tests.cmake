zkroll_add_test(NAME agent_test LABELS zk TIMEOUT 900
  SOURCES agent/agent_test.cc agent/agent_fixture.cc
  LIBS zkroll_agent_lib DEPENDS zkroll-agent zkroll-tiny-service)
zkroll_add_test(NAME agent_config_test LABELS unit
  SOURCES agent/config_test.cc agent/switch_decision_test.cc agent/summary_test.cc
  LIBS zkroll_agent_lib)
zkroll_add_test(NAME pause_guard_stress_test LABELS zk faults TIMEOUT 900
  SOURCES agent/pause_guard_stress_test.cc
  LIBS zkroll_agent_lib)
zkroll_add_test(NAME agent_systemd_test LABELS zk TIMEOUT 300
  SOURCES agent/systemd_test.cc agent/agent_fixture.cc
  LIBS zkroll_agent_lib DEPENDS zkroll-agent zkroll-tiny-service)
zkroll_add_test(NAME agent_metrics_test LABELS unit
  SOURCES agent/metrics_test.cc
  LIBS zkroll_agent_lib)
# A real Prometheus server (Debian's /usr/bin/prometheus) scrapes a real
# agent; skipped with a message when it is not installed.
zkroll_add_test(NAME agent_metrics_endpoint_test LABELS zk TIMEOUT 600
  SOURCES agent/metrics_endpoint_test.cc agent/agent_fixture.cc
  LIBS zkroll_agent_lib DEPENDS zkroll-agent zkroll-tiny-service)
