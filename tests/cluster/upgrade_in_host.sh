#!/usr/bin/env bash
# COMMAND of the cluster test's rollouts: the demo's upgrade script, run on
# the instance's host, i.e. inside that host's network namespace (what ssh to
# the host would do on real machines). The coordinator runs in a namespace of
# its own; the instance's address names the host's namespace (zkcl-a<octet>).
#
# It also records when it ran, one JSON line in $CLUSTER_DIR/commands.jsonl:
# the journal's end of a command step is when the coordinator judged it (after
# its post-COMMAND check, which waits for ZooKeeper), not when COMMAND exited,
# and a killed coordinator records no end at all. history_check.py compares
# these ends with the removal of the flags. A SIGKILL leaves no line.
#
# Environment from zkroll: ZKROLL_IP, ZKROLL_PORT, ZKROLL_SERVICE,
# ZKROLL_DEPLOY_ID. From cluster_test.py: CLUSTER_DIR (per-host pid files
# under hosts/<ip>), CLUSTER_SOURCE, DEMO_SERVICE_BIN, DEMO_NEW_VERSION.
set -euo pipefail
: "${ZKROLL_IP:?} ${ZKROLL_PORT:?} ${ZKROLL_SERVICE:?} ${ZKROLL_DEPLOY_ID:?}"
: "${CLUSTER_DIR:?} ${CLUSTER_SOURCE:?}"
case $ZKROLL_IP in
  10.250.16.[0-9]|10.250.16.[0-9][0-9]|10.250.16.[0-9][0-9][0-9]) ;;
  *) echo "upgrade_in_host.sh: '$ZKROLL_IP' is not a cluster test address" >&2; exit 2 ;;
esac
case $ZKROLL_PORT in (*[!0-9]*|'') echo "upgrade_in_host.sh: bad port '$ZKROLL_PORT'" >&2; exit 2 ;; esac
export DEMO_DIR=$CLUSTER_DIR/hosts/$ZKROLL_IP
start_ms=$(date +%s%3N)
record() {
  printf '{"service":"%s","deploy_id":"%s","instance":"%s_%s","start_ms":%s,"end_ms":%s,"exit":%s}\n' \
    "$ZKROLL_SERVICE" "$ZKROLL_DEPLOY_ID" "$ZKROLL_IP" "$ZKROLL_PORT" "$start_ms" \
    "$(date +%s%3N)" "$1" >>"$CLUSTER_DIR/commands.jsonl"
}
# The fence's SIGTERM reaches the whole process group: the upgrade script
# stops, then this trap records the end.
trap 'record 143; exit 143' TERM
rc=0
ip netns exec "zkcl-a${ZKROLL_IP##*.}" "$CLUSTER_SOURCE/scripts/lib/demo-upgrade.sh" || rc=$?
record "$rc"
exit "$rc"
