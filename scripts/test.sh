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
#      Dockerfile, the pod contract under the pod's limits, three replicas behind nginx). They
#      need a Docker Engine: with CI=true a missing engine is a failure, elsewhere a clear skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# The differential tests' oracle (DuckDB) and the Arrow client test's reader (pyarrow), from PyPI.
if ! python3 -c 'import duckdb, pyarrow' 2>/dev/null; then
  echo "== installing Python test dependencies (duckdb, pyarrow)"
  python3 -m pip install --quiet --disable-pip-version-check duckdb pyarrow
fi

echo "== cargo test --workspace"
cargo test --workspace --locked

echo "== server and end-to-end tests again with the epoll driver forced"
MONOIO_FORCE_LEGACY_DRIVER=1 QUARRY_FORCE_EPOLL=1 cargo test --locked -p quarry-server -p quarry-tests

echo "== schemathesis against a live server (OpenAPI conformance, no 5xx)"
scripts/schemathesis.sh

if [ -x scripts/k8s-validate.sh ]; then
  echo "== Kubernetes manifests"
  scripts/k8s-validate.sh
fi
echo "== container and fleet tests (Docker Engine)"
scripts/container-test.sh

echo "== all tests passed"
