#!/usr/bin/env bash
# Installs dependencies, configures, builds and runs the whole test suite.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -L unit         # extra arguments go to ctest
#
# Environment: BUILD_DIR (default: build), BUILD_TYPE (default:
# RelWithDebInfo), JOBS (default: 2), SKIP_DEPS=1 to skip installing.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
JOBS=${JOBS:-2}

if [ "${SKIP_DEPS:-0}" != 1 ]; then
  scripts/install-deps.sh
fi

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE"
cmake --build "$BUILD_DIR" -j"$JOBS"

# Integration tests start their own ZooKeeper servers on free loopback
# ports, so test programs may run side by side.
(cd "$BUILD_DIR" && ctest --output-on-failure -j"$JOBS" --timeout 1200 "$@")

# The fuzzers (libFuzzer needs clang): a separate instrumented build, each
# target run over its seed corpus for a fixed number of inputs from a fixed
# seed (bounded by FUZZ_SECONDS). Skipped when ctest arguments select a
# subset, or with FUZZ_SECONDS=0.
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
if [ $# -eq 0 ] && [ "$FUZZ_SECONDS" != 0 ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DZKROLL_BUILD_FUZZERS=ON -DZKROLL_BUILD_TESTS=OFF -DZKROLL_FUZZ_SECONDS="$FUZZ_SECONDS"
  cmake --build "$BUILD_DIR-fuzz" -j"$JOBS" --target payload_fuzzer names_fuzzer config_fuzzer
  (cd "$BUILD_DIR-fuzz" && ctest --output-on-failure -L fuzz --timeout 600)
fi
