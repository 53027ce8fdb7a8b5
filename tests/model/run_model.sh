#!/usr/bin/env bash
# Runs spin on tests/model/zkroll.pml in named configurations.
#
#   tests/model/run_model.sh CASE...     run these cases
#   tests/model/run_model.sh --list      list the cases
#
# A case is a configuration (the -D bounds and fix switches of zkroll.pml)
# and an expectation:
#   pass       exhaustive search, "errors: 0", and complete: no "max search
#              depth too small", no memory limit reached, no truncation.
#   INVARIANT  spin must find a counterexample, and the violated assertion
#              must be that invariant: the model sees the hole the switched
#              off fix closes.
# Each case prints one line: states stored, transitions, memory, time, and
# for a counterexample the invariant and the depth of its trail (spin steps).
#
# Exit status: 0 all cases met their expectation, 1 one did not,
# 77 spin or a C compiler is missing (ctest reports a skip).
#
# Environment: MODEL_WORK (default: a fresh temporary directory, removed at
# the end), MODEL_MEMLIM (MB, default 4096), MODEL_DEPTH (default 100000).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
model=$here/zkroll.pml
memlim=${MODEL_MEMLIM:-4096}
depth=${MODEL_DEPTH:-100000}

# name | expectation | -D switches and bounds
# The bounds are per case so each stays small; together they cover every
# process of the model: deploys with a second coordinator, lost replies and
# expiries; coordinator SIGKILL; the operator's manual pause, resume and
# status next to a deploy.
cases=(
  "deploys|pass|-DCOORD_B=1 -DOP_ACTIONS=0 -DCRASHES=0 -DFLIPS=0 -DEXPIRIES=1 -DLOST=1"
  "crash|pass|-DCOORD_B=1 -DOP_ACTIONS=0 -DCRASHES=1 -DFLIPS=0 -DEXPIRIES=1 -DLOST=0"
  "maintenance|pass|-DCOORD_B=0 -DOP_ACTIONS=2 -DCRASHES=0 -DFLIPS=1 -DEXPIRIES=1 -DLOST=1"
  "single|pass|-DCOORD_B=0 -DOP_ACTIONS=0 -DCRASHES=1 -DFLIPS=1 -DEXPIRIES=2 -DLOST=1"
  # The agent on a follower of its own: no write of a coordinator brings
  # the agent's server up to date.
  "two_followers|pass|-DAGENT_FOLLOWER=1 -DCOORD_B=0 -DOP_ACTIONS=0 -DCRASHES=1 -DFLIPS=1 -DEXPIRIES=1 -DLOST=1"
  # Each fix switched off, in a configuration that holds its interleaving.
  "f1a_resume_off|no_foreign_flag_deleted|-DFIX_RESUME=0 -DCOORD_B=1 -DOP_ACTIONS=0 -DCRASHES=0 -DFLIPS=0 -DEXPIRIES=1 -DLOST=0"
  "f1a_resume_session_only|no_foreign_flag_deleted|-DFIX_RESUME_GUARD=0 -DCOORD_B=0 -DOP_ACTIONS=2 -DCRASHES=0 -DFLIPS=0 -DEXPIRIES=0 -DLOST=1"
  "f1b_adopt_off|adopts_only_own_flag|-DFIX_ADOPT=0 -DCOORD_B=1 -DOP_ACTIONS=0 -DCRASHES=0 -DFLIPS=0 -DEXPIRIES=1 -DLOST=0"
  "f1c_guard_off|no_foreign_flag_deleted|-DFIX_GUARD=0 -DCOORD_B=0 -DOP_ACTIONS=2 -DCRASHES=0 -DFLIPS=0 -DEXPIRIES=0 -DLOST=0"
  "f1c_guard_read_after_flag|no_foreign_flag_deleted|-DGUARD_READ_AFTER=1 -DCOORD_B=0 -DOP_ACTIONS=2 -DCRASHES=0 -DFLIPS=0 -DEXPIRIES=0 -DLOST=0"
  "f2_sync_off|command_only_while_flag_at_leader|-DFIX_SYNC=0 -DCOORD_B=0 -DOP_ACTIONS=0 -DCRASHES=0 -DFLIPS=0 -DEXPIRIES=1 -DLOST=0"
  "f3_watch_off|registered_at_rest|-DFIX_WATCH=0 -DCOORD_B=0 -DOP_ACTIONS=0 -DCRASHES=1 -DFLIPS=0 -DEXPIRIES=0 -DLOST=0"
  # F3 off, but with the slow resync: the instance is registered again.
  "f3_watch_off_resync|pass|-DFIX_WATCH=0 -DRESYNC=1 -DCOORD_B=0 -DOP_ACTIONS=0 -DCRASHES=1 -DFLIPS=0 -DEXPIRIES=0 -DLOST=0"
  "f4_fence_off|command_stopped_once_session_known_lost|-DFIX_FENCE=0 -DCOORD_B=0 -DOP_ACTIONS=0 -DCRASHES=0 -DFLIPS=0 -DEXPIRIES=1 -DLOST=0"
  # The agent's lost registration reply: the multi applied, the agent
  # believes the instance unregistered, it turns unhealthy and is never
  # deregistered.
  "learn_off|deregistered_at_rest|-DFIX_LEARN=0 -DCOORD_B=0 -DOP_ACTIONS=0 -DCRASHES=0 -DFLIPS=1 -DEXPIRIES=0 -DLOST=1"
  # The same read without the sync: the server the agent reconnected to has
  # not applied the registration yet and answers "no node".
  "learn_no_sync|deregistered_at_rest|-DLEARN_SYNC=0 -DCOORD_B=0 -DOP_ACTIONS=0 -DCRASHES=0 -DFLIPS=1 -DEXPIRIES=0 -DLOST=1"
  # Larger configurations for bench/model/run.sh (not run by ctest).
  "bench_deploys|pass|-DCOORD_B=1 -DOP_ACTIONS=0 -DCRASHES=1 -DFLIPS=0 -DEXPIRIES=1 -DLOST=1"
  "bench_maintenance|pass|-DCOORD_B=1 -DOP_ACTIONS=2 -DCRASHES=0 -DFLIPS=0 -DEXPIRIES=1 -DLOST=0"
  "bench_expiries|pass|-DCOORD_B=1 -DOP_ACTIONS=0 -DCRASHES=0 -DFLIPS=1 -DEXPIRIES=2 -DLOST=1"
  "bench_two_followers|pass|-DAGENT_FOLLOWER=1 -DCOORD_B=1 -DOP_ACTIONS=0 -DCRASHES=1 -DFLIPS=0 -DEXPIRIES=1 -DLOST=0"
  "bench_two_followers_operator|pass|-DAGENT_FOLLOWER=1 -DCOORD_B=0 -DOP_ACTIONS=2 -DCRASHES=1 -DFLIPS=1 -DEXPIRIES=1 -DLOST=1"
)

