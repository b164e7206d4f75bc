#!/usr/bin/env bash
# Instructions per point lookup (callgrind) with quarry-runtime's glue on and with each piece
# switched back by --plain-runtime: the noise-free companion of the lookup_ab.py A/B in
# docs/bench/runtime.md. User-space instructions only: what a piece saves in the kernel (the
# client's wake-ups that turn-end batching avoids) shows in lookup_ab.py's CPU, not here.
# Per configuration: the server under callgrind (epoll), 2 s of wrk to warm up, counters zeroed,
# 5 s of wrk, counters dumped; total Ir / requests served.
#
#   bench/runtime_callgrind.sh [BINARY]      (default target/release/quarry-server)
#
# Environment: QUARRY_DATA (default bench/work/data-sf1), QUARRY_PATHS (default
# bench/work/paths/quarry-lookup.txt; bench/run.sh server writes both), AB_PORT (18292).
# Needs valgrind (callgrind_control), wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/quarry-server}
data=${QUARRY_DATA:-bench/work/data-sf1}
paths=${QUARRY_PATHS:-bench/work/paths/quarry-lookup.txt}
port=${AB_PORT:-18292}
out_dir=$(mktemp -d "${TMPDIR:-/tmp}/quarry-runtime-callgrind.XXXXXX")
trap 'rm -rf "$out_dir"' EXIT
run() { # NAME SERVER_FLAGS...
  local name=$1; shift
  local out="$out_dir/callgrind.$name.out"
  MONOIO_FORCE_LEGACY_DRIVER=1 valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin" --data-dir "$data" --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 \
    --reload-interval 0s --drain-delay 0s --shed-lag 0s --verify cheap "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
  wrk -t1 -c64 -d2s -s bench/lua/paths.lua "http://127.0.0.1:$port" -- "$paths" >/dev/null
  callgrind_control -z "$pid" >/dev/null
  local reqs
  reqs=$(wrk -t1 -c64 -d5s -s bench/lua/paths.lua "http://127.0.0.1:$port" -- "$paths" \
    | sed -n 's/^WRKJSON //p' | python3 -c 'import json,sys; w=json.load(sys.stdin); assert sum(w["errors"].values())==0, w; print(w["requests"])')
  callgrind_control -d "$pid" >/dev/null
  # wait returns the status of the server we just killed (143), not a failure of the run.
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local ir
  ir=$(cat "$out".* "$out" 2>/dev/null | sed -n 's/^summary: //p' | awk '{s+=$1} END {print s}')
  echo "$name: $((ir / reqs)) Ir/request ($reqs requests)"
}
run glue
run plain --plain-runtime
run no-batching --plain-runtime=batching
run no-coarse-timer --plain-runtime=timer
