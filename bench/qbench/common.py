"""Settings, statistics and process helpers shared by the benchmark sections."""

import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent  # bench/
ROOT = BENCH.parent  # the repository
WORK = BENCH / "work"  # cached inputs and scratch output (git-ignored)
DOCS = ROOT / "docs" / "bench"
LUA = BENCH / "lua" / "paths.lua"

# Server on core 0, load generator (wrk, HTTP clients) on core 1.
SERVER_CPU = 0
LOAD_CPU = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Config:
    quick: bool
    scale: float  # TPC-H scale factor
    reps: int  # repetitions of every measurement (the median is reported)
    duration_s: int  # one wrk run
    warmup_s: int
    connections: int
    query_runs: int  # timed runs per aggregation query
    bin_dir: Path = field(default_factory=lambda: ROOT / "target" / "release")

    @property
    def tpch_dir(self) -> Path:
        return WORK / f"tpch-sf{self.scale:g}"

    @staticmethod
    def from_env() -> "Config":
        quick = os.environ.get("QUICK", "") not in ("", "0")
        env = os.environ.get
        target = Path(env("CARGO_TARGET_DIR", str(ROOT / "target")))
        return Config(
            quick=quick,
            scale=float(env("BENCH_SF", "0.1" if quick else "1")),
            reps=int(env("BENCH_REPS", "1" if quick else "3")),
            duration_s=int(env("BENCH_DURATION", "1" if quick else "5")),
            warmup_s=int(env("BENCH_WARMUP", "0" if quick else "1")),
            connections=int(env("BENCH_CONNECTIONS", "64")),
            query_runs=int(env("BENCH_QUERY_RUNS", "3" if quick else "5")),
            bin_dir=target / "release",
        )


def log(*args):
    print("[bench]", *args, file=sys.stderr, flush=True)


def summary(values):
    """Median with min and max of repeated measurements (None values are dropped)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "runs": vals,
    }


def ratio(a, b):
    """a / b of two summaries' medians, or None."""
    if not a or not b or not b.get("median"):
        return None
    return a["median"] / b["median"]


def read_file_through_cache(path: Path):
    """Reads the whole file so it is in the page cache before a timed run (idle page cache is
    evicted within minutes on these machines, so every timed run starts from a fresh read)."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10.0, headers=None):
    """(status, body) for a GET; status 0 when the connection fails."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def http_get_retry(url, timeout=10.0, retry_s=15.0):
    """http_get that retries while the server sheds load (503), for up to retry_s."""
    deadline = time.monotonic() + retry_s
    status, body = http_get(url, timeout)
    while status == 503 and time.monotonic() < deadline:
        time.sleep(0.1)
        status, body = http_get(url, timeout)
    return status, body


def wait_http_ok(url, proc, timeout_s, what):
    """Waits until GET url answers 200, failing early if proc exits. Bounded by timeout_s."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} during start-up")
        status, body = http_get(url, timeout=2.0)
        if status == 200:
            return
        last = (status, body[:200])
        time.sleep(0.1)
    raise RuntimeError(f"{what}: {url} not ready after {timeout_s} s (last answer {last})")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name (field 2) may contain spaces; fields after the closing ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLK_TCK


def pinned(cpus, argv):
    return ["taskset", "-c", ",".join(str(c) for c in cpus), *argv]


def command_output(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def version_in(line):
    """The first version-looking token of a tool's --version line."""
    if not line:
        return None
    m = re.search(r"\d+\.\d+[\w.+~-]*", line)
    return m.group(0) if m else line


def machine_description(cfg: Config) -> dict:
    cpu = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    os_name = None
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    hypervisor = None
    lscpu = command_output(["sh", "-c", "lscpu | grep -i 'hypervisor vendor'"])
    if lscpu:
        hypervisor = lscpu.split(":", 1)[-1].strip()
    io_uring = None
    try:
        io_uring = {"0": "allowed", "1": "restricted", "2": "disabled"}.get(
            open("/proc/sys/kernel/io_uring_disabled").read().strip()
        )
    except OSError:
        pass
    versions = {
        "rustc": version_in(command_output(["rustc", "-V"])),
        "nginx": version_in(command_output(["nginx", "-v"])),
        "wrk": version_in(command_output(["wrk", "-v"])),
        "python": platform.python_version(),
    }
    for mod in ("duckdb", "polars", "datasette"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - a missing peer is reported, not fatal here
            versions[mod] = None
    tpchgen = shutil.which("tpchgen-cli", path=str(BENCH / ".venv" / "bin"))
    versions["tpchgen-cli"] = version_in(command_output([tpchgen, "--version"])) if tpchgen else None
    commit = command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = command_output(["sh", "-c", f"git -C '{ROOT}' status --porcelain | head -n 1"])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "hypervisor": hypervisor,
        "kernel": platform.release(),
        "os": os_name,
        "io_uring": io_uring,
        "loadavg_at_start": os.getloadavg(),
        "quarry_commit": commit + ("+changes" if dirty else "") if commit else None,
        "versions": versions,
        "pinning": f"server on core {SERVER_CPU}, load generator on core {LOAD_CPU} (taskset)",
    }


def load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
