#!/usr/bin/env bash
# System test (label `system`, HOUSE_STYLE "Tests"): the built binaries installed into a Debian
# root booted with `systemd-nspawn -b`, openshelld.service started by systemd, and sandboxes made
# through the systemd driver (one transient unit per sandbox in openshell.slice).
#
#   tests/system/nspawn_test.sh BUILD_DIR
#
# The Debian root comes from debootstrap (Debian's package mirror, the one network this needs)
# and is cached under $OPENSHELL_SYSTEM_CACHE (default /var/tmp/openshell-system); each run
# boots a fresh copy of it. Exit 77 (skipped) when a prerequisite is missing, which CI turns into
# a failure with OPENSHELL_REQUIRE_PRIVILEGED=1.
set -uo pipefail

build=${1:?usage: nspawn_test.sh BUILD_DIR}
build=$(cd "$build" && pwd)
cache=${OPENSHELL_SYSTEM_CACHE:-/var/tmp/openshell-system}
mirror=${OPENSHELL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# netbase: /etc/hosts, which a sandbox binds its own over.
packages=systemd,systemd-sysv,dbus,netbase,libsystemd0,libcap2,libseccomp2,libnftables1,iproute2

skip() {
  echo "SKIPPED: $*"
  if [[ ${OPENSHELL_REQUIRE_PRIVILEGED:-0} == 1 ]]; then
    echo "OPENSHELL_REQUIRE_PRIVILEGED=1: a skip is a failure"
    exit 1
  fi
  exit 77
}
[[ $(id -u) == 0 ]] || skip "needs root"
for tool in debootstrap systemd-nspawn nsenter cmake; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (.ci/install-deps)"
done

failures=0
check() {  # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
  else
    echo "FAILED: $what"
    failures=$((failures + 1))
  fi
}

# --- the Debian root, once -------------------------------------------------------------------
base=$cache/bookworm
if [[ ! -x $base/usr/lib/systemd/systemd || ! -e $base/etc/hosts ]]; then
  rm -rf "$base"
  mkdir -p "$cache"
  echo "debootstrap: $mirror (once; cached in $base)"
  if ! debootstrap --variant=minbase --include="$packages" bookworm "$base.new" "$mirror" \
      >"$cache/debootstrap.log" 2>&1; then
    tail -20 "$cache/debootstrap.log"
    rm -rf "$base.new"
    echo "FAILED: debootstrap"
    exit 1
  fi
  mv "$base.new" "$base"
fi

root=$(mktemp -d /var/tmp/openshell-system-root.XXXXXX)
nspawn_pid=
cleanup() {
  if [[ -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
    inside systemctl poweroff >/dev/null 2>&1
    for _ in $(seq 1 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$nspawn_pid" 2>/dev/null
    wait "$nspawn_pid" 2>/dev/null
  fi
  rm -rf "$root" "$root.console"
}
trap cleanup EXIT
cp -a "$base/." "$root/"

# --- install, as a package would ----------------------------------------------------------------
DESTDIR=$root cmake --install "$build" --prefix /usr >/dev/null || { echo "FAILED: install"; exit 1; }
chroot "$root" systemctl enable openshelld.service >/dev/null 2>&1
# A policy of our own, so that a reload has something to change.
cat >"$root/etc/openshell/policies/sys.toml" <<'EOF'
version = 1

[filesystem_policy]
include_workdir = true
read_only = ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc"]

[network_policies.web]
binaries = [{ path = "/usr/bin/curl" }]

[[network_policies.web.endpoints]]
host = "one.example"
port = 443
EOF

# --- boot --------------------------------------------------------------------------------------
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -q -D "$root" -b -M openshell-sys \
  --register=no --keep-unit --private-network --console=passive >"$root.console" 2>&1 &
nspawn_pid=$!
# The container's init: a child of nspawn that is pid 1 in its own namespace. (nspawn's first
# child can be a short-lived helper; entering that one failed 2 runs in 9.)
leader=
for _ in $(seq 1 100); do
  for pid in $(pgrep -P "$nspawn_pid"); do
    if awk '/^NSpid:/ { exit ($NF == 1) ? 0 : 1 }' "/proc/$pid/status" 2>/dev/null; then
      leader=$pid
      break
    fi
  done
  [[ -n $leader ]] && break
  sleep 0.1
done
[[ -n $leader ]] || { cat "$root.console"; echo "FAILED: the container did not start"; exit 1; }
inside() { nsenter -t "$leader" -a -- "$@"; }
export leader
export -f inside  # for the checks that run a pipeline under bash -c
# Until systemd answers on its bus (before that: "offline", or no bus), then until start-up
# is over.
state=
for _ in $(seq 1 600); do
  state=$(timeout 120 nsenter -t "$leader" -a -- systemctl is-system-running --wait 2>/dev/null)
  [[ $state == running || $state == degraded ]] && break
  sleep 0.2
done
echo "system state: ${state:-unknown}"
check "openshelld.service is active" inside systemctl is-active --quiet openshelld.service

# --- the systemd driver --------------------------------------------------------------------------
check "status names the systemd driver" \
  bash -c "inside openshellctl status | grep -q '^driver *systemd$'"
check "create s1" inside openshellctl sandbox create s1 --policy sys -- /bin/sleep infinity
check "its transient unit is active" inside systemctl is-active --quiet openshell-sandbox-s1.service
check "the unit is in openshell.slice, delegated" bash -c "
  inside systemctl show -p Slice -p Delegate openshell-sandbox-s1.service | sort | tr '\n' ' ' |
    grep -q 'Delegate=yes Slice=openshell.slice'"
check "the sandbox's cgroup is inside the unit's" \
  inside test -d /sys/fs/cgroup/openshell.slice/openshell-sandbox-s1.service/s1
check "exec echo hi prints hi" bash -c "[[ \$(inside openshellctl exec s1 -- /bin/echo hi) == hi ]]"
inside openshellctl exec s1 -- /bin/sh -c 'exit 7'
check "exec 'exit 7' exits 7" test $? -eq 7
check "a file written in the workspace" inside openshellctl exec s1 -- /bin/sh -c 'echo kept > /sandbox/kept'
# The daemon's ready network namespace goes to the unit down its status channel (its stdin).
check "the unit was given openshelld's spare network namespace" bash -c "
  inside systemctl show -p ExecStart openshell-sandbox-s1.service | grep -q -- --netns-on-status &&
    ! inside journalctl --no-pager -o cat -u openshell-sandbox-s1.service |
      grep -q 'namespace given is none'"
# A unit whose command cannot run fails the create with the reason (its status channel closes
# without \"launched\"), and its unit goes.
check "a create whose command is missing fails, with why" bash -c "
  inside openshellctl sandbox create s2 --policy sys -- /no/such/command 2>&1 |
    grep -q 'command not found'"
check "s2's unit is gone" bash -c "! inside systemctl is-active --quiet openshell-sandbox-s2.service"
check "delete s2" inside openshellctl sandbox delete s2

# Events in the journal, selected by the sandbox's field.
check "journalctl OPENSHELL_SANDBOX=s1 has the agent's launch" bash -c "
  inside journalctl --no-pager -o cat OPENSHELL_SANDBOX=s1 OCSF_CLASS_UID=1007 | grep -q 'agent launched'"

# Reload through systemd: a new endpoint is a new revision for s1.
printf '\n[[network_policies.web.endpoints]]\nhost = "two.example"\nport = 443\n' \
  >>"$root/etc/openshell/policies/sys.toml"
check "systemctl reload openshelld" inside systemctl reload openshelld.service
check "s1 is on revision 2" bash -c "
  inside openshellctl --json sandbox get s1 | grep -q '\"revision\":2'"
check "the reload is in s1's events" bash -c "
  inside journalctl --no-pager -o cat OPENSHELL_SANDBOX=s1 OCSF_CLASS_UID=5019 | grep -qi 'loaded'"
# A broken file: the reload fails, nothing changes.
echo 'this is = = not toml' >"$root/etc/openshell/policies/broken.toml"
check "a broken policy fails systemctl reload" bash -c "! inside systemctl reload openshelld.service"
check "s1 stays on revision 2" bash -c "
  inside openshellctl --json sandbox get s1 | grep -q '\"revision\":2'"
check "the rejection is in s1's journal events" bash -c "
  inside journalctl --no-pager -o cat OPENSHELL_SANDBOX=s1 OCSF_CLASS_UID=5019 |
    grep -q 'policy reload rejected'"
rm -f "$root/etc/openshell/policies/broken.toml"

# kill -9 openshelld: systemd restarts it (Restart=on-failure); the sandbox's unit never noticed.
inside systemctl kill -s KILL openshelld.service
for _ in $(seq 1 100); do
  sleep 0.2
  inside systemctl is-active --quiet openshelld.service && break
done
check "openshelld is back after kill -9" inside systemctl is-active --quiet openshelld.service
check "s1 is still running" bash -c "
  inside openshellctl sandbox list | grep -q '^s1 *running'"
check "the workspace file survived" bash -c "
  [[ \$(inside openshellctl exec s1 -- /bin/cat /sandbox/kept) == kept ]]"

# A daemon that went between the unit's start and its "launched" left a record without the
# supervisor's pid: the next one finds the supervisor through the unit (MainPID), checked.
inside systemctl stop openshelld.service
sed -i 's/"supervisor_pid": [0-9]*/"supervisor_pid": -1/; s/"phase": "running"/"phase": "creating"/' \
  "$root/var/lib/openshell/sandboxes/s1.json"
check "s1's record has no pid, as such a daemon leaves it" \
  grep -q '"supervisor_pid": -1' "$root/var/lib/openshell/sandboxes/s1.json"
inside systemctl start openshelld.service
check "a record without a pid is adopted through the unit" bash -c "
  inside openshellctl sandbox list | grep -q '^s1 *running' &&
    [[ \$(inside openshellctl exec s1 -- /bin/cat /sandbox/kept) == kept ]]"

# run: a sandbox for one command, gone afterwards.
check "run -- /bin/true" inside openshellctl run -- /bin/true
check "run's unit is gone too" bash -c "
  [[ -z \$(inside systemctl list-units --no-legend --state=active 'openshell-sandbox-run-*') ]]"
check "delete s1" inside openshellctl sandbox delete s1
check "s1's unit is gone" bash -c "! inside systemctl is-active --quiet openshell-sandbox-s1.service"
check "no sandbox is left" bash -c "[[ -z \$(inside openshellctl --json sandbox list | tr -d '[:space:][]') ]]"

if ((failures > 0)); then
  echo "--- openshelld's journal"
  inside journalctl --no-pager -u openshelld.service | tail -30
  echo "--- openshell.slice"
  inside journalctl --no-pager _SYSTEMD_SLICE=openshell.slice | tail -30
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
