#!/usr/bin/env bash
# Forwarding cost: the same backend under the same wrk load, direct and
# through two TCP forwarders, side by side in one run, in interleaved rounds:
#   direct                      wrk -> backend
#   zkroll forward_threads=T    wrk -> zkroll-agent's forwarder -> backend
#   haproxy nbthread=T          wrk -> haproxy (mode tcp) -> backend
# for each T of --threads (default "1 2": one io thread each, then two).
# Each --mode is measured separately: keepalive (wrk's keep-alive
# connections: the cost of relaying bytes) and close (wrk sends
# "Connection: close", so every request is a new connection: the cost of
# accepting and connecting too).
#
# Prints, per mode and variant, the median over the rounds of req/s, p50
# and p99 latency, the proxy's CPU time per request, and the ratios
# zkroll / haproxy at the same thread count; per-round numbers go to
# bench/out/forward/rounds.csv.
#
#   bench/forward/run.sh [--duration 10s] [--connections 50] [--rounds 3]
#                        [--threads "1 2"] [--modes "keepalive close"]
#                        [--backend nginx|demo] [--perf] [--pin]
#
# The backend is nginx (one worker, a fixed 200 answer) by default: it needs
# less CPU per request than zkroll-demo-service (--backend demo), which
# leaves more of this 2-core machine to the proxies.
#
# --perf adds, at the first thread count: system calls and context switches
# (voluntary: sleeps, involuntary: preemptions) per request of each proxy
# (perf stat), and where each proxy's CPU goes, per system call in
# microseconds per request (perf record); bench/out/forward/perf-*.
# --pin runs wrk and the backend on CPU 0 and each proxy on CPU 1 (taskset),
# so the proxies get one core each, unshared, and do not compete with the
# backend; with two proxy threads they then share that core.
#
# Targets (issue): zkroll >= 90% of HAProxy's req/s and p99 <= 1.2x
# HAProxy's, at the same thread count.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/zk.sh

DURATION=10s CONNS=50 ROUNDS=3 THREADS="1 2" MODES="keepalive close"
BACKEND=nginx PERF=0 PIN=0
while [ $# -gt 0 ]; do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --backend) BACKEND=$2; shift 2 ;;
    --perf) PERF=1; shift ;;
    --pin) PIN=1; shift ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "forward bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $DURATION in (*[!0-9a-z]*|'') echo "bad --duration $DURATION (e.g. 10s)" >&2; exit 2 ;; esac
case $ROUNDS in (''|*[!0-9]*|0) echo "--rounds must be a whole number above 0" >&2; exit 2 ;; esac
case $CONNS in (''|*[!0-9]*|0) echo "--connections must be a whole number above 0" >&2; exit 2 ;; esac
for t in $THREADS; do
  case $t in ([1-9]|1[0-6]) ;; (*) echo "--threads: $t is not 1-16" >&2; exit 2 ;; esac
done
for m in $MODES; do
  case $m in (keepalive|close) ;; (*) echo "--modes: $m is not keepalive or close" >&2; exit 2 ;; esac
done
case $BACKEND in (nginx|demo) ;; (*) echo "--backend must be nginx or demo" >&2; exit 2 ;; esac

