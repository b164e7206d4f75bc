#!/usr/bin/env bash
# Instructions per point lookup (callgrind) with auth off, a static token and an RS256 JWT:
# the noise-free companion of bench/auth_cost.py (run that first: it builds the data, the
# paths and the tokens file under bench/work/auth). Per configuration: the server under
# callgrind (epoll), 2 s of wrk to warm up, counters zeroed, 5 s of wrk, counters dumped;
# total Ir / requests served. Needs valgrind (callgrind_control), wrk, openssl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
work=bench/work/auth
bin=target/release/quarry-server
jwt=$(python3 -c 'import sys; sys.path.insert(0, "bench"); import auth_cost; print(auth_cost.rs256_jwt())')
port=18290
run() { # NAME AUTH_HEADER SERVER_FLAGS...
  local name=$1 auth=$2; shift 2
  local out="$work/callgrind.$name.out"
  rm -f "$out"
  MONOIO_FORCE_LEGACY_DRIVER=1 valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin" --data-dir "$work/data" --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 \
    --reload-interval 0s --drain-delay 0s --shed-lag 0s "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
  wrk -t1 -c16 -d2s -s bench/lua/paths.lua "http://127.0.0.1:$port" -- "$work/lookup-paths.txt" 42 "$auth" >/dev/null
  callgrind_control -z "$pid" >/dev/null
  local reqs
  reqs=$(wrk -t1 -c16 -d5s -s bench/lua/paths.lua "http://127.0.0.1:$port" -- "$work/lookup-paths.txt" 42 "$auth" \
    | sed -n 's/^WRKJSON //p' | python3 -c 'import json,sys; w=json.load(sys.stdin); assert sum(w["errors"].values())==0, w; print(w["requests"])')
  callgrind_control -d "$pid" >/dev/null
  # wait returns the status of the server we just killed (143), not a failure of the run.
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local ir
  ir=$(cat "$out".* "$out" 2>/dev/null | sed -n 's/^summary: //p' | awk '{s+=$1} END {print s}')
  echo "$name: $((ir / reqs)) Ir/request ($reqs requests)"
  [ -n "${KEEP:-}" ] || rm -f "$out" "$out".*
}
run off ""
# Auth off but the same JWT sent: the cost of receiving a 600-byte header, which no server
# can avoid, separated from the cost of checking it.
run off-jwt-header "Bearer $jwt"
run token "Bearer bench-static-token-6b1f0c2d9e8a7b35" --auth-tokens "$work/tokens.toml"
run jwt-rs256 "Bearer $jwt" --jwt-public-keys server/tests/it/keys/rsa_public.pem
