#!/usr/bin/env bash
# The main job, on one machine: a rolling upgrade of a live service with
# zero failed requests.
#
#   scripts/demo.sh [--zk HOST:PORT[/chroot]] [--rate 1000] [--drain-wait 3s]
#                   [--out demo-out] [--mode poll|watch] [--requests N] [--naive]
#                   [--caller loadgen|curator]
#
# Starts a local single-node ZooKeeper (or uses --zk), two zkroll-agents
# standing for two hosts, four instances of a demo HTTP service at version 1
# and a load generator whose callers cache the instance list and refresh it
# every second (poll mode). Then `zkroll rollout` upgrades every instance to
# version 2, one at a time, ending each drain on evidence (--drain auto: the
# callers acknowledged a list without the instance and its traffic went
# quiet; 20 s at most); --drain-wait D keeps the fixed wait of D instead
# (longer than the callers' refresh). Prints the rollout's progress, why
# each drain ended and the load generator's summary,
# writes a timeline (CSV) and a chart (SVG), and stops everything it
# started on exit, also on Ctrl-C and on failure.
#
# --mode watch makes the callers follow the registry with watches instead.
# --requests N keeps the load on until N requests were sent. --naive
# upgrades the same way without zkroll (each instance is simply restarted),
# to show the failures zkroll removes (bench/e2e/run.sh compares them).
# --caller curator sends the load from a Java caller built on Apache
# Curator's ServiceDiscovery and ServiceProvider (tests/callers/java; needs
# a JDK and Debian's Curator jars) instead of zkroll's load generator: it
# writes summary.json but no timeline or chart.
#
# Exit code: 0 when every instance was upgraded and no request failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib/zk.sh
. scripts/lib/procs.sh

ZK="" RATE=1000 DRAIN="" DRAIN_CAP=20s OUT=demo-out REFRESH=1s MODE=poll REQUESTS=0 NAIVE=0
CALLER=loadgen
usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --zk) ZK=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --drain-wait) DRAIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --naive) NAIVE=1; shift ;;
    --caller) CALLER=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case $RATE in (''|*[!0-9]*|0) echo "demo.sh: --rate must be a whole number above 0" >&2; exit 2 ;; esac
case $REQUESTS in (''|*[!0-9]*) echo "demo.sh: --requests must be a whole number" >&2; exit 2 ;; esac
case $MODE in (poll|watch) ;; (*) echo "demo.sh: --mode must be poll or watch" >&2; exit 2 ;; esac
case $CALLER in (loadgen|curator) ;; (*) echo "demo.sh: --caller must be loadgen or curator, not '$CALLER'" >&2; exit 2 ;; esac
case $DRAIN in (*[!0-9a-z.]*) echo "demo.sh: bad --drain-wait '$DRAIN' (e.g. 3s)" >&2; exit 2 ;; esac
# No --drain-wait: --drain auto with a 20 s cap. A fixed wait paces the
# naive variant too; without one it waits 3 s per instance.
if [ -n "$DRAIN" ]; then
  DRAIN_ARGS=(--drain fixed --drain-wait "$DRAIN") DRAIN_TEXT="drain $DRAIN (fixed)"
else
  DRAIN_ARGS=(--drain auto --drain-wait "$DRAIN_CAP")
  DRAIN_TEXT="drain on evidence (--drain auto, at most $DRAIN_CAP)"
fi
NAIVE_PACE=${DRAIN:-3s}
DURATION=10m
if [ "$REQUESTS" -gt 0 ]; then DURATION=$(( (REQUESTS + RATE - 1) / RATE ))s; fi

say() { printf '\n== %s\n' "$*"; }

