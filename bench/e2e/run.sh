#!/usr/bin/env bash
# The same rolling upgrade four ways, on the same machine and load, side by
# side in one run:
#   (a) naive: every instance restarted in place, no zkroll (callers poll)
#   (b) zkroll rollout, callers poll the registry every second
#   (c) zkroll rollout, callers follow the registry with watches
#   (d) zkroll rollout, Curator callers: a Java ServiceProvider (its
#       ServiceCache watches) unchanged, reading the agents' registrations
#       (tests/callers/java/CuratorCaller.java; needs a JDK and Curator jars)
# Prints requests, failed (by cause) and rollout wall time for each, and for
# (c) and (d) the time from the coordinator's pause to the caller dropping
# the instance.
#
#   bench/e2e/run.sh [--rate 2000] [--requests 100000] [--drain-wait 3s]
#
# Target (issue): (b), (c) and (d) 0 failed out of at least 100,000 requests.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=2000 REQUESTS=100000 DRAIN=3s
while [ $# -gt 0 ]; do
  case $1 in
    --rate) RATE=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --drain-wait) DRAIN=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
OUT=bench/out/e2e
rm -rf "$OUT"; mkdir -p "$OUT"
run() {
  local name=$1; shift
  echo "== $name"
  scripts/demo.sh --out "$OUT/$name" --rate "$RATE" --requests "$REQUESTS" \
    --drain-wait "$DRAIN" "$@" >"$OUT/$name.log" 2>&1 || true
  grep "^rollout v1->v2" "$OUT/$name.log" || tail -1 "$OUT/$name.log"
}
run a-naive --naive --mode poll
DEMO_SKIP_BUILD=1 run b-zkroll-poll --mode poll
DEMO_SKIP_BUILD=1 run c-zkroll-watch --mode watch
# Not DEMO_SKIP_BUILD: demo.sh builds the Java caller (or says what is missing).
run d-curator --caller curator

python3 - "$OUT" <<'PY'
import csv, datetime, json, os, sys
out = sys.argv[1]
def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000
print()
print(f"{'variant':<16} {'requests':>9} {'failed':>7}  {'rollout':>8}  failed by cause")
for name in ("a-naive", "b-zkroll-poll", "c-zkroll-watch", "d-curator"):
    d = f"{out}/{name}"
    try:
        s = json.load(open(f"{d}/summary.json"))
        secs = open(f"{d}/rollout-seconds.txt").read().strip()
    except (OSError, ValueError) as e:
        print(f"{name:<16} did not complete: {e} (see {out}/{name}.log)")
        continue
    causes = {k: v for k, v in s["failed_by_cause"].items() if v}
    print(f"{name:<16} {s['sent']:>9} {s['failed']:>7}  {secs + 's':>8}  {causes or '-'}")
def pauses_of(d):
    pauses = []
    for line in open(f"{d}/rollout.jsonl"):
        e = json.loads(line)
        if e.get("event") == "step" and e.get("step") == "pause" and e.get("verdict") == "started":
            pauses.append((ts(e["time"]), e["instance"].split("@", 1)[1]))
    return pauses
def report(label, pauses, changes):
    lat = []
    for t, inst in pauses:
        after = [ms for ms, names in changes if ms >= t and inst not in names]
        if after:
            lat.append(min(after) - t)
    lat.sort()
    if lat:
        pick = lambda q: lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))]
        print(f"\n{label}: p50 {pick(0.5):.0f} ms, "
              f"p99 {pick(0.99):.0f} ms, max {lat[-1]:.0f} ms over {len(lat)} pauses "
              "(from the coordinator starting its pause transaction to the "
              "caller's list without the instance)")
# (c): pause -> the watch-mode caller no longer lists the instance. Both
# clocks are this machine's wall clock.
d = f"{out}/c-zkroll-watch"
try:
    changes = [(int(r["unix_ms"]), set(filter(None, r["instances"].split(";"))))
               for r in csv.DictReader(open(f"{d}/list-changes.csv"))]
    report("(c) pause -> watch-mode caller dropped the instance", pauses_of(d), changes)
except (OSError, ValueError, KeyError) as e:
    print(f"(c) drop latency not available: {e}")
# (d): the same from the Curator caller's "instances t=MS list=..." lines
# (its provider's list, read before each pick).
d = f"{out}/d-curator"
try:
    changes = []
    for line in open(f"{d}/logs/curator-caller.log"):
        if line.startswith("instances "):
            w = dict(x.split("=", 1) for x in line.split()[1:])
            changes.append((int(w["t"]), set(filter(None, w.get("list", "").split(",")))))
    report("(d) pause -> Curator caller dropped the instance", pauses_of(d), changes)
except (OSError, ValueError, KeyError) as e:
    print(f"(d) drop latency not available: {e}")
PY
