#!/usr/bin/env python3
"""A/B of server CPU per point lookup between builds, interleaved in one run.

Each repetition starts every system in turn on core 0 (quarry-server builds, or `fixed` for the
fixed_body floor), warms it for 2 s, then drives `wrk -t1 -c64` with random lookup paths from
core 1 and reads the server's utime+stime from /proc. Prints every run and the medians with
ratios against the first system.

  bench/lookup_ab.py REPS SECS NAME=BINARY ...
  e.g. bench/lookup_ab.py 5 4 fixed=fixed old=/tmp/quarry-server.old new=target/release/quarry-server
  A BINARY may carry extra server flags, one argument in all (docs/bench/runtime.md):
      bench/lookup_ab.py 5 4 glue=target/release/quarry-server \
          "plain=target/release/quarry-server --plain-runtime"
  1 MiB raw column reads against nginx (bench/run.sh analytics writes the paths and the file):
  QUARRY_PATHS=bench/work/paths/quarry-raw.txt NGINX_PATHS=bench/work/paths/nginx-raw.txt \
      bench/lookup_ab.py 5 4 nginx=nginx new=target/release/quarry-server

Environment: AB_PORT (default 18090), QUARRY_DATA (default bench/work/data-sf1), QUARRY_PATHS
(default bench/work/paths/quarry-lookup.txt; bench/run.sh server writes it), FIXED_BODY (default
target/release/examples/fixed_body), FIXED_PATHS, FIXED_BYTES (257: an orders row),
NGINX_PATHS (default bench/work/paths/nginx-lookup.txt; nginx serves bench/work/www).
"""
import json
import os
import statistics as st
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PORT = int(os.environ.get("AB_PORT", "18090"))
TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TCK


def start(binary: str):
    """Starts a system on core 0: (pid, base URL, paths file, stop function)."""
    env = os.environ.get
    if binary == "nginx":
        sys.path.insert(0, str(HERE))
        from qbench.servers import start_nginx
        server = start_nginx(HERE / "work/www")
        paths = env("NGINX_PATHS", str(HERE / "work/paths/nginx-lookup.txt"))
        return server.pid, server.base_url, paths, server.stop
    if binary == "fixed":
        argv = [env("FIXED_BODY", str(ROOT / "target/release/examples/fixed_body")),
                "--listen", f"127.0.0.1:{PORT}", "--body-bytes", env("FIXED_BYTES", "257")]
        paths, probe = env("FIXED_PATHS", str(HERE / "work/paths/fixed-lookup.txt")), "/"
    else:
        argv = [*binary.split(), "--data-dir", env("QUARRY_DATA", str(HERE / "work/data-sf1")),
                "--listen", f"127.0.0.1:{PORT}", "--reload-interval", "0s", "--drain-delay", "0s"]
        paths, probe = env("QUARRY_PATHS", str(HERE / "work/paths/quarry-lookup.txt")), "/healthz"
    p = subprocess.Popen(["taskset", "-c", "0"] + argv, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}{probe}", timeout=1)
            break
        except Exception:
            time.sleep(0.1)

    def stop():
        p.kill()
        p.wait()
    return p.pid, f"http://127.0.0.1:{PORT}", paths, stop


def wrk(base_url: str, paths: str, secs: int) -> dict:
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{secs}s", "-s", str(HERE / "lua/paths.lua"),
         base_url, "--", paths], capture_output=True, text=True).stdout
    if "WRKJSON " not in out:
        raise SystemExit("wrk failed: " + out)
    return json.loads(out.split("WRKJSON ", 1)[1])


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    reps, secs = int(sys.argv[1]), int(sys.argv[2])
    systems = [a.split("=", 1) for a in sys.argv[3:]]
    res = {n: [] for n, _ in systems}
    for r in range(reps):
        for name, binary in systems:
            pid, url, paths, stop = start(binary)
            try:
                wrk(url, paths, 2)
                c0 = cpu_seconds(pid)
                w = wrk(url, paths, secs)
                c1 = cpu_seconds(pid)
            finally:
                stop()
                time.sleep(0.5)
            rps = w["requests"] / (w["duration_us"] / 1e6)
            run = (1e6 * (c1 - c0) / w["requests"], rps, w["p50_us"] / 1e3, w["p99_us"] / 1e3)
            res[name].append(run)
            print(f"rep {r + 1} {name}: {run[0]:.2f} us/req, {rps:.0f} req/s, "
                  f"p50 {run[2]:.2f} ms, p99 {run[3]:.2f} ms", flush=True)
    base = st.median(x[0] for x in res[systems[0][0]])
    for name, _ in systems:
        m = [st.median(x[i] for x in res[name]) for i in range(4)]
        print(f"{name}: median {m[0]:.2f} us/req ({m[0] / base:.2f}x {systems[0][0]}), "
              f"{m[1]:.0f} req/s, p50 {m[2]:.2f} ms, p99 {m[3]:.2f} ms")


if __name__ == "__main__":
    main()
