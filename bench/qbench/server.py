"""Server: point lookups (random keys) and a filtered scan with limit 100 on quarry-server,
against the one-core HTTP floor (hyper on monoio answering a fixed body of the same size),
nginx serving a static file of the same size, and Datasette (point lookups, as a peer).

All servers are started at once, each pinned to the server core, and only the one under load
runs: the others are stopped (SIGSTOP) meanwhile. wrk runs on the load core. Workloads and
systems are interleaved inside each repetition.
"""

import os
import random
import signal
import statistics
import time

from . import data
from .common import WORK, http_get, http_get_retry, log, ratio, summary
from .servers import start_datasette, start_fixed_body, start_nginx, start_quarry, static_file
from .wrk import run_wrk, write_paths

SHIPMODES = ("AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK")


def lookup_paths(keys):
    return [f"/v1/datasets/orders/rows/{k}" for k in keys]


def scan_paths():
    # Filter on two non-key columns (zone maps cannot prune them): the scan reads row groups
    # until 100 rows match.
    return [
        f"/v1/datasets/lineitem/rows?l_shipmode=eq.{m.replace(' ', '%20')}&l_quantity=lt.{q}&limit=100"
        for m in SHIPMODES
        for q in (5, 10, 20, 30, 40)
    ]


def body_size(base_url, paths, sample=50):
    """Mean body size of a sample of paths; fails loudly on any non-200."""
    rnd = random.Random(7)
    sizes = []
    for p in rnd.sample(paths, min(sample, len(paths))):
        status, body = http_get_retry(base_url + p)  # 503: shedding, e.g. right after start-up
        if status != 200:
            raise RuntimeError(f"GET {p} answered {status}: {body[:300]!r}")
        sizes.append(len(body))
    return round(statistics.mean(sizes))


def status_counts(server):
    """quarry_http_requests_total by status, from quarry-server's /metrics (empty if absent)."""
    status, body = http_get(getattr(server, "admin_url", server.base_url) + "/metrics")
    counts = {}
    if status != 200:
        return counts
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("quarry_http_requests_total{") and 'status="' in line:
            code = line.split('status="', 1)[1].split('"', 1)[0]
            try:
                counts[code] = counts.get(code, 0) + float(line.rsplit(" ", 1)[1])
            except ValueError:
                pass
    return counts


_stopped = set()


def only_running(servers, active):
    """Continues `active` and stops (SIGSTOP) every other server of the plan, so that no idle
    peer runs on the server core during a measured run. Idle is not silent: Datasette's uvicorn
    wakes every 100 ms, and those wake-ups alone moved Quarry's lookup p99 from 0.80-0.97 ms
    to 0.92-1.26 ms (bench/README.md). Stopped processes keep their sockets and state.

    A server that was stopped gets 1.2 s after it continues: quarry-server's lag monitor sees
    the stop as one late tick and sheds load for the rest of that second, as it should after a
    real stall of its loop."""
    for server in servers:
        if server is not active and server.proc.poll() is None and server.pid not in _stopped:
            os.kill(server.pid, signal.SIGSTOP)
            _stopped.add(server.pid)
    if active.pid in _stopped:
        _stopped.discard(active.pid)
        if active.proc.poll() is None:
            os.kill(active.pid, signal.SIGCONT)
            time.sleep(1.2)


def continue_all(servers):
    for server in servers:
        if server.pid in _stopped:
            _stopped.discard(server.pid)
            if server.proc.poll() is None:
                os.kill(server.pid, signal.SIGCONT)


def measure(cfg, plan, label):
    """plan: list of (workload, system, server, paths_file). Returns {(workload, system): [runs]}.
    Only the server under load runs; the others are stopped meanwhile (`only_running`)."""
    servers = list({id(server): server for _, _, server, _ in plan}.values())
    try:
        return _measure(cfg, plan, label, servers)
    finally:
        continue_all(servers)


def _measure(cfg, plan, label, servers):
    runs = {(w, s): [] for w, s, _, _ in plan}
    if cfg.warmup_s:
        for w, s, server, paths in plan:
            only_running(servers, server)
            try:
                run_wrk(server.pid, server.base_url, paths, cfg.warmup_s, cfg.connections)
            except Exception as e:  # noqa: BLE001 - recorded below when the real runs fail too
                log(f"{label} warm-up {w}/{s} failed: {e}")
    for rep in range(cfg.reps):
        for w, s, server, paths in plan:
            only_running(servers, server)
            try:
                before = status_counts(server) if s == "quarry" else None
                r = run_wrk(server.pid, server.base_url, paths, cfg.duration_s, cfg.connections,
                            seed=42 + rep)
                if before is not None:
                    after = status_counts(server)
                    r["statuses"] = {k: int(v - before.get(k, 0)) for k, v in after.items()
                                     if v - before.get(k, 0)}
            except Exception as e:  # noqa: BLE001 - one failing system must not end the suite
                log(f"{label} {w}/{s} rep {rep + 1} failed: {e}")
                r = {"failed": str(e)[:300]}
            runs[(w, s)].append(r)
            if "rps" in r:
                cpu = r["cpu_us_per_req"]
                log(f"{label} rep {rep + 1}/{cfg.reps} {w}/{s}: {r['rps']:.0f} req/s, "
                    f"p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, "
                    f"cpu {cpu if cpu is None else round(cpu, 2)} us/req, errors {r['errors']}"
                    + (f", statuses {r['statuses']}" if r.get("statuses") else ""))
    return runs


