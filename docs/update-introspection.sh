#!/usr/bin/env bash
# docs/update-introspection.sh [BUILD_DIR]: rewrites the interface in
# docs/org.openshell.Manager1.xml from what the built openshelld serves (on a private bus in a
# temp dir). daemon_test fails until the two agree; run this after changing the bus methods,
# then describe them in docs/dbus-api.md.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(realpath -m "${1:-$repo/build/dev}")
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/policies"
printf '%s\n' "state_dir = \"$tmp/state\"" "policy_dir = \"$tmp/policies\"" \
  "runtime_dir = \"$tmp/run\"" "log_dir = \"$tmp/log\"" >"$tmp/openshelld.toml"
printf '%s\n' "<busconfig><type>custom</type><listen>unix:path=$tmp/bus</listen>" \
  '<auth>EXTERNAL</auth><policy context="default"><allow user="*"/><allow own="*"/>' \
  '<allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>' >"$tmp/bus.conf"
dbus-daemon --config-file="$tmp/bus.conf" --nofork 2>/dev/null &
for _ in $(seq 50); do [[ -S $tmp/bus ]] && break; sleep 0.1; done
"$build/openshelld/openshelld" --config "$tmp/openshelld.toml" --bus "unix:path=$tmp/bus" 2>/dev/null &
for _ in $(seq 50); do
  busctl --address="unix:path=$tmp/bus" introspect --xml-interface org.openshell.Manager1 \
    /org/openshell/Manager1 >"$tmp/live.xml" 2>/dev/null && break
  sleep 0.1
done
python3 - "$tmp/live.xml" "$repo/docs/org.openshell.Manager1.xml" <<'PY'
import sys
live, doc_path = open(sys.argv[1]).read(), sys.argv[2]
doc = open(doc_path).read()
tag = '<interface name="org.openshell.Manager1">'
lb, db = live.index(tag), doc.index(tag)
le, de = live.index('</interface>', lb), doc.index('</interface>', db)
open(doc_path, 'w').write(doc[:db] + live[lb:le] + doc[de:])
PY
echo "updated docs/org.openshell.Manager1.xml"
