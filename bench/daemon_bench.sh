#!/usr/bin/env bash
# bench/daemon_bench.sh [BUILD_DIR]: openshelld's figures (issue 4), in one run, on a private
# bus in a temp dir (nothing is installed; everything made is removed on exit):
#   - `openshellctl run -- /bin/true` through the daemon, against bwrap (start_latency, RUNS runs);
#   - a policy reload pushed to SANDBOXES running sandboxes (REPEAT times);
#   - RSS of the idle daemon, of the daemon with the sandboxes, and of one supervisor (and its
#     Pss and private memory with the sandboxes running).
# Environment: RUNS (default 50; in ROUNDS alternating rounds, default 5), SANDBOXES (default 50), REPEAT (default 3), BENCH_TMP (where
# the daemon's directories go; default /tmp).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=$(realpath -m "${1:-$repo/build/release}")
runs=${RUNS:-50}
sandboxes=${SANDBOXES:-50}
repeat=${REPEAT:-3}
rounds=${ROUNDS:-5}
die() { echo "bench/daemon_bench.sh: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root"
for bin in openshelld/openshelld ctl/openshellctl supervisor/openshell-supervisor bench/start_latency; do
  [[ -x $build_dir/$bin ]] || die "missing $build_dir/$bin (cmake --build $build_dir)"
done
command -v dbus-daemon >/dev/null || die "dbus-daemon not found (apt-get install dbus-daemon)"
command -v bwrap >/dev/null || die "bwrap not found (apt-get install bubblewrap)"

tmp=$(mktemp -d ${BENCH_TMP:-/tmp}/daemon-bench.XXXXXX)
pids=()
cleanup() {
  local ctl=("$build_dir/ctl/openshellctl" --bus "unix:path=$tmp/bus")
  for name in $("${ctl[@]}" --json sandbox list 2>/dev/null | grep -o '"name":"[^"]*"' |
    cut -d'"' -f4); do
    "${ctl[@]}" sandbox delete "$name" >/dev/null 2>&1 || true
  done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/policies"
cp "$repo/policy-examples/default.toml" "$tmp/policies/"
cat >"$tmp/bus.conf" <<CONF
<busconfig><type>custom</type><listen>unix:path=$tmp/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/>
<allow receive_sender="*"/></policy></busconfig>
CONF
cat >"$tmp/openshelld.toml" <<CONF
state_dir = "$tmp/state"
policy_dir = "$tmp/policies"
runtime_dir = "$tmp/run"
log_dir = "$tmp/log"
supervisor = "$build_dir/supervisor/openshell-supervisor"
max_sandboxes = $((sandboxes + 10))
CONF
dbus-daemon --config-file="$tmp/bus.conf" --nofork 2>/dev/null &
pids+=($!)
for _ in $(seq 50); do [[ -S $tmp/bus ]] && break; sleep 0.1; done
"$build_dir/openshelld/openshelld" --config "$tmp/openshelld.toml" --bus "unix:path=$tmp/bus" \
  2>"$tmp/daemon.log" &
daemon=$!
pids+=($daemon)
ctl=("$build_dir/ctl/openshellctl" --bus "unix:path=$tmp/bus")
for _ in $(seq 50); do "${ctl[@]}" status >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# Proportional and private memory: a supervisor's RSS is mostly library and binary pages that
# every supervisor shares (Pss divides them among the sharers; Private is its own alone).
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
private() { awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' "/proc/$1/smaps_rollup"; }

echo "# openshelld figures: $runs runs each in $rounds rounds, $sandboxes sandboxes for the reload"
idle_rss=$(rss "$daemon")
# In ROUNDS alternating rounds (RUNS/ROUNDS runs of each per round): this VM's speed drifts
# over seconds, and a drift between two long blocks would land in the ratio. The headline is
# the median of the rounds' ratios.
per_round=$(((runs + rounds - 1) / rounds))
ratios=()
for r in $(seq "$rounds"); do
  run_line=$("$build_dir/bench/start_latency" --runs "$per_round" --warmup 3 --label "ctl-run#$r" -- \
    "${ctl[@]}" run -- /bin/true)
  bwrap_line=$("$build_dir/bench/start_latency" --runs "$per_round" --warmup 3 --label "bwrap#$r" -- \
    bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev /bin/true)
  echo "$run_line"
  echo "$bwrap_line"
  run_ms=$(sed 's/.*median_ms=\([0-9.]*\).*/\1/' <<<"$run_line")
  bwrap_ms=$(sed 's/.*median_ms=\([0-9.]*\).*/\1/' <<<"$bwrap_line")
  ratios+=("$(awk -v a="$run_ms" -v b="$bwrap_ms" 'BEGIN { printf "%.2f", a / b }')")
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ r[NR] = $1 } END {
  m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
  printf "run through the daemon / bwrap: %.2fx, median of %d rounds (%.2fx-%.2fx) (goal <= 3x) %s\n",
    m, NR, r[1], r[NR], (m <= 3 ? "ok" : "OVER GOAL") }'

for i in $(seq "$sandboxes"); do "${ctl[@]}" sandbox create "b$i" >/dev/null; done
supervisor=$(pgrep -f -- "--name b1 " | head -1)
for i in $(seq "$repeat"); do
  printf '# revision %s\n' "$i" >>"$tmp/policies/default.toml"
  start=$(date +%s%N)
  applied=$("${ctl[@]}" --json policy reload | grep -o '"b[0-9]*"' | wc -l)
  end=$(date +%s%N)
  awk -v ms="$(((end - start) / 1000))" -v n="$applied" \
    'BEGIN { t = ms / 1000; printf "reload to %d sandboxes: %.1f ms (goal < 200 ms) %s\n", n, t, (t < 200 ? "ok" : "OVER GOAL") }'
done
echo "RSS: daemon idle $idle_rss KiB, daemon with $sandboxes sandboxes $(rss "$daemon") KiB," \
  "one supervisor $(rss "$supervisor") KiB (goal < 8192 KiB; with $sandboxes running: Pss" \
  "$(pss "$supervisor") KiB, private $(private "$supervisor") KiB)"
