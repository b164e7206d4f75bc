#!/usr/bin/env python3
"""Server CPU per point lookup with auth off, a static bearer token, and an RS256 JWT.

One release binary, three configurations, interleaved in each repetition: each starts on core
0, is warmed for 2 s, then `wrk -t1 -c64` drives random lookups of the flights example from
core 1 while the server's utime+stime is read from /proc. Prints every run and the medians
with ratios against auth off.

  bench/auth_cost.py [REPS] [SECS]        (default 5 reps of 4 s; needs a release build,
                                          wrk, openssl, taskset)
"""
import base64
import json
import os
import random
import statistics as st
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "auth"
BIN = ROOT / "target" / "release"
KEYS = ROOT / "server" / "tests" / "it" / "keys"
PORT, ADMIN = 18190, 18191
TOKEN = "bench-static-token-6b1f0c2d9e8a7b35"
TCK = os.sysconf("SC_CLK_TCK")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rs256_jwt() -> str:
    """An RS256 JWT signed by openssl (PKCS#1 v1.5 over SHA-256), valid for a day."""
    head = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    claims = {"sub": "bench", "exp": int(time.time()) + 86400, "quarry_datasets": ["*"]}
    body = b64url(json.dumps(claims).encode())
    signing_input = f"{head}.{body}".encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(KEYS / "rsa_private.pem")],
                         input=signing_input, capture_output=True, check=True).stdout
    return f"{head}.{body}.{b64url(sig)}"


def prepare():
    data = WORK / "data"
    data.mkdir(parents=True, exist_ok=True)
    if not (data / "flights.qry").exists():
        subprocess.run([str(BIN / "quarry-etl"), "build", str(ROOT / "examples/flights/flights.csv"),
                        "--out", str(data), "--name", "flights", "--key", "flight_id",
                        "--progress", "none"], check=True, stdout=subprocess.DEVNULL)
    lines = (ROOT / "examples/flights/flights.csv").read_text().splitlines()
    col = lines[0].split(",").index("flight_id")
    keys = [line.split(",")[col] for line in lines[1:]]
    rng = random.Random(7)
    paths = WORK / "lookup-paths.txt"
    paths.write_text("".join(f"/v1/datasets/flights/rows/{rng.choice(keys)}\n" for _ in range(10000)))
    digest = subprocess.run([str(BIN / "quarry-server"), "hash-token", "bench"], input=TOKEN + "\n",
                            capture_output=True, text=True, check=True).stdout
    (WORK / "tokens.toml").write_text(digest.replace("datasets = []", 'datasets = ["*"]'))
    return data, paths


def start(data: Path, extra: list[str]):
    argv = [str(BIN / "quarry-server"), "--data-dir", str(data), "--listen", f"127.0.0.1:{PORT}",
            "--admin-listen", f"127.0.0.1:{ADMIN}", "--reload-interval", "0s",
            "--drain-delay", "0s", "--shed-lag", "0s"] + extra
    p = subprocess.Popen(["taskset", "-c", "0"] + argv, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=1)
            return p
        except Exception:
            time.sleep(0.1)
    p.kill()
    raise SystemExit("quarry-server did not become ready")


def cpu_seconds(pid: int) -> float:
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TCK


def wrk(paths: Path, secs: int, auth: str) -> dict:
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{secs}s", "-s", str(HERE / "lua/paths.lua"),
         f"http://127.0.0.1:{PORT}", "--", str(paths), "42", auth],
        capture_output=True, text=True).stdout
    if "WRKJSON " not in out:
        raise SystemExit("wrk failed: " + out)
    return json.loads(out.split("WRKJSON ", 1)[1])


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    secs = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    data, paths = prepare()
    systems = [
        ("off", [], ""),
        ("token", ["--auth-tokens", str(WORK / "tokens.toml")], f"Bearer {TOKEN}"),
        ("jwt-rs256", ["--jwt-public-keys", str(KEYS / "rsa_public.pem")], f"Bearer {rs256_jwt()}"),
    ]
    res = {n: [] for n, _, _ in systems}
    for r in range(reps):
        for name, extra, auth in systems:
            p = start(data, extra)
            try:
                wrk(paths, 2, auth)
                c0 = cpu_seconds(p.pid)
                w = wrk(paths, secs, auth)
                c1 = cpu_seconds(p.pid)
            finally:
                p.kill()
                p.wait()
                time.sleep(0.5)
            errors = sum(w["errors"].values())
            if errors > w["requests"] // 100:
                raise SystemExit(f"{name}: {errors} errors of {w['requests']} (status {w['errors']})")
            rps = w["requests"] / (w["duration_us"] / 1e6)
            run = (1e6 * (c1 - c0) / w["requests"], rps, w["p99_us"] / 1e3)
            res[name].append(run)
            print(f"rep {r + 1} {name}: {run[0]:.2f} us/req, {rps:.0f} req/s, p99 {run[2]:.2f} ms",
                  flush=True)
    base = st.median(x[0] for x in res["off"])
    for name, _, _ in systems:
        cpu = [x[0] for x in res[name]]
        m = st.median(cpu)
        print(f"{name}: median {m:.2f} us/req (min {min(cpu):.2f}, max {max(cpu):.2f}), "
              f"{m / base:.3f}x off, {st.median(x[1] for x in res[name]):.0f} req/s")


if __name__ == "__main__":
    main()