BUILD=${BUILD_DIR:-build}
case $BUILD in (/*) ;; (*) BUILD=$PWD/$BUILD ;; esac
AGENT_BIN=$BUILD/agent/zkroll-agent
SERVICE_BIN=$BUILD/demo/zkroll-demo-service
# Bring the binaries up to date first: measuring a stale build is the
# easiest way to report numbers of code that no longer exists.
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  [ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$(pwd)" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j2 --target zkroll-agent zkroll-demo-service >/dev/null
fi
for b in "$AGENT_BIN" "$SERVICE_BIN"; do
  [ -x "$b" ] || { echo "missing $b: build first (cmake --build $BUILD --target zkroll-agent zkroll-demo-service), or set BUILD_DIR" >&2; exit 2; }
done
for tool in wrk haproxy; do
  command -v "$tool" >/dev/null || { echo "$tool not installed: run scripts/install-deps.sh" >&2; exit 2; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ "$BACKEND" = nginx ] && [ ! -x "$NGINX" ]; then
  echo "nginx not installed: run scripts/install-deps.sh (or --backend demo)" >&2; exit 2
fi

OUT=bench/out/forward
rm -rf "$OUT"; mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/zkroll-bench-forward.XXXXXX)
ZK_PORTS_FILE=$WORK/ports-taken  # zk_free_port never repeats a port
pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  zk_stop "$WORK/zk"
  mkdir -p "$OUT/logs"
  cp "$WORK"/*.log "$WORK"/*.cfg "$WORK"/*.conf "$OUT/logs/" 2>/dev/null || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Answers 0 once GET http://127.0.0.1:$1/ gets a 200 (10s at most).
await_http() {
  python3 - "$1" <<'PY'
import sys, time, urllib.request
deadline = time.time() + 10
while time.time() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.05)
sys.exit(1)
PY
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

ZK_PORT=$(zk_free_port)
zk_start "$WORK/zk" "$ZK_PORT"

# --- backend ------------------------------------------------------------------
BACKEND_PORT=$(zk_free_port)
if [ "$BACKEND" = nginx ]; then
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx.conf" <<CFG
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$BACKEND_PORT backlog=4096;
    location / { default_type application/json; return 200 '{"version":"nginx"}\n'; }
  }
}
CFG
  "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx.conf" >>"$WORK/nginx.log" 2>&1 &
  BACKEND_PID=$!
  BACKEND_TEXT="nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), 1 worker, fixed 200 answer"
else
  "$SERVICE_BIN" --port "$BACKEND_PORT" --version bench >"$WORK/backend.log" 2>&1 &
  BACKEND_PID=$!
  BACKEND_TEXT="zkroll-demo-service (one io thread)"
fi
pids+=("$BACKEND_PID")
PIN_LOAD=()
if [ "$PIN" = 1 ]; then
  command -v taskset >/dev/null || { echo "--pin needs taskset (util-linux)" >&2; exit 2; }
  taskset -a -p -c 0 "$BACKEND_PID" >/dev/null
  PIN_LOAD=(taskset -c 0)
fi
await_http "$BACKEND_PORT" || { echo "the backend did not answer on 127.0.0.1:$BACKEND_PORT" >&2; exit 1; }

# --- zkroll-agent: one forwarded instance per thread count --------------------
declare -A ZK_FWD_PORT HAP_PORT HAP_PID
{
  echo "zk = 127.0.0.1:$ZK_PORT"
  echo "host = bench-host"
  echo "metrics_listen = 127.0.0.1:0"
  for t in $THREADS; do
    ZK_FWD_PORT[$t]=$(zk_free_port)
    cat <<CFG
[instance.fwd$t]
service = fwdbench
ip = 127.0.0.1
port = ${ZK_FWD_PORT[$t]}
check = tcp
interval = 1s
forward_backend = 127.0.0.1:$BACKEND_PORT
forward_protocol = tcp
forward_threads = $t
CFG
  done
} >"$WORK/agent.conf"
"$AGENT_BIN" --config "$WORK/agent.conf" >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
pids+=("$AGENT_PID")
for t in $THREADS; do
  await_http "${ZK_FWD_PORT[$t]}" || { echo "the agent's forwarder on ${ZK_FWD_PORT[$t]} did not answer; see $OUT/logs/agent.log" >&2; exit 1; }
done
# Every thread of the agent (the forwarders' too: they run once listening).
[ "$PIN" = 1 ] && taskset -a -p -c 1 "$AGENT_PID" >/dev/null

# --- haproxy, mode tcp, one process per thread count ---------------------------
for t in $THREADS; do
  HAP_PORT[$t]=$(zk_free_port)
  cat >"$WORK/haproxy-$t.cfg" <<CFG
global
  nbthread $t
  maxconn 8000
defaults
  mode tcp
  timeout connect 2s
  timeout client 60s
  timeout server 60s
listen fwd
  bind 127.0.0.1:${HAP_PORT[$t]}
  server backend 127.0.0.1:$BACKEND_PORT
CFG
  haproxy -db -f "$WORK/haproxy-$t.cfg" >"$WORK/haproxy-$t.log" 2>&1 &
  HAP_PID[$t]=$!
  pids+=("${HAP_PID[$t]}")
  [ "$PIN" = 1 ] && taskset -a -p -c 1 "${HAP_PID[$t]}" >/dev/null
  await_http "${HAP_PORT[$t]}" || { echo "haproxy on ${HAP_PORT[$t]} did not answer; see $OUT/logs/haproxy-$t.log" >&2; exit 1; }
done

cat >"$WORK/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"p50_us":%.0f,"p99_us":%.0f,' ..
    '"max_us":%.0f,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max, e.connect, e.read, e.write,
    e.status, e.timeout))
end
LUA

# --- measure -------------------------------------------------------------------
variants=(direct)
for t in $THREADS; do variants+=("zkroll-$t" "haproxy-$t"); done
port_of() {
  case $1 in
    direct) echo "$BACKEND_PORT" ;;
    zkroll-*) echo "${ZK_FWD_PORT[${1#zkroll-}]}" ;;
    haproxy-*) echo "${HAP_PORT[${1#haproxy-}]}" ;;
  esac
}
pid_of() {
  case $1 in
    direct) echo "$BACKEND_PID" ;;
    zkroll-*) echo "$AGENT_PID" ;;
    haproxy-*) echo "${HAP_PID[${1#haproxy-}]}" ;;
  esac
}
echo "mode,round,variant,requests,seconds,rps,p50_us,p99_us,max_us,errors,proxy_cpu_s" >"$OUT/rounds.csv"
hz=$(getconf CLK_TCK)
n_variants=${#variants[@]}
PIN_TEXT="not pinned"
[ "$PIN" = 1 ] && PIN_TEXT="pinned: wrk and backend on CPU 0, each proxy on CPU 1"
echo "forward bench: backend $BACKEND_TEXT; wrk -t1 -c$CONNS -d$DURATION; $ROUNDS rounds of ${variants[*]} per mode ($MODES); $PIN_TEXT"
for mode in $MODES; do
  header=()
  [ "$mode" = close ] && header=(-H "Connection: close")
  for r in $(seq 1 "$ROUNDS"); do
    # Rotate the order each round so no variant always runs first.
    for i in $(seq 0 $((n_variants - 1))); do
      v=${variants[$(( (i + r - 1) % n_variants ))]}
      pid=$(pid_of "$v")
      c0=$(cpu_ticks "$pid")
      "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$WORK/report.lua" "${header[@]}" \
        "http://127.0.0.1:$(port_of "$v")/" >"$WORK/wrk.out" 2>&1 || true
      c1=$(cpu_ticks "$pid")
      line=$(grep '^RESULT ' "$WORK/wrk.out" | sed 's/^RESULT //') || {
        echo "wrk failed for $v:" >&2; cat "$WORK/wrk.out" >&2; exit 1; }
      python3 - "$mode" "$r" "$v" "$line" "$(( c1 - c0 ))" "$hz" >>"$OUT/rounds.csv" <<'PY'
import json, sys
mode, r, v, line, ticks, hz = sys.argv[1:]
d = json.loads(line)
secs = d["duration_us"] / 1e6
errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
cpu = int(ticks) / int(hz) if v != "direct" else 0
print(f'{mode},{r},{v},{d["requests"]},{secs:.3f},{d["requests"] / secs:.0f},'
      f'{d["p50_us"]},{d["p99_us"]},{d["max_us"]},{errors},{cpu:.2f}')
PY
      tail -1 "$OUT/rounds.csv" | awk -F, '{printf "  %-9s round %s  %-10s %8s req/s  p50 %6.0fus  p99 %6.0fus  errors %s\n", $1, $2, $3, $6, $7, $8, $10}'
    done
  done
done

# --- report ------------------------------------------------------------------------
python3 - "$OUT/rounds.csv" "$BACKEND_TEXT" "$CONNS" "$DURATION" "$ROUNDS" "$PIN_TEXT" <<'PY' | tee "$OUT/table.txt"
import csv, statistics, sys
path, backend, conns, duration, rounds, pin = sys.argv[1:]
rows = list(csv.DictReader(open(path)))
def med(mode, v, key):
    vals = [float(r[key]) for r in rows if r["mode"] == mode and r["variant"] == v]
    return statistics.median(vals) if vals else None
def label(v):
    if v == "direct": return "direct (no proxy)"
    kind, t = v.split("-")
    return f"zkroll forward_threads={t}" if kind == "zkroll" else f"haproxy nbthread={t}"
print()
print(f"backend: {backend}; load: wrk -t1 -c{conns} -d{duration} --latency; "
      f"median of {rounds} interleaved rounds; {pin}; cpu/req: the proxy "
      "process's CPU time (all threads) per request")
verdicts = []
for mode in dict.fromkeys(r["mode"] for r in rows):
    variants = list(dict.fromkeys(r["variant"] for r in rows if r["mode"] == mode))
    print(f"\n[{mode}]" + (" keep-alive connections" if mode == "keepalive"
                           else " Connection: close (a new connection per request)"))
    print(f"{'variant':<26} {'req/s':>9} {'p50':>9} {'p99':>9} {'cpu/req':>9} "
          f"{'errors':>6}  {'req/s vs haproxy':>16} {'p99 vs haproxy':>14}")
    for v in variants:
        rps, p50, p99 = med(mode, v, "rps"), med(mode, v, "p50_us"), med(mode, v, "p99_us")
        errors = sum(int(r["errors"]) for r in rows if r["mode"] == mode and r["variant"] == v)
        cpu = med(mode, v, "proxy_cpu_s")
        reqs = med(mode, v, "requests")
        cpu_req = f"{cpu / reqs * 1e6:.1f}us" if v != "direct" and reqs else "-"
        ratio_rps = ratio_p99 = ""
        if v.startswith("zkroll-"):
            h = "haproxy-" + v.split("-")[1]
            hr, hp = med(mode, h, "rps"), med(mode, h, "p99_us")
            if hr and hp:
                ratio_rps, ratio_p99 = f"{rps / hr:.2f}x", f"{p99 / hp:.2f}x"
                ok = rps >= 0.9 * hr and p99 <= 1.2 * hp
                verdicts.append(f"{mode} {label(v)}: req/s {rps / hr:.2f}x, p99 {p99 / hp:.2f}x "
                                f"of haproxy nbthread={v.split('-')[1]} -> {'met' if ok else 'MISSED'}")
        print(f"{label(v):<26} {rps:>9,.0f} {p50 / 1000:>7.3f}ms {p99 / 1000:>7.3f}ms {cpu_req:>9} "
              f"{errors:>6}  {ratio_rps:>16} {ratio_p99:>14}")
print("\ntarget: zkroll >= 0.90x haproxy's req/s and p99 <= 1.20x haproxy's")
for line in verdicts:
    print("  " + line)
PY

if [ "$PERF" = 1 ]; then
  t=$(echo "$THREADS" | awk '{print $1}')
  # "voluntary nonvoluntary" context switches of all threads of a process:
  # voluntary ones are sleeps (epoll_wait), nonvoluntary ones preemptions.
  ctxt_switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '
      /^voluntary_ctxt_switches/ {v += $2} /^nonvoluntary_ctxt_switches/ {n += $2}
      END {print v + 0, n + 0}'
  }
  # 1. Counts that do not depend on how much CPU the scheduler gave each
  # proxy: system calls and context switches per request, per proxy, during
  # one keep-alive run each.
  events=task-clock,context-switches
  for sc in recvfrom sendto read write readv writev recvmsg sendmsg epoll_wait epoll_pwait poll \
            epoll_ctl futex splice accept accept4 socket connect setsockopt getsockopt \
            shutdown close timerfd_settime fcntl ioctl getsockname getpeername; do
    events+=",syscalls:sys_enter_$sc"
  done
  for mode in $MODES; do
    header=()
    [ "$mode" = close ] && header=(-H "Connection: close")
    echo
    echo "perf stat: system calls and context switches per request ($mode, thread count $t)"
    for v in "zkroll-$t" "haproxy-$t"; do
      pid=$(pid_of "$v")
      ctxt0=$(ctxt_switches "$pid")
      perf stat -x, -e "$events" -p "$pid" -o "$WORK/perfstat-$mode-$v.csv" -- sleep "${DURATION%s}" >/dev/null 2>&1 &
      stat_pid=$!
      "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"$DURATION" -s "$WORK/report.lua" "${header[@]}" \
        "http://127.0.0.1:$(port_of "$v")/" >"$WORK/wrk.out" 2>&1 || true
      wait "$stat_pid" || true
      ctxt1=$(ctxt_switches "$pid")
      read -r vol0 invol0 <<<"$ctxt0"
      read -r vol1 invol1 <<<"$ctxt1"
      echo "$(( vol1 - vol0 )),,cswitch-voluntary" >>"$WORK/perfstat-$mode-$v.csv"
      echo "$(( invol1 - invol0 )),,cswitch-involuntary" >>"$WORK/perfstat-$mode-$v.csv"
      grep '^RESULT ' "$WORK/wrk.out" | sed 's/^RESULT //' >"$WORK/perfstat-$mode-$v.wrk"
    done
    python3 - "$WORK" "$mode" "zkroll-$t" "haproxy-$t" <<'PY' | tee -a "$OUT/perf-stat.txt"
import json, sys
work, mode, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
table = {}
for v in variants:
    reqs = json.loads(open(f"{work}/perfstat-{mode}-{v}.wrk").read())["requests"]
    counts = {}
    for line in open(f"{work}/perfstat-{mode}-{v}.csv"):
        parts = line.strip().split(",")
        if len(parts) < 3 or not parts[0] or parts[0].startswith("#"):
            continue
        try:
            value = float(parts[0])
        except ValueError:
            continue
        counts[parts[2].replace("syscalls:sys_enter_", "")] = value
    table[v] = (reqs, counts)
names = [n for n in dict.fromkeys(k for _, c in table.values() for k in c)
         if any(c.get(n, 0) for _, c in table.values())]
print(f"{'per request':<18}" + "".join(f"{v:>14}" for v in variants))
print(f"{'requests':<18}" + "".join(f"{table[v][0]:>14,}" for v in variants))
for n in names:
    label = "cpu (us)" if n == "task-clock" else n
    print(f"{label:<18}" + "".join(
        f"{table[v][1].get(n, 0) * (1000 if n == 'task-clock' else 1) / table[v][0]:>14.3f}"
        for v in variants))
PY
  done
  # 2. Where the time goes: for each proxy and mode, a perf profile during
  # one run, summed by system call (inclusive, kernel side) and by object,
  # converted to microseconds per request with the CPU time perf stat saw.
  for mode in $MODES; do
    header=()
    [ "$mode" = close ] && header=(-H "Connection: close")
    for v in "zkroll-$t" "haproxy-$t"; do
      pid=$(pid_of "$v")
      "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"$DURATION" -s "$WORK/report.lua" "${header[@]}" \
        "http://127.0.0.1:$(port_of "$v")/" >"$WORK/wrk.out" 2>&1 &
      wrk_pid=$!
      perf record -F 1999 -g -o "$WORK/perf-$mode-$v.data" -p "$pid" -- sleep "${DURATION%s}" >/dev/null 2>&1 || true
      wait "$wrk_pid" || true
      perf report -i "$WORK/perf-$mode-$v.data" --children --sort symbol --stdio -g none 2>/dev/null \
        >"$OUT/perf-$mode-$v.txt" || true
      perf report -i "$WORK/perf-$mode-$v.data" --no-children --sort dso --stdio -g none 2>/dev/null \
        >"$OUT/perf-dso-$mode-$v.txt" || true
    done
    python3 - "$OUT" "$WORK" "$mode" "zkroll-$t" "haproxy-$t" <<'PY' | tee -a "$OUT/perf-stat.txt"
import json, re, sys
out, work, mode, variants = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def us_per_request(v):
    reqs = json.loads(open(f"{work}/perfstat-{mode}-{v}.wrk").read())["requests"]
    for line in open(f"{work}/perfstat-{mode}-{v}.csv"):
        parts = line.strip().split(",")
        if len(parts) > 2 and parts[2] == "task-clock":
            return float(parts[0]) * 1000 / reqs
    return 0
rows, share = {}, {}
for v in variants:
    per = {}
    for line in open(f"{out}/perf-{mode}-{v}.txt"):
        m = re.match(r"\s*([\d.]+)%\s+([\d.]+)%\s+\[k\]\s+__x64_sys_(\w+)", line)
        if m:
            per[m.group(3)] = float(m.group(1))
    rows[v] = per
    d = {}
    for line in open(f"{out}/perf-dso-{mode}-{v}.txt"):
        m = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
        if m:
            d[m.group(2)] = float(m.group(1))
    share[v] = (sum(p for k, p in d.items() if k == "[kernel.kallsyms]"),
                sum(p for k, p in d.items() if k != "[kernel.kallsyms]"))
cpu = {v: us_per_request(v) for v in variants}
print(f"\nwhere the CPU goes ({mode}): microseconds per request by system call "
      "(inclusive kernel time, from perf record), of the CPU per request from perf stat")
print(f"{'':<18}" + "".join(f"{v:>14}" for v in variants))
print(f"{'cpu per request':<18}" + "".join(f"{cpu[v]:>12.2f}us" for v in variants))
print(f"{'user space':<18}" + "".join(f"{share[v][1] / 100 * cpu[v]:>12.2f}us" for v in variants))
names = sorted({n for r in rows.values() for n in r},
               key=lambda n: -max(rows[v].get(n, 0) for v in variants))
for n in names[:14]:
    print(f"{n:<18}" + "".join(f"{rows[v].get(n, 0) / 100 * cpu[v]:>12.2f}us" for v in variants))
PY
  done
fi
