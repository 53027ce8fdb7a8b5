#!/usr/bin/env bash
# Coordinator benchmark: the per-instance overhead of a deploy beyond the
# drain wait and COMMAND's own time, and a rollout of many instances.
#
#   bench/coordinator/run.sh [BUILD_DIR]      (default: ./build)
#
# Starts, on loopback and in a temporary directory: one ZooKeeper server
# (the Debian `zookeeper` package, as the tests do), N zkroll-tiny-service
# instances and one zkroll-agent managing all of them. Then:
#   1. DEPLOYS single deploys (--drain-wait 0s, COMMAND /bin/true), each
#      timed from the outside and step by step from `--output json`;
#      overhead = wall time - drain step - command step.
#   2. one rollout of all N instances, --batch BATCH, --min-healthy N-BATCH,
#      instant command, zero drain.
#   3. ZooKeeper transactions per instance rollover: rollouts of TXN_N
#      instances, batch 1, COMMAND /bin/true, with `--drain fixed
#      --drain-wait 0s` and with `--drain auto`; the server's zxid (from the
#      `srvr` four-letter word) before and after each, divided by TXN_N.
#      Every committed write counts: pause, journal, agent record,
#      registration, resume, drain request, traffic reports, lock, sessions.
# Target (see bench/coordinator/README.md): overhead under 200 ms per
# instance.
#
# Environment: N (default 100), BATCH (10), DEPLOYS (10), TXN_N (10), ZKROLL_JAVA,
# ZKROLL_ZK_CLASSPATH, KEEP=1 to keep the work directory.
set -euo pipefail
. "$(cd "$(dirname "$0")/../.." && pwd)/scripts/lib/zk.sh"

BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
N=${N:-100}
BATCH=${BATCH:-10}
DEPLOYS=${DEPLOYS:-10}
TXN_N=${TXN_N:-10}
(( TXN_N <= N )) || TXN_N=$N
JAVA=${ZKROLL_JAVA:-/usr/bin/java}
ZKCP=${ZKROLL_ZK_CLASSPATH:-/usr/share/java/zookeeper.jar}
ZKROLL=$BUILD/coordinator/zkroll
AGENT=$BUILD/agent/zkroll-agent
TINY=$BUILD/tests/support/zkroll-tiny-service
for b in "$ZKROLL" "$AGENT" "$TINY"; do
  [[ -x $b ]] || { echo "missing $b: build the zkroll, zkroll-agent and zkroll-tiny-service targets" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/zkroll-bench-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ ${KEEP:-0} == 1 ]] && echo "work directory kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
now_ms() { date +%s%3N; }
# wait_until SECONDS COMMAND...: polls COMMAND every 50ms.
wait_until() {
  local limit=$1; shift
  local end=$(( $(now_ms) + limit * 1000 ))
  until "$@"; do
    (( $(now_ms) < end )) || return 1
    sleep 0.05
  done
}

# --- ZooKeeper -----------------------------------------------------------
ZKPORT=$(free_port)
mkdir -p "$WORK/zk/data"
cat > "$WORK/zk/zoo.cfg" <<CFG
tickTime=200
dataDir=$WORK/zk/data
clientPort=$ZKPORT
clientPortAddress=127.0.0.1
minSessionTimeout=400
maxSessionTimeout=60000
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
CFG
"$JAVA" -Xmx512m -XX:+UseSerialGC -Dzookeeper.admin.enableServer=false \
  -cp "$ZKCP" org.apache.zookeeper.server.ZooKeeperServerMain \
  "$WORK/zk/zoo.cfg" > "$WORK/zk/server.log" 2>&1 &
