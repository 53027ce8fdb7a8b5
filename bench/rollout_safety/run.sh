#!/usr/bin/env bash
# What the rollout protections of issue 17 save: each bad version of the
# demo service rolled out twice over four instances under load, once with
# a plain `zkroll rollout` (one at a time, --min-healthy 3) and once with
# the protections (--canary 1 --canary-soak 5s --min-healthy-time 3s, a
# canary check of the error rate, --auto-revert to v1, --progress-deadline
# 10s). Bad versions:
#   crash   exits 2 s after it started listening (passes its first checks)
#   errors  answers 500 to every 10th request (/healthz passes)
#   slow    starts listening only after 60 s (past the deploy's checks)
#   hang    COMMAND hangs after stopping the old version (20 s, then fails)
# Every run has its own service, ports, two agents (checks every 200 ms,
# fall 2) and a watching, acknowledging load generator; they share one
# local ZooKeeper. Prints, per run: the exit code, the instances left on
# the bad version or down, failed requests (by cause) and the rollout's
# wall time. Figures in bench/README.md.
#
#   bench/rollout_safety/run.sh [--rate 400] [--only crash|errors|slow|hang]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib/zk.sh
. scripts/lib/procs.sh
RATE=400 ONLY=""
while [ $# -gt 0 ]; do
  case $1 in
    --rate) RATE=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case $RATE in (''|*[!0-9]*|0) echo "--rate must be a whole number above 0" >&2; exit 2 ;; esac
case $ONLY in (''|crash|errors|slow|hang) ;; (*) echo "--only: crash, errors, slow or hang" >&2; exit 2 ;; esac

