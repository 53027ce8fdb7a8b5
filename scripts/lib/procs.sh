# Shell helper to stop what a demo or benchmark run started (sourced by
# scripts/demo.sh and bench/switch/run.sh).
#
#   stop_run WORK DEPLOY_PID [PID...]
#     stops, in this order: a coordinator (DEPLOY_PID, may be empty) still
#     running, and waits for it, so it can clean up in ZooKeeper while
#     ZooKeeper is still up; the PIDs (agents, load generators); every
#     service instance with a pid file in WORK/instances; then waits for the
#     PIDs. Each gets SIGTERM. ZooKeeper itself is left to the caller.

stop_run() {
  local work=$1 deploy=$2 p f
  shift 2
  if [ -n "$deploy" ] && kill -0 "$deploy" 2>/dev/null; then
    kill -TERM "$deploy" 2>/dev/null || true
    wait "$deploy" 2>/dev/null || true
  fi
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for f in "$work"/instances/*.pid; do
    [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