PIDS+=($!)
# A server still starting may accept the connection and never answer: the
# check gives up after 2 s and is tried again.
zk_ok() { [[ $(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZKPORT && printf ruok >&3 && cat <&3" 2>/dev/null) == imok ]]; }
wait_until 60 zk_ok || { echo "ZooKeeper did not start; see $WORK/zk/server.log" >&2; exit 1; }
ZK=127.0.0.1:$ZKPORT
SVC=bench

# --- instances and agent ------------------------------------------------
INSTANCES=()
PORTS=()
for ((i = 0; i < N; i++)); do
  p=$(free_port)
  "$TINY" --port "$p" --pidfile "$WORK/tiny-$p.pid" > /dev/null 2>&1 &
  PIDS+=($!)
  PORTS+=("$p")
  INSTANCES+=(--instance "$SVC@127.0.0.1:$p")
done
"$AGENT" --zk "$ZK" --host bench-host --check tcp --interval 1s \
  --metrics-listen 127.0.0.1:0 --timeout 500ms --rise 1 --fall 2 --session-timeout 10s \
  "${INSTANCES[@]}" > "$WORK/agent.log" 2>&1 &
PIDS+=($!)
registered() {
  local n
  n=$("$ZKROLL" --zk "$ZK" --output json status --service "$SVC" 2>/dev/null |
      grep -c '"registered":true' || true)
  [[ $n -ge $N ]]
}
wait_until 120 registered || { echo "agent did not register $N instances; see $WORK/agent.log" >&2; exit 1; }
echo "setup: ZooKeeper $ZK, $N instances registered by one agent"

# --- 1. single deploys ----------------------------------------------------
echo
echo "single deploys (drain 0s, COMMAND /bin/true), $DEPLOYS runs:"
OVERHEADS=()
for ((i = 0; i < DEPLOYS; i++)); do
  port=${PORTS[$(( i % N ))]}
  start=$(now_ms)
  "$ZKROLL" --zk "$ZK" --output json deploy --service "$SVC" \
    --instance "127.0.0.1:$port" --drain-wait 0s --health-interval 100ms \
    -- /bin/true > "$WORK/deploy-$i.json" 2> "$WORK/deploy-$i.err"
  end=$(now_ms)
  wall=$(( end - start ))
  steps=$(python3 - "$WORK/deploy-$i.json" <<'PY'
import json, sys
d = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "step" and e.get("verdict") != "started":
        d[e["step"]] = e["duration_ms"]
print(" ".join(f"{k}={v}" for k, v in d.items()), d.get("drain", 0) + d.get("command", 0))
PY
)
  excluded=${steps##* }
  overhead=$(( wall - excluded ))
  OVERHEADS+=("$overhead")
  printf '  run %2d: wall %4d ms, overhead %4d ms  [%s]\n' "$i" "$wall" "$overhead" "${steps% *}"
done
sorted=$(printf '%s\n' "${OVERHEADS[@]}" | sort -n)
p50=$(echo "$sorted" | awk -v n="${#OVERHEADS[@]}" 'NR == int((n + 1) / 2)')
max=$(echo "$sorted" | tail -1)
echo "  per-deploy overhead (whole process: start, connect, lock, journal, steps, exit): p50 ${p50} ms, max ${max} ms"

# --- 2. rollout -------------------------------------------------------------
echo
echo "rollout of $N instances, batch $BATCH, min-healthy $(( N - BATCH )), instant command, zero drain:"
start=$(now_ms)
"$ZKROLL" --zk "$ZK" --output json rollout --service "$SVC" --batch "$BATCH" \
  --min-healthy $(( N - BATCH )) --drain-wait 0s --health-interval 100ms \
  -- /bin/true > "$WORK/rollout.json" 2> "$WORK/rollout.err" || {
    echo "rollout failed; see $WORK/rollout.json and $WORK/rollout.err" >&2
    tail -5 "$WORK/rollout.json" >&2; exit 1; }
end=$(now_ms)
wall=$(( end - start ))
python3 - "$WORK/rollout.json" "$wall" "$N" "$BATCH" <<'PY'
import json, sys, collections, datetime
path, wall, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def t(e):
    return datetime.datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() * 1000
first, last, excluded = {}, {}, collections.defaultdict(int)
steps = collections.defaultdict(list)
for line in open(path):
    e = json.loads(line)
    if e.get("event") == "step":
        i = e["instance"]
        first.setdefault(i, t(e))
        last[i] = t(e)
        if e["verdict"] != "started":
            steps[e["step"]].append(e["duration_ms"])
            if e["step"] in ("drain", "command"):
                excluded[i] += e["duration_ms"]
    if e.get("event") == "result":
        print("  result:", e["outcome"], "-", e["message"].splitlines()[0])
# An instance's overhead: from the start of its pause to the agent's
# registration, minus its drain and COMMAND.
vals = sorted(last[i] - first[i] - excluded[i] for i in first)
batches = (n + batch - 1) // batch
print(f"  wall {wall} ms for {n} instances: {wall / batches:.0f} ms per batch of {batch}, "
      f"{wall / n:.1f} ms per instance amortized")
print(f"  per-instance overhead (pause start to registered, minus drain and command): "
      f"p50 {vals[len(vals) // 2]:.0f} ms, p90 {vals[int(len(vals) * 0.9)]:.0f} ms, max {vals[-1]:.0f} ms")
for name, d in steps.items():
    d.sort()
    print(f"    {name:<11} p50 {d[len(d) // 2]:4d} ms  max {d[-1]:4d} ms")
PY

# --- 3. ZooKeeper transactions per instance rollover ------------------------
# The server's last zxid (zk_zxid, scripts/lib/zk.sh): the difference around
# a rollout counts exactly the transactions the server committed meanwhile.
TXN_TARGETS=$(printf '127.0.0.1:%s\n' "${PORTS[@]:0:$TXN_N}" | paste -sd, -)
echo
echo "ZooKeeper transactions per instance rollover (rollout of $TXN_N instances, batch 1, COMMAND /bin/true):"
for mode in fixed auto; do
  wait_until 60 registered || { echo "instances did not come back; see $WORK/agent.log" >&2; exit 1; }
  z0=$(zk_zxid "$ZKPORT")
  "$ZKROLL" --zk "$ZK" --output json rollout --service "$SVC" --instances "$TXN_TARGETS" \
    --batch 1 --min-healthy $(( N - 1 )) --drain "$mode" --drain-wait "$([[ $mode == fixed ]] && echo 0s || echo 5s)" \
    --health-interval 100ms -- /bin/true > "$WORK/txn-$mode.json" 2> "$WORK/txn-$mode.err" || {
      echo "rollout ($mode) failed; see $WORK/txn-$mode.json" >&2; tail -3 "$WORK/txn-$mode.json" >&2; exit 1; }
  z1=$(zk_zxid "$ZKPORT")
  python3 -c "import sys; d=int(sys.argv[2])-int(sys.argv[1]); n=int(sys.argv[3]); print(f'  --drain {sys.argv[4]:<5}: {d} transactions, {d / n:.1f} per instance')" \
    "$z0" "$z1" "$TXN_N" "$mode$([[ $mode == fixed ]] && echo ' --drain-wait 0s' || echo ' (cap 5s)')"
done
