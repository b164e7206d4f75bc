"""Benchmark inputs, generated once and cached under bench/work/ (git-ignored):
genuine TPC-H lineitem and orders (tpchgen-cli), the Quarry dataset files built from them, a
DuckDB database and a Parquet file of lineitem, a SQLite file of orders for Datasette, and a
sample of order keys for random lookups."""

import csv
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from .common import BENCH, WORK, log

TABLES = ("lineitem", "orders")


def _fresh(target: Path, *sources: Path) -> bool:
    """True when target exists and is newer than every source."""
    if not target.exists():
        return False
    t = target.stat().st_mtime
    return all(not s.exists() or s.stat().st_mtime <= t for s in sources)


def tpch(cfg) -> Path:
    """Generates TPC-H lineitem and orders as CSV at cfg.scale (about 4 s for SF1)."""
    out = cfg.tpch_dir
    if all((out / f"{t}.csv").exists() for t in TABLES) and (out / ".complete").exists():
        return out
    tpchgen = BENCH / ".venv" / "bin" / "tpchgen-cli"
    out.mkdir(parents=True, exist_ok=True)
    for t in TABLES:  # left by an interrupted run: tpchgen-cli would keep a partial file
        (out / f"{t}.csv").unlink(missing_ok=True)
    log(f"generating TPC-H SF{cfg.scale:g} lineitem and orders into {out}")
    subprocess.run(
        [str(tpchgen), "csv", "-s", f"{cfg.scale:g}", "--tables", ",".join(TABLES),
         "--output-dir", str(out)],
        check=True,
    )
    (out / ".complete").write_text("")
    return out


def order_keys(cfg, n=10_000) -> list:
    """A fixed random sample of existing o_orderkey values (TPC-H keys are sparse)."""
    cache = cfg.tpch_dir / f"order_keys_{n}.txt"
    src = cfg.tpch_dir / "orders.csv"
    if _fresh(cache, src):
        return cache.read_text().split()
    with open(src, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        keys = [row[0] for row in reader]
    sample = random.Random(42).sample(keys, min(n, len(keys)))
    cache.write_text("\n".join(sample) + "\n")
    return sample


def quarry_data(cfg) -> Path:
    """DATA_DIR with lineitem.qry (no key) and orders.qry (key o_orderkey), rebuilt when the
    CSV or quarry-etl is newer than the file."""
    data = WORK / f"data-sf{cfg.scale:g}"
    data.mkdir(parents=True, exist_ok=True)
    etl = cfg.bin_dir / "quarry-etl"
    for table, key in (("lineitem", None), ("orders", "o_orderkey")):
        src = cfg.tpch_dir / f"{table}.csv"
        target = data / f"{table}.qry"
        if _fresh(target, src, etl):
            continue
        log(f"quarry-etl build {table} -> {target}")
        argv = [str(etl), "build", str(src), "--out", str(data), "--name", table]
        if key:
            argv += ["--key", key]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return data


def duckdb_native(cfg) -> Path:
    """lineitem as a native DuckDB table (loaded once, not timed)."""
    import duckdb

    db = cfg.tpch_dir / "lineitem.duckdb"
    src = cfg.tpch_dir / "lineitem.csv"
    if _fresh(db, src):
        try:
            duckdb.connect(str(db), read_only=True).close()
            return db
        except duckdb.Error:
            pass  # written by another DuckDB version: rebuild
    log(f"loading lineitem into DuckDB {db}")
    tmp = db.with_suffix(".duckdb.tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    con.execute("SET enable_progress_bar = false")
    con.execute(f"CREATE TABLE lineitem AS SELECT * FROM read_csv('{src}')")
    con.close()
    tmp.rename(db)
    return db


def parquet(cfg) -> Path:
    """lineitem as one Parquet file written by DuckDB (its defaults)."""
    import duckdb

    pq = cfg.tpch_dir / "lineitem.parquet"
    src = cfg.tpch_dir / "lineitem.csv"
    if _fresh(pq, src):
        return pq
    log(f"writing {pq}")
    tmp = pq.with_suffix(".parquet.tmp")
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"COPY (SELECT * FROM read_csv('{src}')) TO '{tmp}' (FORMAT parquet)")
    con.close()
    tmp.rename(pq)
    return pq


def sqlite_orders(cfg) -> Path:
    """orders in SQLite with o_orderkey as INTEGER PRIMARY KEY, for Datasette."""
    db = cfg.tpch_dir / "orders.db"
    src = cfg.tpch_dir / "orders.csv"
    if _fresh(db, src):
        return db
    log(f"loading orders into SQLite {db}")
    tmp = db.with_suffix(".db.tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    con.execute(
        "CREATE TABLE orders (o_orderkey INTEGER PRIMARY KEY, o_custkey INTEGER, "
        "o_orderstatus TEXT, o_totalprice REAL, o_orderdate TEXT, o_orderpriority TEXT, "
        "o_clerk TEXT, o_shippriority INTEGER, o_comment TEXT)"
    )
    with open(src, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        con.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?)", reader)
    con.commit()
    con.close()
    tmp.rename(db)
    return db


def clean():
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    sys.exit("use bench/run.sh")
