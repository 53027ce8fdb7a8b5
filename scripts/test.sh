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

cd "$BUILD_DIR"
# Integration tests start their own ZooKeeper servers on free loopback
# ports, so test programs may run side by side.
ctest --output-on-failure -j"$JOBS" --timeout 1200 "$@"
