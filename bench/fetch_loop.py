#!/usr/bin/env python3
"""What a download costs the event loop: lookup latency on a server pinned to one core while
its fetcher downloads, hashes and swaps in a new version, against the same server before.

Builds two versions of one dataset (`--mib` of generated CSV each, keyed by `id`) with
quarry-etl, publishes v1 to a `file://` prefix served by Debian's nginx on 127.0.0.1, starts
`quarry-server --source http://...` pinned to core 0 (`taskset -c 0`: a one-core pod; the event
loop, the fetcher and its disk thread share it) and waits until it is ready. nginx and this
client run on core 1. The client sends point lookups (`/v1/datasets/big/rows/{id}`, random ids)
one after another on one keep-alive connection for `--before` seconds, then publishes v2 (its
object was copied into the prefix beforehand; publishing is one rename of MANIFEST.json) and
goes on until the server has served v2 for one more second. Latencies are split into three
windows: before the publish, from the publish until v2 answers (the fetcher downloading and
hashing at nice +10, then the loader verifying and swapping), and after. The client is Python:
its own overhead is in every figure alike, so compare the windows, not the absolute numbers.

Usage: python3 bench/fetch_loop.py [--mib 512] [--before 3] [--runs 3] [--server BIN]
                                   [--spikes-ms 5]
Needs target/release/quarry-server and quarry-etl (cargo build --release), nginx, taskset.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fetch import REL, ROOT, free_port, make_csv, ready, start_nginx, wait_port  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def build(etl, mib, out, rows_file):
    make_csv(rows_file, mib)
    subprocess.run([etl, "build", rows_file, "--out", out, "--name", "big", "--key", "id",
                    "--progress", "none"], check=True, stdout=subprocess.DEVNULL)
    os.remove(rows_file)


def one_run(server, url, store, v2_manifest, work, before, run):
    cache = os.path.join(work, f"cache{run}")
    os.mkdir(cache)
    port, admin = free_port(), free_port()
    srv = subprocess.Popen(
        ["taskset", "-c", "0", server, "--source", url, "--cache-dir", cache,
         "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
         "--reload-interval", "1s", "--drain-delay", "0s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    manifest = os.path.join(store, "pub", "MANIFEST.json")
    try:
        wait_port(port, srv, "quarry-server")
        deadline = time.monotonic() + 600
        while not ready(admin):
            if time.monotonic() > deadline:
                sys.exit("v1 not ready within 10 minutes")
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def info():
            conn.request("GET", "/v1/datasets/big")
            return json.loads(conn.getresponse().read())

        v1 = info()
        rows = v1["rows"]
        samples = []  # (start, latency)
        t0 = time.perf_counter()
        published = swapped = None
        n = 0
        while True:
            key = random.randrange(rows)
            s = time.perf_counter()
            conn.request("GET", f"/v1/datasets/big/rows/{key}")
            r = conn.getresponse()
            r.read()
            e = time.perf_counter()
            if r.status != 200:
                sys.exit(f"lookup {key}: HTTP {r.status}")
            samples.append((s, e - s))
            n += 1
            if published is None and e - t0 >= before:
                tmp = manifest + ".tmp"
                shutil.copyfile(v2_manifest, tmp)
                os.replace(tmp, manifest)
                published = time.perf_counter()
            if published is not None and swapped is None and n % 50 == 0 and info()["version"] != v1["version"]:
                swapped = time.perf_counter()
            if swapped is not None and e - swapped >= 1.0:
                break
            if e - t0 > before + 600:
                sys.exit("v2 not served within 10 minutes")
        return samples, published, swapped
    finally:
        srv.kill()
        srv.wait()
        shutil.rmtree(cache, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=512, help="size of each version's CSV")
    ap.add_argument("--before", type=float, default=3.0, help="seconds measured before publishing")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--server", default=os.path.join(REL, "quarry-server"),
                    help="the quarry-server binary measured")
    ap.add_argument("--spikes-ms", type=float, default=0,
                    help="also list every lookup slower than this, by time since the publish")
    args = ap.parse_args()
    server = args.server
    etl = os.environ.get("QUARRY_BENCH_ETL", os.path.join(REL, "quarry-etl"))
    for b in (server, etl):
        if not os.access(b, os.X_OK):
            sys.exit(f"{b} is missing: cargo build --release -p quarry-server -p quarry-etl")
    os.sched_setaffinity(0, {1})
    work = tempfile.mkdtemp(prefix="quarry-fetch-loop-", dir=os.path.join(ROOT, "target"))
    ng = None
    try:
        store = os.path.join(work, "store")
        stage = os.path.join(work, "stage")
        build(etl, args.mib, f"file://{store}/pub", os.path.join(work, "v1.csv"))
        # v2: more rows, so other bytes and another version.
        build(etl, args.mib + 8, f"file://{stage}/pub", os.path.join(work, "v2.csv"))
        v1_manifest = os.path.join(work, "v1.json")
        shutil.copyfile(os.path.join(store, "pub", "MANIFEST.json"), v1_manifest)
        v2_manifest = os.path.join(stage, "pub", "MANIFEST.json")
        v2 = json.load(open(v2_manifest))["datasets"]["big"]
        shutil.copyfile(os.path.join(stage, "pub", v2["path"]),
                        os.path.join(store, "pub", v2["path"]))
        ng, port = start_nginx(work, store, cpu=1)
        url = f"http://127.0.0.1:{port}/pub"
        print(f"v2 object: {v2['size']} bytes; server pinned to core 0, nginx and client to core 1")
        windows = {"before": [], "download+swap": [], "after": []}
        spans = []
        for run in range(args.runs):
            shutil.copyfile(v1_manifest, os.path.join(store, "pub", "MANIFEST.json"))
            samples, published, swapped = one_run(server, url, store, v2_manifest, work,
                                                  args.before, run)
            spans.append(swapped - published)
            if args.spikes_ms:
                slow = [(round(s - published, 3), round(lat * 1e3, 1))
                        for s, lat in samples if lat * 1e3 > args.spikes_ms]
                print(f"run {run}: v2 served {swapped - published:.3f} s after the publish; "
                      f"(s since publish, ms) slower than {args.spikes_ms} ms: {slow}")
            for s, lat in samples:
                w = "before" if s < published else "download+swap" if s < swapped else "after"
                windows[w].append(lat * 1e6)
        print(f"publish to v2 served: median {statistics.median(spans):.2f} s, runs "
              f"{['%.2f' % x for x in spans]}")
        print(f"{'window':15} {'lookups':>8} {'p50 us':>8} {'p99 us':>8} {'p99.9 us':>9} {'max us':>8}")
        for w, xs in windows.items():
            print(f"{w:15} {len(xs):8} {pct(xs, 0.5):8.0f} {pct(xs, 0.99):8.0f} "
                  f"{pct(xs, 0.999):9.0f} {max(xs):8.0f}")
        print(f"load average: {os.getloadavg()}")
    finally:
        if ng is not None:
            ng.kill()
            ng.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
