#!/usr/bin/env bash
# e2e: a shortened scripts/demo.sh (lower rate, shorter drain) against the
# binaries of this build. Asserts: the rollout succeeded, zero requests
# failed out of a non-trivial number, every instance answers v2, and the
# timeline shows each instance losing its traffic and getting it back.
#   demo_e2e_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=$1 BUILD=$2
OUT=$(mktemp -d /tmp/zkroll-e2e.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

rc=0
BUILD_DIR=$BUILD DEMO_SKIP_BUILD=1 "$SRC/scripts/demo.sh" --out "$OUT" --rate 400 \
  --drain-wait 2s >"$OUT/demo.log" 2>&1 || rc=$?
cat "$OUT/demo.log"
if [ "$rc" -ne 0 ]; then
  echo "FAIL: scripts/demo.sh exited $rc"
  exit 1
fi
python3 - "$OUT" <<'PY'
import collections, csv, json, sys
out = sys.argv[1]
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
    if not gaps: problems.append(f"{inst}: traffic never left the instance")
if problems:
    print("FAIL:\n  " + "\n  ".join(problems)); sys.exit(1)
print(f"PASS: {s['sent']} requests, 0 failed, 4 instances drained and upgraded")
PY
