#!/usr/bin/env bash
# Lookups beside running aggregations, on one core: times Q6-like and Q1-like alone (5 curls
# each), then drives the aggregations back to back on 2 connections (wrk -c2) while wrk -c64
# looks up random orders for 5 s; prints the lookups answered with p50/p99 and the aggregations
# done. Server on core 0, load on core 1, loopback only, bounded in time.
# usage: bench/lookups_beside_aggregations.sh SERVER_BIN [VAR=value ...]   (e.g. QUARRY_FORCE_EPOLL=1)
# Needs bench/work/data-sf1 and bench/work/paths/quarry-{aggs,lookup}.txt (bench/run.sh makes them).
set -euo pipefail
bin=$1; shift
cd "$(dirname "$0")/.."
port=18095
env "$@" taskset -c 0 "$bin" --data-dir "${DATA:-bench/work/data-sf1}" --listen 127.0.0.1:$port \
  --reload-interval 0s --drain-delay 0s > /tmp/quarry-aggmix.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 100); do curl -fs 127.0.0.1:$port/healthz >/dev/null && break; sleep 0.2; done
while read -r q; do
  echo -n "alone (s): "
  for _ in 1 2 3 4 5; do curl -s -o /dev/null -w "%{time_total} " "http://127.0.0.1:$port$q"; done
  echo
done < bench/work/paths/quarry-aggs.txt
taskset -c 1 wrk -t1 -c2 -d7s -s bench/lua/paths.lua http://127.0.0.1:$port -- \
  bench/work/paths/quarry-aggs.txt > /tmp/quarry-aggmix-aggs.out 2>&1 &
aggs=$!
sleep 1
echo -n "lookups beside aggregations (requests, p50 us, p99 us): "
taskset -c 1 wrk -t1 -c64 -d5s -s bench/lua/paths.lua http://127.0.0.1:$port -- \
  bench/work/paths/quarry-lookup.txt | grep WRKJSON | python3 -c \
  'import json,sys; d=json.loads(sys.stdin.read().split("WRKJSON ")[1]); print(d["requests"], d["p50_us"], d["p99_us"])'
wait $aggs
echo "aggregations done in 7 s: $(grep -o '"requests":[0-9]*' /tmp/quarry-aggmix-aggs.out | cut -d: -f2)"
