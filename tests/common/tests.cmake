zkroll_add_test(NAME common_unit_test LABELS unit
  SOURCES common/names_test.cc common/payload_test.cc common/misc_test.cc
    common/duration_test.cc
    common/instance_record_test.cc
    common/refresh_loop_test.cc
    common/retry_test.cc
    common/timer_test.cc
    common/states_test.cc
  LIBS zkroll_common)
zkroll_add_test(NAME zk_session_test LABELS zk TIMEOUT 600
  SOURCES common/zk_session_test.cc
  LIBS zkroll_common)
