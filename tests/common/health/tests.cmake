# Health-check library tests. Included from tests/CMakeLists.txt, so source
# paths are relative to tests/. The socket, exec and monitor tests use real
# loopback sockets and processes but no ZooKeeper, and finish in seconds.
zkroll_add_test(NAME health_check_spec_test LABELS unit
  SOURCES common/health/check_spec_test.cc
  LIBS zkroll_health)
zkroll_add_test(NAME health_hysteresis_test LABELS unit
  SOURCES common/health/hysteresis_test.cc
  LIBS zkroll_health)
zkroll_add_test(NAME health_socket_check_test LABELS unit
  SOURCES common/health/socket_check_test.cc
  LIBS zkroll_health)
zkroll_add_test(NAME health_exec_check_test LABELS unit
  SOURCES common/health/exec_check_test.cc
  LIBS zkroll_health)
zkroll_add_test(NAME health_monitor_test LABELS unit
  SOURCES common/health/monitor_test.cc
  LIBS zkroll_health)
