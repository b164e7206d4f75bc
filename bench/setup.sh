#!/usr/bin/env bash
# Installs the benchmark peers, idempotently: Debian's nginx, wrk, hyperfine; a venv under
# bench/.venv with DuckDB, Polars, Datasette, tpchgen-cli and matplotlib from PyPI.
# Safe to re-run: every step is skipped when its result is already there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"

apt_pkgs=()
for tool in nginx wrk hyperfine; do
    if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$tool" ]; then
        apt_pkgs+=("$tool")
    fi
done
if [ "${#apt_pkgs[@]}" -gt 0 ]; then
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
    echo "bench/setup: apt-get install ${apt_pkgs[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

# Versions pinned so that a re-run measures the same peers.
py_pkgs=(duckdb==2.0.0 polars==2.1.0 datasette==0.65.5 tpchgen-cli==4.0.0 matplotlib==3.11.2)
if ! [ -x "$venv/bin/python" ]; then
    echo "bench/setup: creating $venv"
    python3 -m venv "$venv"
fi
stamp="$venv/.installed"
want="${py_pkgs[*]}"
if ! [ -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bench/setup: pip install ${py_pkgs[*]}"
    "$venv/bin/pip" install -q --disable-pip-version-check "${py_pkgs[@]}"
    echo "$want" >"$stamp"
fi
