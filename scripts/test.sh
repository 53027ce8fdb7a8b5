#!/usr/bin/env bash
# Installs dependencies, configures, builds and runs the whole test suite.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -L unit         # extra arguments go to ctest
#
# Environment: BUILD_DIR (default: build), BUILD_TYPE (default:
# RelWithDebInfo), JOBS (default: 2), SKIP_DEPS=1 to skip installing,
# FUZZ_SECONDS (see below), SANITIZE=0 to skip the sanitizer phase
# (SANITIZE=address or thread runs only that one), SANITIZE_ONLY=1 to run
# only the sanitizer phase (no dependency install, plain build, plain
# tests or fuzzers; SANITIZE=0 is then an error).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
JOBS=${JOBS:-2}

SANITIZE_ONLY=${SANITIZE_ONLY:-0}
if [ "$SANITIZE_ONLY" = 1 ] && [ "${SANITIZE:-}" = 0 ]; then
  echo "SANITIZE_ONLY=1 with SANITIZE=0 runs nothing" >&2; exit 2
fi

if [ "$SANITIZE_ONLY" != 1 ]; then
if [ "${SKIP_DEPS:-0}" != 1 ]; then
  scripts/install-deps.sh
fi

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE"
cmake --build "$BUILD_DIR" -j"$JOBS"

# Integration tests start their own ZooKeeper servers on free loopback
# ports, so test programs may run side by side.
(cd "$BUILD_DIR" && ctest --output-on-failure -j"$JOBS" --timeout 1200 "$@")
fi

# The fuzzers (libFuzzer needs clang): a separate instrumented build, each
# target run over its seed corpus for a fixed number of inputs from a fixed
# seed (bounded by FUZZ_SECONDS). Skipped when ctest arguments select a
# subset, or with FUZZ_SECONDS=0.
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
if [ $# -eq 0 ] && [ "$FUZZ_SECONDS" != 0 ] && [ "$SANITIZE_ONLY" != 1 ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DZKROLL_BUILD_FUZZERS=ON -DZKROLL_BUILD_TESTS=OFF -DZKROLL_FUZZ_SECONDS="$FUZZ_SECONDS"
  cmake --build "$BUILD_DIR-fuzz" -j"$JOBS" --target payload_fuzzer names_fuzzer config_fuzzer
  (cd "$BUILD_DIR-fuzz" && ctest --output-on-failure -L fuzz --timeout 600)
fi

# Sanitizers: the unit and ZooKeeper-backed tests (labels unit and zk, but
# not those also labelled e2e, faults, cluster, model or package: they are
# long, and their races are the protocol's, which the plain build and the
# model cover) again, built with AddressSanitizer + UndefinedBehaviorSanitizer
# and with ThreadSanitizer, each in its own build directory. Only the test
# programs that selection runs are built, plus the programs tests start
# (their paths are baked into the test support library), all instrumented:
# a report in zkroll or zkroll-agent run by a test counts like one in the
# test itself. Runtime options and suppressions: tests/sanitizers/. Every
# report is written to <build>-{asan,tsan}/sanitizer-reports/, printed here
# and fails the run. Skipped when ctest arguments select a subset, or with
# SANITIZE=0.
#
# ThreadSanitizer runs only the programs in which our own code runs on more
# than one thread (the whole CI run must stay under 45 minutes): the session
# layer (the ZooKeeper client's thread hands completions and watches to the
# I/O thread: zk_session_test, discovery_test, traffic_observer_test), the
# multi-threaded forwarder (forwarder_test), the health monitor's timers and
# child processes (health_monitor_test, health_exec_check_test), the
# coordinator's deploy threads (coordinator_zk_test) and whole instrumented
# zkroll-agent and zkroll processes (agent_test, coordinator_agent_flow_test,
# coordinator_switch_test with the agent's forwarder). The rest are
# single-threaded parsers and decisions, which ASan and UBSan cover.
TSAN_PROGRAMS="zk_session_test discovery_test traffic_observer_test forwarder_test
  health_monitor_test health_exec_check_test coordinator_zk_test agent_test
  coordinator_agent_flow_test coordinator_switch_test"
# On by default. Its cost is the two instrumented builds, not the tests: on
# a fresh clone on the 2-core reference machine (no compiler cache) the
# ASan build took 571 s and its 28 programs 62 s, the TSan build 211 s and
# its 10 programs 41 s; the whole run with this phase took 33 min 22 s,
# inside CI's 45-minute budget. SANITIZE=0 skips it; SANITIZE_ONLY=1 runs
# only this phase.
SANITIZE=${SANITIZE:-1}
if [ $# -eq 0 ] && [ "$SANITIZE" != 0 ]; then
  case "$SANITIZE" in
    1) kinds="address thread" ;;
    address|thread) kinds=$SANITIZE ;;
    *) echo "SANITIZE=$SANITIZE: expected 0, 1, address or thread" >&2; exit 2 ;;
  esac
  sanitizer_failed=0
  for kind in $kinds; do
    case "$kind" in address) dir="$BUILD_DIR-asan" ;; thread) dir="$BUILD_DIR-tsan" ;; esac
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DZKROLL_SANITIZE="$kind"
    # The tests ctest would select, kept to those that are programs of
    # this build (tests/CMakeLists.txt lists them in test-programs.txt).
    only=""
    if [ "$kind" = thread ]; then only=$TSAN_PROGRAMS; fi
    programs=$(cd "$dir" && ctest --show-only=json-v1 -L 'unit|zk' \
                 -LE 'e2e|faults|cluster|model|package' |
               python3 -c 'import json, sys
wanted = set(open(sys.argv[1]).read().split())
if sys.argv[2].split(): wanted &= set(sys.argv[2].split())
print(" ".join(t["name"] for t in json.load(sys.stdin)["tests"] if t["name"] in wanted))' \
                 test-programs.txt "$only")
    echo "sanitizer build ($kind): $programs"
    started=$SECONDS
    cmake --build "$dir" -j"$JOBS" --target $programs \
      zkroll zkroll-agent zkroll-tiny-service zkroll-test-caller
    built=$SECONDS
    rm -f "$dir"/sanitizer-reports/*
    if ! (cd "$dir" && ctest --output-on-failure -j"$JOBS" \
            -R "^($(echo "$programs" | tr ' ' '|'))\$"); then
      sanitizer_failed=1
    fi
    echo "sanitizer phase ($kind): build $((built - started)) s, tests $((SECONDS - built)) s"
    for report in "$dir"/sanitizer-reports/*; do
      [ -e "$report" ] || continue
      echo "=== sanitizer report $report" >&2
      cat "$report" >&2
      sanitizer_failed=1
    done
  done
  if [ "$sanitizer_failed" != 0 ]; then
    echo "sanitizer phase failed (reports above)" >&2
    exit 1
  fi
fi
