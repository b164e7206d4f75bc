#!/usr/bin/env python3
"""A/B of the memory budgets: server CPU per request with the default budgets against budgets
set out of reach, interleaved in one run, on one release build (issue #20: within 3%).

  bench/budgets_ab.py [REPS] [SECS]      (defaults 3 and 4)

Each repetition starts the server once per configuration, in alternating order, on core 0:
  on:  the defaults (--max-request-memory 64MiB, --memory-budget from the cgroup or 1GiB)
  off: --max-request-memory 1000GiB --memory-budget 1000GiB (every charge still made, never
       refused: what is left to measure is what charging costs)
and measures, from core 1: point lookups on `orders` (wrk -t1 -c64 for SECS after a 1 s
warm-up; CPU per request = utime+stime of the server from /proc over requests completed); then
the Q6-like and Q1-like aggregations and the 200,000-group `l_partkey` group-by of
bench/qbench/analytics.py, each QUERY_RUNS (default 5) times on one keep-alive connection after
one warm-up request (CPU per request the same way). Prints every run, then medians, min-max
and the ratio on/off.

Inputs: TPC-H lineitem and orders at BENCH_SF (default 1) from bench/run.sh's cache
(bench/work/, generated with tpchgen-cli if missing: run bench/setup.sh first) and the release
binaries in target/release (cargo build --release -p quarry-server -p quarry-etl).
"""
import http.client
import os
import statistics as st
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from qbench import data  # noqa: E402
from qbench.analytics import PARTS_PATH, Q1_PATH, Q6_PATH  # noqa: E402
from qbench.common import Config, free_port, proc_cpu_seconds  # noqa: E402
from qbench.server import lookup_paths  # noqa: E402
from qbench.wrk import run_wrk, write_paths  # noqa: E402

CONFIGS = {
    "on": [],
    "off": ["--max-request-memory", "1000GiB", "--memory-budget", "1000GiB"],
}
QUERIES = {"q6_like": Q6_PATH, "q1_like": Q1_PATH, "group_by_part": PARTS_PATH}


def start(cfg, data_dir, extra):
    port, admin = free_port(), free_port()
    argv = ["taskset", "-c", "0", str(cfg.bin_dir / "quarry-server"), "--data-dir", str(data_dir),
            "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
            "--reload-interval", "0s", "--drain-delay", "0s", "--log-format", "json",
            # Lag shedding off: on a shared machine a stolen slice would refuse a measured query.
            "--shed-lag", "0s"] + extra
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        if time.time() > deadline or p.poll() is not None:
            p.kill()
            raise SystemExit("quarry-server did not become ready")
        time.sleep(0.1)
    return p, port


def query_cpu(pid, port, path, runs):
    """Server CPU microseconds per request of `path`, sent `runs` times on one connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def once():
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit(f"{path}: {r.status} {body[:300]!r}")

    once()
    c0 = proc_cpu_seconds(pid)
    for _ in range(runs):
        once()
    c1 = proc_cpu_seconds(pid)
    c.close()
    return 1e6 * (c1 - c0) / runs


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    secs = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    runs = int(os.environ.get("QUERY_RUNS", "5"))
    cfg = Config.from_env()
    data.tpch(cfg)
    data_dir = data.quarry_data(cfg)
    paths = write_paths(HERE / "work/paths/budgets-lookup.txt", lookup_paths(data.order_keys(cfg)))
    os.sched_setaffinity(0, {1})  # this client on the load core
    res = {name: {} for name in CONFIGS}
    for r in range(reps):
        order = list(CONFIGS) if r % 2 == 0 else list(reversed(CONFIGS))
        for name in order:
            p, port = start(cfg, data_dir, CONFIGS[name])
            try:
                url = f"http://127.0.0.1:{port}"
                run_wrk(p.pid, url, paths, 1, 64)
                w = run_wrk(p.pid, url, paths, secs, 64)
                got = {"lookup": w["cpu_us_per_req"]}
                for q, path in QUERIES.items():
                    got[q] = query_cpu(p.pid, port, path, runs)
            finally:
                p.kill()
                p.wait()
                time.sleep(0.5)
            for k, v in got.items():
                res[name].setdefault(k, []).append(v)
            print(f"rep {r + 1} {name}: " + ", ".join(f"{k} {v:.1f} us" for k, v in got.items()),
                  flush=True)
    print(f"load average: {open('/proc/loadavg').read().strip()}")
    for k in res["on"]:
        on, off = st.median(res["on"][k]), st.median(res["off"][k])
        print(f"{k}: on {on:.1f} us ({min(res['on'][k]):.1f}-{max(res['on'][k]):.1f}), "
              f"off {off:.1f} us ({min(res['off'][k]):.1f}-{max(res['off'][k]):.1f}), "
              f"on/off {on / off:.3f}")


if __name__ == "__main__":
    main()
