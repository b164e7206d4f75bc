#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a live quarry-server serving the bundled example dataset:
# every operation of server/openapi.json with generated requests; fails on any 5xx or any
# response that breaks the schema. Bounded: --max-examples per operation, loopback only.
# Usage: scripts/schemathesis.sh [MAX_EXAMPLES]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
max_examples="${1:-60}"
venv="${HOME}/.cache/quarry/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "== installing schemathesis into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.*'
fi
target="${CARGO_TARGET_DIR:-target}"
cargo build --locked -q -p quarry-etl -p quarry-server
work="$(mktemp -d)"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$target/debug/quarry-etl" build examples/flights/flights.csv --out "$work/data" --name flights \
  --key flight_id --progress none >/dev/null
# Auth on, as in production: schemathesis sends the token (and its ignored_auth check proves
# that requests without it are refused).
token="schemathesis-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
printf '%s\n' "$token" | "$target/debug/quarry-server" hash-token schemathesis \
  | sed 's/^datasets = \[\]$/datasets = ["*"]/' >"$work/tokens.toml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
# A debug build lags more than a release build: shedding on loop lag is switched off here.
"$target/debug/quarry-server" --data-dir "$work/data" --listen "127.0.0.1:$port" \
  --admin-listen 127.0.0.1:0 --auth-tokens "$work/tokens.toml" --shed-lag 0s --log-format json >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null
# positive_data_acceptance is excluded: the schema cannot say which columns and key types each
# dataset has, so "valid per the schema" requests may rightly get 400/404.
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --url "http://127.0.0.1:$port" --header "Authorization: Bearer $token" --checks all --exclude-checks positive_data_acceptance \
  --max-examples "$max_examples" --request-timeout 10 --no-color
# A panic shows as Rust's "thread '...' panicked at" on stderr, or as the server's JSON lines
# ("thread panicked", "request handler panicked"): any of them fails the run.
if grep -qE "panicked" "$work/server.log"; then
  echo "schemathesis: the server panicked" >&2; exit 1
fi
kill -0 "$server_pid" || { echo "schemathesis: the server died" >&2; exit 1; }
