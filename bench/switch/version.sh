#!/usr/bin/env bash
# bench/switch/run.sh's deploy commands, run by `zkroll deploy --switch`
# (no shell, so one script with a verb):
#
#   version.sh start VERSION [SERVICE FLAGS...]
#       COMMAND: start zkroll-demo-service VERSION on $ZKROLL_NEW_PORT in the
#       background (setsid, pidfile), exit 0 once it accepts connections
#       (1 if it did not within 10s)
#   version.sh stop old|new
#       --stop-old / --on-failure: stop the service on $ZKROLL_OLD_PORT or
#       $ZKROLL_NEW_PORT with SIGTERM (it drains) and wait until it exited
#       (SIGKILL after 15s); nothing to do if it is gone already
#
# Environment from run.sh: SWITCH_DIR (pidfiles and logs in
# $SWITCH_DIR/instances), SWITCH_SERVICE_BIN.
set -euo pipefail
: "${SWITCH_DIR:?} ${SWITCH_SERVICE_BIN:?}"
verb=${1:-}
shift || true

accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Running and not a zombie (an exited service nobody reaped yet counts as
# stopped).
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

case $verb in
  start)
    version=${1:?version.sh start VERSION}
    shift
    port=${ZKROLL_NEW_PORT:?}
    case $port in (*[!0-9]*|'') echo "bad ZKROLL_NEW_PORT '$port'" >&2; exit 2 ;; esac
    echo "starting $version on 127.0.0.1:$port $*"
    # setsid: the service must outlive this command's process group.
    setsid "$SWITCH_SERVICE_BIN" --port "$port" --version "$version" "$@" \
      >>"$SWITCH_DIR/instances/$port.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$SWITCH_DIR/instances/$port.pid"
    for _ in $(seq 1 200); do
      if accepts "$port"; then echo "$version listens (pid $pid)"; exit 0; fi
      alive "$pid" || { echo "$version exited at start" >&2; exit 1; }
      sleep 0.05
    done
    echo "$version did not listen on $port within 10s" >&2
    exit 1
    ;;
  stop)
    case ${1:-} in
      old) port=${ZKROLL_OLD_PORT:?} ;;
      new) port=${ZKROLL_NEW_PORT:?} ;;
      *) echo "usage: version.sh stop old|new" >&2; exit 2 ;;
    esac
    pidfile=$SWITCH_DIR/instances/$port.pid
    if [ ! -f "$pidfile" ]; then echo "nothing runs on $port"; exit 0; fi
    pid=$(cat "$pidfile")
    if ! kill -TERM "$pid" 2>/dev/null; then
      echo "pid $pid on $port is gone already"
      rm -f "$pidfile"
      exit 0
    fi
    for _ in $(seq 1 300); do
      alive "$pid" || { echo "stopped pid $pid on $port"; rm -f "$pidfile"; exit 0; }
      sleep 0.05
    done
    echo "pid $pid on $port still running 15s after SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    ;;
  *)
    echo "usage: version.sh start VERSION [FLAGS...] | version.sh stop old|new" >&2
    exit 2
    ;;
esac
