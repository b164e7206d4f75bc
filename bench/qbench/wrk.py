"""Runs wrk on the load core against one server and measures that server's CPU time."""

import json
import subprocess
from pathlib import Path

from .common import LOAD_CPU, LUA, pinned, proc_cpu_seconds


def write_paths(path: Path, paths):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(p + "\n" for p in paths))
    return path


def start_wrk(base_url, paths_file, duration_s, connections, seed=42):
    """Starts wrk (one thread, on the load core) with random paths from paths_file."""
    argv = pinned(
        [LOAD_CPU],
        [
            "wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--timeout", "10s",
            "-s", str(LUA), base_url, "--", str(paths_file), str(seed),
        ],
    )
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_wrk(proc, timeout_s):
    out, err = proc.communicate(timeout=timeout_s)
    for line in out.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[len("WRKJSON "):])
    raise RuntimeError(f"wrk printed no summary (exit {proc.returncode}): {err.strip()[:500]}")


def run_wrk(server_pid, base_url, paths_file, duration_s, connections, seed=42):
    """One wrk run; returns req/s, latency percentiles (ms), errors and the server's CPU time
    per request (utime+stime of server_pid over the run, divided by requests completed)."""
    cpu0 = proc_cpu_seconds(server_pid) if server_pid else None
    proc = start_wrk(base_url, paths_file, duration_s, connections, seed)
    res = finish_wrk(proc, duration_s + 60)
    cpu1 = proc_cpu_seconds(server_pid) if server_pid else None
    return digest(res, None if cpu0 is None else cpu1 - cpu0)


def digest(res, server_cpu_s):
    requests = res["requests"]
    seconds = res["duration_us"] / 1e6
    errors = sum(res["errors"].values())
    return {
        "requests": requests,
        "rps": requests / seconds if seconds else None,
        "mb_per_s": res["bytes"] / seconds / 1e6 if seconds else None,
        "p50_ms": res["p50_us"] / 1000,
        "p90_ms": res["p90_us"] / 1000,
        "p99_ms": res["p99_us"] / 1000,
        "max_ms": res["max_us"] / 1000,
        "errors": errors,
        "error_detail": res["errors"],
        "server_cpu_s": server_cpu_s,
        "cpu_us_per_req": server_cpu_s / requests * 1e6 if server_cpu_s is not None and requests else None,
    }
