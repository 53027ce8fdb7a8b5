zkroll_add_test(NAME http_scanner_test LABELS unit
  SOURCES agent/forward/http_scanner_test.cc
  LIBS zkroll_forward)
zkroll_add_test(NAME forwarder_test LABELS unit
  SOURCES agent/forward/forwarder_test.cc
  LIBS zkroll_forward)