# --- build whatever is missing ----------------------------------------------
BUILD=${BUILD_DIR:-build}
case $BUILD in (/*) ;; (*) BUILD=$ROOT/$BUILD ;; esac
if [ "${DEMO_SKIP_BUILD:-0}" != 1 ]; then
  say "installing dependencies and building (incremental)"
  scripts/install-deps.sh
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j2 --target zkroll zkroll-agent zkroll-demo-service zkroll-loadgen >/dev/null
  if [ "$CALLER" = curator ]; then
    cmake --build "$BUILD" -j2 --target zkroll_curator_caller >/dev/null
  fi
fi
if [ "$CALLER" = curator ] && [ ! -f "$BUILD/curator-caller.classpath" ]; then
  echo "demo.sh: --caller curator needs the Java caller: a JDK and Debian's Curator jars" \
    "(scripts/install-deps.sh), then 'cmake --build $BUILD --target zkroll_curator_caller'" >&2
  exit 2
fi
ZKROLL=$BUILD/coordinator/zkroll
AGENT=$BUILD/agent/zkroll-agent
SERVICE_BIN=$BUILD/demo/zkroll-demo-service
LOADGEN=$BUILD/demo/zkroll-loadgen

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/zkroll-demo.XXXXXX)
ZK_PORTS_FILE=$WORK/ports-taken  # zk_free_port never repeats a port
mkdir -p "$WORK/instances"
export DEMO_DIR=$WORK DEMO_SERVICE_BIN=$SERVICE_BIN DEMO_NEW_VERSION=v2

PIDS=()
ROLLOUT_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # A rollout still running is stopped first, while ZooKeeper is up, so it
  # can delete its pause flag and journal the deploy as aborted.
  stop_run "$WORK" "$ROLLOUT_PID" "${PIDS[@]}"
  [ -z "$ZK" ] || [ ! -d "$WORK/zk" ] || zk_stop "$WORK/zk"
  if [ "$rc" -ne 0 ]; then
    echo "demo.sh: stopped (exit $rc); logs are in $OUT/logs" >&2
  fi
  mkdir -p "$OUT/logs"
  cp "$WORK"/*.log "$WORK"/instances/*.log "$OUT/logs/" 2>/dev/null || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- ZooKeeper -----------------------------------------------------------------
if [ -z "$ZK" ]; then
  port=$(zk_free_port)
  say "starting a local ZooKeeper on 127.0.0.1:$port"
  zk_start "$WORK/zk" "$port"
  ZK=127.0.0.1:$port
else
  say "using ZooKeeper at $ZK"
fi
export ZKROLL_ZK=$ZK
SERVICE=demo-$$

# --- four instances at version 1, two agents ---------------------------------------
PORTS=()
for i in 1 2 3 4; do PORTS+=("$(zk_free_port)"); done
say "starting 4 instances of $SERVICE at v1 on ports ${PORTS[*]}"
for p in "${PORTS[@]}"; do
  setsid "$SERVICE_BIN" --port "$p" --version v1 >>"$WORK/instances/$p.log" 2>&1 </dev/null &
  echo $! >"$WORK/instances/$p.pid"
done

# Two agents on one host: each serves its metrics on a free port (the log
# says which), not both on the default 127.0.0.1:9479.
agent_args=(--check http:/healthz --interval 500ms --timeout 500ms --rise 2 --fall 2
            --resync 5s --session-timeout 6s --metrics-listen 127.0.0.1:0)
say "starting agents host-a (${PORTS[0]}, ${PORTS[1]}) and host-b (${PORTS[2]}, ${PORTS[3]})"
"$AGENT" --zk "$ZK" --host host-a "${agent_args[@]}" \
  --instance "$SERVICE@127.0.0.1:${PORTS[0]}" --instance "$SERVICE@127.0.0.1:${PORTS[1]}" \
  >"$WORK/agent-host-a.log" 2>&1 &
PIDS+=($!)
"$AGENT" --zk "$ZK" --host host-b "${agent_args[@]}" \
  --instance "$SERVICE@127.0.0.1:${PORTS[2]}" --instance "$SERVICE@127.0.0.1:${PORTS[3]}" \
  >"$WORK/agent-host-b.log" 2>&1 &
PIDS+=($!)

registered() {
  "$ZKROLL" status --service "$SERVICE" --output json 2>/dev/null |
    python3 -c 'import json,sys
n=0
for line in sys.stdin:
    try: e=json.loads(line)
    except ValueError: continue
    if e.get("event")=="instance" and e.get("registered") in (True,"true","yes"): n+=1
print(n)' 2>/dev/null || echo 0
}
for _ in $(seq 1 120); do
  [ "$(registered)" -ge 4 ] && break
  sleep 0.25
done
[ "$(registered)" -ge 4 ] || { echo "demo.sh: the agents did not register 4 instances in 30s" >&2; exit 1; }
say "registry: /services/$SERVICE"
"$ZKROLL" status --service "$SERVICE"

# --- load ---------------------------------------------------------------------------
if [ "$CALLER" = curator ]; then
  say "load: $RATE requests/s from a Java caller on Curator's ServiceProvider (watches)"
  CURATOR_REQUESTS=$REQUESTS
  [ "$CURATOR_REQUESTS" -gt 0 ] || CURATOR_REQUESTS=$((RATE * 600))
  java -Xmx256m -cp "$(cat "$BUILD/curator-caller.classpath")" CuratorCaller \
    --zk "$ZK" --service "$SERVICE" --rate "$RATE" --requests "$CURATOR_REQUESTS" \
    --max-seconds 900 --timeout-ms 2000 --stop-file "$WORK/stop-load" \
    >"$WORK/curator-caller.log" 2>&1 &
  LOADGEN_PID=$!
  PIDS+=($LOADGEN_PID)
  # The JVM starts slower than the load generator: wait (at most 60s)
  # until its provider lists all four instances.
  for _ in $(seq 1 240); do
    [ "$(grep '^instances ' "$WORK/curator-caller.log" | tail -1 | tr ',' '\n' | grep -c 127.0.0.1)" -ge 4 ] && break
    sleep 0.25
  done
else
if [ "$MODE" = poll ]; then
  say "load: $RATE requests/s, callers refresh their instance list every $REFRESH (poll mode)"
else
  say "load: $RATE requests/s, callers follow the registry with watches (watch mode)"
fi
"$LOADGEN" --zk "$ZK" --service "$SERVICE" --mode "$MODE" --poll-interval "$REFRESH" \
  --rate "$RATE" --duration "$DURATION" --connections 32 --timeout 2s \
  --timeline "$OUT/timeline.csv" --summary-json "$OUT/summary.json" \
  --list-log "$OUT/list-changes.csv" \
  --stop-file "$WORK/stop-load" --quiet >"$WORK/loadgen.log" 2>&1 &
LOADGEN_PID=$!
PIDS+=($LOADGEN_PID)
fi
# Let the callers warm up (two refreshes) so the chart shows steady traffic.
sleep 3

# --- the rollout --------------------------------------------------------------------------
ROLLOUT_START=$(date +%s.%N)
if [ "$NAIVE" = 1 ]; then
  say "naive rollout $SERVICE v1 -> v2 without zkroll: restart each instance in place"
  set +e
  ROLLOUT_RC=0
  : >"$OUT/rollout.jsonl"
  for p in "${PORTS[@]}"; do
    now=$(python3 -c 'import datetime; print(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")')
    printf '{"event":"step","time":"%s","instance":"%s@127.0.0.1:%s","step":"command","verdict":"started"}\n' \
      "$now" "$SERVICE" "$p" >>"$OUT/rollout.jsonl"
    echo "  restarting 127.0.0.1:$p"
    ZKROLL_PORT=$p ZKROLL_IP=127.0.0.1 "$ROOT/scripts/lib/demo-upgrade.sh" | sed 's/^/    /' || ROLLOUT_RC=1
    # Same pacing as the zkroll rollout: one instance per drain period.
    sleep "${NAIVE_PACE%s}"
  done
  set -e
else
say "rollout $SERVICE v1 -> v2: one instance at a time, at least 3 registered, $DRAIN_TEXT"
set +e
"$ZKROLL" rollout --service "$SERVICE" --batch 1 --min-healthy 3 \
  "${DRAIN_ARGS[@]}" --check http:/healthz --health-attempts 20 \
  --health-interval 250ms --register-timeout 30s --reason "demo v1->v2" \
  --output json -- "$ROOT/scripts/lib/demo-upgrade.sh" >"$OUT/rollout.jsonl" \
  2>"$WORK/rollout.log" &
ROLLOUT_PID=$!
# Show progress as it happens.
python3 -u - "$OUT/rollout.jsonl" "$ROLLOUT_PID" <<'PY' &
import json, os, sys, time
path, pid = sys.argv[1], int(sys.argv[2])
def alive():
    try: os.kill(pid, 0); return True
    except OSError: return False
pos = 0
while True:
    done = not alive()
    with open(path) as f:
        f.seek(pos); data = f.read(); pos = f.tell()
    for line in data.splitlines():
        try: e = json.loads(line)
        except ValueError: continue
        t = e.get("time", "")[11:23]
        if e.get("event") == "step":
            ms = e.get("duration_ms")
            took = f"{ms}ms" if e.get("verdict") != "started" else ""
            print(f"  {t}  {e['instance']:<28} {e['step']:<11} {e['verdict']:<8} {took:>7}  {e.get('detail','')}")
        elif e.get("event") == "output":
            print(f"  {t}  {e['instance']:<28} | {e.get('line','')}")
        elif e.get("event") in ("notice", "batch"):
            print(f"  {t}  {e.get('message', 'batch %s/%s' % (e.get('batch'), e.get('batches')))}")
        elif e.get("event") == "result":
            print(f"  {t}  result: {e.get('outcome')}: {e.get('message','')}")
    if done: break
    time.sleep(0.2)
PY
FOLLOW_PID=$!
PIDS+=($FOLLOW_PID)
wait "$ROLLOUT_PID"; ROLLOUT_RC=$?
ROLLOUT_PID=
wait "$FOLLOW_PID" 2>/dev/null
set -e
if [ "$ROLLOUT_RC" -ne 0 ]; then
  echo "demo.sh: zkroll rollout exited $ROLLOUT_RC; its log:" >&2
  tail -20 "$WORK/rollout.log" >&2
fi
fi
python3 -c 'import sys,time; print(f"{time.time() - float(sys.argv[1]):.2f}")' "$ROLLOUT_START" \
  >"$OUT/rollout-seconds.txt"

# Keep the load on a little longer: traffic must return to every instance.
sleep 3
if [ "$REQUESTS" -eq 0 ]; then touch "$WORK/stop-load"; fi
wait "$LOADGEN_PID" || true

# --- results ---------------------------------------------------------------------------------
say "every instance now answers:"
upgraded=0
for p in "${PORTS[@]}"; do
  v=$(python3 - "$p" <<'PY'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2) as r:
        print(json.loads(r.read()).get("version", "?"))
except Exception as e:
    print(f"error: {e}")
PY
)
  echo "  127.0.0.1:$p -> $v"
  [ "$v" = v2 ] && upgraded=$((upgraded + 1))
done

if [ "$NAIVE" != 1 ]; then
  say "why each drain ended"
  python3 - "$OUT/rollout.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("event") == "drain":
        print(f"  {e['instance'].split('@', 1)[1]:<16} {e['reason']}")
PY
fi

if [ "$CALLER" = curator ]; then
say "Curator caller summary"
tail -1 "$WORK/curator-caller.log"
# summary.json in the load generator's terms, for bench/e2e/run.sh.
python3 - "$WORK/curator-caller.log" "$OUT/summary.json" <<'PY'
import collections, json, sys
words = lambda line: dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
causes = collections.Counter()
summary = None
for line in open(sys.argv[1]):
    if line.startswith("fail "):
        causes[words(line).get("cause", "other")] += 1
    elif line.startswith("summary "):
        summary = words(line)
if summary is None:
    sys.exit("the Curator caller printed no summary")
out = {"caller": "curator", "sent": int(summary["sent"]), "ok": int(summary["ok"]),
       "failed": int(summary["failed"]), "failed_by_cause": dict(causes),
       "no_instance": int(summary["no_instance"])}
json.dump(out, open(sys.argv[2], "w"), indent=1)
print(f"  requests {out['sent']}, ok {out['ok']}, failed {out['failed']} {out['failed_by_cause']}")
PY
else
say "load generator summary"
tail -3 "$WORK/loadgen.log"
python3 - "$OUT" "$SERVICE" <<'PY'
import csv, json, sys, datetime
out, service = sys.argv[1], sys.argv[2]
summary = json.load(open(f"{out}/summary.json"))
start_ms = summary["started_at_unix_ms"]
# Deploy steps as seconds since the load started, for the chart.
with open(f"{out}/events.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["second", "instance", "step"])
    for line in open(f"{out}/rollout.jsonl"):
        try: e = json.loads(line)
        except ValueError: continue
        if e.get("event") != "step" or e.get("verdict") != "started": continue
        if e["step"] not in ("pause", "command", "registered"): continue
        t = datetime.datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        t = t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000
        inst = e["instance"].split("@", 1)[1]
        w.writerow([f"{(t - start_ms) / 1000:.2f}", inst, e["step"]])
print(f"  requests {summary['sent']}, ok {summary['ok']}, failed {summary['failed']} "
      f"{summary['failed_by_cause']}")
print(f"  latency p50 {summary['latency_ms']['p50']}ms p99 {summary['latency_ms']['p99']}ms "
      f"max {summary['latency_ms']['max']}ms; versions answered {summary['versions']}")
PY
python3 scripts/lib/demo_chart.py --timeline "$OUT/timeline.csv" --events "$OUT/events.csv" \
  --out "$OUT/chart.svg" --title "$SERVICE: requests per instance per second during rollout v1 -> v2"
fi

read -r sent failed < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["sent"], s["failed"])' "$OUT/summary.json")
say "files"
[ "$CALLER" = curator ] && echo "  Curator caller output: $OUT/logs/curator-caller.log (after exit)"
[ "$CALLER" = curator ] || echo "  timeline: $OUT/timeline.csv (second,instance,requests,ok,failed,version)"
[ "$CALLER" = curator ] || echo "  deploy steps: $OUT/events.csv"
echo "  rollout events: $OUT/rollout.jsonl"
[ "$CALLER" = curator ] || echo "  chart: $OUT/chart.svg (one line per instance; dashed lines mark pause, command and re-registration)"
echo
python3 -c 'import sys; print("rollout v1->v2: %s/4 instances upgraded, %s requests, %s failed" % (sys.argv[1], format(int(sys.argv[2]), ","), format(int(sys.argv[3]), ",")))' \
  "$upgraded" "$sent" "$failed"
[ "$ROLLOUT_RC" -eq 0 ] && [ "$upgraded" -eq 4 ] && [ "$failed" -eq 0 ]
