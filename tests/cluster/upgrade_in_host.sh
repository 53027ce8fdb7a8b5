#!/usr/bin/env bash
# COMMAND of the cluster test's rollouts: the demo's upgrade script, run on
# the instance's host, i.e. inside that host's network namespace (what ssh to
# the host would do on real machines). The coordinator runs in a namespace of
# its own; the instance's address names the host's namespace (zkcl-a<octet>).
#
# Environment from zkroll: ZKROLL_IP, ZKROLL_PORT, ... From cluster_test.py:
# CLUSTER_DIR (per-host pid files under hosts/<ip>), CLUSTER_SOURCE,
# DEMO_SERVICE_BIN, DEMO_NEW_VERSION.
set -euo pipefail
: "${ZKROLL_IP:?} ${CLUSTER_DIR:?} ${CLUSTER_SOURCE:?}"
case $ZKROLL_IP in
  10.250.16.[0-9]|10.250.16.[0-9][0-9]|10.250.16.[0-9][0-9][0-9]) ;;
  *) echo "upgrade_in_host.sh: '$ZKROLL_IP' is not a cluster test address" >&2; exit 2 ;;
esac
export DEMO_DIR=$CLUSTER_DIR/hosts/$ZKROLL_IP
exec ip netns exec "zkcl-a${ZKROLL_IP##*.}" "$CLUSTER_SOURCE/scripts/lib/demo-upgrade.sh"
