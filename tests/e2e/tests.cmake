add_test(NAME demo_e2e_test
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/e2e/demo_e2e_test.sh
                 ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
set_tests_properties(demo_e2e_test PROPERTIES LABELS "e2e" TIMEOUT 600
                     RUN_SERIAL TRUE)
