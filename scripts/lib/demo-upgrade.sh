#!/usr/bin/env bash
# The demo's upgrade command, run by `zkroll rollout` for one instance:
# stop the running demo service on $ZKROLL_PORT (SIGTERM: it finishes
# in-flight requests) and start the new version on the same address.
#
# Environment from zkroll: ZKROLL_IP, ZKROLL_PORT, ZKROLL_SERVICE,
# ZKROLL_INSTANCE, ZKROLL_DEPLOY_ID. From scripts/demo.sh: DEMO_DIR,
# DEMO_SERVICE_BIN, DEMO_NEW_VERSION.
set -euo pipefail
: "${ZKROLL_PORT:?} ${DEMO_DIR:?} ${DEMO_SERVICE_BIN:?} ${DEMO_NEW_VERSION:?}"
case $ZKROLL_PORT in (*[!0-9]*|'') echo "bad ZKROLL_PORT" >&2; exit 2 ;; esac
pidfile="$DEMO_DIR/instances/$ZKROLL_PORT.pid"

if [ -f "$pidfile" ]; then
  old=$(cat "$pidfile")
  echo "stopping pid $old on port $ZKROLL_PORT"
  kill -TERM "$old" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$old" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$old" 2>/dev/null; then
    echo "pid $old still running after 5s; killing it" >&2
    kill -KILL "$old" 2>/dev/null || true
  fi
fi
echo "starting version $DEMO_NEW_VERSION on port $ZKROLL_PORT"
# setsid: the new service must outlive this command's process group.
setsid "$DEMO_SERVICE_BIN" --ip "${ZKROLL_IP:-127.0.0.1}" --port "$ZKROLL_PORT" \
  --version "$DEMO_NEW_VERSION" \
  >>"$DEMO_DIR/instances/$ZKROLL_PORT.log" 2>&1 </dev/null &
echo $! >"$pidfile"
