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
from .common import LOAD_CPU, SERVER_CPU, WORK, http_get_retry, log, pinned, ratio, summary
from .server import digest_runs, lookup_paths, status_counts
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
# Not a TPC-H query: a group-by with 200,000 groups (an integer column), first page of 10.
PARTS_SQL = (
    "SELECT l_partkey, count(*), sum(l_quantity) FROM lineitem GROUP BY l_partkey "
    "ORDER BY l_partkey LIMIT 10"
)
PARTS_PATH = "/v1/datasets/lineitem/rows?select=l_partkey,count(),l_quantity.sum()&limit=10"
QUERIES = {
    "q6_like": (Q6_SQL, Q6_PATH),
    "q1_like": (Q1_SQL, Q1_PATH),
    "group_by_part": (PARTS_SQL, PARTS_PATH),
}
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
        deadline = time.monotonic() + 15
        i = 0
        while i < runs + 1:
            t = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            elapsed = time.perf_counter() - t
            if i == 0 and resp.status == 503 and time.monotonic() < deadline:
                time.sleep(0.1)  # shedding right after start-up: the warm-up waits it out
                continue
            if resp.status != 200:
                raise RuntimeError(f"GET {path} answered {resp.status}: {body[:300]!r}")
            if i > 0:  # the first run is the warm-up
                times.append(elapsed)
            i += 1
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
        if name == "group_by_part":
            if len(rows) != len(duck_result):
                return f"mismatch: {len(rows)} groups, duckdb {len(duck_result)}"
            for row, want in zip(rows, duck_result):
                got, expected = _numbers(row), [float(x) for x in want]
                if len(got) != len(expected) or not all(
                    math.isclose(g, e, rel_tol=1e-9) for g, e in zip(got, expected)
                ):
                    return f"mismatch: quarry {got} duckdb {expected}"
            return "ok"
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
    status, body = http_get_retry(quarry.base_url + "/v1/datasets/lineitem")
    if status != 200:
        raise RuntimeError(f"/v1/datasets/lineitem answered {status}")
    rows = json.loads(body)["rows"]
    rnd = random.Random(11)
    span = max(rows - RAW_ROWS, 0)
    paths = [f"/v1/datasets/lineitem/columns/{RAW_COLUMN}?offset={rnd.randint(0, span)}&limit={RAW_ROWS}"
             for _ in range(1000)]
    status, body = http_get_retry(quarry.base_url + paths[0])
    if status != 200:
        raise RuntimeError(f"raw column answered {status}: {body[:200]!r}")
    size = len(body)
    www = WORK / "www"
    static = static_file(www, f"raw-{size}.bin", size)
    cold = cold_files(www, size)
    paths_dir = WORK / "paths"
    nginx = start_nginx(www)
    fixed = start_fixed_body(cfg, size)
    plan = [
        ("raw_column_1mib", "quarry", quarry, write_paths(paths_dir / "quarry-raw.txt", paths)),
        ("raw_column_1mib", "fixed_body", fixed, write_paths(paths_dir / "fixed-raw.txt", paths)),
        ("raw_column_1mib", "nginx", nginx, write_paths(paths_dir / "nginx-raw.txt", [static])),
        ("raw_column_1mib", "nginx_cold", nginx, write_paths(paths_dir / "nginx-raw-cold.txt", cold)),
    ]
    from .server import add_ratios, measure

    try:
        runs = measure(cfg, plan, "raw")
    finally:
        nginx.stop()
        fixed.stop()
    results = [{"workload": w, "system": s, "body_bytes": size, **digest_runs(rs)}
               for (w, s), rs in runs.items()]
    add_ratios(results, "quarry", ["fixed_body", "nginx", "nginx_cold"])
    return results


COLD_FILES = 64  # 64 MiB: more than the 32 MiB L3, like the 48 MB column the ranges come from


def cold_files(www: Path, size: int) -> list:
    """COLD_FILES distinct static files of `size` random bytes for nginx: the same data
    temperature as random ranges of a column larger than the cache (one file stays in L3)."""
    d = www / "cold"
    d.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(5)
    paths = []
    for i in range(COLD_FILES):
        f = d / f"{size}-{i}.bin"
        if not f.exists() or f.stat().st_size != size:
            f.write_bytes(rnd.randbytes(size))
        paths.append(f"/cold/{f.name}")
    return paths


def lookup_under_aggregation(cfg, quarry, keys):
    """Point lookups (cfg.connections connections) alone, then while 2 more connections run
    Q6-like and Q1-like back to back; both wrk processes on the load core."""
    paths_dir = WORK / "paths"
    lookups = write_paths(paths_dir / "quarry-lookup.txt", lookup_paths(keys))
    aggs = write_paths(paths_dir / "quarry-aggs.txt", [Q6_PATH, Q1_PATH])
    alone, loaded, agg_rates, agg_errors, statuses = [], [], [], [], []
    for rep in range(cfg.reps):
        time.sleep(2.0)  # quiet: let the server's loop-lag window (1 s) forget earlier load
        alone.append(run_wrk(quarry.pid, quarry.base_url, lookups, cfg.duration_s, cfg.connections))
        before = status_counts(quarry)
        bg = start_wrk(quarry.base_url, aggs, cfg.duration_s + 2, 2, seed=99 + rep)
        time.sleep(1.0)  # let the aggregations start
        loaded.append(run_wrk(quarry.pid, quarry.base_url, lookups, cfg.duration_s, cfg.connections))
        agg = digest(finish_wrk(bg, cfg.duration_s + 120), None)
        after = status_counts(quarry)
        statuses.append({k: int(v - before.get(k, 0)) for k, v in after.items() if v - before.get(k, 0)})
        agg_rates.append(agg["rps"])
        agg_errors.append(agg["errors"])
        log(f"lookup under aggregation rep {rep + 1}: p99 {loaded[-1]['p99_ms']:.3f} ms "
            f"(alone {alone[-1]['p99_ms']:.3f} ms), aggregations {agg['rps']:.1f}/s, "
            f"agg errors {agg['errors']}, lookup errors {loaded[-1]['errors']}, "
            f"statuses (lookups + aggregations) {statuses[-1]}")
    a, l = digest_runs(alone), digest_runs(loaded)
    return {
        "lookup_alone": a,
        "lookup_with_aggregations": l,
        "aggregations_per_s": summary(agg_rates),
        "aggregation_errors": agg_errors,
        "statuses_during_aggregation_runs": statuses,
        "ratios": {"p99_vs_alone": ratio(l["p99_ms"], a["p99_ms"])},
    }


