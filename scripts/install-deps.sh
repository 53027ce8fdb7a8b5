#!/usr/bin/env bash
# Installs every Debian package zkroll needs to build, test, demo and benchmark.
# Idempotent: packages already present are skipped, and `apt-get update` runs at
# most once per invocation (and only when something is missing).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libzookeeper-mt-dev          # ZooKeeper C client, multithreaded (compile with THREADED)
  zookeeper                    # Java server, started by tests and the demo
  default-jre-headless
  libboost-dev                 # Asio, Beast
  libboost-program-options-dev
  libssl-dev                   # OpenSSL's SHA-1 and base64: digest ACL ids (zkroll init)
  libgoogle-glog-dev
  libgtest-dev libgmock-dev
  libprotobuf-dev protobuf-compiler
  clang libclang-rt-14-dev     # libFuzzer targets
  libsystemd-dev               # sd_notify: the agent's readiness, status and watchdog
  prometheus-cpp-dev           # the agent's metrics registry and text format
  prometheus                   # tests: a real Prometheus scrapes the agent (and promtool)
  dpkg-dev                     # dpkg-shlibdeps: the .deb packages' dependencies (scripts/package.sh)
  procps iproute2 python3
  spin                         # model checker: tests/model (ctest -L model)
  util-linux                   # setpriv: traffic_observe_test runs the agent as another user
  haproxy wrk nginx            # benchmarks: bench/forward (reference proxy, load, backend)
  # Callers that are not zkroll's client (tests/callers, docs/callers.md):
  # a Java caller on Apache Curator's service discovery (its ServiceCache
  # needs the recipes jar, which the discovery package does not pull in),
  # and the kazoo example.
  default-jdk-headless libcurator-discovery-java libcurator-recipes-java
  libslf4j-java python3-kazoo  # (kazoo also: bench/observe writes a drain request)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
# The benchmarks run their own haproxy and nginx, and the tests their own
# Prometheus, with generated configurations. The system services that the
# packages' postinst may have started (on a machine whose init allows it;
# nginx's default site listens on port 80, Prometheus on 9090) are not
# needed, so a fresh install stops and disables them.
for svc in haproxy nginx prometheus; do
  [[ " ${missing[*]} " == *" $svc "* ]] || continue
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
    echo "install-deps: stopped and disabled the system $svc service (not used)"
  elif [ -x "/etc/init.d/$svc" ] && "/etc/init.d/$svc" status >/dev/null 2>&1; then
    $SUDO "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    echo "install-deps: stopped the system $svc service (not used)"
  fi
done
echo "install-deps: done"
