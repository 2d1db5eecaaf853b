#!/usr/bin/env bash
# bench/inference_bench.sh [BUILD_DIR]: what https://inference.local (the privacy router, issue
# 16) adds to a model call, against calling the backend directly, in one run. See
# bench/README.md.
#
# The backend is BUILD_DIR/tests/helpers/tls_upstream in openai mode on 127.0.0.1 (a fake model
# server: a JSON answer, or with "stream": true an SSE stream). BUILD_DIR/bench/http_load makes
# REQUESTS calls over one kept-alive connection (closed loop, latency to the answer's last byte)
# directly, then from inside a sandbox to http://inference.local through its explicit proxy; the
# router keeps its own connection to the backend alive. Streaming calls are measured the same
# way (the backend sends every event at once: to the last byte is to the first chunk here).
# The sandbox's provider and route are given to the supervisor as openshelld would
# (--services-on-status), from a file. Nothing is installed; the temp dir and the backend go
# on exit.
#
# Environment:
#   REQUESTS=N  calls per measurement, 100..100000 (default 5000)
#   ROUNDS=R    rounds of direct and router, 1..9 (default 3)
#   GOAL_US=U   the added p50 the goal allows (default 300)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=$(realpath -m "${1:-$repo/build/dev}")
supervisor=$build_dir/supervisor/openshell-supervisor
http_load=$build_dir/bench/http_load
backend=$build_dir/tests/helpers/tls_upstream
requests=${REQUESTS:-5000}
rounds=${ROUNDS:-3}
goal_us=${GOAL_US:-300}
port=$((20000 + $$ % 10000))

die() {
  echo "bench/inference_bench.sh: $*" >&2
  exit 1
}
[[ $(id -u) -eq 0 ]] || die "must run as root (the supervisor)"
[[ $requests =~ ^[0-9]+$ && $requests -ge 100 && $requests -le 100000 ]] || die "REQUESTS: 100..100000"
[[ $rounds =~ ^[1-9]$ ]] || die "ROUNDS: 1..9"
for f in "$supervisor" "$http_load" "$backend"; do [[ -x $f ]] || die "missing $f (build first)"; done

tmp=$(mktemp -d)
backend_pid=
cleanup() {
  [[ -n $backend_pid ]] && kill "$backend_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

touch "$tmp/go"  # the backend's streams do not wait
"$backend" 127.0.0.1 "$port" openai bench "$tmp/go" 600 >"$tmp/backend.log" 2>&1 &
backend_pid=$!
for _ in $(seq 100); do grep -q listening "$tmp/backend.log" && break; sleep 0.05; done
grep -q listening "$tmp/backend.log" || die "the backend did not start: $(cat "$tmp/backend.log")"

cat >"$tmp/policy.toml" <<EOP
version = 1
[filesystem_policy]
read_only = ["/usr", "/lib", "/lib64", "/bin", "/etc", "$build_dir/bench"]
EOP
# The services message: a 4-byte big-endian length, then the JSON (core/services).
python3 - "$tmp/services" "$port" <<'EOP'
import json, struct, sys
services = {
    "attached": [],
    "routing": [{"name": "bench", "type": "openai", "credentials": {"OPENAI_API_KEY": "sk-bench"}}],
    "routes": [{"name": "local", "base_url": "http://127.0.0.1:" + sys.argv[2], "api": "openai",
                "provider": "bench", "model": "llama-3", "locality": "local", "cost": 0,
                "models": []}],
    "privacy": "any",
}
text = json.dumps(services).encode()
open(sys.argv[1], "wb").write(struct.pack(">I", len(text)) + text)
EOP

body='{"model":"anything","messages":[{"role":"user","content":"hi"}]}'
stream_body='{"model":"anything","stream":true,"messages":[{"role":"user","content":"hi"}]}'
direct() {
  "$http_load" --direct "127.0.0.1:$port" --url "http://127.0.0.1:$port/v1/chat/completions" \
    --keepalive --requests "$requests" --post "$1"
}
routed() {
  cp "$tmp/services" "$tmp/status"
  "$supervisor" run --policy-file "$tmp/policy.toml" --status-fd 3 --services-on-status -- \
    "$http_load" --proxy 10.200.0.1:3128 --url http://inference.local/v1/chat/completions \
    --keepalive --requests "$requests" --post "$1" 3<>"$tmp/status"
}
p50() { sed -n 's/.*p50_us=\([0-9]*\).*/\1/p' <<<"$1"; }

printf '%-8s %-10s %12s %12s %12s\n' round kind direct_p50 router_p50 added_us
worst=0
for round in $(seq "$rounds"); do
  for kind in json sse; do
    b=$body
    [[ $kind == sse ]] && b=$stream_body
    d=$(direct "$b") || die "direct: $d"
    r=$(routed "$b") || die "router: $r"
    dp=$(p50 "$d")
    rp=$(p50 "$r")
    added=$((rp - dp))
    ((added > worst)) && worst=$added
    printf '%-8s %-10s %12s %12s %12s\n' "$round" "$kind" "$dp" "$rp" "$added"
  done
done
echo "# worst added p50: ${worst} us (goal: under ${goal_us} us)"
