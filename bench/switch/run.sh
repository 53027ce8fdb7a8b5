#!/usr/bin/env bash
# Port switching under steady load: zero failed connections across a switch
# and across rollbacks, for callers that never refresh their instance list.
#
#   bench/switch/run.sh [--rate 500] [--wrk-connections 16] [--verify-window 5s]
#                       [--drain-wait 5s] [--out bench/out/switch]
#
# Starts a local ZooKeeper, zkroll-demo-service v1 on a local port P1, a
# backup instance of the same service (another demo service, registered
# as a plain instance), and one zkroll-agent that forwards the public
# address 127.0.0.1:P to P1 (forward_ports: P2, forward_protocol: http) and
# registers both instances. Then three phases, each under load for its whole
# length from three callers pointed at 127.0.0.1:P that never refresh:
#   zkroll-loadgen --targets, keep-alive connections      (--rate per second)
#   zkroll-loadgen --targets --new-connection-per-request (--rate per second)
#   wrk -t1 -c16 keep-alive, each connection pausing 10 ms between requests
# and one `zkroll deploy --switch` each:
#   1. switch v1 -> v2: COMMAND starts v2 on $ZKROLL_NEW_PORT; --stop-old
#      stops v1 (SIGTERM, graceful) after its connections drained or
#      --drain-wait passed. Expected: exit 0.
#   2. rollback, bad version v3 that answers GET / with 500 (/healthz
#      passes): the verify window sees 5xx and rolls back; --on-failure
#      stops v3. Expected: exit 1.
#   3. rollback, version v4 that crashes after its first answer (the
#      coordinator's health check): connects to it are refused, the
#      forwarder falls back to the old port, the verify window sees the
#      failed connects and rolls back. Expected: exit 1.
# Prints, per phase and caller, requests, failed by cause and the versions
# that answered, and the deploy's exit code and outcome. Outputs (summaries,
# timelines, deploy events, logs) go to --out.
#
# Target (issue): 0 failed connections in every phase (refused, reset,
# timeout; a 500 of the bad version is an answer, counted as non2xx).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib/zk.sh
. scripts/lib/procs.sh

RATE=500 WRK_CONNS=16 VERIFY=5s DRAIN=5s OUT=bench/out/switch
while [ $# -gt 0 ]; do
  case $1 in
    --rate) RATE=$2; shift 2 ;;
    --wrk-connections) WRK_CONNS=$2; shift 2 ;;
    --verify-window) VERIFY=$2; shift 2 ;;
    --drain-wait) DRAIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "switch bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $RATE in (''|*[!0-9]*|0) echo "--rate must be a whole number above 0" >&2; exit 2 ;; esac
case $WRK_CONNS in (''|*[!0-9]*|0) echo "--wrk-connections must be a whole number above 0" >&2; exit 2 ;; esac
for d in "$VERIFY" "$DRAIN"; do
  case $d in (*[!0-9a-z]*|'') echo "bad duration '$d' (e.g. 5s)" >&2; exit 2 ;; esac
done

