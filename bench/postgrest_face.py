#!/usr/bin/env python3
"""Server CPU per request of the PostgREST face (/rest) against the same queries through /v1.

Usage: bench/postgrest_face.py [--secs 5] [--reps 3] [--out docs/bench/postgrest-face.md]
Needs: target/release/quarry-server and quarry-etl (cargo build --release -p quarry-server
-p quarry-etl), wrk, taskset. Builds examples/flights into a temporary data dir, runs the server
alone on core 0 and wrk (one thread, 32 connections, bench/lua/paths.lua) on core 1, over
127.0.0.1 only; shedding on loop lag off (a shared machine lags). CPU per request = utime+stime of the server's PID over a run / requests
completed. Variants run interleaved in each repetition; medians of the repetitions are reported
with their min-max. Pairs compare the same query through both faces:
- lookup: one flight by key (`flight_id=eq.K`, a scan planned on the key index), and /v1's
  point-lookup route for reference;
- scan: `carrier=eq.C&limit=20` (filtered rows, first page).
"""
import argparse
import csv
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL = ROOT / "target" / "release"
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench" / "postgrest-face.md"))
    args = ap.parse_args()
    rows = list(csv.DictReader(open(ROOT / "examples" / "flights" / "flights.csv")))
    rng = random.Random(7)
    keys = [r["flight_id"] for r in rng.sample(rows, 2000)]
    carriers = sorted({r["carrier"] for r in rows})
    variants = {
        "lookup /v1 route": [f"/v1/datasets/flights/rows/{k}" for k in keys],
        "lookup /v1 eq": [f"/v1/datasets/flights/rows?flight_id=eq.{k}" for k in keys],
        "lookup /rest eq": [f"/rest/flights?flight_id=eq.{k}" for k in keys],
        "scan /v1": [f"/v1/datasets/flights/rows?carrier=eq.{c}&limit=20" for c in carriers],
        "scan /rest": [f"/rest/flights?carrier=eq.{c}&limit=20" for c in carriers],
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([REL / "quarry-etl", "build", ROOT / "examples/flights/flights.csv", "--out",
                        tmp / "data", "--name", "flights", "--key", "flight_id", "--progress", "none"],
                       check=True, stdout=subprocess.DEVNULL)
        files = {}
        for name, paths in variants.items():
            f = tmp / (re.sub(r"\W+", "_", name) + ".txt")
            f.write_text("\n".join(paths) + "\n")
            files[name] = f
        port = 18000 + os.getpid() % 1000
        server = subprocess.Popen(["taskset", "-c", "0", REL / "quarry-server", "--data-dir", tmp / "data",
                                   "--listen", f"127.0.0.1:{port}", "--log-format", "json",
                                   "--shed-lag", "0s"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except Exception:
                    time.sleep(0.1)
            results = {name: [] for name in variants}
            for rep in range(args.reps):
                for name in variants:
                    c0 = cpu_seconds(server.pid)
                    out = subprocess.run(
                        ["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{args.secs}s", "--latency", "-s",
                         ROOT / "bench/lua/paths.lua", f"http://127.0.0.1:{port}", "--", files[name], str(rep)],
                        check=True, capture_output=True, text=True).stdout
                    c1 = cpu_seconds(server.pid)
                    m = re.search(r"WRKJSON (\{.*\})", out)
                    stats = json.loads(m.group(1))
                    bad = sum(stats["errors"].values())
                    if bad > stats["requests"] // 100:
                        raise SystemExit(f"{name}: {bad} errors of {stats['requests']} requests")
                    ok = stats["requests"] - bad
                    results[name].append(((c1 - c0) / max(ok, 1)) * 1e6)
        finally:
            server.terminate()
            server.wait(timeout=10)
    med = {k: statistics.median(v) for k, v in results.items()}
    lines = [
        "# The PostgREST face against /v1: server CPU per request",
        "",
        f"Command: `bench/postgrest_face.py --secs {args.secs} --reps {args.reps}` (release build; "
        "server alone on core 0, wrk -t1 -c32 on core 1; examples/flights; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; a shared machine, load average "
        f"{os.getloadavg()[0]:.1f} at the end: the ratios are the figure, not the microseconds).",
        "",
        "| query | CPU us/request, median | min-max |",
        "|---|---|---|",
    ]
    for k, v in results.items():
        lines.append(f"| {k} | {med[k]:.2f} | {min(v):.2f}-{max(v):.2f} |")
    lines += [
        "",
        f"- lookup by key, /rest vs /v1 (same query string): {med['lookup /rest eq'] / med['lookup /v1 eq']:.3f}x",
        f"- scan, /rest vs /v1: {med['scan /rest'] / med['scan /v1']:.3f}x",
        f"- /v1's point-lookup route for reference: /rest eq is {med['lookup /rest eq'] / med['lookup /v1 route']:.2f}x it",
        "",
    ]
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
