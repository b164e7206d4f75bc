"""ETL: quarry-etl build vs Polars scan_csv().sink_parquet() vs DuckDB COPY TO parquet on
TPC-H lineitem, at 1 and 2 threads, each process pinned to that many cores.

Timing: quarry-etl is timed as a whole process (start-up, parse, encode, fsync, rename). The peers
are timed inside their Python process around the one call (their interpreter and import time are
left out, which favours them slightly). Before every timed run the input is read once more so all
runs start with it in the page cache.

Parquet (`run_parquet`, issue 17): lineitem as Parquet written by DuckDB (zstd) -> quarry-etl
build at 2 threads vs Polars read_parquet -> write_ipc and DuckDB read_parquet -> a native table
in a database file; every system timed as a whole process (wall, CPU user+sys and peak RSS from
wait4), so start-up and imports count for all of them.
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

PQ_POLARS = "import polars as pl, sys; pl.read_parquet(sys.argv[1]).write_ipc(sys.argv[2])"
PQ_DUCKDB = """
import sys, duckdb
src, dst, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect(dst)
con.execute(f"SET threads = {threads}")
con.execute("SET enable_progress_bar = false")
con.execute(f"CREATE TABLE lineitem AS SELECT * FROM read_parquet('{src}')")
con.close()
"""
PQ_WRITE = """
import sys, duckdb
con = duckdb.connect()
con.execute(f"COPY (SELECT * FROM read_parquet('{sys.argv[1]}')) TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION zstd)")
"""


def _run_timed(argv, env=None):
    """Runs argv, returns (wall seconds, stdout, peak RSS in MB of the child)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    # wait4 gives the child's own rusage (peak RSS) without mixing in other children.
    _, status, rusage = os.wait4(proc.pid, 0)
    global LAST_CPU_S
    LAST_CPU_S = rusage.ru_utime + rusage.ru_stime
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read().decode(errors="replace")
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]}... exited {proc.returncode}: {err.strip()[-800:]}")
    return wall, out, rusage.ru_maxrss / 1024


LAST_CPU_S = None  # CPU seconds (user + sys) of the last _run_timed child


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
    try:
        parquet = run_parquet(cfg)
    except Exception as e:  # noqa: BLE001 - keep the CSV results
        log(f"etl parquet failed: {e!r}")
        parquet = {"failed": repr(e)[:1000]}
    return {
        "input": {"file": f"TPC-H lineitem SF{cfg.scale:g} CSV (tpchgen-cli)", "bytes": input_bytes},
        "timing": "median of %d; quarry-etl: whole process; peers: the call inside Python" % cfg.reps,
        "results": results,
        "parquet": parquet,
    }


def parquet_input(cfg) -> Path:
    """lineitem as zstd Parquet: tpchgen-cli's Parquet (TPC-H types: decimals DECIMAL(15,2))
    rewritten by DuckDB, made once and cached beside the CSV."""
    src = cfg.tpch_dir / "lineitem.zstd.parquet"
    if not src.exists():
        gen = cfg.tpch_dir / "parquet-gen"
        shutil.rmtree(gen, ignore_errors=True)
        log(f"writing {src}: tpchgen-cli parquet, rewritten by DuckDB (zstd)")
        subprocess.run([str(Path(sys.executable).parent / "tpchgen-cli"), "parquet", "-s",
                        f"{cfg.scale:g}", "--tables", "lineitem", "--output-dir", str(gen)],
                       check=True)
        tmp = src.with_suffix(".tmp")
        subprocess.run([sys.executable, "-c", PQ_WRITE, str(gen / "lineitem.parquet"), str(tmp)],
                       check=True)
        tmp.rename(src)
        shutil.rmtree(gen, ignore_errors=True)
    return src


def run_parquet(cfg, threads=2):
    """quarry-etl vs Polars vs DuckDB reading lineitem as zstd Parquet (`parquet_input`), runs
    interleaved, medians of cfg.reps."""
    src = parquet_input(cfg)
    input_bytes = src.stat().st_size
    cpus = list(range(threads))
    out = WORK / "etl-parquet-out"
    argvs = {
        "quarry-etl": pinned(cpus, [str(cfg.bin_dir / "quarry-etl"), "build", str(src), "--out",
                                    str(out / "q"), "--name", "lineitem", "--threads", str(threads),
                                    "--progress", "none"]),
        "polars": pinned(cpus, [sys.executable, "-c", PQ_POLARS, str(src), str(out / "p.arrow")]),
        "duckdb": pinned(cpus, [sys.executable, "-c", PQ_DUCKDB, str(src), str(out / "d.duckdb"),
                                str(threads)]),
    }
    runs = {k: [] for k in argvs}
    for rep in range(cfg.reps):
        for system, argv in argvs.items():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            read_file_through_cache(src)
            try:
                wall, _, rss = _run_timed(argv, env={"POLARS_MAX_THREADS": str(threads)})
            except Exception as e:  # noqa: BLE001 - one failing system must not end the suite
                log(f"etl parquet {system} failed: {e}")
                runs[system].append({"failed": str(e)[:500]})
                continue
            cpu = LAST_CPU_S
            log(f"etl parquet rep {rep + 1}/{cfg.reps} {system}: {wall:.2f} s, CPU {cpu:.2f} s, "
                f"peak RSS {rss:.0f} MB")
            runs[system].append({"seconds": wall, "cpu_s": cpu, "peak_rss_mb": rss})
    shutil.rmtree(out, ignore_errors=True)
    results = []
    for system, all_runs in runs.items():
        rs = [r for r in all_runs if "failed" not in r]
        failed = [r["failed"] for r in all_runs if "failed" in r]
        results.append({
            **({"failed": failed} if failed else {}),
            "system": system,
            "threads": threads,
            "seconds": summary([r["seconds"] for r in rs]),
            "cpu_s_per_gb": summary([r["cpu_s"] / (input_bytes / 1e9) for r in rs]),
            "peak_rss_mb": summary([r["peak_rss_mb"] for r in rs]),
        })
    by = {r["system"]: r for r in results}
    q = by["quarry-etl"]
    # Speed ratio: peer seconds / quarry-etl seconds (above 1: quarry-etl is faster).
    q["ratios"] = {f"speed_vs_{p}": ratio(by[p]["seconds"], q["seconds"]) for p in ("polars", "duckdb")}
    return {
        "input": {"file": f"TPC-H lineitem SF{cfg.scale:g} as Parquet (DuckDB, zstd)",
                  "bytes": input_bytes},
        "timing": f"median of {cfg.reps}; every system a whole process, pinned to {threads} cores",
        "results": results,
    }
