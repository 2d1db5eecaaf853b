#!/usr/bin/env bash
# The system test (label `system`): openshell as a user gets it. The .deb is built, installed
# with apt into a Debian 12 root booted with `systemd-nspawn -b`, and used there as a new user
# would: systemd starts the daemon, sandboxes are units of the systemd driver, a member of group
# openshell works with their own, policies reload, the journal has the events, a restart and an
# upgrade keep running sandboxes, and a purge leaves nothing behind.
#
#   tests/system/package_test.sh BUILD_DIR
#
# The package is built with packaging/deb/build.sh in $OPENSHELL_PACKAGE_DIR (default
# BUILD_DIR/packages; a rebuild compiles only what changed). The Debian root comes from
# debootstrap (Debian's package mirror, the one network this needs) and is cached under
# $OPENSHELL_SYSTEM_CACHE (default BUILD_DIR/system-cache); each run boots a fresh copy of it.
# Exit 77 (skipped) when a prerequisite is missing, which CI turns into a failure with
# OPENSHELL_REQUIRE_PRIVILEGED=1.
set -uo pipefail

build=${1:?usage: package_test.sh BUILD_DIR}
build=$(cd "$build" && pwd)
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
packages_dir=${OPENSHELL_PACKAGE_DIR:-$build/packages}
cache=${OPENSHELL_SYSTEM_CACHE:-$build/system-cache}
mirror=${OPENSHELL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the package depends on, so that apt installs it without a network (the container has
# none); netbase for /etc/hosts, which a sandbox binds its own over; man-db and bash-completion
# for what a user reaches for first.
root_packages=systemd,systemd-sysv,dbus,netbase,libsystemd0,libcap2,libseccomp2,libnftables1,libssl3,iproute2,man-db,bash-completion

skip() {
  echo "SKIPPED: $*"
  if [[ ${OPENSHELL_REQUIRE_PRIVILEGED:-0} == 1 ]]; then
    echo "OPENSHELL_REQUIRE_PRIVILEGED=1: a skip is a failure"
    exit 1
  fi
  exit 77
}
[[ $(id -u) == 0 ]] || skip "needs root"
for tool in debootstrap systemd-nspawn nsenter dpkg-buildpackage; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (.ci/install-deps)"
done

failures=0
check() {  # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1
  shift
  if "$@"; then
    echo "   ok: $what"
  else
    echo "   FAILED: $what"
    failures=$((failures + 1))
  fi
}
step() { echo; echo "== $*"; }

# --- the package ---------------------------------------------------------------------------
step "Build the Debian package (packaging/deb/build.sh $packages_dir)"
if ! "$source_dir/packaging/deb/build.sh" "$packages_dir" >"$build/package-build.log" 2>&1; then
  tail -30 "$build/package-build.log"
  echo "FAILED: the package did not build (all of it: $build/package-build.log)"
  exit 1
fi
deb=$(tail -1 "$build/package-build.log")
version=$(dpkg-deb -f "$deb" Version)
echo "   built $(basename "$deb")"

# --- the Debian root, once -------------------------------------------------------------------
base=$cache/bookworm
step "A Debian 12 root to boot"
if [[ ! -x $base/usr/lib/systemd/systemd || ! -e $base/etc/hosts || ! -x $base/usr/bin/man ]]; then
  rm -rf "$base"
  mkdir -p "$cache"
  echo "   debootstrap from $mirror (once; cached in $base)"
  if ! debootstrap --variant=minbase --include="$root_packages" bookworm "$base.new" "$mirror" \
      >"$cache/debootstrap.log" 2>&1; then
    tail -20 "$cache/debootstrap.log"
    rm -rf "$base.new"
    echo "FAILED: debootstrap"
    exit 1
  fi
  mv "$base.new" "$base"
else
  echo "   the cached one in $base"
fi

root=$(mktemp -d "$cache/root.XXXXXX")
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
cp "$deb" "$root/root/"

# --- boot ----------------------------------------------------------------------------------------
step "Boot it with systemd-nspawn -b"
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
as_alice() { inside runuser -u alice -- "$@"; }
export leader
export -f inside as_alice  # for the checks that run a pipeline under bash -c
# Until systemd answers on its bus (before that: "offline", or no bus), then until start-up
# is over.
state=
for _ in $(seq 1 600); do
  state=$(timeout 120 nsenter -t "$leader" -a -- systemctl is-system-running --wait 2>/dev/null)
  [[ $state == running || $state == degraded ]] && break
  sleep 0.2
done
echo "   system state: ${state:-unknown}"

# --- install ---------------------------------------------------------------------------------------
step "apt-get install ./$(basename "$deb")"
inside sh -c "cd /root && DEBIAN_FRONTEND=noninteractive apt-get install -y ./$(basename "$deb")" \
  >"$build/package-install.log" 2>&1
check "apt-get installs it (log: $build/package-install.log)" test $? -eq 0
check "systemctl is-active openshelld: the package enabled and started it" \
  inside systemctl is-active --quiet openshelld.service
check "it is enabled for the next boot" inside systemctl is-enabled --quiet openshelld.service
check "group openshell exists" bash -c "inside getent group openshell >/dev/null"
check "openshellctl status names the systemd driver" \
  bash -c "inside openshellctl status | grep -q '^driver *systemd$'"
check "openshellctl run -- id: the agent is sandbox (1000) inside" \
  bash -c "inside openshellctl run -- id | grep -q 'uid=1000(sandbox)'"
check "man openshell-policy shows the policy reference" \
  bash -c "inside man -P cat openshell-policy 2>/dev/null | grep -q 'network_policies'"
check "man openshellctl, openshelld, openshell-supervisor and openshelld.toml are there" \
  inside sh -c 'for p in openshellctl openshelld openshell-supervisor openshelld.toml; do
                  man -w $p >/dev/null || exit 1; done'
# As bash-completion's loader finds it, on the first TAB after `openshellctl `.
complete_bash() {
  inside bash -c 'source /usr/share/bash-completion/bash_completion
                  COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
                  _completion_loader openshellctl; _openshellctl; echo "${COMPREPLY[*]}"' _ "$@"
}
export -f complete_bash
check "openshellctl <TAB> completes the commands" \
  bash -c "[[ \$(complete_bash openshellctl '') == *'sandbox'*'policy'* ]]"

# --- the systemd driver --------------------------------------------------------------------------
step "A sandbox of root's, through the systemd driver"
# A policy of our own, so that a reload has something to change.
cat >"$root/etc/openshell/policies/sys.toml" <<'POLICY'
version = 1

[filesystem_policy]
include_workdir = true
read_only = ["/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc"]

[network_policies.web]
binaries = [{ path = "/usr/bin/curl" }]

[[network_policies.web.endpoints]]
host = "one.example"
port = 443
POLICY
check "create s1" inside openshellctl sandbox create s1 --policy sys -- /bin/sleep infinity
check "its transient unit is active" inside systemctl is-active --quiet openshell-sandbox-s1.service
check "the unit is in openshell.slice, delegated" bash -c "
  inside systemctl show -p Slice -p Delegate openshell-sandbox-s1.service | sort | tr '\n' ' ' |
    grep -q 'Delegate=yes Slice=openshell.slice'"
check "the sandbox's cgroup is inside the unit's" \
  inside test -d /sys/fs/cgroup/openshell.slice/openshell-sandbox-s1.service/s1
check "openshellctl <TAB> after exec completes s1, from the daemon" \
  bash -c "[[ \$(complete_bash openshellctl exec '') == s1 ]]"
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
check "journalctl OPENSHELL_SANDBOX=s1 has the agent's launch" bash -c "
  inside journalctl --no-pager -o cat OPENSHELL_SANDBOX=s1 OCSF_CLASS_UID=1007 | grep -q 'agent launched'"

# --- a member of group openshell ----------------------------------------------------------------
step "alice, a member of group openshell, works with her own sandboxes"
inside useradd -m -G openshell alice
check "alice creates a1" as_alice openshellctl sandbox create a1
check "alice execs in a1, as sandbox" bash -c "[[ \$(as_alice openshellctl exec a1 -- id -un) == sandbox ]]"
check "alice's list has a1 and not root's s1" bash -c "
  out=\$(as_alice openshellctl sandbox list) && [[ \$out == *a1* && \$out != *s1* ]]"
check "alice cannot exec in s1" bash -c "! as_alice openshellctl exec s1 -- true 2>/dev/null"
check "root sees both" bash -c "out=\$(inside openshellctl sandbox list) && [[ \$out == *a1* && \$out == *s1* ]]"

# --- policy reload ---------------------------------------------------------------------------------
step "Edit a policy and systemctl reload openshelld"
printf '\n[[network_policies.web.endpoints]]\nhost = "two.example"\nport = 443\n' \
  >>"$root/etc/openshell/policies/sys.toml"
check "systemctl reload openshelld" inside systemctl reload openshelld.service
check "s1 is on revision 2" bash -c "
  inside openshellctl --json sandbox get s1 | grep -q '\"revision\":2'"
check "the reload is in s1's journal events" bash -c "
  inside journalctl --no-pager -o cat OPENSHELL_SANDBOX=s1 OCSF_CLASS_UID=5019 | grep -qi 'loaded'"
# A broken file: the reload fails, nothing changes.
echo 'this is = = not toml' >"$root/etc/openshell/policies/broken.toml"
check "a broken policy fails systemctl reload" bash -c "! inside systemctl reload openshelld.service 2>/dev/null"
check "s1 stays on revision 2" bash -c "
  inside openshellctl --json sandbox get s1 | grep -q '\"revision\":2'"
check "the rejection is in s1's journal events" bash -c "
  inside journalctl --no-pager -o cat OPENSHELL_SANDBOX=s1 OCSF_CLASS_UID=5019 |
    grep -q 'policy reload rejected'"
rm -f "$root/etc/openshell/policies/broken.toml"

# --- restarts ----------------------------------------------------------------------------------------
step "Restart the daemon, and kill it: the sandboxes keep running"
check "systemctl restart openshelld" inside systemctl restart openshelld.service
check "s1 is still running, and its workspace file is there" bash -c "
  inside openshellctl sandbox list | grep -q '^s1 *running' &&
    [[ \$(inside openshellctl exec s1 -- /bin/cat /sandbox/kept) == kept ]]"
# kill -9: systemd restarts it (Restart=on-failure); the sandbox's unit never noticed.
inside systemctl kill -s KILL openshelld.service
for _ in $(seq 1 100); do
  sleep 0.2
  inside systemctl is-active --quiet openshelld.service && break
done
check "openshelld is back after kill -9" inside systemctl is-active --quiet openshelld.service
check "s1 is still running" bash -c "inside openshellctl sandbox list | grep -q '^s1 *running'"
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
check "run -- /bin/true leaves no unit behind" bash -c "
  inside openshellctl run -- /bin/true &&
    [[ -z \$(inside systemctl list-units --no-legend --state=active 'openshell-sandbox-run-*') ]]"

# --- upgrade ---------------------------------------------------------------------------------------
step "Upgrade to a rebuilt package of a higher version"
next=$version+upgrade1
# The same tree with a changelog entry on top, through dpkg-buildpackage again.
"$source_dir/packaging/deb/build.sh" "$packages_dir" "$next" >"$build/package-upgrade-build.log" 2>&1
built=$?
next_deb=$(ls "$packages_dir"/openshell_"$next"_*.deb 2>/dev/null)
check "openshell $next built (log: $build/package-upgrade-build.log)" test $built -eq 0 -a -n "$next_deb"
sed -i 's/^max_sandboxes = 64$/# edited by the system test\nmax_sandboxes = 32/' "$root/etc/openshell/openshelld.toml"
daemon_before=$(inside systemctl show -p MainPID --value openshelld.service)
cp "$next_deb" "$root/root/"
inside sh -c "cd /root && DEBIAN_FRONTEND=noninteractive apt-get install -y ./$(basename "$next_deb")" \
  >>"$build/package-install.log" 2>&1
check "apt-get installs the upgrade" test $? -eq 0
check "dpkg has $next" bash -c "[[ \$(inside dpkg-query -W -f '\${Version}' openshell) == '$next' ]]"
check "the edited conffile is kept" grep -q 'edited by the system test' "$root/etc/openshell/openshelld.toml"
check "openshelld was restarted, and is active" bash -c "
  inside systemctl is-active --quiet openshelld.service &&
    [[ \$(inside systemctl show -p MainPID --value openshelld.service) != '$daemon_before' ]]"
check "s1 kept running across the upgrade, with its workspace" bash -c "
  inside openshellctl sandbox list | grep -q '^s1 *running' &&
    [[ \$(inside openshellctl exec s1 -- /bin/cat /sandbox/kept) == kept ]]"
check "alice's a1 too" bash -c "[[ \$(as_alice openshellctl exec a1 -- /bin/echo up) == up ]]"
rm -f "$next_deb" "$packages_dir"/openshell_"$next"_*.{buildinfo,changes}

# --- purge -----------------------------------------------------------------------------------------
step "apt-get purge openshell, with sandboxes still running"
inside sh -c "DEBIAN_FRONTEND=noninteractive apt-get purge -y openshell" >>"$build/package-install.log" 2>&1
check "apt-get purge" test $? -eq 0
check "no openshell unit is loaded or installed" bash -c "
  [[ -z \$(inside systemctl list-units --all --no-legend 'openshell*') &&
     -z \$(inside systemctl list-unit-files --no-legend 'openshell*') ]]"
check "no supervisor is left" bash -c "! inside sh -c 'grep -qs [o]penshell-supervisor /proc/[0-9]*/cmdline'"
check "group openshell is gone" bash -c "! inside getent group openshell >/dev/null"
check "no state, log or runtime directory is left" bash -c "
  for d in /var/lib/openshell /var/log/openshell /run/openshell; do
    inside test ! -e \$d || { echo \"   left: \$d\"; exit 1; }
  done"
# dpkg removes the configuration it shipped, edited or not; a policy the user wrote is theirs.
check "the shipped configuration is gone; the policy we wrote is all that is left there" bash -c "
  [[ \$(cd '$root/etc/openshell' && find . -type f) == ./policies/sys.toml ]]"
check "dpkg knows it no more" bash -c "! inside dpkg-query -W openshell >/dev/null 2>&1"

echo
if ((failures > 0)); then
  echo "--- openshelld's journal"
  inside journalctl --no-pager -u openshelld.service | tail -30
  echo "--- openshell.slice"
  inside journalctl --no-pager _SYSTEMD_SLICE=openshell.slice | tail -30
  echo "--- the journal's last lines"
  inside journalctl --no-pager | tail -60
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
