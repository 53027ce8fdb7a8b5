# The caller-side discovery client (client/) and the demo (demo/): the demo
# tests live in tests/demo and are declared here, next to the client's.
zkroll_add_test(NAME client_unit_test LABELS unit
  SOURCES client/weighted_round_robin_test.cc demo/load_stats_test.cc
          demo/error_rate_test.cc
  LIBS zkroll_client zkroll_demo_lib)
zkroll_add_test(NAME discovery_test LABELS zk TIMEOUT 300
  SOURCES client/discovery_test.cc
  LIBS zkroll_client)
zkroll_add_test(NAME http_pool_test LABELS zk TIMEOUT 300
  SOURCES client/http_pool_test.cc demo/demo_fixture.cc
  LIBS zkroll_client DEPENDS zkroll-demo-service)
zkroll_add_test(NAME demo_service_test LABELS e2e TIMEOUT 300
  SOURCES demo/demo_service_test.cc demo/demo_fixture.cc
  LIBS zkroll_client zkroll_demo_lib DEPENDS zkroll-demo-service)
zkroll_add_test(NAME loadgen_test LABELS zk e2e TIMEOUT 300
  SOURCES demo/loadgen_test.cc demo/demo_fixture.cc
  LIBS zkroll_client DEPENDS zkroll-demo-service zkroll-loadgen)
foreach(t http_pool_test demo_service_test loadgen_test)
  target_compile_definitions(${t} PRIVATE
    ZKROLL_DEMO_SERVICE_BIN="$<TARGET_FILE:zkroll-demo-service>"
    ZKROLL_LOADGEN_BIN="$<TARGET_FILE:zkroll-loadgen>")
endforeach()
