#!/usr/bin/env bash
# Agent cost benchmark: one zkroll-agent managing N instances (default 1000)
# checked every second (tcp), against a local ZooKeeper and one process
# listening on N loopback ports. Prints the agent's CPU share of one core and
# its RSS over a measurement window after a warm-up.
#
#   bench/agent/run.sh [--instances 1000] [--interval 1s] [--warmup 15] [--window 30]
#                      [--metrics on|off] [--scrape 15]
#
# --metrics on (the default) serves /metrics on a free loopback port and
# scrapes it every --scrape seconds during the window, as a Prometheus
# would; off sets metrics_listen empty. The last scrape's size and time are
# printed.
#
# Targets (issue): under 5% of one core and under 50 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/zk.sh

N=1000 INTERVAL=1s WARMUP=15 WINDOW=30 METRICS=on SCRAPE=15
while [ $# -gt 0 ]; do
  case $1 in
    --instances) N=$2; shift 2 ;;
    --interval) INTERVAL=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --metrics) METRICS=$2; shift 2 ;;
    --scrape) SCRAPE=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BUILD=${BUILD_DIR:-build}
[ -x "$BUILD/agent/zkroll-agent" ] || { echo "build first: scripts/test.sh or cmake --build $BUILD" >&2; exit 2; }

WORK=$(mktemp -d /tmp/zkroll-bench-agent.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  zk_stop "$WORK/zk"
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ZK_PORT=$(zk_free_port)
zk_start "$WORK/zk" "$ZK_PORT"

# N consecutive free ports: probe a random base.
BASE=$(python3 - "$N" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randint(20000, 60000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
)
"$BUILD/tests/support/zkroll-tiny-service" --port "$BASE" --count "$N" --pidfile "$WORK/svc.pid" \
  >"$WORK/svc.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -f "$WORK/svc.pid" ] && break; sleep 0.1; done

{
  echo "host = bench-host"
  echo "zk = 127.0.0.1:$ZK_PORT"
  if [ "$METRICS" = on ]; then echo "metrics_listen = 127.0.0.1:0"; else echo "metrics_listen ="; fi
  for i in $(seq 0 $((N - 1))); do
    printf '[instance.i%d]\nservice = bench\nip = 127.0.0.1\nport = %d\ninterval = %s\ntimeout = 1s\n' \
      "$i" $((BASE + i)) "$INTERVAL"
  done
} >"$WORK/agent.conf"

"$BUILD/agent/zkroll-agent" --config "$WORK/agent.conf" >"$WORK/agent.log" 2>&1 &
AGENT=$!
pids+=($AGENT)
echo "agent pid $AGENT managing $N instances every $INTERVAL; warming up ${WARMUP}s"
sleep "$WARMUP"
registered=$(grep -c "registered bench@" "$WORK/agent.log" || true)
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$AGENT/stat"; }
c0=$(cpu); t0=$(date +%s.%N)
if [ "$METRICS" = on ]; then
  MPORT=$(sed -n 's|.*serving Prometheus metrics at http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$WORK/agent.log" | head -1)
  [ -n "$MPORT" ] || { echo "the agent did not say where it serves metrics; see its log" >&2; exit 1; }
  # Bounded: one scrape per SCRAPE seconds, for the window only.
  ( end=$(( $(date +%s) + WINDOW )); while [ "$(date +%s)" -lt "$end" ]; do
      curl -s -o "$WORK/scrape.txt" -w '%{size_download} %{time_total}\n' "http://127.0.0.1:$MPORT/metrics" >"$WORK/scrape.stat" || true
      sleep "$SCRAPE"; done ) &
  pids+=($!)
fi
if [ -n "${PERF_RECORD:-}" ]; then perf record -g -o "$PERF_RECORD" -p "$AGENT" -- sleep "$WINDOW" >/dev/null 2>&1; else sleep "$WINDOW"; fi
c1=$(cpu); t1=$(date +%s.%N)
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$AGENT/status")
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$AGENT/status")
python3 - "$c0" "$c1" "$t0" "$t1" "$ticks" "$rss_kb" "$hwm_kb" "$N" "$INTERVAL" "$registered" <<'PY'
import sys
c0, c1, t0, t1, ticks, rss, hwm = map(float, sys.argv[1:8])
n, interval, registered = sys.argv[8], sys.argv[9], sys.argv[10]
share = (c1 - c0) / ticks / (t1 - t0) * 100
print(f"instances {n}, interval {interval}, registered at warm-up end {registered}")
print(f"agent CPU: {share:.2f}% of one core over {t1 - t0:.0f}s (target < 5%)")
print(f"agent RSS: {rss / 1024:.1f} MB now, peak {hwm / 1024:.1f} MB (target < 50 MB)")
PY
if [ "$METRICS" = on ] && [ -s "$WORK/scrape.stat" ]; then
  read -r bytes secs <"$WORK/scrape.stat"
  echo "metrics: one scrape of /metrics is $((bytes / 1024)) KiB, answered in ${secs}s (every ${SCRAPE}s)"
else
  echo "metrics: off"
fi
