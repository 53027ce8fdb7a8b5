#!/usr/bin/env bash
# Cost of traffic observation (docs/design.md, "Traffic observation"): one
# zkroll-agent managing one instance (zkroll-demo-service) that holds N open
# keep-alive connections from one local caller process, of which `--active`
# send one request each per second. The agent's CPU share of one core is
# measured over a window without a drain request, then over a window while
# a request (written with kazoo, as the coordinator would) makes the agent
# sample every 100 ms and publish /traffic. Prints both, the difference,
# the publications per second and the last report's counters.
#
#   bench/observe/run.sh [--connections 1000] [--active 100] [--window 20]
#   PERF_RECORD=/tmp/observe.data bench/observe/run.sh   # profile the agent while observing
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/zk.sh

N=1000 ACTIVE=100 WINDOW=20
while [ $# -gt 0 ]; do
  case $1 in
    --connections) N=$2; shift 2 ;;
    --active) ACTIVE=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BUILD=${BUILD_DIR:-build}
cmake --build "$BUILD" -j2 --target zkroll-agent zkroll-demo-service >/dev/null
# kazoo comes from the distribution (python3-kazoo), for the system python.
KPY=${KAZOO_PYTHON:-/usr/bin/python3}
"$KPY" -c 'import kazoo' 2>/dev/null || { echo "needs python3-kazoo for $KPY (or set KAZOO_PYTHON)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/zkroll-bench-observe.XXXXXX)
ZK_PORTS_FILE=$WORK/ports-taken  # zk_free_port never repeats a port
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
PORT=$(zk_free_port)

"$BUILD/demo/zkroll-demo-service" --port "$PORT" --version v1 >"$WORK/svc.log" 2>&1 &
pids+=($!)
"$BUILD/agent/zkroll-agent" --zk "127.0.0.1:$ZK_PORT" --host bench-host \
  --instance "bench@127.0.0.1:$PORT" --interval 1s >"$WORK/agent.log" 2>&1 &
AGENT=$!
pids+=($AGENT)
for _ in $(seq 1 100); do grep -q "registered bench@" "$WORK/agent.log" && break; sleep 0.1; done

# The caller: N connections held open, ACTIVE of them send once a second.
python3 - "$PORT" "$N" "$ACTIVE" >"$WORK/caller.log" 2>&1 <<'PY' &
import resource, selectors, socket, sys, time
port, n, active = map(int, sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, n + 100))
sel = selectors.DefaultSelector()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
print("connected", n, flush=True)
req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
nxt = time.monotonic()
while True:
    now = time.monotonic()
    if now >= nxt:
        for s in socks[:active]:
            s.send(req)
        nxt = now + 1.0
    for key, _ in sel.select(max(0.0, nxt - time.monotonic())):
        key.fileobj.recv(65536)
PY
pids+=($!)
for _ in $(seq 1 100); do grep -q connected "$WORK/caller.log" && break; sleep 0.1; done
grep -q connected "$WORK/caller.log" || { cat "$WORK/caller.log" >&2; exit 1; }

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$AGENT/stat"; }
measure() {  # prints the agent's CPU % of one core over WINDOW seconds
  local c0 c1 t0 t1
  c0=$(cpu); t0=$(date +%s.%N)
  if [ -n "${PERF_RECORD:-}" ] && [ "${1:-}" = observing ]; then
    perf record -g -o "$PERF_RECORD" -p "$AGENT" -- sleep "$WINDOW" >/dev/null 2>&1
  else
    sleep "$WINDOW"
  fi
  c1=$(cpu); t1=$(date +%s.%N)
  python3 -c "print(f'{($c1 - $c0) / $ticks / ($t1 - $t0) * 100:.2f}')"
}

echo "instance 127.0.0.1:$PORT, $N connections ($ACTIVE sending 1 request/s), window ${WINDOW}s"
idle=$(measure)
echo "agent CPU without a drain request: $idle% of one core"

# The request: ephemeral, held by this python process's session.
"$KPY" - "$ZK_PORT" "$PORT" "$WINDOW" >"$WORK/request.log" 2>&1 <<'PY' &
import json, sys, time
from kazoo.client import KazooClient
zk_port, port, window = sys.argv[1], sys.argv[2], float(sys.argv[3])
zk = KazooClient(hosts=f"127.0.0.1:{zk_port}")
zk.start()
path = f"/drain/bench/127.0.0.1_{port}"
zk.ensure_path("/drain/bench")
zk.create(path, json.dumps({"deploy_id": "bench", "by": "bench@host", "interval_ms": 100}).encode(), ephemeral=True)
print("requested", flush=True)
time.sleep(window + 5)
PY
REQ=$!
pids+=($REQ)
for _ in $(seq 1 100); do grep -q requested "$WORK/request.log" && break; sleep 0.1; done
observing=$(measure observing)
"$KPY" - "$ZK_PORT" "$PORT" "$idle" "$observing" "$WINDOW" <<'PY'
import json, sys
from kazoo.client import KazooClient
zk_port, port = sys.argv[1], sys.argv[2]
idle, observing, window = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
zk = KazooClient(hosts=f"127.0.0.1:{zk_port}")
zk.start()
data, _ = zk.get(f"/traffic/bench/127.0.0.1_{port}")
r = json.loads(data)
zk.stop()
print(f"agent CPU while observing (100 ms samples): {observing:.2f}% of one core "
      f"(+{observing - idle:.2f} points)")
print(f"publications: {int(r['sequence'])} in about {window:.0f}s; "
      f"last report: source {r['source']}, connections {r.get('connections', 0)}, "
      f"bytes_received {r.get('bytes_received', 0)}, quiet_ms {r.get('quiet_ms', 0)}, "
      f"peers {len(r.get('peers', []))}, pids_known {r.get('pids_known', False)}")
PY
