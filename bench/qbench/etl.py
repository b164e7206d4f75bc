"""ETL: quarry-etl build vs Polars scan_csv().sink_parquet() vs DuckDB COPY TO parquet on
TPC-H lineitem, at 1 and 2 threads, each process pinned to that many cores.

Timing: quarry-etl is timed as a whole process (start-up, parse, encode, fsync, rename). The peers
are timed inside their Python process around the one call (their interpreter and import time are
left out, which favours them slightly). Before every timed run the input is read once more so all
runs start with it in the page cache.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .common import WORK, log, pinned, ratio, read_file_through_cache, summary

POLARS = """
import sys, time, polars as pl
src, dst = sys.argv[1], sys.argv[2]
t = time.perf_counter()
pl.scan_csv(src).sink_parquet(dst)
print(time.perf_counter() - t)
"""

DUCKDB = """
import sys, time, duckdb
src, dst, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
con.execute("SET enable_progress_bar = false")
t = time.perf_counter()
con.execute(f"COPY (SELECT * FROM read_csv('{src}')) TO '{dst}' (FORMAT parquet)")
print(time.perf_counter() - t)
"""

SYSTEMS = ("quarry-etl", "polars", "duckdb")


def _run_timed(argv, env=None):
    """Runs argv, returns (wall seconds, stdout, peak RSS in MB of the child)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    # wait4 gives the child's own rusage (peak RSS) without mixing in other children.
    _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read().decode(errors="replace")
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]}... exited {proc.returncode}: {err.strip()[-800:]}")
    return wall, out, rusage.ru_maxrss / 1024


def run_one(cfg, system, threads, src: Path, out_dir: Path):
    cpus = list(range(threads))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    if system == "quarry-etl":
        argv = pinned(cpus, [
            str(cfg.bin_dir / "quarry-etl"), "build", str(src), "--out", str(out_dir),
            "--name", "lineitem", "--threads", str(threads),
        ])
        wall, _, rss = _run_timed(argv)
        seconds = wall
        out_file = out_dir / "lineitem.qry"
    elif system == "polars":
        out_file = out_dir / "lineitem.parquet"
        argv = pinned(cpus, [sys.executable, "-c", POLARS, str(src), str(out_file)])
        wall, out, rss = _run_timed(argv, env={"POLARS_MAX_THREADS": str(threads)})
        seconds = float(out.strip().splitlines()[-1])
    else:
        out_file = out_dir / "lineitem.parquet"
        argv = pinned(cpus, [sys.executable, "-c", DUCKDB, str(src), str(out_file), str(threads)])
        wall, out, rss = _run_timed(argv)
        seconds = float(out.strip().splitlines()[-1])
    size = out_file.stat().st_size if out_file.exists() else None
    return {"seconds": seconds, "wall_s": wall, "peak_rss_mb": rss, "output_bytes": size}


def run(cfg, systems=SYSTEMS, thread_counts=(1, 2)):
    src = cfg.tpch_dir / "lineitem.csv"
    input_bytes = src.stat().st_size
    runs = {(s, t): [] for s in systems for t in thread_counts}
    # Interleave systems and thread counts inside each repetition, so drift in the machine's
    # speed spreads over all of them instead of favouring whoever ran first.
    for rep in range(cfg.reps):
        for threads in thread_counts:
            for system in systems:
                read_file_through_cache(src)
                try:
                    r = run_one(cfg, system, threads, src, WORK / "etl-out" / f"{system}-{threads}")
                except Exception as e:  # noqa: BLE001 - one failing system must not end the suite
                    log(f"etl {system} threads={threads} failed: {e}")
                    runs[(system, threads)].append({"failed": str(e)[:500]})
                    continue
                log(f"etl rep {rep + 1}/{cfg.reps} {system} threads={threads}: {r['seconds']:.2f} s "
                    f"({input_bytes / r['seconds'] / 1e6:.0f} MB/s, peak RSS {r['peak_rss_mb']:.0f} MB)")
                runs[(system, threads)].append(r)
    results = []
    for (system, threads), all_runs in runs.items():
        rs = [r for r in all_runs if "failed" not in r]
        secs = summary([r["seconds"] for r in rs])
        failed = [r["failed"] for r in all_runs if "failed" in r]
        results.append({
            **({"failed": failed} if failed else {}),
            "system": system,
            "threads": threads,
            "seconds": secs,
            "mb_per_s": summary([input_bytes / r["seconds"] / 1e6 for r in rs]),
            "peak_rss_mb": summary([r["peak_rss_mb"] for r in rs]),
            "output_bytes": rs[-1]["output_bytes"] if rs else None,
        })
    by = {(r["system"], r["threads"]): r for r in results}
    for r in results:
        ratios = {}
        for peer in ("polars", "duckdb"):
            if r["system"] == "quarry-etl" and (peer, r["threads"]) in by:
                ratios[f"throughput_vs_{peer}"] = ratio(r["mb_per_s"], by[(peer, r["threads"])]["mb_per_s"])
        if r["threads"] == 2 and (r["system"], 1) in by:
            ratios["speedup_2_vs_1_thread"] = ratio(by[(r["system"], 1)]["seconds"], r["seconds"])
        r["ratios"] = ratios
    shutil.rmtree(WORK / "etl-out", ignore_errors=True)
    return {
        "input": {"file": f"TPC-H lineitem SF{cfg.scale:g} CSV (tpchgen-cli)", "bytes": input_bytes},
        "timing": "median of %d; quarry-etl: whole process; peers: the call inside Python" % cfg.reps,
        "results": results,
    }
