#!/usr/bin/env bash
# The container and fleet tests (tests/container/fleet.py): builds quarry:dev with
# scripts/image.sh, then runs the pod contract (one container at a time, the pod's limits, bad
# inputs), three replicas behind Debian's nginx (rolling replacement, ETL publish, docker kill,
# corrupt version), the object-store fleet (moto's S3 server on this run's Docker network, the
# ETL container publishing to s3://, three `--source` replicas with tmpfs caches behind nginx: a
# publish under load, a cache tmpfs filled for real (ENOSPC, then the free-space check), a
# `.part` resumed after `docker kill`), and the hostile wide group-bys under the pod's 1 GiB (no
# OOM kill; this part needs the server's memory budget). Every part runs even if one fails.
# Bounded: every wait has a deadline, `timeout` caps each part. scripts/test.sh calls it.
#
# Without a reachable Docker Engine: with CI=true this FAILS (CI machines have one); elsewhere it
# prints that the container tests were skipped and exits 0. nginx is installed from Debian when
# missing (apt-get, as root or through sudo); moto (objstore) from PyPI into scripts/test.sh's
# virtual environment when the Python that runs the tests cannot import it.
#
#   scripts/container-test.sh            # contract, fleet, objstore, hostile
#   scripts/container-test.sh contract   # one part
#   scripts/container-test.sh bench      # throughput through nginx, 1/2/3 replicas (needs wrk)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(contract fleet objstore hostile)

if ! command -v docker >/dev/null 2>&1 || ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then
    echo "container-test: FAILED: no reachable Docker Engine (docker CLI missing or daemon down)," \
      "and CI=true requires the container tests" >&2
    exit 1
  fi
  echo "container-test: SKIPPED the container and fleet tests: no reachable Docker Engine" \
    "(install Docker and start the daemon to run them)"
  exit 0
fi

apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  echo "== installing $* (Debian)"
  # A policy-rc.d answering 101 keeps the package from starting its own service (nginx on port
  # 80); the tests run their own instance. Removed again unless it was already there.
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=1
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 0755 /usr/sbin/policy-rc.d
  fi
  local rc=0
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || rc=$?
  [ -z "$policy" ] || $sudo rm -f /usr/sbin/policy-rc.d
  return $rc
}
need_fleet=""; need_bench=""; need_moto=""
for p in "${parts[@]}"; do
  case "$p" in
    contract | hostile) ;;
    fleet) need_fleet=1 ;;
    objstore) need_fleet=1; need_moto=1 ;;
    bench) need_fleet=1; need_bench=1 ;;
    *) echo "container-test: unknown part '$p' (contract, fleet, objstore, hostile, bench)" >&2; exit 2 ;;
  esac
done
if [ -n "$need_fleet" ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  apt_install nginx
fi
if [ -n "$need_bench" ] && ! command -v wrk >/dev/null 2>&1; then
  apt_install wrk
fi

# moto's S3 server (objstore): the Python of scripts/test.sh (QUARRY_TEST_PYTHON, its venv) or
# python3 when either imports it; else the same venv scripts/test.sh makes (PEP 668: no global pip).
py=${QUARRY_TEST_PYTHON:-python3}
if [ -n "$need_moto" ] && ! "$py" -c 'import moto.server' 2>/dev/null; then
  req_hash=$(sha256sum tests/requirements.txt | cut -c1-12)
  venv="${QUARRY_TEST_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/quarry/test-venv-$req_hash}"
  if ! "$venv/bin/python" -c 'import moto.server' 2>/dev/null; then
    echo "== installing the Python test dependencies (moto) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  fi
  py="$venv/bin/python"
fi
export QUARRY_TEST_PYTHON="$py"

echo "== Docker Engine $(docker version --format '{{.Server.Version}}')"
scripts/image.sh
failed=()
for p in "${parts[@]}"; do
  echo "== container tests: $p"
  timeout 900 python3 tests/container/fleet.py "$p" || failed+=("$p")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "container-test: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "container-test: passed: ${parts[*]}"
