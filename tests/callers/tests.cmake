# Callers that are not zkroll's own client (docs/callers.md): a Java caller
# built on Apache Curator's service discovery, and the kazoo example of
# docs/examples. Included from tests/CMakeLists.txt, so paths are relative
# to tests/.
#
# The Java caller is compiled against Debian's jars (libcurator-discovery-java
# and what it depends on; scripts/install-deps.sh installs them). Where no JDK
# or a jar is missing, the caller is not built and its tests are skipped,
# naming what is missing.
set(ZKROLL_CURATOR_MISSING "")
find_package(Java 11 COMPONENTS Runtime Development)
if(NOT Java_FOUND)
  set(ZKROLL_CURATOR_MISSING "no JDK (javac) was found at configure time")
else()
  include(UseJava)
  set(ZKROLL_CURATOR_JARS "")
  foreach(jar curator-x-discovery curator-recipes curator-framework curator-client zookeeper
              zookeeper-jute jackson-databind jackson-core jackson-annotations
              guava slf4j-api slf4j-nop)
    string(MAKE_C_IDENTIFIER "ZKROLL_JAR_${jar}" var)
    find_jar(${var} NAMES ${jar} PATHS /usr/share/java)
    if(${var})
      list(APPEND ZKROLL_CURATOR_JARS ${${var}})
    else()
      string(APPEND ZKROLL_CURATOR_MISSING " ${jar}.jar")
    endif()
  endforeach()
  if(ZKROLL_CURATOR_MISSING)
    set(ZKROLL_CURATOR_MISSING
        "jars not found in /usr/share/java:${ZKROLL_CURATOR_MISSING}")
  endif()
endif()

if(NOT ZKROLL_CURATOR_MISSING)
  add_jar(zkroll_curator_caller
    SOURCES callers/java/CuratorCaller.java
    INCLUDE_JARS ${ZKROLL_CURATOR_JARS}
    OUTPUT_NAME zkroll-curator-caller)
  get_target_property(ZKROLL_CURATOR_CALLER_JAR zkroll_curator_caller JAR_FILE)
  list(JOIN ZKROLL_CURATOR_JARS ":" ZKROLL_CURATOR_DEPS_CP)
  set(ZKROLL_CURATOR_CLASSPATH
      "${ZKROLL_CURATOR_CALLER_JAR}:${ZKROLL_CURATOR_DEPS_CP}")
  # For bench/e2e/run.sh and by hand: `java -cp $(cat build/curator-caller.classpath) CuratorCaller`.
  file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/curator-caller.classpath
       CONTENT "${ZKROLL_CURATOR_CLASSPATH}\n")
  set(ZKROLL_CURATOR_DEPENDS zkroll_curator_caller)
else()
  message(STATUS "Curator caller tests will be skipped: ${ZKROLL_CURATOR_MISSING}")
  set(ZKROLL_CURATOR_CLASSPATH "")
  set(ZKROLL_CURATOR_DEPENDS "")
  set(Java_JAVA_EXECUTABLE "")
endif()

set(ZKROLL_CALLER_DEPS zkroll zkroll-agent zkroll-demo-service)
zkroll_add_test(NAME curator_caller_test LABELS e2e zk TIMEOUT 600
  SOURCES callers/curator_caller_test.cc callers/caller_fixture.cc
          coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib
  DEPENDS ${ZKROLL_CALLER_DEPS} zkroll-loadgen ${ZKROLL_CURATOR_DEPENDS})
target_compile_definitions(curator_caller_test PRIVATE
  ZKROLL_JAVA="${Java_JAVA_EXECUTABLE}"
  ZKROLL_CURATOR_CLASSPATH="${ZKROLL_CURATOR_CLASSPATH}"
  ZKROLL_CURATOR_MISSING="${ZKROLL_CURATOR_MISSING}"
  ZKROLL_LOADGEN_BIN="$<TARGET_FILE:zkroll-loadgen>")

zkroll_add_test(NAME kazoo_example_test LABELS e2e zk TIMEOUT 300
  SOURCES callers/kazoo_example_test.cc callers/caller_fixture.cc
          coordinator/coordinator_fixture.cc
  LIBS zkroll_coordinator_lib DEPENDS ${ZKROLL_CALLER_DEPS})
target_compile_definitions(kazoo_example_test PRIVATE
  ZKROLL_KAZOO_EXAMPLE="${CMAKE_SOURCE_DIR}/docs/examples/kazoo_caller.py")

foreach(t curator_caller_test kazoo_example_test)
  target_compile_definitions(${t} PRIVATE
    ZKROLL_DEMO_SERVICE_BIN="$<TARGET_FILE:zkroll-demo-service>"
    ZKROLL_DEMO_UPGRADE="${CMAKE_SOURCE_DIR}/scripts/lib/demo-upgrade.sh")
endforeach()
# A test that skipped itself (no JDK, no jar, no kazoo) is reported by ctest
# as skipped, not passed.
set_tests_properties(curator_caller_test kazoo_example_test PROPERTIES
                     SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
