zkroll_add_test(NAME acl_test LABELS zk faults TIMEOUT 600
  SOURCES security/acl_test.cc agent/agent_fixture.cc
  LIBS zkroll_agent_lib zkroll_coordinator_lib zkroll_client DEPENDS zkroll-agent zkroll-tiny-service)
