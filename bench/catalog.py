#!/usr/bin/env python3
"""Startup time, RSS and /v1/datasets cost of one quarry-server for N datasets.

Usage: python3 bench/catalog.py [--bin-dir target/release] [--counts 1,100,10000,50000]

Each dataset is a hard link of one small file (the first 200 rows of examples/flights), so
the figures are the per-dataset costs of the catalog, not of the data. Request times are the
median of 50 on one keep-alive connection, 1 s after ready. Prints a Markdown table
(docs/bench/catalog.md).
"""

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import tempfile
import time


def build_file(bin_dir, work):
    src = os.path.join(work, "src")
    os.makedirs(src)
    here = os.path.dirname(os.path.abspath(__file__))
    flights = os.path.join(here, "..", "examples", "flights", "flights.csv")
    with open(flights) as f:
        lines = [next(f) for _ in range(201)]
    csv = os.path.join(src, "small.csv")
    with open(csv, "w") as f:
        f.writelines(lines)
    subprocess.run(
        [os.path.join(bin_dir, "quarry-etl"), "build", csv, "--out", src, "--name", "small",
         "--key", "flight_id"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return os.path.join(src, "small.qry")


def get(port, target, headers=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.perf_counter()
    c.request("GET", target, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    took = time.perf_counter() - t0
    if conn is None:
        c.close()
    return r.status, r.getheader("ETag"), body, took


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def one(bin_dir, small, n, port):
    work = tempfile.mkdtemp(prefix="quarry-catalog-bench-")
    data = os.path.join(work, "data")
    os.makedirs(data)
    for i in range(n):
        os.link(small, os.path.join(data, f"d{i:05}.qry"))
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [os.path.join(bin_dir, "quarry-server"), "--data-dir", data, "--listen",
         f"127.0.0.1:{port}", "--reload-interval", "0s", "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    try:
        deadline = time.time() + 600
        while True:
            try:
                if get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit(f"{n} datasets: not ready in 600 s")
            time.sleep(0.02)
        startup = time.perf_counter() - t0
        cpu = cpu_seconds(p.pid)
        time.sleep(1)
        rss = status_kib(p.pid, "VmRSS")
        anon = status_kib(p.pid, "RssAnon")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        page, tag, body, _ = get(port, "/v1/datasets", conn=c)
        assert page == 200
        full = [get(port, "/v1/datasets", conn=c)[3] for _ in range(50)]
        big = [get(port, "/v1/datasets?limit=1000", conn=c)[3] for _ in range(50)]
        big_len = len(get(port, "/v1/datasets?limit=1000", conn=c)[2])
        nm = [get(port, "/v1/datasets", {"If-None-Match": tag}, conn=c)[3] for _ in range(50)]
        health = [get(port, "/healthz", conn=c)[3] for _ in range(50)]
        c.close()
        with open(f"/proc/{p.pid}/maps") as f:
            maps = sum(1 for _ in f)
        ms = lambda xs: statistics.median(xs) * 1000
        return (n, startup, cpu, rss, anon, maps, len(body), ms(full), big_len, ms(big), ms(nm),
                ms(health))
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default="target/release")
    ap.add_argument("--counts", default="1,100,10000,50000")
    ap.add_argument("--port", type=int, default=18231)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="quarry-catalog-src-")
    try:
        small = build_file(a.bin_dir, work)
        rows = [one(a.bin_dir, small, int(n), a.port) for n in a.counts.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| datasets | startup to ready (wall) | server CPU to ready | VmRSS | RssAnon | mappings | "
          "`/v1/datasets` (100) | `?limit=1000` | 304 | `/healthz` |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (n, st, cpu, rss, anon, maps, blen, full, big_len, big, nm, health) in rows:
        print(f"| {n:,} | {st:.2f} s | {cpu:.2f} s | {rss / 1024:.0f} MiB | {anon / 1024:.0f} MiB | "
              f"{maps:,} | {full:.2f} ms ({blen:,} B) | {big:.2f} ms ({big_len:,} B) | {nm:.2f} ms | "
              f"{health:.2f} ms |")


if __name__ == "__main__":
    main()
