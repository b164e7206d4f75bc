#!/usr/bin/env bash
# Quarry in one command: build the release binaries, turn the bundled example data
# (examples/flights, CC0) into a dataset file, serve it on 127.0.0.1 and show what the API
# answers. Safe to re-run: a demo server left from an earlier run is stopped first.
#
#   scripts/demo.sh                  build, serve in the background, print example queries
#   scripts/demo.sh --foreground     the same, then keep the server attached until Ctrl-C
#   scripts/demo.sh --stop           stop the demo server started by an earlier run
#   scripts/demo.sh --port 9000      listen on this port (default: the first free one from 8080)
#
# Needs: the Rust toolchain (cargo) and curl. Files go to ./.demo (data, log, pid).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
demo_dir="$root/.demo"
data_dir="$demo_dir/data"
pid_file="$demo_dir/server.pid"
log_file="$demo_dir/server.log"
bin_dir="${CARGO_TARGET_DIR:-$root/target}/release"
dataset=flights

port=""
foreground=0
stop_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --stop) stop_only=1 ;;
        --foreground) foreground=1 ;;
        --port) port="${2:?--port needs a number}"; shift ;;
        --port=*) port="${1#--port=}" ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Stops the server whose PID is in $pid_file, if it is still a quarry-server.
stop_server() {
    [ -f "$pid_file" ] || return 0
    local pid
    pid="$(cat "$pid_file")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q quarry-server; then
        echo "demo: stopping quarry-server (PID $pid)"
        kill -TERM "$pid"
        # SIGTERM: the server drains (--drain-delay 1s), finishes requests and exits 0; give it 30 s.
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "demo: PID $pid still running after 30 s, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pid_file"
}

if [ "$stop_only" = 1 ]; then
    stop_server
    exit 0
fi

command -v cargo >/dev/null || { echo "demo: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }
command -v curl >/dev/null || { echo "demo: curl not found; install it (apt-get install curl)" >&2; exit 1; }

say "Building release binaries (cargo build --release -p quarry-etl -p quarry-server)"
cargo build --release -p quarry-etl -p quarry-server

stop_server
mkdir -p "$data_dir"

say "Building the '$dataset' dataset from examples/flights/flights.csv"
"$bin_dir/quarry-etl" build examples/flights/flights.csv \
    --out "$data_dir" --name "$dataset" --key flight_id

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -z "$port" ]; then
    port=8080
    while port_in_use "$port"; do
        port=$((port + 1))
        [ "$port" -lt 8180 ] || { echo "demo: no free port in 8080-8179; use --port" >&2; exit 1; }
    done
elif port_in_use "$port"; then
    echo "demo: port $port is in use; pick another with --port" >&2
    exit 1
fi
base="http://127.0.0.1:$port"
admin_port=$((port + 1010))
while port_in_use "$admin_port"; do admin_port=$((admin_port + 1)); done
admin="http://127.0.0.1:$admin_port"

say "Starting quarry-server on $base (log: .demo/server.log)"
# setsid: the server outlives this script and a Ctrl-C typed into this terminal later.
launcher=()
if command -v setsid >/dev/null; then launcher=(setsid); fi
RUST_LOG="${RUST_LOG:-info}" "${launcher[@]}" "$bin_dir/quarry-server" \
    --data-dir "$data_dir" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin_port" --log-format text --drain-delay 1s \
    >"$log_file" 2>&1 </dev/null &
server_pid=$!
echo "$server_pid" >"$pid_file"

# /healthz answers 503 while the dataset is verified, 200 when ready. Bounded: 60 s.
ready=0
for _ in $(seq 1 600); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "demo: quarry-server exited during start-up; last lines of .demo/server.log:" >&2
        tail -n 20 "$log_file" >&2
        rm -f "$pid_file"
        exit 1
    fi
    if curl -fsS -o /dev/null "$base/healthz" 2>/dev/null; then ready=1; break; fi
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    echo "demo: /healthz not ready after 60 s:" >&2
    curl -sS "$base/healthz" >&2 || true
    stop_server
    exit 1
