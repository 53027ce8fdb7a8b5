#!/usr/bin/env bash
# Builds zkroll's two Debian packages and prints their paths:
#   zkroll-agent_<version>_<arch>.deb  the per-host agent, its systemd unit,
#                                      /etc/zkroll/agent.conf, the zkroll account
#   zkroll_<version>_<arch>.deb        the coordinator CLI
#
#   scripts/package.sh                          # -> build-package/packages/
#   sudo dpkg -i build-package/packages/*.deb   # then see docs/agent.md
#
# A separate build tree configured for the package (/usr prefix, no tests),
# so it never disturbs a development build. Environment: BUILD_DIR (default
# build-package), BUILD_TYPE (RelWithDebInfo; the packaged binaries are
# stripped), JOBS (2), SKIP_DEPS=1 to skip installing build dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build-package}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
JOBS=${JOBS:-2}

if [ "${SKIP_DEPS:-0}" != 1 ]; then
  scripts/install-deps.sh
fi

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
  -DCMAKE_INSTALL_PREFIX=/usr -DZKROLL_BUILD_TESTS=OFF "${launcher[@]}"
cmake --build "$BUILD_DIR" -j"$JOBS" --target zkroll zkroll-agent

out="$PWD/$BUILD_DIR/packages"
rm -f "$out"/*.deb
(cd "$BUILD_DIR" && cpack -G DEB -B "$out" >"$out.log" 2>&1) ||
  { cat "$out.log"; echo "package: cpack failed" >&2; exit 1; }
for deb in "$out"/*.deb; do
  echo "$deb"
  dpkg-deb -f "$deb" Package Version Depends | sed 's/^/  /'
done