BUILD=${BUILD_DIR:-build}
case $BUILD in (/*) ;; (*) BUILD=$ROOT/$BUILD ;; esac
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j2 --target zkroll zkroll-agent zkroll-demo-service zkroll-loadgen >/dev/null
fi
ZKROLL=$BUILD/coordinator/zkroll
AGENT=$BUILD/agent/zkroll-agent
LOADGEN=$BUILD/demo/zkroll-loadgen
UPGRADE=$ROOT/scripts/lib/demo-upgrade.sh
CHECK=$ROOT/tests/e2e/canary_error_rate.py
OUT=$ROOT/bench/out/rollout_safety
rm -rf "$OUT"; mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/zkroll-bench-safety.XXXXXX)
ZK_PORTS_FILE=$WORK/ports-taken  # zk_free_port never repeats a port
export DEMO_SERVICE_BIN=$BUILD/demo/zkroll-demo-service DEMO_HANG_MAX=20

PIDS=()
RUN_DIR=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -z "$RUN_DIR" ] || stop_run "$RUN_DIR" "" "${PIDS[@]}"
  zk_stop "$WORK/zk"
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(zk_free_port)
zk_start "$WORK/zk" "$port"
export ZKROLL_ZK=127.0.0.1:$port

registered() {
  "$ZKROLL" status --service "$1" --output json 2>/dev/null | grep -c '"registered":true' || true
}

# run NAME MODE BAD-ARGS...: one rollout of v2 with BAD-ARGS, MODE naive or
# protected, in a fresh fleet; results in $OUT/NAME.
run() {
  local name=$1 mode=$2; shift 2
  local dir=$WORK/$name svc=bench-$name-$$ p i v
  RUN_DIR=$dir PIDS=()
  mkdir -p "$dir/instances" "$OUT/$name"
  export DEMO_DIR=$dir DEMO_VERSION_LOG=$OUT/$name/versions.log
  local ports=()
  for i in 1 2 3 4; do ports+=("$(zk_free_port)"); done
  IFS=$'\n' ports=($(sort -n <<<"${ports[*]}")); unset IFS
  for p in "${ports[@]}"; do
    ZKROLL_IP=127.0.0.1 ZKROLL_PORT=$p "$UPGRADE" --version v1 >/dev/null
  done
  local checks=(--check http:/healthz --interval 200ms --timeout 300ms --rise 2 --fall 2
                --session-timeout 6s --metrics-listen 127.0.0.1:0)
  "$AGENT" --zk "$ZKROLL_ZK" --host "$name-a" "${checks[@]}" \
    --instance "$svc@127.0.0.1:${ports[0]}" --instance "$svc@127.0.0.1:${ports[1]}" \
    >"$OUT/$name/agent-a.log" 2>&1 &
  PIDS+=($!)
  "$AGENT" --zk "$ZKROLL_ZK" --host "$name-b" "${checks[@]}" \
    --instance "$svc@127.0.0.1:${ports[2]}" --instance "$svc@127.0.0.1:${ports[3]}" \
    >"$OUT/$name/agent-b.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 120); do [ "$(registered "$svc")" -ge 4 ] && break; sleep 0.25; done
  "$LOADGEN" --zk "$ZKROLL_ZK" --service "$svc" --mode watch --rate "$RATE" \
    --duration 10m --timeout 1s --connections 8 --quiet --stop-file "$dir/stop-load" \
    --summary-json "$OUT/$name/summary.json" --failure-log "$OUT/$name/failures.csv" \
    >"$OUT/$name/loadgen.log" 2>&1 &
  local load=$!
  PIDS+=($load)
  sleep 2
  local opts=(rollout --service "$svc" --batch 1 --min-healthy 3 --min-healthy-timeout 15s
              --drain auto --drain-wait 10s --drain-quiet 200ms --check http:/healthz
              --health-attempts 5 --health-interval 200ms --register-timeout 20s
              --output json)
  if [ "$mode" = protected ]; then
    opts+=(--canary 1 --canary-soak 5s --min-healthy-time 3s
           --canary-check "$CHECK 0.01 20 ${ports[*]}"
           --auto-revert "$UPGRADE --version v1" --progress-deadline 10s)
  fi
  local start rc=0
  start=$(date +%s.%N)
  "$ZKROLL" "${opts[@]}" -- "$UPGRADE" --version v2 "$@" >"$OUT/$name/rollout.jsonl" \
    2>"$OUT/$name/rollout.log" || rc=$?
  python3 -c 'import sys,time; print(f"{time.time() - float(sys.argv[1]):.1f}")' "$start" \
    >"$OUT/$name/seconds"
  echo "$rc" >"$OUT/$name/exit-code"
  # Two more seconds of load: what the fleet is left in counts too.
  sleep 2
  : >"$dir/stop-load"
  wait "$load" || true
  : >"$OUT/$name/end-state"
  for p in "${ports[@]}"; do
    v=$(python3 - "$p" <<'PY'
import http.client, json, sys
try:
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
    c.request("GET", "/stats")
    print(json.loads(c.getresponse().read()).get("version", "?"))
    c.close()
except (OSError, ValueError):
    print("down")
PY
)
    echo "$p $v" >>"$OUT/$name/end-state"
  done
  stop_run "$dir" "" "${PIDS[@]}"
  RUN_DIR="" PIDS=()
  echo "  $name: exit $rc, $(tr '\n' ' ' <"$OUT/$name/end-state")"
}

declare -A BAD=(
  [crash]="--exit-after 2s"
  [errors]="--error-rate 0.1"
  [slow]="--start-delay 60s"
  [hang]="--hang-fifo"
)
for v in crash errors slow hang; do
  [ -z "$ONLY" ] || [ "$ONLY" = "$v" ] || continue
  echo "== $v"
  for mode in naive protected; do
    if [ "$v" = hang ]; then
      mkfifo "$WORK/hang-$mode.fifo"
      run "$v-$mode" "$mode" --hang-fifo "$WORK/hang-$mode.fifo"
    else
      # shellcheck disable=SC2086  # the flags are two fixed words
      run "$v-$mode" "$mode" ${BAD[$v]}
    fi
  done
done

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
print()
print(f"{'run':<18} {'exit':>4} {'on v2':>5} {'down':>4} {'requests':>9} {'failed':>6}  {'seconds':>7}  failed by cause")
for name in sorted(os.listdir(out)):
    d = f"{out}/{name}"
    try:
        s = json.load(open(f"{d}/summary.json"))
        rc = open(f"{d}/exit-code").read().strip()
        secs = open(f"{d}/seconds").read().strip()
        state = [l.split()[1] for l in open(f"{d}/end-state") if l.strip()]
    except (OSError, ValueError, IndexError) as e:
        print(f"{name:<18} did not complete: {e}")
        continue
    causes = {k: v for k, v in s["failed_by_cause"].items() if v}
    print(f"{name:<18} {rc:>4} {state.count('v2'):>5} {state.count('down'):>4} "
          f"{s['sent']:>9} {s['failed']:>6}  {secs:>7}  {causes or '-'}")
PY