SWAP_ROWS = 100_000


def _swap_csv(path: Path, tag: str, mult: int):
    with open(path, "w") as f:
        f.write("id,tag,value,label\n")
        for i in range(1, SWAP_ROWS + 1):
            f.write(f"{i},{tag},{i * mult},{tag.lower()}-{i}\n")


def _row_version(row, i):
    """'A' or 'B' when the row is exactly that version's row for id i, else None (a mix)."""
    for tag, mult in (("A", 2), ("B", 3)):
        if row == {"id": i, "tag": tag, "value": i * mult, "label": f"{tag.lower()}-{i}"}:
            return tag
    return None


def swap_under_load(cfg):
    """Publishes two versions of a dataset alternately (rename over swap.qry + SIGHUP, every
    0.5 s) while wrk runs lookups and a checker verifies every answer it gets is entirely one
    version's row, and that one ETag never stands for two different answers."""
    import shutil
    import signal
    import threading

    work = WORK / "swap"
    versions = {}
    for tag, mult in (("A", 2), ("B", 3)):
        d = work / tag
        target = d / "swap.qry"
        if not data._fresh(target, cfg.bin_dir / "quarry-etl"):
            d.mkdir(parents=True, exist_ok=True)
            _swap_csv(d / "swap.csv", tag, mult)
            subprocess.run([str(cfg.bin_dir / "quarry-etl"), "build", str(d / "swap.csv"), "--out",
                            str(d), "--name", "swap", "--key", "id"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        versions[tag] = target
    data_dir = work / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    shutil.copyfile(versions["A"], data_dir / "swap.qry")
    server = start_quarry(cfg, data_dir)
    duration = max(2, 2 * cfg.duration_s)
    stop = threading.Event()
    seen = {"A": 0, "B": 0, "mixed": 0, "non_200": 0, "etag_conflicts": 0}
    etags = {}

    def checker():
        rnd = random.Random(5)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        while not stop.is_set():
            i = rnd.randint(1, SWAP_ROWS)
            conn.request("GET", f"/v1/datasets/swap/rows/{i}")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                seen["non_200"] += 1
                continue
            tag = _row_version(json.loads(body), i)
            seen[tag or "mixed"] += 1
            etag = resp.getheader("ETag")
            if etag:
                if etags.setdefault((i, etag), body) != body:
                    seen["etag_conflicts"] += 1
        conn.close()

    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {LOAD_CPU})  # the checker thread inherits this
    swaps = 0
    try:
        paths = write_paths(WORK / "paths" / "quarry-swap.txt",
                            [f"/v1/datasets/swap/rows/{random.Random(k).randint(1, SWAP_ROWS)}"
                             for k in range(10_000)])
        wrk = start_wrk(server.base_url, paths, duration, cfg.connections)
        t = threading.Thread(target=checker, daemon=True)
        t.start()
        deadline = time.monotonic() + duration - 0.5
        tag = "A"
        while time.monotonic() < deadline:
            time.sleep(0.5)
            tag = "B" if tag == "A" else "A"
            tmp = data_dir / ".swap.qry.tmp"
            shutil.copyfile(versions[tag], tmp)
            os.replace(tmp, data_dir / "swap.qry")  # publish by rename, as quarry-etl does
            server.proc.send_signal(signal.SIGHUP)
            swaps += 1
        res = digest(finish_wrk(wrk, duration + 60), None)
        stop.set()
        t.join(timeout=30)
    finally:
        stop.set()
        os.sched_setaffinity(0, old)
        server.stop()
    ok = (res["errors"] == 0 and seen["non_200"] == 0 and seen["mixed"] == 0
          and seen["etag_conflicts"] == 0 and seen["A"] > 0 and seen["B"] > 0)
    log(f"swap under load: {swaps} swaps, wrk {res['requests']} requests, {res['errors']} errors, "
        f"checker {seen}, {'ok' if ok else 'FAILED'}")
    return {
        "swaps": swaps, "seconds": duration, "wrk_requests": res["requests"],
        "wrk_errors": res["errors"], "wrk_p99_ms": res["p99_ms"], "checker": seen, "ok": ok,
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
    try:
        out["swap_under_load"] = swap_under_load(cfg)
    except Exception as e:  # noqa: BLE001
        log(f"analytics swap_under_load failed: {e}")
        out["swap_under_load"] = {"failed": str(e)[:500]}
    out["notes"] = (
        f"Aggregations: median of {cfg.query_runs} runs after one warm-up; Quarry over HTTP "
        "(one keep-alive connection, client on the load core), DuckDB in-process with threads=1 "
        "pinned to the server core. Raw column: wrk as in the server section."
    )
    return out
