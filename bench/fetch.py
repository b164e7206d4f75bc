#!/usr/bin/env python3
"""Download-and-verify rate of `quarry-server --source` against curl, and time to ready.

Builds one dataset (default about 1 GiB) with quarry-etl from generated CSV, publishes it to a
`file://` prefix with `quarry-etl build --out file://...`, serves that prefix with Debian's nginx
on 127.0.0.1, then, RUNS times each, alternating:
  - curl: `curl -s -o FILE URL` of the data object (no checksum, no fsync);
  - fetcher: a fresh `quarry-server --source http://127.0.0.1:PORT/pub --cache-dir EMPTY`,
    timed from spawn until `<cache>/<name>.qry` exists (downloaded, SHA-256 checked against
    the manifest, renamed; the fsync follows the swap), and until `/healthz` is 200 (mapped
    and verified: `--verify full` checks every chunk checksum); also its CPU seconds;
  - with `--baseline BIN`, the same for another quarry-server build (an A/B in one run).
Prints the medians, the fetcher/curl rate ratio, and the load average.

Usage: python3 bench/fetch.py [--mib 1024] [--runs 3] [--baseline path/to/quarry-server]
Needs target/release/quarry-server and quarry-etl (cargo build --release), nginx and curl.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"{what} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                sys.exit(f"{what} did not listen within 60 s")
            time.sleep(0.02)


def ready(admin):
    """Whether the server whose admin port is `admin` answers /healthz 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def start_nginx(work, root, cpu=None):
    """Debian's nginx serving `root` on a free 127.0.0.1 port (optionally pinned to core `cpu`);
    returns the process and the port once it listens."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(
            f"daemon off; master_process off; pid {work}/nginx.pid; error_log stderr;\n"
            f"events {{}}\nhttp {{ access_log off; sendfile on;\n"
            f"client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};\n"
            f"uwsgi_temp_path {work}; scgi_temp_path {work};\n"
            f"server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n"
        )
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    ng = subprocess.Popen(pin + [nginx, "-e", "stderr", "-p", work, "-c", conf],
                          stderr=subprocess.DEVNULL)
    try:
        wait_port(port, ng, "nginx")
    except BaseException:
        ng.kill()
        raise
    return ng, port


def make_csv(path, mib):
    """Rows of mixed columns until the file has `mib` MiB (random-ish text compresses little)."""
    target = mib << 20
    with open(path, "w") as f:
        f.write("id,name,score,city,note\n")
        i = 0
        size = 0
        while size < target:
            lines = []
            for j in range(i, i + 10000):
                h = (j * 2654435761) & 0xFFFFFFFF
                lines.append(
                    f"{j},user{h:08x},{(h % 100000) / 7:.4f},city{h % 997},"
                    f"{h:x}{(h * 31) & 0xFFFFFFFF:x}{(h * 131) & 0xFFFFFFFF:x}\n"
                )
            chunk = "".join(lines)
            f.write(chunk)
            size += len(chunk)
            i += 10000


def time_server(binary, url, work, run, procs):
    """Starts `binary --source url` on an empty cache; returns seconds from spawn until the
    dataset file is renamed into place, until /healthz is 200, and the process's CPU seconds."""
    cache = os.path.join(work, f"cache{run}")
    os.mkdir(cache)
    admin = free_port()
    t = time.monotonic()
    srv = subprocess.Popen(
        [binary, "--source", url, "--cache-dir", cache,
         "--listen", f"127.0.0.1:{free_port()}", "--admin-listen", f"127.0.0.1:{admin}",
         "--reload-interval", "60s", "--drain-delay", "0s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    procs.append(srv)
    target = os.path.join(cache, "big.qry")
    fetched = None
    deadline = t + 1800
    while True:
        now = time.monotonic()
        if fetched is None and os.path.exists(target):
            fetched = now - t
        if fetched is not None and ready(admin):
            served = now - t
            break
        if srv.poll() is not None:
            sys.exit(f"{binary} exited with {srv.returncode}")
        if now > deadline:
            sys.exit("not ready within 30 minutes")
        time.sleep(0.01)
    srv.send_signal(signal.SIGKILL)
    _, _, usage = os.wait4(srv.pid, 0)
    srv.returncode = -9
    procs.remove(srv)
    shutil.rmtree(cache)
    return fetched, served, usage.ru_utime + usage.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024, help="size of the generated CSV")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", help="another quarry-server binary, timed in the same runs")
    args = ap.parse_args()
    server = os.path.join(REL, "quarry-server")
    # The ETL only prepares the data; QUARRY_BENCH_ETL may name another build of it.
    etl = os.environ.get("QUARRY_BENCH_ETL", os.path.join(REL, "quarry-etl"))
    for b in (server, etl):
        if not os.access(b, os.X_OK):
            sys.exit(f"{b} is missing: cargo build --release -p quarry-server -p quarry-etl")
    work = tempfile.mkdtemp(prefix="quarry-fetch-bench-", dir=os.path.join(ROOT, "target"))
    procs = []
    try:
        csv = os.path.join(work, "rows.csv")
        make_csv(csv, args.mib)
        store = os.path.join(work, "store")
        subprocess.run(
            [etl, "build", csv, "--out", f"file://{store}/pub", "--name", "big",
             "--progress", "none"],
            check=True,
        )
        os.remove(csv)
        manifest = json.load(open(os.path.join(store, "pub", "MANIFEST.json")))
        entry = manifest["datasets"]["big"]
        size = entry["size"]
        ng, port = start_nginx(work, store)
        procs.append(ng)
        url = f"http://127.0.0.1:{port}/pub"
        servers = [("fetcher", server)]
        if args.baseline:
            servers.append(("baseline", args.baseline))
        curl_s = []
        times = {label: ([], [], []) for label, _ in servers}  # fetched, ready, CPU seconds
        for run in range(args.runs):
            out = os.path.join(work, "curl.out")
            t = time.monotonic()
            subprocess.run(["curl", "-sf", "-o", out, f"{url}/{entry['path']}"], check=True)
            curl_s.append(time.monotonic() - t)
            assert os.path.getsize(out) == size
            os.remove(out)
            for label, binary in servers:
                fetched, served, cpu = time_server(binary, url, work, run, procs)
                times[label][0].append(fetched)
                times[label][1].append(served)
                times[label][2].append(cpu)
        mib = size / (1 << 20)
        curl_rate = mib / statistics.median(curl_s)
        print(f"object: {size} bytes ({mib:.0f} MiB), {args.runs} runs each")
        print(f"curl      median {statistics.median(curl_s):.2f} s  {curl_rate:.0f} MiB/s  runs {['%.2f' % x for x in curl_s]}")
        for label, _ in servers:
            fetch_s, ready_s, cpu_s = times[label]
            fetch_rate = mib / statistics.median(fetch_s)
            print(f"{label:9} median {statistics.median(fetch_s):.2f} s  {fetch_rate:.0f} MiB/s  runs {['%.2f' % x for x in fetch_s]}")
            print(f"  ratio {label}/curl rate: {fetch_rate / curl_rate:.2f}")
            print(f"  start to ready (fetch + full verify + map) median {statistics.median(ready_s):.2f} s  runs {['%.2f' % x for x in ready_s]}")
            print(f"  CPU seconds of the whole process (user + sys, start to ready) median {statistics.median(cpu_s):.2f}  runs {['%.2f' % x for x in cpu_s]}")
        print(f"load average: {os.getloadavg()}")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
