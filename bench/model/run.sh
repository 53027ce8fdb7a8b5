#!/usr/bin/env bash
# The protocol model (tests/model/zkroll.pml) in configurations larger than
# the ones `ctest -L model` runs: a second coordinator together with
# coordinator SIGKILL, lost replies and expiries, or with the operator's
# manual pause / resume / status, or with two session expiries, or with
# the agent on a follower of its own. Each is an
# exhaustive search that must end with "errors: 0" and complete; the script
# prints states stored, transitions, memory and time per configuration.
#
#   bench/model/run.sh                 # every bench configuration
#   bench/model/run.sh bench_deploys   # some of them (tests/model/run_model.sh --list)
#
# Environment: MODEL_MEMLIM (MB, default 4096). Needs spin and gcc
# (scripts/install-deps.sh). One configuration at a time: each uses one
# core and up to MODEL_MEMLIM of memory.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ $# -eq 0 ]; then
  set -- bench_deploys bench_maintenance bench_expiries bench_two_followers \
    bench_two_followers_operator
fi
echo "spin: $(spin -V 2>/dev/null || echo missing); gcc: $(gcc -dumpversion 2>/dev/null || echo missing); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
status=0
for c in "$@"; do
  if [ -x /usr/bin/time ]; then  # GNU time (Debian package `time`): peak RSS
    /usr/bin/time -f "     $c: %e s wall, %M KB peak RSS" \
      tests/model/run_model.sh "$c" || status=1
  else
    tests/model/run_model.sh "$c" || status=1
  fi
done
echo "all: $(( $(date +%s) - start )) s"
exit $status
