# Runtime options of the sanitizer builds (-DZKROLL_SANITIZE=address|thread),
# set here and nowhere else: every test gets them in its environment, and the
# programs a test starts (zkroll, zkroll-agent, the tiny and demo services)
# inherit them, so they run instrumented with the same options.
#
# halt_on_error: the first report ends the process with a failure, so a
# test cannot pass over one. Reports go to files under
# <build>/sanitizer-reports/ (one per process: <kind>.<pid>) rather than to
# stderr, because a program a test starts may have its stderr discarded or
# may be killed before anyone reads it; scripts/test.sh prints every report
# file after ctest and fails the run if there is any, so a report in a child
# process fails it even when the test itself passed.
#
# ZKROLL_TEST_TIME_SCALE stretches every test deadline (tests/support/wait.h)
# and every ctest TIMEOUT: instrumented code runs several times slower
# (TSan 5-15x), and a deadline sized for a plain build would fail on speed,
# not on behaviour.
set(ZKROLL_SANITIZER_REPORTS ${CMAKE_BINARY_DIR}/sanitizer-reports)
file(MAKE_DIRECTORY ${ZKROLL_SANITIZER_REPORTS})
# Writable by all: traffic_observe_test runs the agent as another user.
file(CHMOD ${ZKROLL_SANITIZER_REPORTS} DIRECTORY_PERMISSIONS
     OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_WRITE GROUP_EXECUTE
     WORLD_READ WORLD_WRITE WORLD_EXECUTE)
set(supp ${CMAKE_CURRENT_SOURCE_DIR}/sanitizers)
if(ZKROLL_SANITIZE STREQUAL "address")
  set(ZKROLL_TEST_TIME_SCALE 3)
  set(ZKROLL_SANITIZER_ENV
    "ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_init_order=1:log_path=${ZKROLL_SANITIZER_REPORTS}/asan"
    "LSAN_OPTIONS=suppressions=${supp}/lsan.supp:print_suppressions=0"
    "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=${ZKROLL_SANITIZER_REPORTS}/ubsan")
elseif(ZKROLL_SANITIZE STREQUAL "thread")
  set(ZKROLL_TEST_TIME_SCALE 10)
  # TZ names the zone the programs would use anyway (/etc/localtime, glibc's
  # default), so times are formatted as before. Without it, glibc's tzset()
  # frees and re-copies its saved TZ string on every call (it cannot tell an
  # unset TZ from a changed one), which glog does for every log line's
  # time: two threads logging at once then show as a race on that string,
  # though glibc holds its own tzset lock there, one ThreadSanitizer cannot
  # see (libc is not instrumented). With TZ set, tzset() finds it unchanged
  # and touches nothing; a suppression would have had to name libc's
  # allocator calls under glog, hiding real races in our logging code.
  set(ZKROLL_SANITIZER_ENV
    "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=${supp}/tsan.supp:print_suppressions=0:log_path=${ZKROLL_SANITIZER_REPORTS}/tsan"
    "TZ=:/etc/localtime")
endif()
list(APPEND ZKROLL_SANITIZER_ENV "ZKROLL_TEST_TIME_SCALE=${ZKROLL_TEST_TIME_SCALE}")

get_property(zkroll_all_tests DIRECTORY PROPERTY TESTS)
foreach(t IN LISTS zkroll_all_tests)
  set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT ${ZKROLL_SANITIZER_ENV})
  get_property(timeout TEST ${t} PROPERTY TIMEOUT)
  if(timeout)
    math(EXPR timeout "${timeout} * ${ZKROLL_TEST_TIME_SCALE}")
    set_property(TEST ${t} PROPERTY TIMEOUT ${timeout})
  endif()
endforeach()
