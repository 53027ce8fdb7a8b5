#!/usr/bin/env bash
# The Debian packages, for real: packs zkroll-agent and zkroll from the
# binaries the build already made (cpack into a private directory, so a
# build running meanwhile is not disturbed), installs them, runs the
# installed programs, checks the zkroll account, the conffile and the unit,
# then removes and purges them and checks what each step leaves.
#
#   package_test.sh SOURCE_DIR BUILD_DIR CPACK
#
# Installing needs root and dpkg: without them it exits 77, which ctest
# reports as skipped, with the reason. dpkg does not wait for its lock, and
# on a shared machine apt may hold it for minutes, so dpkg runs the way apt
# runs it: with the frontend lock taken first (waiting up to 10 minutes)
# and DPKG_FRONTEND_LOCKED set.
set -euo pipefail

src=$1
build=$2
cpack=$3

skip() {
  echo "SKIPPED: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || skip "installing packages needs root; run as root to test the .deb files"
command -v dpkg >/dev/null || skip "dpkg is missing (not a Debian system)"
command -v python3 >/dev/null || skip "python3 is missing (it takes the dpkg lock)"
command -v dpkg-shlibdeps >/dev/null ||
  skip "dpkg-shlibdeps is missing: install dpkg-dev (scripts/install-deps.sh)"
[ -x "$build/agent/zkroll-agent" ] && [ -x "$build/coordinator/zkroll" ] ||
  fail "build zkroll and zkroll-agent in $build first"

# Package tests of other build trees on this machine install the same
# packages: one at a time.
exec 9>/tmp/zkroll-package-test.lock
flock -w 900 9 || fail "another package test held /tmp/zkroll-package-test.lock for 15 minutes"

for p in zkroll zkroll-agent; do
  if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qv '^not-installed$'; then
    skip "package $p is already on this machine ($(dpkg-query -W -f='${Version} ${db:Status-Status}' "$p")); not replacing it"
  fi
done
if getent passwd zkroll >/dev/null; then
  skip "an account 'zkroll' exists that no zkroll-agent package made; purging would delete it"
fi

tmp=$(mktemp -d)
# dpkg ARGS..., once the dpkg frontend lock is ours.
dpkg_locked() {
  python3 -c '
import fcntl, os, signal, sys
fd = os.open("/var/lib/dpkg/lock-frontend", os.O_RDWR | os.O_CREAT, 0o640)
os.set_inheritable(fd, True)  # held by dpkg, which this process becomes
signal.alarm(600)  # SIGALRM ends the wait (and this test) after 10 minutes
fcntl.lockf(fd, fcntl.LOCK_EX)
signal.alarm(0)
os.environ["DPKG_FRONTEND_LOCKED"] = "1"
os.execvp("dpkg", ["dpkg"] + sys.argv[1:])
' "$@" </dev/null
}
installed() {
  dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed
}
cleanup() {
  local left=()
  for p in zkroll zkroll-agent; do
    if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qv '^not-installed$'; then
      left+=("$p")
    fi
  done
  if [ "${#left[@]}" -gt 0 ]; then
    echo "cleanup: purging ${left[*]}"
    dpkg_locked --purge "${left[@]}" >/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== cpack from $build"
"$cpack" --config "$build/CPackConfig.cmake" -B "$tmp" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack failed"; }
shopt -s nullglob
agent_debs=("$tmp"/zkroll-agent_*.deb)
coordinator_debs=("$tmp"/zkroll_*.deb)
[ "${#agent_debs[@]}" -eq 1 ] && [ "${#coordinator_debs[@]}" -eq 1 ] ||
  { ls -l "$tmp"; fail "expected one zkroll-agent and one zkroll .deb"; }
agent_deb=${agent_debs[0]}
coordinator_deb=${coordinator_debs[0]}
echo "built $(basename "$agent_deb") $(basename "$coordinator_deb")"

depends=$(dpkg-deb -f "$agent_deb" Depends)
for d in adduser libzookeeper-mt2 libsystemd0 libgoogle-glog0v6 libprotobuf libprometheus-cpp-core; do
  [[ "$depends" == *"$d"* ]] || fail "zkroll-agent does not depend on $d: $depends"
done

echo "== install"
dpkg_locked -i "$agent_deb" "$coordinator_deb" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "dpkg -i failed (a missing dependency is named above)"; }
installed zkroll-agent || fail "zkroll-agent is not installed after dpkg -i"
installed zkroll || fail "zkroll is not installed after dpkg -i"

echo "== installed programs"
for prog in zkroll zkroll-agent; do
  [ -x "/usr/bin/$prog" ] || fail "/usr/bin/$prog is missing"
  if ldd "/usr/bin/$prog" | grep -q "not found"; then
    ldd "/usr/bin/$prog"
    fail "/usr/bin/$prog misses a library its package does not depend on"
  fi
done
want=$("$build/coordinator/zkroll" --version)
got=$(/usr/bin/zkroll --version)
[ "$got" = "$want" ] || fail "/usr/bin/zkroll --version: '$got', the build says '$want'"
[[ "$got" =~ ^zkroll\ [0-9]+\.[0-9]+\.[0-9]+\ \(git\ .+\)$ ]] || fail "bad version line '$got'"
echo "$got"
want=$("$build/agent/zkroll-agent" --version)
got=$(/usr/bin/zkroll-agent --version)
[ "$got" = "$want" ] || fail "/usr/bin/zkroll-agent --version: '$got', the build says '$want'"
echo "$got"
/usr/bin/zkroll --help | grep -q "rollout" || fail "/usr/bin/zkroll --help does not list rollout"
/usr/bin/zkroll-agent --help | grep -q "SIGHUP" || fail "/usr/bin/zkroll-agent --help does not mention SIGHUP"

echo "== account, configuration, unit"
entry=$(getent passwd zkroll) || fail "postinst did not create the zkroll account"
uid=$(echo "$entry" | cut -d: -f3)
shell=$(echo "$entry" | cut -d: -f7)
[ "$uid" -lt 1000 ] || fail "zkroll is not a system account (uid $uid)"
[ "$shell" = /usr/sbin/nologin ] || fail "zkroll has a login shell: $shell"
getent group zkroll >/dev/null || fail "postinst did not create the zkroll group"
echo "account: $entry"
dpkg-query -W -f='${Conffiles}\n' zkroll-agent | grep -q "^ /etc/zkroll/agent.conf " ||
  fail "/etc/zkroll/agent.conf is not a conffile of zkroll-agent"
cmp -s /etc/zkroll/agent.conf "$src/scripts/agent.conf.sample" ||
  fail "/etc/zkroll/agent.conf is not the sample configuration"
[ -d /etc/zkroll/agent.d ] || fail "/etc/zkroll/agent.d (--config-dir) is missing"
unit=/lib/systemd/system/zkroll-agent.service
[ -f "$unit" ] || fail "$unit is missing"
for line in "Type=notify" "NotifyAccess=main" "User=zkroll" \
    "ExecStart=/usr/bin/zkroll-agent --config /etc/zkroll/agent.conf --config-dir /etc/zkroll/agent.d"; do
  grep -qxF "$line" "$unit" || fail "$unit lacks '$line'"
done
grep -q "^WatchdogSec=" "$unit" || fail "$unit has no WatchdogSec="
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
  echo "systemd-analyze verify: ok"
else
  echo "NOTE: systemd-analyze is missing; the unit was not verified"
fi
[ -f /usr/share/doc/zkroll-agent/agent.md ] || fail "docs of zkroll-agent missing"
[ -f /usr/share/doc/zkroll/coordinator.md ] || fail "docs of zkroll missing"

echo "== reinstall (the upgrade path) keeps an edited conffile"
echo "# edited by the package test" >>/etc/zkroll/agent.conf
dpkg_locked -i "$agent_deb" >"$tmp/reinstall.log" 2>&1 ||
  { cat "$tmp/reinstall.log"; fail "reinstalling zkroll-agent failed"; }
grep -qx "# edited by the package test" /etc/zkroll/agent.conf ||
  fail "reinstalling replaced the edited /etc/zkroll/agent.conf"
[ "$(getent passwd zkroll)" = "$entry" ] || fail "reinstalling changed the zkroll account"

echo "== remove keeps configuration and account"
dpkg_locked --remove zkroll-agent >"$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log"; fail "dpkg --remove failed"; }
[ ! -e /usr/bin/zkroll-agent ] || fail "/usr/bin/zkroll-agent left after remove"
[ ! -e "$unit" ] || fail "$unit left after remove"
[ -f /etc/zkroll/agent.conf ] || fail "remove deleted the conffile (only purge may)"
getent passwd zkroll >/dev/null || fail "remove deleted the zkroll account (only purge may)"

echo "== purge"
dpkg_locked --purge zkroll-agent zkroll >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; fail "dpkg --purge failed"; }
for p in zkroll zkroll-agent; do
  if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qv '^not-installed$'; then
    fail "$p is still known to dpkg after purge"
  fi
done
[ ! -e /usr/bin/zkroll ] || fail "/usr/bin/zkroll left after purge"
[ ! -e /etc/zkroll ] || fail "/etc/zkroll left after purge: $(ls -la /etc/zkroll)"
! getent passwd zkroll >/dev/null || fail "the zkroll account is left after purge"
! getent group zkroll >/dev/null || fail "the zkroll group is left after purge"
echo "PASS: packages built, installed, checked, removed and purged"