def digest_runs(rs):
    ok = [r for r in rs if "rps" in r]
    out = {
        "rps": summary([r["rps"] for r in ok]),
        "p50_ms": summary([r["p50_ms"] for r in ok]),
        "p99_ms": summary([r["p99_ms"] for r in ok]),
        "cpu_us_per_req": summary([r["cpu_us_per_req"] for r in ok]),
        "mb_per_s": summary([r["mb_per_s"] for r in ok]),
        "errors": sum(r["errors"] for r in ok),
        "requests": sum(r["requests"] for r in ok),
    }
    statuses = {}
    for r in ok:
        for k, v in (r.get("statuses") or {}).items():
            statuses[k] = statuses.get(k, 0) + v
    if statuses:
        out["statuses"] = statuses
    failed = [r["failed"] for r in rs if "failed" in r]
    if failed:
        out["failed"] = failed
    return out


def add_ratios(results, subject, baselines):
    """Ratios of `subject` against each baseline of the same workload."""
    by = {(r["workload"], r["system"]): r for r in results}
    for r in results:
        if r["system"] != subject:
            continue
        ratios = {}
        for b in baselines:
            base = by.get((r["workload"], b))
            if not base:
                continue
            ratios[b] = {
                "rps": ratio(r["rps"], base["rps"]),
                "cpu_us_per_req": ratio(r["cpu_us_per_req"], base["cpu_us_per_req"]),
                "p99_ms": ratio(r["p99_ms"], base["p99_ms"]),
            }
        r["ratios"] = ratios


def run(cfg, with_datasette=True):
    data.tpch(cfg)
    data_dir = data.quarry_data(cfg)
    keys = data.order_keys(cfg)
    paths_dir = WORK / "paths"
    started = []
    try:
        quarry = start_quarry(cfg, data_dir)
        started.append(quarry)
        workloads = {"lookup": lookup_paths(keys), "scan_limit_100": scan_paths()}
        sizes = {w: body_size(quarry.base_url, p) for w, p in workloads.items()}
        log(f"body sizes: {sizes}")
        www = WORK / "www"
        plan = []
        fixed = {}
        static = {}
        for w, paths in workloads.items():
            plan.append((w, "quarry", quarry, write_paths(paths_dir / f"quarry-{w}.txt", paths)))
            fixed[w] = start_fixed_body(cfg, sizes[w])
            started.append(fixed[w])
            static[w] = static_file(www, f"body-{sizes[w]}.json", sizes[w])
        nginx = start_nginx(www)
        started.append(nginx)
        for w in workloads:
            plan.append((w, "fixed_body", fixed[w],
                         write_paths(paths_dir / f"fixed-{w}.txt", workloads[w][:1000])))
            plan.append((w, "nginx", nginx, write_paths(paths_dir / f"nginx-{w}.txt", [static[w]])))
        if with_datasette:
            try:
                ds = start_datasette(data.sqlite_orders(cfg))
                started.append(ds)
                dpaths = [f"/orders/orders/{k}.json?_shape=objects" for k in keys]
                status, body = http_get(ds.base_url + dpaths[0])
                if status != 200:
                    raise RuntimeError(f"datasette answered {status}: {body[:200]!r}")
                plan.append(("lookup", "datasette", ds,
                             write_paths(paths_dir / "datasette-lookup.txt", dpaths)))
            except Exception as e:  # noqa: BLE001 - Datasette is optional
                log(f"datasette skipped: {e}")
        runs = measure(cfg, plan, "server")
    finally:
        for s in reversed(started):
            s.stop()
    results = []
    for (w, s), rs in runs.items():
        results.append({"workload": w, "system": s, "body_bytes": sizes[w] if s != "datasette" else None,
                        **digest_runs(rs)})
    add_ratios(results, "quarry", ["fixed_body", "nginx", "datasette"])
    return {
        "workloads": {
            "lookup": "GET /v1/datasets/orders/rows/{o_orderkey}, 10,000 random existing keys",
            "scan_limit_100": "GET /v1/datasets/lineitem/rows?l_shipmode=eq.M&l_quantity=lt.Q&limit=100 (35 variants)",
        },
        "load": f"wrk 1 thread, {cfg.connections} connections, {cfg.duration_s} s per run, median of {cfg.reps}",
        "body_bytes": sizes,
        "results": results,
    }
