#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR]: sandbox start latency of openshell-supervisor against bubblewrap.
#
# Both sandboxes run /bin/true RUNS times (default 100, at least 50) in this one invocation,
# measured by BUILD_DIR/bench/start_latency, and the script prints a table and the ratio of
# the medians (goal: <= 1.5x). See bench/README.md.
#
# Environment:
#   RUNS=N          measured runs per command (>= 50; default 100)
#   SUPERVISOR=PATH supervisor binary (default BUILD_DIR/supervisor/openshell-supervisor)
#   POLICY=PATH     policy file (default policy-examples/default.toml)
#   ENFORCE_GOAL=1  exit 3 when the ratio is above the goal (for CI gates)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-$repo/build/dev}
runs=${RUNS:-100}
supervisor=${SUPERVISOR:-$build_dir/supervisor/openshell-supervisor}
policy=${POLICY:-$repo/policy-examples/default.toml}
start_latency=$build_dir/bench/start_latency
goal=1.5
min_runs=50

die() {
  echo "bench/run.sh: $*" >&2
  exit 1
}

# Both sandboxes get the same privileges: the supervisor needs root for cgroups and nftables,
# and bwrap run by root is what it is compared with.
[[ $(id -u) -eq 0 ]] || die "must run as root (the supervisor needs it); try: sudo $0 $*"
if ! [[ $runs =~ ^[0-9]+$ ]] || ((runs < min_runs)); then
  die "RUNS must be a number >= $min_runs, got '$runs'"
fi
[[ -x $supervisor ]] || die "supervisor binary missing: $supervisor
  build it with: cmake --build $build_dir --target openshell-supervisor
  (or pass the build directory: $0 BUILD_DIR)"
[[ -x $start_latency ]] || die "start_latency missing: $start_latency
  build it with: cmake --build $build_dir --target start_latency"
[[ -r $policy ]] || die "policy file missing: $policy"
command -v bwrap >/dev/null || die "bwrap not found (apt-get install bubblewrap)"

supervisor_cmd=("$supervisor" run --policy-file "$policy" -- /bin/true)
bwrap_cmd=(bwrap --unshare-all --ro-bind / / --proc /proc --dev /dev /bin/true)

# start_latency hides the commands' output; one visible run first turns a broken sandbox into a
# readable error instead of a bare "exited with status 1".
for cmd in supervisor_cmd bwrap_cmd; do
  declare -n argv=$cmd
  if ! out=$("${argv[@]}" 2>&1); then
    die "'${argv[*]}' fails, nothing to measure:
$out"
  fi
  unset -n argv
done

measure() {  # LABEL CMD... -> one key=value line from start_latency
  local label=$1
  shift
  "$start_latency" --runs "$runs" --warmup 3 --label "$label" -- "$@" ||
    die "start_latency failed for $label"
}

supervisor_line=$(measure openshell-supervisor "${supervisor_cmd[@]}")
bwrap_line=$(measure bwrap "${bwrap_cmd[@]}")

printf '%s\n%s\n' "$supervisor_line" "$bwrap_line" | awk -v goal="$goal" -v runs="$runs" '
  {
    for (i = 1; i <= NF; i++) {
      split($i, kv, "=")
      value[NR, kv[1]] = kv[2]
    }
  }
  END {
    printf "sandbox start latency of /bin/true: %d runs each after 3 warm-ups, in ms\n", runs
    printf "%-22s %9s %9s %9s\n", "command", "median", "p95", "min"
    for (r = 1; r <= 2; r++) {
      printf "%-22s %9.3f %9.3f %9.3f\n", value[r, "label"], value[r, "median_ms"],
             value[r, "p95_ms"], value[r, "min_ms"]
    }
    ratio = value[1, "median_ms"] / value[2, "median_ms"]
    p95_ratio = value[1, "p95_ms"] / value[2, "p95_ms"]
    printf "ratio supervisor/bwrap: %.2fx median, %.2fx p95 (goal: median <= %.1fx) %s\n",
           ratio, p95_ratio, goal, ratio <= goal ? "ok" : "OVER GOAL"
    exit ratio <= goal ? 0 : 3
  }' || status=$?

if [[ ${status:-0} -eq 3 && ${ENFORCE_GOAL:-0} == 1 ]]; then
  exit 3
fi
