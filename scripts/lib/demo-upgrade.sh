#!/usr/bin/env bash
# The demo's upgrade command, run by `zkroll rollout` for one instance:
# stop the running demo service on $ZKROLL_PORT (SIGTERM: it finishes
# in-flight requests) and start the chosen version on the same address.
#
#   demo-upgrade.sh [--version V] [--error-rate F] [--exit-after D]
#                   [--start-delay D] [--root-status N] [--hang-fifo PATH]
#
# --version defaults to $DEMO_NEW_VERSION. The other flags make the new
# version a bad one (zkroll-demo-service --help): --error-rate 0.1 answers
# 500 to every 10th request, --exit-after 2s crashes 2 s after it started
# listening, --start-delay 30s starts listening only after 30 s,
# --root-status 500 fails every request. Each value is checked here against
# a strict pattern and handed to the service as one argument (the service
# checks it again); nothing is ever given to eval or a shell.
# --hang-fifo PATH plays an install that hangs: after stopping the old
# version, the script blocks until a line can be read from the FIFO PATH
# (whoever controls it writes one) or it is killed, at most
# $DEMO_HANG_MAX seconds (default 300), then exits 1 without starting
# anything. The same script with --version v1 is the revert command.
#
# Every start appends one line to $DEMO_VERSION_LOG (default
# $DEMO_DIR/versions.log): "unix_ms port version flags...", so a test can
# tell which instance ever ran which version.
#
# Environment from zkroll: ZKROLL_IP, ZKROLL_PORT, ZKROLL_SERVICE,
# ZKROLL_INSTANCE, ZKROLL_DEPLOY_ID. From scripts/demo.sh or a test:
# DEMO_DIR, DEMO_SERVICE_BIN, DEMO_NEW_VERSION.
set -euo pipefail
: "${ZKROLL_PORT:?} ${DEMO_DIR:?} ${DEMO_SERVICE_BIN:?}"
case $ZKROLL_PORT in (*[!0-9]*|'') echo "bad ZKROLL_PORT" >&2; exit 2 ;; esac

bad() { echo "demo-upgrade.sh: $*" >&2; exit 2; }
version=${DEMO_NEW_VERSION:-}
flags=()
hang_fifo=""
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || bad "$1 needs a value"
  case $1 in
    --version) version=$2 ;;
    --error-rate)
      [[ $2 =~ ^[01](\.[0-9]{1,6})?$ ]] || bad "bad --error-rate '$2' (e.g. 0.1)"
      flags+=(--error-rate "$2") ;;
    --exit-after|--start-delay)
      [[ $2 =~ ^[0-9][0-9.]*(ms|s|m|h)$ ]] || bad "bad $1 '$2' (e.g. 2s)"
      flags+=("$1" "$2") ;;
    --root-status)
      [[ $2 =~ ^[2-5][0-9][0-9]$ ]] || bad "bad --root-status '$2' (e.g. 500)"
      flags+=(--root-status "$2") ;;
    --hang-fifo)
      [ -p "$2" ] || bad "--hang-fifo '$2' is not a FIFO"
      hang_fifo=$2 ;;
    *) bad "unknown option '$1'" ;;
  esac
  shift 2
done
[[ $version =~ ^[A-Za-z0-9._+-]{1,64}$ ]] ||
  bad "bad version '$version': give --version (or DEMO_NEW_VERSION), e.g. v2"
hang_max=${DEMO_HANG_MAX:-300}
case $hang_max in (*[!0-9]*|'') bad "bad DEMO_HANG_MAX '$hang_max'" ;; esac
version_log=${DEMO_VERSION_LOG:-$DEMO_DIR/versions.log}
pidfile="$DEMO_DIR/instances/$ZKROLL_PORT.pid"
mkdir -p "$DEMO_DIR/instances"

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
  rm -f "$pidfile"
fi
if [ -n "$hang_fifo" ]; then
  echo "installing $version on port $ZKROLL_PORT hangs (until $hang_fifo is written, at most ${hang_max}s)"
  # Opened read-write, so the open itself never blocks; the read does.
  read -r -t "$hang_max" _ <>"$hang_fifo" || true
  echo "the install of $version did not finish" >&2
  exit 1
fi
echo "starting version $version on port $ZKROLL_PORT ${flags[*]:-}"
printf '%s %s %s %s\n' "$(date +%s%3N)" "$ZKROLL_PORT" "$version" "${flags[*]:-}" >>"$version_log"
# setsid: the new service must outlive this command's process group.
setsid "$DEMO_SERVICE_BIN" --ip "${ZKROLL_IP:-127.0.0.1}" --port "$ZKROLL_PORT" \
  --version "$version" ${flags[@]+"${flags[@]}"} \
  >>"$DEMO_DIR/instances/$ZKROLL_PORT.log" 2>&1 </dev/null &
echo $! >"$pidfile"
