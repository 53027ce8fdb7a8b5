#!/usr/bin/env bash
# e2e: a shortened scripts/demo.sh (lower rate) against the binaries of this
# build, twice: with its default drain (--drain auto, 20 s cap) and with a
# fixed 2 s drain (--drain-wait 2s). Asserts for each: the rollout
# succeeded, zero requests failed out of a non-trivial number, every
# instance answers v2, and the timeline shows each instance losing its
# traffic and getting it back; for the auto drain, that each of the four
# drains says why it ended.
#   demo_e2e_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=$1 BUILD=$2
ROOT_OUT=$(mktemp -d /tmp/zkroll-e2e.XXXXXX)
trap 'rm -rf "$ROOT_OUT"' EXIT

run_demo() {
  local name=$1; shift
  OUT=$ROOT_OUT/$name
  mkdir -p "$OUT"
  local rc=0
  echo "== demo.sh $*"
  BUILD_DIR=$BUILD DEMO_SKIP_BUILD=1 "$SRC/scripts/demo.sh" --out "$OUT" --rate 400 \
    "$@" >"$OUT/demo.log" 2>&1 || rc=$?
  cat "$OUT/demo.log"
  if [ "$rc" -ne 0 ]; then
    echo "FAIL: scripts/demo.sh $* exited $rc"
    exit 1
  fi
  check "$name"
}

check() {
python3 - "$OUT" "$1" <<'PY'
import collections, csv, json, sys
out, name = sys.argv[1], sys.argv[2]
s = json.load(open(f"{out}/summary.json"))
problems = []
if s["failed"] != 0: problems.append(f"{s['failed']} requests failed: {s['failed_by_cause']}")
if s["sent"] < 3000: problems.append(f"only {s['sent']} requests were sent")
if s["sent"] != s["ok"] + s["failed"]: problems.append("sent != ok + failed")
if set(s["versions"]) != {"v1", "v2"}: problems.append(f"versions answered: {s['versions']}")
log = open(f"{out}/demo.log").read()
if "4/4 instances upgraded" not in log: problems.append("not every instance answers v2")
import re
if len(re.findall(r"127\.0\.0\.1:\d+ -> v2\n", log)) != 4: problems.append("the final check did not see v2 on all four ports")
# Every instance: traffic while v1, a gap, traffic again on v2.
rows = collections.defaultdict(list)
for r in csv.DictReader(open(f"{out}/timeline.csv")):
    rows[r["instance"]].append((int(r["second"]), int(r["requests"]), r["version"]))
if len(rows) != 4: problems.append(f"timeline has {len(rows)} instances")
for inst, series in rows.items():
    series.sort()
    versions = [v for _, _, v in series]
    if versions[0] != "v1" or versions[-1] != "v2":
        problems.append(f"{inst}: versions {versions[0]} .. {versions[-1]}")
    seconds = [sec for sec, n, _ in series if n > 0]
    gaps = [b - a for a, b in zip(seconds, seconds[1:]) if b - a > 1]
    # An auto drain is shorter than the timeline's one-second bins; there
    # the callers' list changes show each instance leaving and returning.
    if not gaps and name != "auto":
        problems.append(f"{inst}: traffic never left the instance")
if name == "auto":
    lists = [r["instances"].split(";") for r in csv.DictReader(open(f"{out}/list-changes.csv"))]
    for inst in rows:
        states = [inst in l for l in lists]
        if not any(a and not b for a, b in zip(states, states[1:])) or not states[-1]:
            problems.append(f"{inst}: the callers never dropped it and took it back")
if name == "auto":
    drains = [json.loads(l) for l in open(f"{out}/rollout.jsonl")
              if '"event":"drain"' in l]
    if len(drains) != 4: problems.append(f"{len(drains)} drain events, not 4")
    for d in drains:
        if d.get("mode") != "auto" or not d.get("reason"):
            problems.append(f"drain event without an auto reason: {d}")
    if "why each drain ended" not in log: problems.append("the demo did not say why each drain ended")
if problems:
    print(f"FAIL ({name}):\n  " + "\n  ".join(problems)); sys.exit(1)
print(f"PASS ({name}): {s['sent']} requests, 0 failed, 4 instances drained and upgraded")
PY
}

run_demo auto
run_demo fixed --drain-wait 2s
