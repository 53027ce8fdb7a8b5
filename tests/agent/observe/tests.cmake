zkroll_add_test(NAME sock_diag_test LABELS unit
  SOURCES agent/observe/sock_diag_test.cc
  LIBS zkroll_observe)
zkroll_add_test(NAME traffic_aggregator_test LABELS unit
  SOURCES agent/observe/traffic_aggregator_test.cc
  LIBS zkroll_observe)
