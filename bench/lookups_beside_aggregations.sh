#!/usr/bin/env bash
# Lookups beside running aggregations: two connections loop a Q1-like aggregation over TPC-H
# lineitem for 8 s while a third does random order lookups; prints lookups answered and how many
# were shed (503), and the loop-lag gauge. Loopback only, bounded in time.
# usage: bench/lookups_beside_aggregations.sh SERVER_BIN PORT   (DATA=dir with lineitem.qry, orders.qry)
bin=$1; port=$2
$bin --data-dir ${DATA:-/work/main/bench/work/data-sf0.1} --listen 127.0.0.1:$port --log-format json --reload-interval 0s > /tmp/lagexp-$port.log 2>&1 &
pid=$!
for i in $(seq 1 300); do curl -fs 127.0.0.1:$port/healthz >/dev/null && break; sleep 0.2; done
Q1="http://127.0.0.1:$port/v1/datasets/lineitem/rows?select=l_returnflag,l_linestatus,l_quantity.sum(),l_extendedprice.avg(),count()&l_shipdate=lte.1998-09-02"
end=$((SECONDS+8))
( while [ $SECONDS -lt $end ]; do curl -s -o /dev/null "$Q1"; done ) & jobs_pids="$jobs_pids $!"
( while [ $SECONDS -lt $end ]; do curl -s -o /dev/null "$Q1"; done ) & jobs_pids="$jobs_pids $!"
ok=0; shed=0; n=0
while [ $SECONDS -lt $end ]; do
  k=$(( (RANDOM % 100000) * 32 + 1 ))
  s=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/datasets/orders/rows/$k")
  n=$((n+1)); [ "$s" = 503 ] && shed=$((shed+1))
done
wait $jobs_pids
echo "lookups=$n shed503=$shed"; curl -s 127.0.0.1:$port/metrics | grep -E "^quarry_event_loop_lag_seconds|quarry_http_requests_total.*503" | head -5
kill $pid
