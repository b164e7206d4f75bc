"""Analytics (issue 5): Q6-like and Q1-like aggregations over HTTP against DuckDB with
threads=1 on its native table and on Parquet; raw column downloads of 1 MiB ranges against nginx
(and the fixed-body floor) serving the same size; point-lookup latency while aggregations run on
other connections.

DuckDB runs in its own process pinned to the server core; the HTTP client runs on the load core.
Both sides time the query alone (first run discarded as warm-up), median of cfg.query_runs.
"""

import http.client
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from . import data
from .common import LOAD_CPU, SERVER_CPU, WORK, http_get, log, pinned, ratio, summary
from .server import digest_runs, lookup_paths
from .servers import start_fixed_body, start_nginx, start_quarry, static_file
from .wrk import digest, finish_wrk, run_wrk, start_wrk, write_paths

Q6_SQL = (
    "SELECT sum(l_extendedprice) FROM lineitem WHERE l_shipdate >= DATE '1994-01-01' "
    "AND l_shipdate < DATE '1995-01-01' AND l_discount >= 0.05 AND l_discount <= 0.07 "
    "AND l_quantity < 24"
)
Q1_SQL = (
    "SELECT l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice), avg(l_quantity), "
    "avg(l_extendedprice), avg(l_discount), count(*) FROM lineitem "
    "WHERE l_shipdate <= DATE '1998-09-02' GROUP BY l_returnflag, l_linestatus "
    "ORDER BY l_returnflag, l_linestatus"
)
Q6_PATH = (
    "/v1/datasets/lineitem/rows?select=l_extendedprice.sum()"
    "&l_shipdate=gte.1994-01-01&l_shipdate=lt.1995-01-01"
    "&l_discount=gte.0.05&l_discount=lte.0.07&l_quantity=lt.24"
)
Q1_PATH = (
    "/v1/datasets/lineitem/rows?select=l_returnflag,l_linestatus,l_quantity.sum(),"
    "l_extendedprice.sum(),l_quantity.avg(),l_extendedprice.avg(),l_discount.avg(),count()"
    "&l_shipdate=lte.1998-09-02"
)
QUERIES = {"q6_like": (Q6_SQL, Q6_PATH), "q1_like": (Q1_SQL, Q1_PATH)}
RAW_COLUMN = "l_extendedprice"  # float64: 131,072 values = 1 MiB
RAW_ROWS = 131_072

DUCKDB_TIMER = """
import json, sys, time, duckdb
mode, source, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
queries = json.loads(sys.argv[4])
if mode == "native":
    con = duckdb.connect(source, read_only=True)
else:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW lineitem AS SELECT * FROM read_parquet('{source}')")
con.execute("SET threads = 1")
con.execute("SET enable_progress_bar = false")
out = {}
for name, sql in queries.items():
    result = con.execute(sql).fetchall()  # warm-up: pages into memory
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        con.execute(sql).fetchall()
        times.append(time.perf_counter() - t)
    out[name] = {"times": times, "result": [list(map(str, r)) for r in result]}
print(json.dumps(out))
"""


def duckdb_times(cfg, mode, source: Path):
    queries = {name: sql for name, (sql, _) in QUERIES.items()}
    argv = pinned([SERVER_CPU], [sys.executable, "-c", DUCKDB_TIMER, mode, str(source),
                                 str(cfg.query_runs), json.dumps(queries)])
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(out.stdout)