BUILD=${BUILD_DIR:-build}
case $BUILD in (/*) ;; (*) BUILD=$ROOT/$BUILD ;; esac
ZKROLL=$BUILD/coordinator/zkroll
AGENT_BIN=$BUILD/agent/zkroll-agent
SERVICE_BIN=$BUILD/demo/zkroll-demo-service
LOADGEN=$BUILD/demo/zkroll-loadgen
# Bring the binaries up to date first: measuring a stale build is the
# easiest way to report numbers of code that no longer exists.
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  [ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$(pwd)" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j2 --target zkroll zkroll-agent zkroll-demo-service zkroll-loadgen >/dev/null
fi
for b in "$ZKROLL" "$AGENT_BIN" "$SERVICE_BIN" "$LOADGEN"; do
  [ -x "$b" ] || { echo "missing $b: build first (cmake --build $BUILD --target zkroll zkroll-agent zkroll-demo-service zkroll-loadgen), or set BUILD_DIR" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "wrk not installed: run scripts/install-deps.sh" >&2; exit 2; }

rm -rf "$OUT"; mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/zkroll-bench-switch.XXXXXX)
ZK_PORTS_FILE=$WORK/ports-taken  # zk_free_port never repeats a port
mkdir -p "$WORK/instances"
export SWITCH_DIR=$WORK SWITCH_SERVICE_BIN=$SERVICE_BIN
VERSION_SH=$ROOT/bench/switch/version.sh

pids=()
DEPLOY_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # A deploy still running is stopped first, while ZooKeeper is up.
  stop_run "$WORK" "$DEPLOY_PID" "${pids[@]}"
  zk_stop "$WORK/zk"
  mkdir -p "$OUT/logs"
  cp "$WORK"/*.log "$WORK"/*.conf "$WORK"/instances/*.log "$OUT/logs/" 2>/dev/null || true
  [ "$rc" -eq 0 ] || echo "switch bench: stopped (exit $rc); logs are in $OUT/logs" >&2
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '\n== %s\n' "$*"; }
http_get() {  # PORT -> "STATUS VERSION" or "error: ..."
  python3 - "$1" <<'PY'
import json, sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2) as r:
        print(r.status, json.loads(r.read()).get("version", "?"))
except urllib.error.HTTPError as e:
    print(e.code, "?")
except Exception as e:
    print(f"error: {e}")
PY
}

# --- ZooKeeper, v1, the backup, the agent -----------------------------------------
ZK_PORT=$(zk_free_port)
zk_start "$WORK/zk" "$ZK_PORT"
ZK=127.0.0.1:$ZK_PORT
SERVICE=web-bench
P=$(zk_free_port) P1=$(zk_free_port) P2=$(zk_free_port) B=$(zk_free_port)

say "web@127.0.0.1:$P forwarded by zkroll-agent to v1 on $P1 (spare port $P2); backup instance on $B"
ZKROLL_NEW_PORT=$P1 "$VERSION_SH" start v1 >/dev/null
ZKROLL_NEW_PORT=$B "$VERSION_SH" start v1-backup >/dev/null
cat >"$WORK/agent.conf" <<CFG
zk = $ZK
host = bench-host
metrics_listen = 127.0.0.1:0
[instance.web]
service = $SERVICE
ip = 127.0.0.1
port = $P
check = http:/healthz
interval = 200ms
forward_backend = 127.0.0.1:$P1
forward_ports = $P2
forward_protocol = http
forward_threads = 1
[instance.backup]
service = $SERVICE
ip = 127.0.0.1
port = $B
check = http:/healthz
interval = 200ms
CFG
"$AGENT_BIN" --config "$WORK/agent.conf" >"$WORK/agent.log" 2>&1 &
pids+=($!)

registered() {
  "$ZKROLL" status --zk "$ZK" --service "$SERVICE" --output json 2>/dev/null |
    python3 -c 'import json,sys
n=0
for line in sys.stdin:
    try: e=json.loads(line)
    except ValueError: continue
    if e.get("event")=="instance" and e.get("registered") in (True,"true","yes"): n+=1
print(n)' 2>/dev/null || echo 0
}
for _ in $(seq 1 120); do
  [ "$(registered)" -ge 2 ] && break
  sleep 0.25
done
[ "$(registered)" -ge 2 ] || { echo "switch bench: the agent did not register both instances in 30s" >&2; exit 1; }
answer=$(http_get "$P")
[ "$answer" = "200 v1" ] || { echo "switch bench: 127.0.0.1:$P answers '$answer', expected '200 v1'" >&2; exit 1; }
echo "registered: 2 instances of $SERVICE; 127.0.0.1:$P answers $answer"

# wrk: each connection pauses 10 ms between requests (a steady load, not a
# flood), counts answers by status and version, and reports as JSON.
cat >"$WORK/wrk.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {}; versions = {} end
function delay() return 10 end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local v = headers["X-Zkroll-Version"] or "?"
  versions[v] = (versions[v] or 0) + 1
end
function done(summary, latency, requests)
  local st, vs = {}, {}
  for _, t in ipairs(threads) do
    for k, n in pairs(t:get("statuses") or {}) do st[tostring(k)] = (st[tostring(k)] or 0) + n end
    for k, n in pairs(t:get("versions") or {}) do vs[k] = (vs[k] or 0) + n end
  end
  local function obj(m)
    local parts = {}
    for k, n in pairs(m) do table.insert(parts, string.format('"%s":%d', k, n)) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p99_us":%.0f,"statuses":%s,"versions":%s}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(99), obj(st), obj(vs)))
end
LUA

# --- one phase: steady load from three callers around one deploy --------------
# phase NAME -- DEPLOY ARGS...
phase() {
  local name=$1; shift 2
  local d=$OUT/$name
  mkdir -p "$d"
  say "phase $name: zkroll deploy --switch $*"
  rm -f "$WORK/stop-load"
  local lg=()
  for kind in keepalive per-request; do
    local extra=()
    [ "$kind" = per-request ] && extra=(--new-connection-per-request)
    "$LOADGEN" --targets "127.0.0.1:$P" --service "$SERVICE" --rate "$RATE" --duration 10m \
      --timeout 2s --stop-file "$WORK/stop-load" --quiet "${extra[@]}" \
      --summary-json "$d/loadgen-$kind.json" --timeline "$d/timeline-$kind.csv" \
      >"$d/loadgen-$kind.log" 2>&1 &
    lg+=($!)
  done
  wrk -t1 -c"$WRK_CONNS" -d600s --timeout 2s -s "$WORK/wrk.lua" "http://127.0.0.1:$P/" \
    >"$d/wrk.log" 2>&1 &
  local wrk_pid=$!
  pids+=("${lg[@]}" "$wrk_pid")
  sleep 2  # steady load before the deploy
  local t0 rc
  t0=$(date +%s.%N)
  set +e
  "$ZKROLL" deploy --zk "$ZK" --service "$SERVICE" --instance "127.0.0.1:$P" --switch \
    --backup "127.0.0.1:$B" --verify-window "$VERIFY" --verify-max-failures 0 \
    --drain-wait "$DRAIN" --check http:/healthz --health-attempts 40 --health-interval 250ms \
    --stop-old "$VERSION_SH stop old" --on-failure "$VERSION_SH stop new" \
    --reason "bench $name" --output json "$@" >"$d/deploy.jsonl" 2>"$d/deploy.log" &
  DEPLOY_PID=$!
  wait "$DEPLOY_PID"; rc=$?
  DEPLOY_PID=""
  set -e
  python3 -c 'import sys,time; print(f"{time.time() - float(sys.argv[1]):.1f}")' "$t0" >"$d/deploy-seconds.txt"
  echo "$rc" >"$d/deploy-rc.txt"
  sleep 2  # and after it
  touch "$WORK/stop-load"
  kill -INT "$wrk_pid" 2>/dev/null || true
  for p in "${lg[@]}" "$wrk_pid"; do wait "$p" 2>/dev/null || true; done
  python3 - "$d/deploy.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try: e = json.loads(line)
    except ValueError: continue
    t = e.get("time", "")[11:23]
    if e.get("event") == "step" and e.get("verdict") != "started":
        ms = e.get("duration_ms")
        print(f"  {t}  {e.get('step',''):<15} {e.get('verdict',''):<8} {str(ms) + 'ms' if ms is not None else '':>8}  {e.get('detail','')}")
    elif e.get("event") == "output":
        print(f"  {t}  | {e.get('line','')}")
    elif e.get("event") == "result":
        print(f"  {t}  result: {e.get('outcome')}: {e.get('message','')}")
PY
  echo "  deploy exit code $rc; 127.0.0.1:$P now answers $(http_get "$P")"
}

phase 1-switch-v2 -- -- "$VERSION_SH" start v2
phase 2-rollback-500 -- -- "$VERSION_SH" start v3-bad --root-status 500
phase 3-rollback-crash -- -- "$VERSION_SH" start v4-crash --crash-after 1

# --- results -----------------------------------------------------------------------
python3 - "$OUT" "$RATE" "$WRK_CONNS" <<'PY' | tee "$OUT/table.txt"
import csv, json, os, sys
out, rate, conns = sys.argv[1], sys.argv[2], sys.argv[3]
phases = [("1-switch-v2", "switch v1 -> v2", "0 (done)"),
          ("2-rollback-500", "rollback: v3 answers 500", "1 (rolled back)"),
          ("3-rollback-crash", "rollback: v4 crashes after its check", "1 (rolled back)")]
def fmt_versions(m):
    return ", ".join(f"{k}:{v}" for k, v in sorted(m.items())) or "-"
def moves(path):
    # The versions that answered, second by second, collapsed into runs.
    seconds = {}
    for r in csv.DictReader(open(path)):
        s = seconds.setdefault(int(r["second"]), set())
        for v in filter(None, r["version"].split("|")):
            s.add(v)
    runs = []
    for sec in sorted(seconds):
        key = "+".join(sorted(seconds[sec])) or "none"
        if runs and runs[-1][0] == key:
            runs[-1][2] = sec
        else:
            runs.append([key, sec, sec])
    return " -> ".join(f"{k} (s{a}-{b})" if a != b else f"{k} (s{a})" for k, a, b in runs)
print()
print(f"callers: zkroll-loadgen --targets at {rate}/s keep-alive and {rate}/s with a new "
      f"connection per request; wrk -t1 -c{conns} keep-alive, 10 ms pause per request")
print(f"{'phase':<38} {'deploy exit':<22} {'caller':<24} {'requests':>9} {'failed conn':>11} "
      f"{'non2xx':>7}  failed by cause / versions that answered")
total_conn_failed = 0
for key, title, expected in phases:
    d = f"{out}/{key}"
    try:
        rc = open(f"{d}/deploy-rc.txt").read().strip()
        secs = open(f"{d}/deploy-seconds.txt").read().strip()
    except OSError:
        print(f"{title:<38} did not run"); continue
    outcome = "?"
    try:
        for line in open(f"{d}/deploy.jsonl"):
            e = json.loads(line)
            if e.get("event") == "result":
                outcome = e.get("outcome", "?")
    except (OSError, ValueError):
        pass
    deploy = f"{rc} {outcome} ({secs}s)"
    first = True
    rows = []
    for kind, label in (("keepalive", "loadgen keep-alive"), ("per-request", "loadgen conn/request")):
        try:
            s = json.load(open(f"{d}/loadgen-{kind}.json"))
        except (OSError, ValueError) as e:
            rows.append((label, "-", "-", "-", f"no summary: {e}")); continue
        by = s["failed_by_cause"]
        conn_failed = s["failed"] - by.get("non2xx", 0)
        total_conn_failed += conn_failed
        causes = {k: v for k, v in by.items() if v}
        rows.append((label, s["sent"], conn_failed, by.get("non2xx", 0),
                     f"{causes or '-'} / {fmt_versions(s['versions'])}"))
    try:
        line = [l for l in open(f"{d}/wrk.log") if l.startswith("RESULT ")][-1]
        w = json.loads(line[7:])
        conn_failed = w["connect"] + w["read"] + w["write"] + w["timeout"]
        total_conn_failed += conn_failed
        non2xx = sum(n for k, n in w["statuses"].items() if not k.startswith("2"))
        errs = {k: w[k] for k in ("connect", "read", "write", "timeout") if w[k]}
        rows.append(("wrk keep-alive", w["requests"], conn_failed, non2xx,
                     f"{errs or '-'} / {fmt_versions(w['versions'])}"))
    except (OSError, IndexError, ValueError, KeyError) as e:
        rows.append(("wrk keep-alive", "-", "-", "-", f"no result: {e}"))
    for label, req, failed, non2xx, rest in rows:
        print(f"{(title if first else ''):<38} {(deploy if first else ''):<22} {label:<24} "
              f"{req:>9} {failed:>11} {non2xx:>7}  {rest}")
        first = False
    print(f"{'':<38} {'expected ' + expected:<22} conn/request answered by: "
          f"{moves(f'{d}/timeline-per-request.csv')}")
print(f"\ntarget: 0 failed connections (refused, reset, timeout; wrk connect/read/write/timeout) "
      f"in every phase: {'met' if total_conn_failed == 0 else f'MISSED ({total_conn_failed})'}")
PY
