#!/usr/bin/env bash
# bench/proxy_bench.sh [BUILD_DIR]: openshell's egress proxy against no proxy, squid and
# tinyproxy, in one run, on the same upstream. See bench/README.md.
#
# One network namespace with a veth pair (a /30 of 10.77.250.0/24: .1 on the host, .2 inside)
# holds the upstream: BUILD_DIR/tests/helpers/upstream_server in http-keepalive mode on :8080, in http
# mode (one answer per connection, then close) on :8081 and in bulk mode on :9000.
# BUILD_DIR/bench/http_load then measures, for each column, small GETs with client keep-alive
# (CONNECTIONS connections, REQUESTS requests or DURATION seconds) to each of the two HTTP
# upstreams, and one CONNECT tunnel reading BULK_MIB MiB. openshell's column runs http_load inside a sandbox, through the
# sandbox's explicit proxy. squid and tinyproxy run from configs generated in a temp dir, on
# loopback only; a missing one is skipped with a hint. Nothing is installed, and everything
# made here (namespace, veth, daemons, temp dir) is removed on exit.
#
# Environment:
#   REQUESTS=N      requests per rate measurement (default 20000)
#   DURATION=S      time limit per rate measurement, 1..60 s (default 15)
#   CONNECTIONS=C   concurrent connections for the rate measurement (default 16)
#   BULK_MIB=M      MiB through the tunnel, 1..4096 (default 512)
#   ROUNDS=R        rounds of direct, squid and openshell, in alternating order, 1..9 (default 3)
#   SUPERVISOR=PATH supervisor binary (default BUILD_DIR/supervisor/openshell-supervisor)
#   EVENTS=0        run the sandbox without an --events file (default: events on, as deployed)
#   L7=1            the HTTP upstreams are a protocol = "rest" endpoint: every request judged
#   ENFORCE_GOAL=1  exit 3 when a ratio misses its goal (for CI gates)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=$(realpath -m "${1:-$repo/build/dev}")
supervisor=${SUPERVISOR:-$build_dir/supervisor/openshell-supervisor}
http_load=$build_dir/bench/http_load
upstream_server=$build_dir/tests/helpers/upstream_server
requests=${REQUESTS:-20000}
duration=${DURATION:-15}
connections=${CONNECTIONS:-16}
bulk_mib=${BULK_MIB:-512}
rounds=${ROUNDS:-3}
bulk_goal=0.8  # openshell/direct, bulk MiB/s: at least
rps_goal=2.0   # openshell/squid, requests/s: at least

netns=osh-bench-$$
veth=oshb$$  # at most 11 characters: fits IFNAMSIZ
host_addr=  # a free /30 of 10.77.250.0/24, picked below
up_addr=
http_port=8080        # keeps connections alive: the proxy's own cost per request
close_port=8081       # closes after every answer: adds an upstream connect per request
bulk_port=9000
squid_port=3129
tinyproxy_port=8888
server_seconds=900  # the servers outlive any run of this script, and stop by themselves after