def http_times(server, path, runs):
    """Times `runs` GETs of path on one keep-alive connection from the load core."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {LOAD_CPU})
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        times, body = [], b""
        for i in range(runs + 1):
            t = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            elapsed = time.perf_counter() - t
            if resp.status != 200:
                raise RuntimeError(f"GET {path} answered {resp.status}: {body[:300]!r}")
            if i > 0:  # the first run is the warm-up
                times.append(elapsed)
        conn.close()
        return times, body
    finally:
        os.sched_setaffinity(0, old)


def _numbers(obj):
    return [v for v in obj.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def check_result(name, body, duck_result):
    """Compares Quarry's JSON answer with DuckDB's (an independent engine on the same CSV)."""
    try:
        rows = json.loads(body)["rows"]
        if name == "q6_like":
            got = _numbers(rows[0])
            want = float(duck_result[0][0])
            ok = len(got) == 1 and math.isclose(got[0], want, rel_tol=1e-9)
            return "ok" if ok else f"mismatch: quarry {got} duckdb {want}"
        # Q1: same groups, same counts, sums within rounding.
        if len(rows) != len(duck_result):
            return f"mismatch: {len(rows)} groups, duckdb {len(duck_result)}"
        for row, want in zip(rows, duck_result):
            strings = [v for v in row.values() if isinstance(v, str)]
            if strings != want[:2]:
                return f"mismatch: group {strings} vs duckdb {want[:2]}"
            got = sorted(_numbers(row))
            expected = sorted(float(x) for x in want[2:])
            if len(got) != len(expected) or not all(
                math.isclose(g, e, rel_tol=1e-9) for g, e in zip(got, expected)
            ):
                return f"mismatch in group {strings}: quarry {got} duckdb {expected}"
        return "ok"
    except (ValueError, KeyError, IndexError, TypeError) as e:
        return f"unchecked: cannot read the answer ({e}): {body[:200]!r}"


def aggregations(cfg, quarry):
    native = duckdb_times(cfg, "native", data.duckdb_native(cfg))
    parquet = duckdb_times(cfg, "parquet", data.parquet(cfg))
    results = []
    for name, (_, path) in QUERIES.items():
        try:
            times, body = http_times(quarry, path, cfg.query_runs)
            q = summary([t * 1000 for t in times])
            check = check_result(name, body, native[name]["result"])
        except Exception as e:  # noqa: BLE001 - recorded, the suite goes on
            log(f"analytics {name} via HTTP failed: {e}")
            q, check = None, f"failed: {str(e)[:300]}"
        dn = summary([t * 1000 for t in native[name]["times"]])
        dp = summary([t * 1000 for t in parquet[name]["times"]])
        log(f"analytics {name}: quarry {q and round(q['median'], 1)} ms, duckdb native "
            f"{round(dn['median'], 1)} ms, parquet {round(dp['median'], 1)} ms, check {check}")
        results.append({
            "query": name, "path": path, "sql": QUERIES[name][0], "check": check,
            "quarry_http_ms": q, "duckdb_native_ms": dn, "duckdb_parquet_ms": dp,
            "ratios": {"vs_duckdb_native": ratio(q, dn), "vs_duckdb_parquet": ratio(q, dp)},
        })
    return results


def raw_column(cfg, quarry):
    status, body = http_get(quarry.base_url + "/v1/datasets/lineitem")
    if status != 200:
        raise RuntimeError(f"/v1/datasets/lineitem answered {status}")
    rows = json.loads(body)["rows"]
    rnd = random.Random(11)
    span = max(rows - RAW_ROWS, 0)
    paths = [f"/v1/datasets/lineitem/columns/{RAW_COLUMN}?offset={rnd.randint(0, span)}&limit={RAW_ROWS}"
             for _ in range(1000)]
    status, body = http_get(quarry.base_url + paths[0])
    if status != 200:
        raise RuntimeError(f"raw column answered {status}: {body[:200]!r}")
    size = len(body)
    www = WORK / "www"
    static = static_file(www, f"raw-{size}.bin", size)
    paths_dir = WORK / "paths"
    nginx = start_nginx(www)
    fixed = start_fixed_body(cfg, size)
    plan = [
        ("raw_column_1mib", "quarry", quarry, write_paths(paths_dir / "quarry-raw.txt", paths)),
        ("raw_column_1mib", "fixed_body", fixed, write_paths(paths_dir / "fixed-raw.txt", paths)),
        ("raw_column_1mib", "nginx", nginx, write_paths(paths_dir / "nginx-raw.txt", [static])),
    ]
    from .server import add_ratios, measure

    try:
        runs = measure(cfg, plan, "raw")
    finally:
        nginx.stop()
        fixed.stop()
    results = [{"workload": w, "system": s, "body_bytes": size, **digest_runs(rs)}
               for (w, s), rs in runs.items()]
    add_ratios(results, "quarry", ["fixed_body", "nginx"])
    return results


def lookup_under_aggregation(cfg, quarry, keys):
    """Point lookups (cfg.connections connections) alone, then while 2 more connections run
    Q6-like and Q1-like back to back; both wrk processes on the load core."""
    paths_dir = WORK / "paths"
    lookups = write_paths(paths_dir / "quarry-lookup.txt", lookup_paths(keys))
    aggs = write_paths(paths_dir / "quarry-aggs.txt", [Q6_PATH, Q1_PATH])
    alone, loaded, agg_rates = [], [], []
    for rep in range(cfg.reps):
        alone.append(run_wrk(quarry.pid, quarry.base_url, lookups, cfg.duration_s, cfg.connections))
        bg = start_wrk(quarry.base_url, aggs, cfg.duration_s + 2, 2, seed=99 + rep)
        time.sleep(1.0)  # let the aggregations start
        loaded.append(run_wrk(quarry.pid, quarry.base_url, lookups, cfg.duration_s, cfg.connections))
        agg = digest(finish_wrk(bg, cfg.duration_s + 120), None)
        agg_rates.append(agg["rps"])
        log(f"lookup under aggregation rep {rep + 1}: p99 {loaded[-1]['p99_ms']:.3f} ms "
            f"(alone {alone[-1]['p99_ms']:.3f} ms), aggregations {agg['rps']:.1f}/s, "
            f"agg errors {agg['errors']}")
    a, l = digest_runs(alone), digest_runs(loaded)
    return {
        "lookup_alone": a,
        "lookup_with_aggregations": l,
        "aggregations_per_s": summary(agg_rates),
        "ratios": {"p99_vs_alone": ratio(l["p99_ms"], a["p99_ms"])},
    }


def run(cfg):
    data.tpch(cfg)
    data_dir = data.quarry_data(cfg)
    keys = data.order_keys(cfg)
    out = {}
    quarry = start_quarry(cfg, data_dir)
    try:
        for part, fn in (
            ("aggregations", lambda: aggregations(cfg, quarry)),
            ("raw_column", lambda: raw_column(cfg, quarry)),
            ("lookup_under_aggregation", lambda: lookup_under_aggregation(cfg, quarry, keys)),
        ):
            try:
                out[part] = fn()
            except Exception as e:  # noqa: BLE001 - one failing part must not end the suite
                log(f"analytics {part} failed: {e}")
                out[part] = {"failed": str(e)[:500]}
    finally:
        quarry.stop()
    out["notes"] = (
        f"Aggregations: median of {cfg.query_runs} runs after one warm-up; Quarry over HTTP "
        "(one keep-alive connection, client on the load core), DuckDB in-process with threads=1 "
        "pinned to the server core. Raw column: wrk as in the server section."
    )
    return out
