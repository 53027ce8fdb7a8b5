#!/usr/bin/env bash
# Runs the test suite under CPU starvation, to find tests that depend on
# timing: every test program runs at `nice 19` while two busy loops at normal
# priority take the CPUs, RUNS times in a row (default 5). Stops at the
# first failing pass and names the tests that failed.
#
#   scripts/stress-nice.sh                      # the whole suite, 5 times
#   RUNS=2 scripts/stress-nice.sh               # twice
#   scripts/stress-nice.sh -L 'unit|zk'         # extra arguments go to ctest
#
# It runs an existing build; build first (scripts/test.sh, or cmake --build).
# Environment: BUILD_DIR (default: build), RUNS (default: 5), JOBS (ctest
# parallelism, default: 2), PASS_LIMIT (seconds one pass may take, default:
# 2400; the busy loops end with the pass, or at this limit at the latest),
# BUSY_NICE (the busy loops' niceness, default: 19). The loops run at the
# tests' niceness by default so that they compete with the tests as equals,
# with or without the kernel's autogroup scheduling: at nice 0 beside tests
# at nice 19 in one session, the tests get about 1.5% of a CPU, and a
# ZooKeeper server that cannot answer within a 2s session timeout then
# expires sessions by design, which says nothing about the tests.
# BUSY_NICE=0 gives that harsher run anyway.
# A test that fails here but passes alone waits on time instead of on an
# event: fix the test (tests/support/wait.h, common/timer.h), not the load.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
RUNS=${RUNS:-5}
JOBS=${JOBS:-2}
PASS_LIMIT=${PASS_LIMIT:-2400}
BUSY_NICE=${BUSY_NICE:-19}

if [ ! -f "$BUILD_DIR/CTestTestfile.cmake" ]; then
  echo "stress-nice: no test tree in $BUILD_DIR; build first (scripts/test.sh)" >&2
  exit 2
fi
case "$RUNS" in
  '' | *[!0-9]*) echo "stress-nice: RUNS must be a number, got '$RUNS'" >&2; exit 2 ;;
esac

LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/stress-nice.XXXXXX")
busy=()
stop_busy() {
  local p
  for p in "${busy[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "${busy[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  busy=()
}
trap stop_busy EXIT INT TERM

for ((run = 1; run <= RUNS; run++)); do
  # Two busy loops at normal priority, bounded by the pass limit in case
  # this script is killed without running its trap.
  for _ in 1 2; do
    nice -n "$BUSY_NICE" timeout "$PASS_LIMIT" sh -c 'while :; do :; done' &
    busy+=("$!")
  done
  log="$LOG_DIR/run-$run.log"
  start=$(date +%s)
  echo "stress-nice: pass $run/$RUNS (tests at nice 19, 2 busy loops at nice $BUSY_NICE; log $log)"
  status=0
  (cd "$BUILD_DIR" && timeout "$PASS_LIMIT" nice -n 19 \
     ctest --output-on-failure -j"$JOBS" --timeout 1200 "$@") >"$log" 2>&1 \
    || status=$?
  stop_busy
  summary=$(grep -E '^[0-9]+% tests passed|tests passed,' "$log" | tail -1 || true)
  echo "stress-nice: pass $run/$RUNS took $(($(date +%s) - start))s: ${summary:-no summary}"
  if [ "$status" != 0 ]; then
    echo "stress-nice: pass $run FAILED (ctest exit $status); failing tests:"
    sed -n '/The following tests FAILED:/,$p' "$log" | sed '1d' | grep -E '^\s+[0-9]+ - ' \
      || echo "  (none listed: see $log)"
    echo "stress-nice: full output in $log"
    exit 1
  fi
done
echo "stress-nice: all $RUNS passes succeeded (logs in $LOG_DIR)"