fi

# Prints a query ready to paste, runs it, and shows the answer (cut to a screenful).
show() {
    local title="$1" cmd="$2"
    printf '\n\033[1m# %s\033[0m\n$ %s\n' "$title" "$cmd"
    local out
    out="$(bash -c "$cmd" 2>&1 || true)"
    if [ "${#out}" -gt 900 ]; then out="${out:0:900} ...(cut)"; fi
    printf '%s\n' "$out"
}

say "Ready. Some queries (copy and paste them):"
ds="$base/v1/datasets/$dataset"
show "Readiness" "curl -s $base/healthz"
show "The dataset: rows, key, version, columns and types" "curl -s $ds"
show "Point lookup by key (flight_id)" "curl -s $ds/rows/20130101-UA1545-EWR"
show "Filter + select + order: JFK departures more than 2 hours late, worst first" \
    "curl -s '$ds/rows?origin=eq.JFK&dep_delay=gt.120&select=flight_id,airline,dest,dep_delay&order=dep_delay.desc&limit=5'"
show "in, like and nulls: cancelled United flights to Chicago, Dallas or Houston (no dep_time)" \
    "curl -s '$ds/rows?cancelled=eq.true&dest=in.(ORD,DFW,IAH)&airline=like.United*&select=flight_id,dest,dep_time,tailnum'"
show "is.null: flights with no recorded tail number" \
    "curl -s '$ds/rows?tailnum=is.null&select=flight_id,airline,cancelled&limit=3'"

first="$(curl -s "$ds/rows?carrier=eq.AA&select=flight_id,dest&limit=3")"
next="$(printf '%s' "$first" | sed -n 's/.*"next":"\([^"]*\)".*/\1/p')"
show "Paging: first page of American Airlines flights (note \"next\")" \
    "curl -s '$ds/rows?carrier=eq.AA&select=flight_id,dest&limit=3'"
if [ -n "$next" ]; then
    show "Paging: the next page, with the cursor from the first" \
        "curl -s '$ds/rows?carrier=eq.AA&select=flight_id,dest&limit=3&cursor=$next'"
fi
show "Aggregate: flights and average departure delay per origin airport" \
    "curl -s '$ds/rows?select=origin,count(),dep_delay.avg(),dep_delay.max()'"
show "CSV output and an exact total (the Content-Range header: */total)" \
    "curl -s -D - -H 'Accept: text/csv' -H 'Prefer: count=exact' '$ds/rows?dest=eq.SFO&select=flight_id,dep_delay&limit=3' | grep -iE '^content-range:|^[^:]*\$' | tr -d '\\r'"
show "The PostgREST face: the same data for PostgREST clients (a bare array, PostgREST's errors)" \
    "curl -s '$base/rest/flights?select=flight_id,delay:dep_delay&origin=eq.JFK&order=dep_delay.desc.nullslast&limit=3'"
show "Raw column bytes: the first 4 distance values, little-endian int64, straight from the file" \
    "curl -s '$ds/columns/distance?offset=0&limit=4' | od -A d -t d8"
show "An error names the parameter" "curl -s '$ds/rows?dep_delay=gt.soon'"
show "Prometheus metrics on the admin port (first lines)" "curl -s $admin/metrics | grep -v '^#' | head -n 8"

echo
say "quarry-server is running: PID $server_pid, $base, log .demo/server.log"
if [ "$foreground" = 1 ]; then
    echo "Press Ctrl-C to stop it."
    trap 'stop_server; exit 0' INT TERM
    while kill -0 "$server_pid" 2>/dev/null; do sleep 1; done
    rm -f "$pid_file"
else
    echo "Stop it with: scripts/demo.sh --stop   (or: kill $server_pid)"
fi
