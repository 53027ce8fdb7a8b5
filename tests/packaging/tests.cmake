# The .deb packages (label `package`): built from this build tree with
# cpack, installed, checked and purged. Needs root; skipped otherwise.
add_test(NAME package_test
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/packaging/package_test.sh
                 ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR} ${CMAKE_CPACK_COMMAND})
set_tests_properties(package_test PROPERTIES LABELS "package" TIMEOUT 900
                     SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
