#!/usr/bin/env python3
"""Parquet -> a servable file, same run: quarry-etl build vs Polars (read_parquet -> write_ipc)
vs DuckDB (read_parquet -> a native table in a database file), each on THREADS threads,
runs alternated, medians of REPS. Wall time, CPU seconds (user+sys) and peak RSS per run from
wait4. Prints a Markdown table.

Usage: bench/parquet_etl.py INPUT.parquet [--reps 3] [--threads 2] [--etl target/release/quarry-etl]
Needs the duckdb and polars packages.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

POLARS = "import polars as pl, sys; pl.read_parquet(sys.argv[1]).write_ipc(sys.argv[2])"
DUCKDB = (
    "import duckdb, sys; c = duckdb.connect(sys.argv[2]); c.execute('SET threads TO ' + sys.argv[3]); "
    "c.execute(\"CREATE TABLE t AS SELECT * FROM read_parquet('\" + sys.argv[1] + \"')\"); c.close()"
)


def run(cmd, env):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    err = p.stderr.read().decode(errors="replace")
    if status != 0:
        sys.exit(f"{cmd[0]} failed: {err}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--etl", default="target/release/quarry-etl")
    a = ap.parse_args()
    size = os.path.getsize(a.input)
    work = tempfile.mkdtemp(prefix="pq-bench-")
    env = dict(os.environ, POLARS_MAX_THREADS=str(a.threads), QUARRY_PROGRESS="none")
    cmds = {
        "quarry-etl": [a.etl, "build", a.input, "--out", f"{work}/q", "--name", "li",
                       "--threads", str(a.threads)],
        "polars": [sys.executable, "-c", POLARS, a.input, f"{work}/p.arrow"],
        "duckdb": [sys.executable, "-c", DUCKDB, a.input, f"{work}/d.duckdb", str(a.threads)],
    }
    res = {k: [] for k in cmds}
    try:
        for _ in range(a.reps):
            for k, cmd in cmds.items():
                for f in ("p.arrow", "d.duckdb", "d.duckdb.wal"):
                    if os.path.exists(f"{work}/{f}"):
                        os.remove(f"{work}/{f}")
                res[k].append(run(cmd, env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"input {a.input}: {size / 1e6:.1f} MB, {a.threads} threads, medians of {a.reps}\n")
    print("| tool | wall s (min-max) | CPU s | CPU s per GB of Parquet | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for k, rs in res.items():
        w = [r[0] for r in rs]
        c = statistics.median(r[1] for r in rs)
        m = statistics.median(r[2] for r in rs)
        print(f"| {k} | {statistics.median(w):.2f} ({min(w):.2f}-{max(w):.2f}) | {c:.2f} | "
              f"{c / (size / 1e9):.1f} | {m / 2**20:.0f} |")


if __name__ == "__main__":
    main()