die() {
  echo "bench/proxy_bench.sh: $*" >&2
  exit 1
}
note() { echo "# $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, the supervisor); try: sudo $0 $*"
for spec in "requests 1 1000000" "duration 1 60" "connections 1 256" "bulk_mib 1 4096" \
  "rounds 1 9"; do
  read -r var lo hi <<<"$spec"
  value=${!var}
  if ! [[ $value =~ ^[0-9]+$ ]] || ((value < lo || value > hi)); then
    die "${var^^} must be a number in $lo..$hi, got '$value'"
  fi
done
[[ -x $http_load ]] || die "http_load missing: $http_load
  build it with: cmake --build $build_dir --target http_load"
[[ -x $upstream_server ]] || die "upstream_server missing: $upstream_server
  build it with: cmake --build $build_dir --target upstream_server"
[[ -x $supervisor ]] || die "supervisor binary missing: $supervisor
  build it with: cmake --build $build_dir --target openshell-supervisor"
command -v ip >/dev/null || die "ip not found (apt-get install iproute2)"
command -v flock >/dev/null || die "flock not found (apt-get install util-linux)"

squid_bin=$(PATH=$PATH:/usr/sbin:/sbin command -v squid || true)
tinyproxy_bin=$(PATH=$PATH:/usr/sbin:/usr/bin command -v tinyproxy || true)
[[ -n $squid_bin ]] || note "squid not found: its column is skipped (apt-get install -y squid)"
[[ -n $tinyproxy_bin ]] ||
  note "tinyproxy not found: its column is skipped (apt-get install -y tinyproxy)"

tmp=$(mktemp -d /tmp/proxy-bench.XXXXXX)
chmod 755 "$tmp"  # squid and tinyproxy drop to their own users and write below here
pids=()           # background processes we started, killed in cleanup

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    # squid takes up to shutdown_lifetime to go; give every process 5 s, then force it.
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  ip link del "$veth" 2>/dev/null || true
  ip netns del "$netns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for WHAT CMD...: polls CMD for up to 10 s.
wait_for() {
  local what=$1
  shift
  for _ in $(seq 100); do
    "$@" && return 0
    sleep 0.1
  done
  die "$what did not come up within 10 s"
}

listening() { ss -Hltn "sport = :$1" | grep -q .; }

# --- the upstream namespace -----------------------------------------------------------------
# As tests/support/upstream.cpp does it, under the same host-wide lock, so a test creating an
# UpstreamHost at the same moment cannot pick our addresses (it skips slots whose address any
# interface holds). Namespaces of earlier runs that died are removed first.
exec {lock_fd}>>/run/openshell-test-upstream.lock
flock -w 30 "$lock_fd" || die "timed out waiting for /run/openshell-test-upstream.lock"
for stale in $(ip netns list | awk '{print $1}' | grep '^osh-bench-' || true); do
  owner=${stale#osh-bench-}
  if [[ $owner =~ ^[0-9]+$ ]] && ! kill -0 "$owner" 2>/dev/null; then ip netns del "$stale"; fi
done
# A /30 that no interface holds (a test's, or a live run's) and that no socket on this host
# still names: tinyproxy opens an upstream connection per request and leaves up to REQUESTS of
# them in TIME_WAIT for 60 s, so a run right after this one, to the same address, would find
# the ephemeral ports taken (squid's ERR_CONNECT_FAIL 99, failed columns).
held=$(ip -o -4 addr show)
for slot in $(seq 0 63); do
  candidate=10.77.250.$((slot * 4 + 1))
  [[ $held != *" inet $candidate/"* ]] || continue
  [[ -z $(ss -Htan "dst 10.77.250.$((slot * 4 + 2))" | head -1) ]] || continue
  host_addr=$candidate
  up_addr=10.77.250.$((slot * 4 + 2))
  break
done
[[ -n $host_addr ]] || die "no free /30 in 10.77.250.0/24 (tests? earlier runs' sockets, which
  leave TIME_WAIT for 60 s?)"
ip netns add "$netns"
ip link add "$veth" type veth peer name up0 netns "$netns"
ip addr add "$host_addr/30" dev "$veth"
ip -n "$netns" addr add "$up_addr/30" dev up0
ip link set "$veth" up
ip -n "$netns" link set up0 up
ip -n "$netns" link set lo up
exec {lock_fd}>&-
wait_for "$veth" sh -c "ip -o link show dev $veth | grep -q 'state UP'"

start_upstream() {  # PORT MODE...
  local port=$1 log=$tmp/upstream-$1.log
  shift
  ip netns exec "$netns" "$upstream_server" "$up_addr" "$port" "$@" "$server_seconds" \
    >"$log" 2>&1 &
  pids+=($!)
  wait_for "upstream_server $* on :$port" grep -q '^listening ' "$log"
}
start_upstream "$http_port" http-keepalive
start_upstream "$close_port" http
start_upstream "$bulk_port" bulk "$bulk_mib"

# --- the proxies under comparison -----------------------------------------------------------
if [[ -n $squid_bin ]]; then
  mkdir -p "$tmp/squid"
  chown proxy:proxy "$tmp/squid" 2>/dev/null || chmod 777 "$tmp/squid"
  # A plain forward proxy: no cache, no access log, no helpers. Squid's stock ACLs (Safe_ports,
  # SSL_ports for CONNECT) are absent, so it allows CONNECT to :9000 like the others.
  cat >"$tmp/squid/squid.conf" <<EOF
http_port 127.0.0.1:$squid_port
http_access allow all
cache deny all
cache_mem 0 MB
access_log none
cache_store_log none
cache_log $tmp/squid/cache.log
pid_filename $tmp/squid/squid.pid
coredump_dir $tmp/squid
netdb_filename none
pinger_enable off
icp_port 0
htcp_port 0
shutdown_lifetime 1 seconds
max_filedescriptors 4096
EOF
  "$squid_bin" -N -f "$tmp/squid/squid.conf" >"$tmp/squid/stdout.log" 2>&1 &
  pids+=($!)
  if ! (wait_for squid listening "$squid_port") 2>/dev/null; then
    note "squid did not start; its column is skipped. Its log:"
    cat "$tmp/squid/stdout.log" "$tmp/squid/cache.log" 2>/dev/null | tail -20 >&2 || true
    squid_bin=
  fi
fi
if [[ -n $tinyproxy_bin ]]; then
  mkdir -p "$tmp/tinyproxy"
  chmod 777 "$tmp/tinyproxy"
  # No ConnectPort line: CONNECT to any port. Warnings only, to a file: logging every
  # connection would measure the log.
  cat >"$tmp/tinyproxy/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port $tinyproxy_port
Listen 127.0.0.1
Timeout 60
MaxClients 1024
Allow 127.0.0.1
Syslog Off
LogFile "$tmp/tinyproxy/tinyproxy.log"
LogLevel Warning
PidFile "$tmp/tinyproxy/tinyproxy.pid"
EOF
  "$tinyproxy_bin" -d -c "$tmp/tinyproxy/tinyproxy.conf" >"$tmp/tinyproxy/stdout.log" 2>&1 &
  pids+=($!)
  if ! (wait_for tinyproxy listening "$tinyproxy_port") 2>/dev/null; then
    note "tinyproxy did not start; its column is skipped. Its log:"
    tail -20 "$tmp/tinyproxy/stdout.log" >&2 || true
    tinyproxy_bin=
  fi
fi

# L7=1: the HTTP ports are a REST endpoint, so every request is read and judged (the bulk
# tunnel stays L4: its bytes are no HTTP).
l7_fields=
[[ ${L7:-0} == 1 ]] && l7_fields=$'protocol = "rest"\naccess = "full"'
cat >"$tmp/policy.toml" <<EOF
version = 1
[filesystem_policy]
read_only = ["/usr", "/lib", "/lib64", "/bin", "/etc",
             "$build_dir/bench", "$build_dir/tests/helpers"]

[network_policies.upstream]
[[network_policies.upstream.endpoints]]
host = "upstream.test"
ports = [$http_port, $close_port]
$l7_fields
[[network_policies.upstream.endpoints]]
host = "upstream.test"
port = $bulk_port
EOF
sandbox=("$supervisor" run --policy-file "$tmp/policy.toml" --resolve "upstream.test=$up_addr")
[[ ${EVENTS:-1} == 0 ]] || sandbox+=(--events "$tmp/events.jsonl")
sandbox+=(--)
# shellcheck disable=SC2034  # measure() reads it through a nameref
no_prefix=()

# --- measurements ---------------------------------------------------------------------------
# measure NAME KIND PREFIX HTTP_LOAD_ARGS...: runs http_load after the command in the array
# named PREFIX (the sandbox, or nothing) and prints its key=value line, or "failed" after
# showing why on stderr. KIND rate runs a short unmeasured warm-up first (it also turns a
# broken setup into a readable error before the long run).
measure() {
  local name=$1 kind=$2 out
  local -n prefix=$3
  shift 3
  if [[ $kind == rate ]]; then
    if ! out=$("${prefix[@]}" "$http_load" "$@" --requests 200 --seconds 10 2>&1); then
      note "$name warm-up failed: $out"
      echo failed
      return
    fi
    set -- "$@" --requests "$requests" --seconds "$duration"
  fi
  if ! out=$("${prefix[@]}" "$http_load" "$@" 2>"$tmp/stderr"); then
    note "$name $kind failed: $(tail -5 "$tmp/stderr")"
    [[ $out == *=* ]] || out=failed  # a partial result still shows its errors= count
  fi
  note "$name $kind: $out"
  echo "$out"
}

rate_args=(--connections "$connections" --keepalive)

# measure_column NAME ROUND: the column's three measurements, into result[NAME,KIND,ROUND].
measure_column() {
  local name=$1 round=$2 via target
  case $name in
    direct)
      result[direct,rate,$round]=$(measure direct rate no_prefix --direct "$up_addr:$http_port" \
        --url "http://$up_addr:$http_port/x" "${rate_args[@]}")
      result[direct,close,$round]=$(measure direct rate no_prefix \
        --direct "$up_addr:$close_port" --url "http://$up_addr:$close_port/x" "${rate_args[@]}")
      result[direct,bulk,$round]=$(measure direct bulk no_prefix \
        --direct "$up_addr:$bulk_port" --bytes "$bulk_mib")
      return
      ;;
    squid) via=127.0.0.1:$squid_port target=$up_addr ;;
    tinyproxy) via=127.0.0.1:$tinyproxy_port target=$up_addr ;;
    openshell) via=10.200.0.1:3128 target=upstream.test ;;
  esac
  local wrap=no_prefix
  [[ $name != openshell ]] || wrap=sandbox
  result[$name,rate,$round]=$(measure "$name" rate "$wrap" --proxy "$via" \
    --url "http://$target:$http_port/x" "${rate_args[@]}")
  result[$name,close,$round]=$(measure "$name" rate "$wrap" --proxy "$via" \
    --url "http://$target:$close_port/x" "${rate_args[@]}")
  result[$name,bulk,$round]=$(measure "$name" bulk "$wrap" --tunnel "$via" \
    --target "$target:$bulk_port" --bytes "$bulk_mib")
}

