#!/usr/bin/env bash
# Point-lookup p99 set up like bench/run.sh's server section, for A/B of builds: each repetition
# starts every binary in turn on core 0 with its default flags, warms it 1 s, then drives
# `wrk -t1 -c64` for 5 s from core 1 with random orders keys; prints req/s, p50/p99 (us) and
# server CPU per request. Loopback only, bounded in time.
# usage: bench/lookup_p99.sh REPS SERVER_BIN...   (needs bench/work from bench/run.sh)
set -euo pipefail
reps=$1; shift
port=18097
cd "$(dirname "$0")/.."
for _ in $(seq "$reps"); do
  for bin in "$@"; do
    RUST_LOG=warn taskset -c 0 "$bin" --data-dir bench/work/data-sf1 --listen 127.0.0.1:$port \
      --log-format text --drain-delay 0s >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 300); do curl -sf 127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
    taskset -c 1 wrk -t1 -c64 -d1s -s bench/lua/paths.lua http://127.0.0.1:$port -- \
      bench/work/paths/quarry-lookup.txt >/dev/null
    c0=$(awk '{print $14+$15}' /proc/$pid/stat)
    out=$(taskset -c 1 wrk -t1 -c64 -d5s -s bench/lua/paths.lua http://127.0.0.1:$port -- \
      bench/work/paths/quarry-lookup.txt | grep WRKJSON)
    c1=$(awk '{print $14+$15}' /proc/$pid/stat)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "${out#WRKJSON }" | python3 -c "
import json, os, sys
d = json.load(sys.stdin); r = d['requests']; tck = os.sysconf('SC_CLK_TCK')
print('$(basename "$bin")', r // 5, 'req/s, p50', d['p50_us'], 'us, p99', d['p99_us'],
      'us, cpu %.2f us/req' % (($c1 - $c0) / tck / r * 1e6))"
  done
done