lookup() {
  local c
  for c in "${cases[@]}"; do
    if [ "${c%%|*}" = "$1" ]; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

if [ "${1:-}" = "--list" ]; then
  for c in "${cases[@]}"; do
    IFS='|' read -r name expect defs <<<"$c"
    printf '%-26s %-40s %s\n' "$name" "$expect" "$defs"
  done
  exit 0
fi
if [ $# -eq 0 ]; then
  echo "usage: $0 CASE... | --list" >&2
  exit 2
fi

if ! command -v spin >/dev/null 2>&1; then
  echo "SKIP: spin is not installed (Debian package 'spin'; scripts/install-deps.sh installs it)"
  exit 77
fi
cc=${CC:-gcc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "SKIP: no C compiler ($cc) to build spin's verifier"
  exit 77
fi

for name in "$@"; do
  if ! lookup "$name" >/dev/null; then
    echo "unknown case '$name'; run $0 --list" >&2
    exit 2
  fi
done

if [ -n "${MODEL_WORK:-}" ]; then
  work=$MODEL_WORK
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/zkroll-model.XXXXXX")
  trap 'rm -rf "$work"' EXIT
fi

failed=0
for name in "$@"; do
  IFS='|' read -r _ expect defs <<<"$(lookup "$name")"
  dir=$work/$name
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$model" "$dir/zkroll.pml"
  # shellcheck disable=SC2086  # defs is a list of -D words
  if ! (cd "$dir" && spin -a $defs zkroll.pml >spin.log 2>&1); then
    echo "FAIL $name: spin -a failed:"
    cat "$dir/spin.log"
    failed=1
    continue
  fi
  # -DSAFETY: only safety properties (the liveness one is checked at rest);
  # -DCOLLAPSE: exact state compression; -DMEMLIM bounds memory. A
  # counterexample case explores a few thousand states: there, compiling
  # pan.c with -O2 takes longer than the search, so it is not optimised.
  opt=-O2
  [ "$expect" = pass ] || opt=-O0
  if ! (cd "$dir" && "$cc" "$opt" -DSAFETY -DCOLLAPSE -DMEMLIM="$memlim" \
          -o pan pan.c >cc.log 2>&1); then
    echo "FAIL $name: compiling pan failed:"
    cat "$dir/cc.log"
    failed=1
    continue
  fi
  start=$(date +%s.%N)
  (cd "$dir" && ./pan -m"$depth" >pan.log 2>&1)
  end=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  log=$dir/pan.log
  errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$log" | head -1)
  stored=$(awk '/states, stored/ { print $1; exit }' "$log")
  trans=$(awk '/transitions \(= stored\+matched\)/ { print $1; exit }' "$log")
  mem=$(awk '/total actual memory usage/ { print $1; exit }' "$log")
  figures="states ${stored:-?}, transitions ${trans:-?}, memory ${mem:-?} MB, ${secs} s"
  incomplete=""
  grep -q "max search depth too small" "$log" && incomplete="max search depth too small"
  grep -q "reached -DMEMLIM" "$log" && incomplete="memory limit reached"
  grep -qi "out of memory" "$log" && incomplete="out of memory"
  grep -q "Search not completed" "$log" && incomplete="search not completed"
  if [ -z "$errors" ]; then
    echo "FAIL $name: no verdict from pan ($figures):"
    tail -20 "$log"
    failed=1
    continue
  fi
  if [ "$expect" = pass ]; then
    if [ "$errors" != 0 ] || [ -n "$incomplete" ]; then
      echo "FAIL $name: expected no error and a complete search, got errors: $errors ${incomplete:+($incomplete)} ($figures)"
      grep -E "assertion violated|invalid end state|pan:" "$log" | head -5
      failed=1
    else
      echo "ok   $name: errors 0, complete; $figures"
    fi
  else
    violated=$(sed -n 's/.*assertion violated \([A-Za-z_]*\).*/\1/p' "$log" | head -1)
    trail=$(sed -n 's/.*assertion violated .*(at depth \([0-9]*\)).*/\1/p' "$log" | head -1)
    if [ "$errors" -ge 1 ] && [ "$violated" = "$expect" ]; then
      echo "ok   $name: counterexample for $violated, trail depth $trail; $figures"
    else
      echo "FAIL $name: expected a counterexample for $expect, got errors: $errors ${violated:+(violated $violated)} ${incomplete:+($incomplete)} ($figures)"
      grep -E "assertion violated|invalid end state" "$log" | head -5
      failed=1
    fi
  fi
done
exit $failed