note "upstream $up_addr in namespace $netns; $connections connections, $requests requests or" \
  "${duration} s, $bulk_mib MiB tunnel; $rounds rounds"
columns=(direct)
[[ -z $squid_bin ]] || columns+=(squid)
columns+=(openshell)
declare -A result=()
# Rounds alternate the columns' order, so a drift of the machine's speed during the run (a
# VM's neighbours) weighs on every column alike; each ratio is the median of its rounds' ratios.
# tinyproxy runs in the first round only: it has no goal, and its upstream connection per
# request leaves up to REQUESTS sockets in TIME_WAIT, which more rounds would pile past the
# ephemeral port range.
for round in $(seq "$rounds"); do
  if ((round % 2 == 1)); then
    order=("${columns[@]}")
  else
    order=()
    for ((i = ${#columns[@]} - 1; i >= 0; i--)); do order+=("${columns[i]}"); done
  fi
  [[ $round != 1 || -z $tinyproxy_bin ]] || order=("${order[@]:0:1}" tinyproxy "${order[@]:1}")
  for column in "${order[@]}"; do measure_column "$column" "$round"; done
done

# --- the table ------------------------------------------------------------------------------
{
  for column in direct squid tinyproxy openshell; do
    for kind in rate close bulk; do
      for round in $(seq "$rounds"); do
        echo "$column $kind $round ${result[$column,$kind,$round]:-skipped}"
      done
    done
  done
} | awk -v bulk_goal="$bulk_goal" -v rps_goal="$rps_goal" -v conns="$connections" \
  -v mib="$bulk_mib" -v rounds="$rounds" '
  # Lines: COLUMN KIND ROUND then key=value pairs, "skipped" or "failed".
  {
    name = $1; kind = $2; round = $3
    if (!(name in seen)) { names[++n] = name; seen[name] = 1 }
    if ($4 == "skipped") next
    if ($4 == "failed") { failed[name, kind] = 1; next }
    for (i = 4; i <= NF; i++) { split($i, kv, "="); v[name, kind, round, kv[1]] = kv[2] }
    ok[name, kind, round] = 1
    count[name, kind]++
  }
  function sort_numbers(a, m,   i, j, t) {
    for (i = 2; i <= m; i++)
      for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
  }
  function median_of(a, m) {
    sort_numbers(a, m)
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  # The median over the rounds a column measured; "" when it has none.
  function med(name, kind, key,   r, m, a) {
    m = 0
    for (r = 1; r <= rounds; r++) if (ok[name, kind, r]) a[++m] = v[name, kind, r, key] + 0
    return m ? median_of(a, m) : ""
  }
  function state(name, kind) {
    if (failed[name, kind]) return "failed"
    return count[name, kind] ? "ok" : "skipped"
  }
  function cell(name, kind, key, width) {
    if (state(name, kind) != "ok") return sprintf("%" width "s", state(name, kind))
    return sprintf("%" width ".0f", med(name, kind, key))
  }
  function per_request(name, kind,   r, sent, opened) {
    if (state(name, kind) != "ok") return sprintf("%8s", state(name, kind))
    for (r = 1; r <= rounds; r++)
      if (ok[name, kind, r]) {
        sent += v[name, kind, r, "requests"] + v[name, kind, r, "errors"]
        opened += v[name, kind, r, "connects"]
      }
    return sent > 0 ? sprintf("%8.3f", opened / sent) : sprintf("%8s", "-")
  }
  # The median of the per-round ratios NUM/DEN, over the rounds where both measured;
  # sets spread to "min-max" of those ratios.
  function ratio(num, den, kind, key,   r, m, a, lo, hi) {
    m = 0
    for (r = 1; r <= rounds; r++)
      if (ok[num, kind, r] && ok[den, kind, r] && v[den, kind, r, key] + 0 > 0)
        a[++m] = v[num, kind, r, key] / v[den, kind, r, key]
    if (!m) return ""
    sort_numbers(a, m)
    spread = sprintf("%.2f-%.2f", a[1], a[m])
    return median_of(a, m)
  }
  function ratio_line(what, r, goal) {
    if (r == "") {
      printf "%-32s %s\n", what, "n/a (a column is missing)"
      return 0
    }
    printf "%-32s %6.2fx  (goal >= %.1fx) %s; rounds %s\n", what, r, goal,
           (r >= goal ? "ok" : "OVER GOAL"), spread
    return (r >= goal ? 0 : 3)
  }
  END {
    printf "egress proxies: keep-alive GETs over %d connections; one %d MiB CONNECT tunnel;\n",
           conns, mib
    printf "medians of %d rounds\n", rounds
    printf "%-10s %-37s | %-28s | %10s\n", "", "upstream keeps alive", "upstream closes",
           "tunnel"
    printf "%-10s %10s %8s %8s %8s | %10s %8s %8s | %10s\n", "proxy", "req/s", "p50_us",
           "p99_us", "conn/req", "req/s", "p50_us", "p99_us", "bulk MiB/s"
    for (i = 1; i <= n; i++) {
      name = names[i]
      printf "%-10s %s %s %s %s | %s %s %s | %s\n", name, cell(name, "rate", "rps", 10),
             cell(name, "rate", "p50_us", 8), cell(name, "rate", "p99_us", 8),
             per_request(name, "rate"), cell(name, "close", "rps", 10),
             cell(name, "close", "p50_us", 8), cell(name, "close", "p99_us", 8),
             cell(name, "bulk", "mib_per_s", 10)
      for (k = 1; k <= 3; k++) {
        kind = (k == 1 ? "rate" : (k == 2 ? "close" : "bulk"))
        errors = 0
        for (r = 1; r <= rounds; r++) if (ok[name, kind, r]) errors += v[name, kind, r, "errors"]
        if (errors > 0) printf "  %s %s: %d errors\n", name, kind, errors
      }
    }
    print "conn/req: client connections opened per request (1.000: none was kept alive)."
    print "upstream keeps alive: a proxy may reuse its upstream connection; upstream closes:"
    print "every proxy opens one upstream connection per request (the client side stays)."
    status = 0
    s = ratio_line("bulk openshell/direct:", ratio("openshell", "direct", "bulk", "mib_per_s"),
                   bulk_goal)
    if (s) status = s
    s = ratio_line("req/s openshell/squid:", ratio("openshell", "squid", "rate", "rps"), rps_goal)
    if (s) status = s
    r = ratio("openshell", "squid", "close", "rps")
    if (r != "")
      printf "%-32s %6.2fx  (no goal: shows the cost of an upstream connect per request)\n",
             "req/s openshell/squid, closing:", r
    exit status
  }' || status=$?

case ${status:-0} in
  0) ;;
  3) [[ ${ENFORCE_GOAL:-0} != 1 ]] || exit 3 ;;
  *) die "formatting the table failed" ;;
esac
