#!/usr/bin/env bash
# Quarry's benchmark suite in one command: installs the peers (bench/setup.sh), builds the
# release binaries, generates TPC-H data (cached in bench/work/), runs the sections, and writes
# docs/bench/results.json, results.md and PNG plots. Each run appends the headline figures of the
# sections it measured to docs/bench/history.json (never replacing earlier runs), and the README's
# headline table is rewritten from that history (range over runs, latest, dates).
#
#   bench/run.sh                    every section (about 15 min on 2 cores)
#   bench/run.sh etl server         a subset: etl, server, analytics; `report` only redraws
#   QUICK=1 bench/run.sh            smoke test: TPC-H SF0.1, 1 s runs, 1 repetition; writes to
#                                   bench/work/quick/ instead of docs/bench/
#   bench/run.sh --no-datasette     skip the Datasette peer
#
# Knobs (environment): BENCH_SF, BENCH_REPS, BENCH_DURATION (s), BENCH_WARMUP (s),
# BENCH_CONNECTIONS, BENCH_QUERY_RUNS. Needs 2 cores: the server is pinned to core 0 and the
# load generator to core 1. Don't run it while other heavy work shares the machine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"

sections=()
extra=()
for arg in "$@"; do
    case "$arg" in
        etl | server | analytics | report) sections+=("$arg") ;;
        agg) sections+=(analytics) ;;
        --no-datasette) extra+=("$arg") ;;
        -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done
measure=()
for s in "${sections[@]+"${sections[@]}"}"; do
    [ "$s" = report ] || measure+=("$s")
done
if [ "${#sections[@]}" -eq 0 ]; then measure=(etl server analytics); fi

if [ "$(nproc)" -lt 2 ]; then
    echo "bench: needs at least 2 cores (server on core 0, load on core 1)" >&2
    exit 1
fi

bash "$here/setup.sh"
py="$here/.venv/bin/python"
if [ -n "${QUICK:-}" ] && [ "${QUICK}" != 0 ]; then
    results="$here/work/quick/results.json"
else
    results="$root/docs/bench/results.json"
fi

status=0
measure_now=()
if [ "${#measure[@]}" -gt 0 ]; then
    measure_now=("${measure[@]}")
    # Two commands: a target flag such as --example makes cargo build only that target.
    echo "bench: cargo build --release -p quarry-etl -p quarry-server (+ example fixed_body)" >&2
    cargo build --release -p quarry-etl -p quarry-server
    cargo build --release -p quarry-server --example fixed_body
    cmd="bench/run.sh${*:+ $*}"
    if [ -n "${QUICK:-}" ] && [ "${QUICK}" != 0 ]; then cmd="QUICK=1 $cmd"; fi
    (cd "$here" && "$py" bench.py "${measure[@]}" "${extra[@]+"${extra[@]}"}" --out "$results" --command "$cmd") || status=$?
fi
# Only the sections measured now are appended to the history (`report` alone records nothing).
"$py" "$here/report.py" "$results" --record "${measure_now[@]+"${measure_now[@]}"}"
exit "$status"
