#!/usr/bin/env python3
"""Container and fleet tests of the quarry:dev image (Python stdlib + the docker CLI + nginx).

    fleet.py contract   the pod contract, one container at a time, with bad inputs
    fleet.py fleet      three replicas behind nginx and a small endpoints controller: rolling
                        replacement, ETL publish, docker kill, corrupt version
    fleet.py objstore   the object-store path: moto's S3 server on this run's network gateway,
                        the ETL container publishing to s3://, three `--source` replicas with
                        tmpfs caches behind nginx (progress while fetching, a publish under
                        load), a cache tmpfs filled for real (ENOSPC, then the free-space
                        check), a `.part` resumed after `docker kill`
    fleet.py hostile    the robustness issue's wide group-bys under the pod's 1 GiB: no OOM kill
    fleet.py bench      throughput through nginx with 1, 2, 3 replicas (wrk; not in CI)

Every container runs as Kubernetes runs the pod (POD_FLAGS: one CPU, 1 GiB and no swap,
read-only root, uid 65532, no capabilities, no-new-privileges, the engine's default seccomp
profile) with its data on a read-only bind mount at /data, or (objstore) `--source` and its
cache on a tmpfs (an emptyDir) or a host directory. Load goes only to 127.0.0.1 (nginx,
published ports) or to the containers' addresses on this run's own Docker network; moto and its
gate listen on that network's gateway address only. Every wait has a deadline; every container,
network, nginx, moto and gate this run starts is removed at exit, also on failure. A failed
check raises with what was expected and what was seen.

Run by scripts/container-test.sh (which builds the image and installs nginx and moto).
"""

import argparse
import atexit
import hashlib
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

IMAGE = os.environ.get("IMAGE", "quarry:dev")
RUN_ID = f"qfleet-{os.getpid()}"
# The Deployment's terminationGracePeriodSeconds and drain settings (k8s/base/deployment.yaml).
GRACE_S = 35
DRAIN_DELAY = "5s"
SHUTDOWN_TIMEOUT = "20s"
# Shorter than the manifests' 10 s so the test stays short; the bound below scales with it.
RELOAD_INTERVAL_S = 2
POD_FLAGS = [
    "--cpus", "1", "--memory", "1g", "--memory-swap", "1g",
    "--read-only", "--user", "65532:65532", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
]
SERVER_ENV = {
    "QUARRY_RELOAD_INTERVAL": f"{RELOAD_INTERVAL_S}s",
    "QUARRY_DRAIN_DELAY": DRAIN_DELAY,
    "QUARRY_SHUTDOWN_TIMEOUT": SHUTDOWN_TIMEOUT,
}
ROWS = 20_000

_containers = []
_networks = []
_volumes = []
_procs = []
_httpds = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def run(args, timeout=300, check_rc=True, input=None):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=input)
    if check_rc and p.returncode != 0:
        raise Failure(f"{' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p


def docker(*args, timeout=300, check_rc=True):
    return run(["docker", *args], timeout=timeout, check_rc=check_rc)


def cleanup():
    for h in _httpds:
        h.shutdown()
        h.server_close()
    _httpds.clear()
    for p in _procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    if _containers:
        subprocess.run(["docker", "rm", "-f", *_containers], capture_output=True, timeout=120)
    for n in _networks:
        subprocess.run(["docker", "network", "rm", n], capture_output=True, timeout=60)
    for v in _volumes:
        subprocess.run(["docker", "volume", "rm", "-f", v], capture_output=True, timeout=60)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


# ---- data -----------------------------------------------------------------------------------

def write_orders_csv(path, gen, rows=ROWS):
    """id (key), gen (the version's generation: every row of one file has the same), name, val."""
    rng = random.Random(gen)
    with open(path, "w") as f:
        f.write("id,gen,name,val\n")
        for i in range(1, rows + 1):
            f.write(f"{i},{gen},name-{i}-{rng.randrange(1000)},{i * 0.25}\n")


def write_wide_csv(path, rows, cols=24):
    """`cols` int columns, every row distinct: the robustness issue's hostile group-by input."""
    fmt = ",".join(["%d"] * cols) + "\n"
    with open(path, "w") as f:
        f.write(",".join(f"c{i}" for i in range(cols)) + "\n")
        for r in range(rows):
            base = r * cols
            f.write(fmt % tuple(range(base, base + cols)))


def make_dir(path, mode=0o777):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)  # the ETL container (uid 65532) writes it; a host of any uid runs this
    return path


def etl(input_dir, data_dir, csv_name, name, key=None, extra_mount=None, memory="2g"):
    """Runs quarry-etl as its own container (2 CPUs); returns the CompletedProcess."""
    cname = f"{RUN_ID}-etl-{len(_containers)}"
    _containers.append(cname)
    data_mount = extra_mount or f"type=bind,source={data_dir},target=/data"
    args = [
        "run", "--name", cname, "--cpus", "2", "--memory", memory, "--memory-swap", memory,
        "--read-only", "--user", "65532:65532", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--mount", f"type=bind,source={input_dir},target=/input,readonly",
        "--mount", data_mount,
        "--entrypoint", "/usr/local/bin/quarry-etl", IMAGE,
        "build", f"/input/{csv_name}", "--out", "/data", "--name", name,
    ]
    if key:
        args += ["--key", key]
    p = docker(*args, timeout=600, check_rc=False)
    docker("rm", cname, check_rc=False)
    return p


# ---- HTTP -----------------------------------------------------------------------------------

def get(host, port, path, timeout=5.0, headers=None):
    """(status, headers dict, body bytes); raises OSError/HTTPException on connection errors."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def get_json(host, port, path, timeout=5.0):
    status, _, body = get(host, port, path, timeout)
    return status, json.loads(body)


def wait_until(what, fn, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
            last = v
        except (OSError, http.client.HTTPException, ValueError) as e:
            last = repr(e)
        time.sleep(0.2)
    raise Failure(f"timed out after {timeout} s waiting for {what} (last: {last})")


# ---- containers -----------------------------------------------------------------------------

class Server:
    """One server container with the pod's flags."""

    def __init__(self, name, data_dir=None, network=None, publish=True, env=None,
                 mount=None, extra=None):
        self.name = f"{RUN_ID}-{name}"
        _containers.append(self.name)
        args = ["run", "-d", "--name", self.name, *POD_FLAGS]
        if network:
            args += ["--network", network]
        if publish:
            args += ["-p", "127.0.0.1::8080", "-p", "127.0.0.1::9090"]
        if mount is not None:
            args += ["--mount", mount]
        elif data_dir is not None:
            args += ["--mount", f"type=bind,source={data_dir},target=/data,readonly"]
        for k, v in {**SERVER_ENV, **(env or {})}.items():
            args += ["-e", f"{k}={v}"]
        args += extra or []
        args.append(IMAGE)
        docker(*args)
        self.started = time.monotonic()
        self.network = network
        self._port = None
        self._admin_port = None
        self._ip = None

    def inspect(self):
        return json.loads(docker("inspect", self.name).stdout)[0]

    @property
    def port(self):
        if self._port is None:
            out = docker("port", self.name, "8080/tcp").stdout.strip().splitlines()
            self._port = int(out[0].rsplit(":", 1)[1])
        return self._port

    @property
    def admin_port(self):
        if self._admin_port is None:
            out = docker("port", self.name, "9090/tcp").stdout.strip().splitlines()
            self._admin_port = int(out[0].rsplit(":", 1)[1])
        return self._admin_port

    @property
    def ip(self):
        if self._ip is None:
            nets = self.inspect()["NetworkSettings"]["Networks"]
            self._ip = nets[self.network]["IPAddress"]
        return self._ip

    def addr(self):
        """Where this test reaches it: the container's address on our network, else 127.0.0.1."""
        return (self.ip, 8080) if self.network else ("127.0.0.1", self.port)

    def get(self, path, timeout=5.0):
        h, p = self.addr()
        return get(h, p, path, timeout)

    def get_json(self, path, timeout=5.0):
        h, p = self.addr()
        return get_json(h, p, path, timeout)

    def get_admin(self, path, timeout=5.0):
        """The admin port (`/metrics`, detailed probes), never behind the proxy."""
        if self.network:
            return get(self.ip, 9090, path, timeout)
        return get("127.0.0.1", self.admin_port, path, timeout)

    def logs(self):
        p = docker("logs", self.name, check_rc=False)
        return p.stdout + p.stderr

    def log_lines(self):
        out = []
        for line in self.logs().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"message": line})
        return out

    def check_running(self):
        st = self.inspect()["State"]
        if not st["Running"]:
            raise Failure(f"{self.name} exited {st['ExitCode']} before ready:\n{self.logs()}")

    def wait_ready(self, timeout=60):
        def ready():
            self.check_running()
            status, _, _ = self.get("/healthz", timeout=2)
            return status == 200
        wait_until(f"{self.name} /healthz 200", ready, timeout)

    def wait_exit(self, timeout):
        p = docker("wait", self.name, timeout=timeout)
        return int(p.stdout.strip())


def oom_killed(server):
    return server.inspect()["State"]["OOMKilled"]


def engine_major():
    v = docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    return int(v.split(".")[0]), v


# ---- the pod contract -----------------------------------------------------------------------

def image_checks():
    """The runtime stage users get: both binaries, uid 65532, no shell, exec-form entrypoint."""
    cfg = json.loads(docker("image", "inspect", IMAGE).stdout)[0]
    c = cfg["Config"]
    check(c["User"] == "65532:65532", f"image user {c['User']!r}")
    check(c["Entrypoint"] == ["/usr/local/bin/quarry-server"], f"entrypoint {c['Entrypoint']}")
    # The image's data directory default; the objstore part's --source replicas run with it in
    # their environment (an image ENV cannot be unset), so --source must override it.
    check("QUARRY_DATA_DIR=/data" in c["Env"]
          and "QUARRY_LISTEN=0.0.0.0:8080" in c["Env"] and "8080/tcp" in c["ExposedPorts"],
          f"env {c['Env']}, ports {c['ExposedPorts']}")
    for b in ("quarry-server", "quarry-etl"):
        name = f"{RUN_ID}-version-{b}"
        _containers.append(name)
        p = docker("run", "--name", name, *POD_FLAGS, "--entrypoint", f"/usr/local/bin/{b}",
                   IMAGE, "--version", check_rc=False)
        check(p.returncode == 0 and b in p.stdout, f"{b} --version: {p.stdout} {p.stderr}")
    name = f"{RUN_ID}-no-shell"
    _containers.append(name)
    p = docker("run", "--name", name, "--entrypoint", "/bin/sh", IMAGE, "-c", "true",
               check_rc=False)
    check(p.returncode != 0, "the image has a shell (/bin/sh ran)")
    log(f"image {IMAGE}: {cfg['Size']:,} bytes, uid 65532, both binaries run, no shell")


def contract(work):
    image_checks()
    inp = make_dir(os.path.join(work, "in"))
    data = make_dir(os.path.join(work, "data"))
    write_orders_csv(os.path.join(inp, "orders.csv"), gen=1)

    log("ETL container builds orders v1 into the shared directory")
    p = etl(inp, data, "orders.csv", "orders", key="id")
    check(p.returncode == 0, f"ETL v1 failed: {p.stderr}")

    major, version = engine_major()
    log(f"server container with the pod's limits (Docker Engine {version}, default seccomp)")
    s = Server("contract", data)
    s.wait_ready(60)
    status, row = s.get_json("/v1/datasets/orders/rows/42")
    check(status == 200 and row["id"] == 42 and row["gen"] == 1, f"lookup 42: {status} {row}")

    # The driver, as the environment decides it: Docker >= 25 and containerd >= 2.0 refuse
    # io_uring in their default seccomp profiles; older engines allow it unless the kernel
    # disables it (kernel.io_uring_disabled, 6.6+: 1 = root only, 2 = nobody).
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            kernel_off = int(f.read().strip()) != 0
    except OSError:
        kernel_off = False
    expect = "epoll" if major >= 25 or kernel_off else "io_uring"
    check_driver(s, expect, "io_uring refused" if expect == "epoll" else "allowed")
    # The production case everywhere: a profile that refuses io_uring as Docker >= 25's does
    # (this engine's default profile with the three io_uring calls answered EPERM).
    prof = os.path.join(work, "seccomp-no-io-uring.json")
    with open(prof, "w") as f:
        json.dump(no_io_uring_profile(), f)
    e = Server("epoll", data, extra=["--security-opt", f"seccomp={prof}"])
    e.wait_ready(60)
    check_driver(e, "epoll", "io_uring refused")
    stop_and_check(e, "epoll server")

    log("ETL container publishes orders v2; the server swaps to it without a restart")
    v1 = s.get_json("/v1/datasets/orders")[1]["version"]
    write_orders_csv(os.path.join(inp, "orders.csv"), gen=2)
    t0 = time.monotonic()
    p = etl(inp, data, "orders.csv", "orders", key="id")
    check(p.returncode == 0, f"ETL v2 failed: {p.stderr}")
    built = time.monotonic()
    wait_until("the server to serve v2",
               lambda: s.get_json("/v1/datasets/orders/rows/42")[1]["gen"] == 2,
               RELOAD_INTERVAL_S + 10)
    v2 = s.get_json("/v1/datasets/orders")[1]["version"]
    check(v2 != v1, "version unchanged after the swap")
    log(f"  swapped {time.monotonic() - built:.1f} s after the ETL exited "
        f"(ETL container {built - t0:.1f} s)")

    log("docker stop (SIGTERM) under load: drains, exits 0 within the grace period")
    load = Load([s.addr()], "/v1/datasets/orders/rows/{k}", clients=2)
    load.start()
    time.sleep(1)
    t0 = time.monotonic()
    docker("stop", "-t", str(GRACE_S), s.name, timeout=GRACE_S + 30)
    took = time.monotonic() - t0
    load.stop()
    st = s.inspect()["State"]
    check(st["ExitCode"] == 0, f"exit code {st['ExitCode']} after SIGTERM:\n{s.logs()[-3000:]}")
    check(not st["OOMKilled"], "OOMKilled")
    check(took < GRACE_S, f"stop took {took:.1f} s, grace {GRACE_S} s (SIGKILLed?)")
    check(load.ok > 0, "no request succeeded before the stop")
    log(f"  stopped in {took:.1f} s (drain delay {DRAIN_DELAY}), exit 0; {load.ok} requests ok, "
        f"{load.failed} failed after SIGTERM (no proxy here: the listener closes)")

    bad_inputs(work, inp, data)


def check_driver(s, driver, reason_part):
    lines = [l for l in s.log_lines() if l.get("message") == "event loop started"]
    check(lines, f"no 'event loop started' log line:\n{s.logs()}")
    check(lines[0].get("driver") == driver and reason_part in lines[0].get("reason", ""),
          f"expected driver {driver} ({reason_part}), log says {lines[0]}")
    _, _, body = s.get_admin("/metrics")
    text = body.decode()
    check(re.search(rf'^quarry_io_driver{{driver="{driver}"}} 1$', text, re.M),
          f"/metrics has no quarry_io_driver{{driver=\"{driver}\"}} 1:\n"
          + "\n".join(l for l in text.splitlines() if "io_driver" in l))
    log(f"  driver {driver}: log line {lines[0].get('reason')!r}, /metrics gauge")


def no_io_uring_profile():
    """Allow everything except io_uring_setup/enter/register, refused with EPERM (errno 1):
    what the io_uring part of Docker >= 25's and containerd >= 2.0's default profiles does."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{
            "names": ["io_uring_setup", "io_uring_enter", "io_uring_register"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
        }],
    }


def stop_and_check(s, what):
    t0 = time.monotonic()
    docker("stop", "-t", str(GRACE_S), s.name, timeout=GRACE_S + 30)
    took = time.monotonic() - t0
    st = s.inspect()["State"]
    check(st["ExitCode"] == 0 and not st["OOMKilled"] and took < GRACE_S,
          f"{what}: exit {st['ExitCode']}, OOMKilled {st['OOMKilled']}, {took:.1f} s")
    return took


def bad_inputs(work, inp, data):
    log("bad input: a missing data directory -> exit 1 with a clear log line, never ready")
    s = Server("missing", None, env={"QUARRY_DATA_DIR": "/data/nope"},
               mount=f"type=bind,source={data},target=/data,readonly")
    code = s.wait_exit(30)
    out = s.logs()
    check(code == 1 and "/data/nope" in out and "cannot be read" in out,
          f"missing data dir: exit {code}, log:\n{out}")

    log("bad input: a dataset file the pod's uid cannot read -> 503 naming file and error")
    un = make_dir(os.path.join(work, "unreadable"), 0o755)
    shutil.copy(os.path.join(data, "orders.qry"), os.path.join(un, "orders.qry"))
    os.chmod(os.path.join(un, "orders.qry"), 0o600)  # owned by this host uid, never 65532
    if os.getuid() == 65532:
        raise Failure("run this test as a uid other than 65532 (the image's)")
    s = Server("unreadable", un)
    def failed_state():
        status, h = s.get_json("/healthz", timeout=2)
        return (status, h) if h["datasets"].get("orders", {}).get("state") == "failed" else None
    status, h = wait_until("/healthz to report the unreadable file", failed_state, 30)
    check(status == 503 and "orders" in (h["reason"] or "")
          and "ermission denied" in json.dumps(h), f"unreadable file: {status} {h}")
    status, _, _ = s.get("/livez")
    check(status == 200 and s.inspect()["State"]["Running"], "unreadable file: not alive")
    wait_until("a log line naming the permission error",
               lambda: any("ermission denied" in json.dumps(l) for l in s.log_lines()), 20)
    docker("rm", "-f", s.name)

    log("bad input: the data directory mounted read-write -> warning, still serving")
    s = Server("rw", mount=f"type=bind,source={data},target=/data")
    s.wait_ready(60)
    check(any("read-write mount" in l.get("message", "") for l in s.log_lines()),
          f"no read-write warning:\n{s.logs()}")
    ro = Server("ro", data)
    ro.wait_ready(60)
    check(not any("read-write mount" in l.get("message", "") for l in ro.log_lines()),
          "read-write warning on a read-only mount")
    docker("rm", "-f", s.name, ro.name)

    log("bad input: a full disk for the ETL container -> clear error, served version intact")
    vol = f"{RUN_ID}-small"
    _volumes.append(vol)
    docker("volume", "create", "--driver", "local", "--opt", "type=tmpfs",
           "--opt", "device=tmpfs", "--opt", "o=size=4m,uid=65532,gid=65532", vol)
    # A tmpfs volume lives while a container mounts it: the server holds it from the start.
    s = Server("small", mount=f"type=volume,source={vol},target=/data,readonly")
    s.wait_ready(60)
    small = make_dir(os.path.join(work, "small-in"))
    write_orders_csv(os.path.join(small, "orders.csv"), gen=1, rows=1000)
    p = etl(small, None, "orders.csv", "orders", key="id",
            extra_mount=f"type=volume,source={vol},target=/data")
    check(p.returncode == 0, f"ETL into the small volume: {p.stderr}")
    wait_until("the server to serve the small orders",
               lambda: s.get_json("/v1/datasets/orders")[0] == 200, RELOAD_INTERVAL_S + 10)
    before = s.get_json("/v1/datasets/orders")[1]
    write_orders_csv(os.path.join(small, "orders.csv"), gen=2, rows=200_000)
    p = etl(small, None, "orders.csv", "orders", key="id",
            extra_mount=f"type=volume,source={vol},target=/data")
    err = p.stderr
    check(p.returncode != 0 and "No space left on device" in err and "/data" in err,
          f"full disk: exit {p.returncode}, stderr:\n{err}")
    log(f"  ETL: {err.strip().splitlines()[-1][:200]}")
    time.sleep(RELOAD_INTERVAL_S + 1)
    status, h = s.get_json("/healthz")
    after = s.get_json("/v1/datasets/orders")[1]
    check(status == 200 and after.get("version") == before["version"]
          and after.get("rows") == 1000, f"after the full disk: {status} {h} {after}")
    # Nothing half-written is left behind: the next ETL run into the same volume still fits.
    write_orders_csv(os.path.join(small, "orders.csv"), gen=3, rows=1000)
    p = etl(small, None, "orders.csv", "orders", key="id",
            extra_mount=f"type=volume,source={vol},target=/data")
    check(p.returncode == 0, f"ETL after the full disk (temp files left behind?): {p.stderr}")
    wait_until("the server to serve gen 3",
               lambda: s.get_json("/v1/datasets/orders/rows/7")[1]["gen"] == 3,
               RELOAD_INTERVAL_S + 10)
    docker("rm", "-f", s.name)


def hostile(work):
    """The robustness issue's hostile requests under the pod's 1 GiB: the container must never
    be OOM-killed (the server's memory budget answers them instead). Depends on the memory
    budget of the robustness work (server/query): without it the kernel kills the pod."""
    rows = int(os.environ.get("QUARRY_HOSTILE_ROWS", "1100000"))
    log(f"hostile: six concurrent 24-column group-bys over {rows:,} distinct rows under 1 GiB")
    inp = make_dir(os.path.join(work, "wide-in"))
    data = make_dir(os.path.join(work, "wide"))
    t0 = time.monotonic()
    write_wide_csv(os.path.join(inp, "wide.csv"), rows)
    p = etl(inp, data, "wide.csv", "wide")
    check(p.returncode == 0, f"ETL wide: {p.stderr}")
    os.remove(os.path.join(inp, "wide.csv"))
    s = Server("hostile", data)
    s.wait_ready(120)
    log(f"  data generated, built and served in {time.monotonic() - t0:.0f} s")
    cols = ",".join(f"c{i}" for i in range(24))
    path = f"/v1/datasets/wide/rows?select={cols},count()"
    results = []

    def one():
        try:
            status, _, body = s.get(path, timeout=60)
            results.append((status, body[:200]))
        except (OSError, http.client.HTTPException) as e:
            results.append((None, repr(e)))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    alive = []
    for t in threads:
        while t.is_alive():
            t.join(0.5)
            try:
                alive.append(s.get("/livez", timeout=5)[0] == 200)
            except (OSError, http.client.HTTPException):
                alive.append(False)
    st = s.inspect()["State"]
    mem = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", s.name,
                 check_rc=False).stdout.strip()
    seen = (f"answers {results}; /livez answered {sum(alive)} of {len(alive)} probes during "
            f"them; memory now {mem}")
    check(not st["OOMKilled"] and st["Running"],
          f"hostile group-bys: OOMKilled {st['OOMKilled']}, running {st['Running']}; {seen}")
    check(all(r[0] is not None and r[0] < 500 for r in results), f"hostile group-bys: {seen}")
    log(f"  answers {sorted(set(r[0] for r in results))}, OOMKilled false, "
        f"/livez {sum(alive)}/{len(alive)} answered during them")
    stop_and_check(s, "hostile server")


# ---- load -----------------------------------------------------------------------------------

class Load:
    """`clients` threads, each with one keep-alive connection, sequential requests with a short
    pause (steady, bounded load). Records status, upstream and the `gen` of every answer."""

    def __init__(self, addrs, path_fmt, clients=4, pause=0.005, scan=False):
        self.addrs = addrs
        self.path_fmt = path_fmt
        self.clients = clients
        self.pause = pause
        self.scan = scan
        self.ok = 0
        self.failed = 0
        self.reuse_retries = 0
        self.errors = []
        self.mixed = []
        self.backwards = []
        self.seen = {}  # upstream -> set of gens
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []

    def start(self):
        for i in range(self.clients):
            t = threading.Thread(target=self._client, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def counts(self):
        with self._lock:
            return self.ok, self.failed

    def _client(self, i):
        rng = random.Random(i)
        host, port = self.addrs[i % len(self.addrs)]
        conn = None
        used = False  # has `conn` answered a request already (an idle keep-alive connection)?
        last_gen = {}  # per upstream: this client's last gen (its requests are sequential)
        while not self._stop.is_set():
            k = rng.randrange(1, ROWS - 10)
            path = self.path_fmt.format(k=k)
            for attempt in (0, 1):
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(host, port, timeout=10)
                        used = False
                    conn.request("GET", path)
                    r = conn.getresponse()
                    body = r.read()
                    used = True
                    if r.getheader("connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    self._record(path, r, body, last_gen)
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError,
                        BrokenPipeError) as e:
                    # An idle keep-alive connection closed by the peer as the request went out
                    # (nginx closes them on reload): like common HTTP clients (RFC 9112 9.3.1),
                    # retry an idempotent GET once on a new connection, and count it.
                    conn.close()
                    conn = None
                    if attempt == 0 and used:
                        with self._lock:
                            self.reuse_retries += 1
                        continue
                    self._fail(f"{path}: {e!r}")
                    break
                except (OSError, http.client.HTTPException, ValueError) as e:
                    if conn is not None:
                        conn.close()
                    conn = None
                    self._fail(f"{path}: {e!r}")
                    break
            time.sleep(self.pause)

    def _record(self, path, r, body, last_gen):
        if r.status != 200:
            self._fail(f"{path}: {r.status} {body[:200]!r}")
            return
        doc = json.loads(body)
        rows = doc["rows"] if "rows" in doc else [doc]
        gens = {row["gen"] for row in rows}
        # "a, b" when nginx tried a and then b: b answered.
        up = r.getheader("x-upstream", "direct").split(",")[-1].strip()
        with self._lock:
            self.ok += 1
            if len(gens) != 1:
                self.mixed.append((path, sorted(gens)))
            g = max(gens)
            if g < last_gen.get(up, 0):
                self.backwards.append((up, last_gen[up], g))
            last_gen[up] = g
            self.seen.setdefault(up, set()).add(g)

    def _fail(self, what):
        with self._lock:
            self.failed += 1
            if len(self.errors) < 20:
                self.errors.append(what)


# ---- nginx + the endpoints controller --------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """Debian's nginx as the Ingress stand-in, configured as ingress-nginx is by default:
    round robin, no stickiness, keep-alive to the upstreams (320 idle per worker), `proxy_next_upstream error timeout`
    with 3 tries (idempotent GETs retried on connection errors), max_fails=0."""

    def __init__(self, work):
        self.dir = make_dir(os.path.join(work, "nginx"), 0o755)
        self.tmp = make_dir(os.path.join(self.dir, "tmp"))
        self.port = free_port()
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.upstreams = os.path.join(self.dir, "upstreams.conf")
        self.set_upstreams([])
        with open(self.conf, "w") as f:
            f.write(f"""
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {self.tmp}/body;
  proxy_temp_path {self.tmp}/proxy;
  fastcgi_temp_path {self.tmp}/fastcgi;
  uwsgi_temp_path {self.tmp}/uwsgi;
  scgi_temp_path {self.tmp}/scgi;
  include {self.upstreams};
  server {{
    listen 127.0.0.1:{self.port} reuseport;
    location / {{
      proxy_pass http://quarry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_connect_timeout 5s;
      proxy_read_timeout 60s;
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 3;
      add_header X-Upstream $upstream_addr always;
    }}
  }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", self.dir, "-c", self.conf, "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _procs.append(self.proc)
        wait_until("nginx to listen", lambda: self._listening(), 10)

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log"), errors="replace") as f:
                return f.read()
        except OSError as e:
            return repr(e)

    def _listening(self):
        if self.proc.poll() is not None:
            raise Failure(f"nginx exited: {self.proc.stderr.read().decode()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def set_upstreams(self, addrs):
        servers = "".join(f"  server {h}:{p} max_fails=0;\n" for h, p in addrs)
        if not addrs:
            servers = "  server 127.0.0.1:1 down;\n"
        with open(self.upstreams, "w") as f:
            # ingress-nginx's upstream-keepalive-connections/-requests/-timeout defaults.
            f.write(f"upstream quarry {{\n{servers}  keepalive 320;\n"
                    "  keepalive_requests 10000;\n  keepalive_timeout 60s;\n}\n")

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def pids(self):
        out = [self.proc.pid]
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[1]) == self.proc.pid:
                        out.append(int(d))
                except OSError:
                    pass
        return out


class Controller:
    """The endpoints controller's part that matters here: a replica joins the upstreams once its
    /healthz answers 200 and leaves them when it stops answering 200 or the moment it is sent
    SIGTERM (`terminate`)."""

    def __init__(self, nginx):
        self.nginx = nginx
        self.replicas = {}  # name -> Server
        self.ready = []  # names in the upstreams, in join order
        self.events = []  # (time, "joined" | "left", name): shown when a check fails
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add(self, server):
        with self.lock:
            self.replicas[server.name] = server

    def _apply(self):
        self.nginx.set_upstreams([self.replicas[n].addr() for n in self.ready])
        self.nginx.reload()

    def terminate(self, server):
        """Leave the upstreams and send SIGTERM (docker stop) at the same moment."""
        with self.lock:
            self.replicas.pop(server.name, None)
            if server.name in self.ready:
                self.ready.remove(server.name)
                self._apply()
        t0 = time.monotonic()
        docker("stop", "-t", str(GRACE_S), server.name, timeout=GRACE_S + 30)
        return time.monotonic() - t0

    def wait_joined(self, server, timeout=60):
        wait_until(f"{server.name} to join the upstreams",
                   lambda: server.name in self.ready, timeout)

    def _run(self):
        while not self._stop.is_set():
            with self.lock:
                items = list(self.replicas.items())
            for name, s in items:
                try:
                    ok = s.get("/healthz", timeout=1)[0] == 200
                except (OSError, http.client.HTTPException):
                    ok = False
                with self.lock:
                    if name not in self.replicas:
                        continue
                    if ok and name not in self.ready:
                        self.ready.append(name)
                        self.events.append((time.strftime("%H:%M:%S"), "joined", name))
                        self._apply()
                    elif not ok and name in self.ready:
                        self.ready.remove(name)
                        self.events.append((time.strftime("%H:%M:%S"), "left", name))
                        self._apply()
            time.sleep(0.2)

    def stop(self):
        self._stop.set()
        self.thread.join(10)


def fleet(work):
    inp = make_dir(os.path.join(work, "in"))
    data = make_dir(os.path.join(work, "data"))
    write_orders_csv(os.path.join(inp, "orders.csv"), gen=1)
    p = etl(inp, data, "orders.csv", "orders", key="id")
    check(p.returncode == 0, f"ETL v1: {p.stderr}")
    net = f"{RUN_ID}-net"
    docker("network", "create", net)
    _networks.append(net)
    nginx = Nginx(work)
    ctl = Controller(nginx)
    replicas = []
    for i in range(3):
        s = Server(f"r{i}", data, network=net, publish=False)
        ctl.add(s)
        replicas.append(s)
    for s in replicas:
        ctl.wait_joined(s)
    log(f"three replicas behind nginx on 127.0.0.1:{nginx.port}")
    front = [("127.0.0.1", nginx.port)]
    report = {}

    # a. rolling replacement, one at a time, the new one ready before the old one stops
    load = Load(front, "/v1/datasets/orders/rows?id=gte.{k}&limit=5", clients=4)
    load.start()
    time.sleep(2)
    stops = []
    for i, old in enumerate(list(replicas)):
        new = Server(f"r{i}-new", data, network=net, publish=False)
        ctl.add(new)
        ctl.wait_joined(new)
        took = ctl.terminate(old)
        st = old.inspect()["State"]
        check(st["ExitCode"] == 0 and took < GRACE_S and not st["OOMKilled"],
              f"rolling: {old.name} exit {st['ExitCode']} in {took:.1f} s, OOMKilled "
              f"{st['OOMKilled']}")
        stops.append(took)
        replicas[i] = new
    time.sleep(2)
    load.stop()
    check(load.failed == 0, f"rolling replacement: {load.failed} failed of "
          f"{load.ok + load.failed}: {load.errors}")
    check(load.ok > 100, f"rolling replacement: only {load.ok} requests")
    report["a"] = (f"rolling replacement of 3 replicas: {load.ok} requests, 0 failed "
                   f"({load.reuse_retries} client retries on reuse); old replicas exited 0 in "
                   f"{min(stops):.1f}-{max(stops):.1f} s (grace {GRACE_S} s)")
    log("a. " + report["a"])

    # b. the ETL container publishes v2 while load runs
    load = Load(front, "/v1/datasets/orders/rows?id=gte.{k}&limit=5", clients=4)
    load.start()
    time.sleep(1)
    write_orders_csv(os.path.join(inp, "orders.csv"), gen=2)
    p = etl(inp, data, "orders.csv", "orders", key="id")
    check(p.returncode == 0, f"ETL v2: {p.stderr}")
    published = time.monotonic()
    for s in replicas:
        wait_until(f"{s.name} to serve v2",
                   lambda s=s: s.get_json("/v1/datasets/orders/rows/1")[1]["gen"] == 2,
                   RELOAD_INTERVAL_S + 10)
    all_in = time.monotonic() - published
    time.sleep(1)
    load.stop()
    check(load.failed == 0, f"publish: {load.failed} failed: {load.errors}")
    check(not load.mixed, f"responses mixing versions: {load.mixed[:5]}")
    check(not load.backwards, f"versions went backwards: {load.backwards[:5]}")
    ups = {u: sorted(g) for u, g in load.seen.items()}
    check(all(2 in g for g in ups.values()) and len(ups) == 3,
          f"every replica should have answered gen 2 through nginx: {ups}")
    report["b"] = (f"ETL publish: all 3 replicas served v2 {all_in:.1f} s after the ETL "
                   f"exited (reload interval {RELOAD_INTERVAL_S} s); {load.ok} requests, "
                   f"0 failed ({load.reuse_retries} client retries on reuse), 0 mixed, "
                   f"0 backwards")
    log("b. " + report["b"])

    # c. docker kill of one replica
    load = Load(front, "/v1/datasets/orders/rows/{k}", clients=4)
    load.start()
    time.sleep(2)
    victim = replicas.pop(0)
    killed_at = time.monotonic()
    docker("kill", victim.name)
    # The kubelet notices the dead container and the endpoints drop it; here the controller's
    # probe does.
    wait_until(f"{victim.name} to leave the upstreams", lambda: victim.name not in ctl.ready, 10)
    left = time.monotonic() - killed_at
    with ctl.lock:
        ctl.replicas.pop(victim.name, None)
    ok_before = load.counts()[0]
    time.sleep(6)
    ok_after, _ = load.counts()
    load.stop()
    check(ok_after > ok_before, f"the other replicas stopped serving after the kill: "
          f"{ok_before} -> {ok_after} ok, {load.failed} failed: {load.errors[:5]}")
    for s in replicas:
        check(s.get("/healthz")[0] == 200, f"{s.name} not ready after the kill")
    report["c"] = (f"docker kill of one of 3 replicas: {load.failed} failed of "
                   f"{load.ok + load.failed} ({load.reuse_retries} client retries on reuse; "
                   f"nginx retries connection errors); out of the upstreams {left:.1f} s after "
                   f"the kill; the other two kept serving")
    log("c. " + report["c"] + (f" errors: {load.errors[:3]}" if load.failed else ""))
    check(load.failed == 0, f"docker kill: {load.failed} failed (goal 0): {load.errors}")

    # d. a corrupt new version: every replica keeps the old one, /healthz says why
    v = replicas[0].get_json("/v1/datasets/orders")[1]["version"]
    src = os.path.join(data, "orders.qry")
    with open(src, "rb") as f:
        blob = bytearray(f.read())
    blob[len(blob) // 3] ^= 0xFF  # inside a data chunk: only the checksum can tell
    tmp = os.path.join(data, ".orders.qry.corrupt")
    with open(tmp, "wb") as f:
        f.write(blob)
    os.chmod(tmp, 0o644)
    load = Load(front, "/v1/datasets/orders/rows?id=gte.{k}&limit=5", clients=4)
    load.start()
    os.rename(tmp, src)
    for s in replicas:
        def reported(s=s):
            status, h = s.get_json("/healthz")
            e = h["datasets"]["orders"]
            return (status, e) if e.get("error") else None
        status, entry = wait_until(f"{s.name} /healthz to report the corrupt file", reported,
                                   RELOAD_INTERVAL_S + 15)
        check(status == 200 and entry["version"] == v,
              f"{s.name} after a corrupt publish: {status} {entry}")
    time.sleep(1)
    load.stop()
    check(load.failed == 0 and not load.mixed and all(g == {2} for g in load.seen.values()),
          f"corrupt publish: failed {load.failed}, seen {load.seen}, {load.errors}")
    report["d"] = (f"corrupt new version: every replica kept {v[:8]} and stayed ready; "
                   f"/healthz: {entry['error'][:120]}")
    log("d. " + report["d"])
    ctl.stop()
    print(json.dumps(report, indent=2))


# ---- the object-store fleet: --source s3://... from moto on this run's network ---------------

BUCKET = "quarry"
S3_CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


def gateway_of(net):
    """The host's address on the Docker network `net` (its bridge's gateway): reachable from
    the containers on it and from this host, from nowhere else."""
    cfg = json.loads(docker("network", "inspect", net).stdout)[0]["IPAM"]["Config"]
    gws = [c["Gateway"] for c in cfg if c.get("Gateway") and ":" not in c["Gateway"]]
    check(gws, f"network {net} has no IPv4 gateway: {cfg}")
    return gws[0]


class Moto:
    """moto's standalone S3 server (the `moto` of tests/requirements.txt, as the server's and
    ETL's object-storage tests run it), listening on `host` only."""

    def __init__(self, work, host):
        self.host = host
        with socket.socket() as s:
            s.bind((host, 0))
            self.port = s.getsockname()[1]
        py = os.environ.get("QUARRY_TEST_PYTHON", sys.executable)
        # Its log (a line per request) goes to a file: a pipe nobody reads would fill and block it.
        self.log = os.path.join(work, "moto.log")
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [py, "-m", "moto.server", "-H", host, "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT)
        _procs.append(self.proc)

        def listening():
            if self.proc.poll() is not None:
                with open(self.log, errors="replace") as f:
                    err = f.read()[-2000:]
                raise Failure(f"moto.server exited {self.proc.returncode} (scripts/"
                              f"container-test.sh installs moto): {err}")
            with socket.socket() as s:
                return s.connect_ex((host, self.port)) == 0
        wait_until("moto.server to listen", listening, 30)
        c = http.client.HTTPConnection(host, self.port, timeout=10)
        c.request("PUT", f"/{BUCKET}", headers={"Content-Length": "0"})
        r = c.getresponse()
        r.read()
        c.close()
        check(r.status == 200, f"creating bucket {BUCKET} in moto: {r.status}")

    def endpoint(self):
        return f"http://{self.host}:{self.port}"

    def manifest(self, prefix):
        """The prefix's MANIFEST.json as published. moto refuses anonymous reads of a private
        bucket but does not verify signatures: an Authorization header of the right shape is
        enough."""
        auth = {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/"
                "aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
                "x-amz-date": "20260101T000000Z", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
        status, _, body = get(self.host, self.port, f"/{BUCKET}/{prefix}/MANIFEST.json",
                              headers=auth)
        check(status == 200, f"MANIFEST.json of {prefix}: {status} {body[:200]!r}")
        return json.loads(body)["datasets"]


class Gate:
    """An HTTP proxy in front of moto that can hold ranged GETs (the fetcher's data downloads):
    `hold(offset)` makes every ranged GET starting at or past `offset` wait until `release()`,
    so a test can act at a known point of a download (before any byte is written, or after the
    first range is written). Records every range start it is asked for. Manifest reads and HEADs
    always pass. SigV4 signs the Host header the client used; moto does not verify signatures,
    so forwarding the request unchanged is enough."""

    HOP = ("connection", "keep-alive", "transfer-encoding", "content-length")

    def __init__(self, host, upstream):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.open = threading.Event()
        self.open.set()
        self.hold_from = None
        self.held = 0
        self.starts = []
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                gate._forward(self)

            def do_HEAD(self):
                gate._forward(self)

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.host = host
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        _httpds.append(self.httpd)

    def endpoint(self):
        return f"http://{self.host}:{self.port}"

    def hold(self, offset):
        """Holds ranged GETs from `offset` on; forgets the ranges asked for so far."""
        with self.lock:
            self.hold_from = offset
            self.held = 0
            self.starts = []
            self.open.clear()

    def release(self):
        with self.lock:
            self.hold_from = None
            self.open.set()

    def _forward(self, h):
        rng = h.headers.get("Range")
        if h.command == "GET" and rng:
            m = re.match(r"bytes=(\d+)-", rng)
            start = int(m.group(1)) if m else 0
            with self.lock:
                self.starts.append(start)
                hold = self.hold_from is not None and start >= self.hold_from
                if hold:
                    self.held += 1
            if hold:
                self.open.wait(120)  # bounded: a forgotten release does not hang the run
        try:
            c = http.client.HTTPConnection(*self.upstream, timeout=60)
            c.putrequest(h.command, h.path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.headers.items():
                if k.lower() not in ("connection", "keep-alive"):
                    c.putheader(k, v)
            c.endheaders()
            r = c.getresponse()
            body = r.read()
            c.close()
            h.send_response_only(r.status, r.reason)
            for k, v in r.getheaders():
                if k.lower() not in self.HOP:
                    h.send_header(k, v)
            length = r.getheader("content-length", "0") if h.command == "HEAD" else len(body)
            h.send_header("Content-Length", str(length))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(body)
        except OSError:
            h.close_connection = True  # the client is gone (docker kill) or moto failed


def etl_publish(net, env, inp, csv_name, name, url, key="id"):
    """quarry-etl in its own container on `net`, publishing to `url` (s3://...)."""
    cname = f"{RUN_ID}-etl-{len(_containers)}"
    _containers.append(cname)
    args = ["run", "--name", cname, "--network", net, "--cpus", "2", "--memory", "2g",
            "--memory-swap", "2g", "--read-only", "--user", "65532:65532", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            # The build stages its file locally before the upload (TMPDIR).
            "--tmpfs", "/tmp:rw,size=512m,uid=65532,gid=65532",
            "--mount", f"type=bind,source={inp},target=/input,readonly"]
    for k, v in env.items():
        args += ["-e", f"{k}={v}"]
    args += ["--entrypoint", "/usr/local/bin/quarry-etl", IMAGE,
             "build", f"/input/{csv_name}", "--out", url, "--name", name, "--key", key]
    p = docker(*args, timeout=600, check_rc=False)
    docker("rm", cname, check_rc=False)
    check(p.returncode == 0, f"ETL publish of {name} to {url}: {p.stderr[-2000:]}")


def metric(server, name, labels=""):
    """The value of one sample of the server's /metrics (`name{labels}`), or None."""
    _, _, body = server.get_admin("/metrics")
    pat = rf"^{re.escape(name)}{re.escape('{' + labels + '}') if labels else ''} (\S+)$"
    m = re.search(pat, body.decode(), re.M)
    return float(m.group(1)) if m else None


def source_server(name, net, gate, url_path, cache_mount, extra_env=None):
    """A server container with --source through `gate`, its cache at /cache."""
    env = {**S3_CREDS, "AWS_ENDPOINT": gate.endpoint(),
           "QUARRY_SOURCE": f"s3://{BUCKET}/{url_path}", "QUARRY_CACHE_DIR": "/cache",
           **(extra_env or {})}
    if cache_mount.startswith("tmpfs:"):
        return Server(name, network=net, publish=False, env=env,
                      extra=["--tmpfs", f"/cache:rw,{cache_mount[6:]},uid=65532,gid=65532"])
    return Server(name, network=net, publish=False, env=env, mount=cache_mount)


def write_big_csv(path, gen, rows):
    """Like orders, plus a column of random hex (incompressible past its alphabet) so the
    dataset is larger than one ranged GET of the fetcher."""
    rng = random.Random(gen)
    with open(path, "w") as f:
        f.write("id,gen,name,val,blob\n")
        blob = os.urandom(rows * 20).hex()
        for i in range(1, rows + 1):
            f.write(f"{i},{gen},name-{i}-{rng.randrange(1000)},{i * 0.25},"
                    f"{blob[(i - 1) * 40:i * 40]}\n")
    return blob


def objstore(work):
    net = f"{RUN_ID}-net"
    docker("network", "create", net)
    _networks.append(net)
    gw = gateway_of(net)
    moto = Moto(work, gw)
    gate = Gate(gw, (gw, moto.port))
    etl_env = {**S3_CREDS, "AWS_ENDPOINT": moto.endpoint()}
    log(f"moto's S3 server on {moto.endpoint()} (the gateway of {net}), the gate on "
        f"{gate.endpoint()}")
    inp = make_dir(os.path.join(work, "in"))
    report = {}

    # 1-2. publish v1; three replicas fetch it into their tmpfs caches
    write_orders_csv(os.path.join(inp, "orders.csv"), gen=1)
    etl_publish(net, etl_env, inp, "orders.csv", "orders", f"s3://{BUCKET}/fleet")
    v1 = moto.manifest("fleet")["orders"]
    gate.hold(0)  # every download waits: the replicas must report progress, not ready
    nginx = Nginx(work)
    ctl = Controller(nginx)
    replicas = [source_server(f"o{i}", net, gate, "fleet", "tmpfs:size=64m") for i in range(3)]
    for s in replicas:
        ctl.add(s)

    def fetching(s):
        s.check_running()
        status, h = s.get_json("/healthz", timeout=2)
        f = h.get("fetch") or {}
        return (status, h) if f.get("bytes_total") == v1["size"] else None
    for s in replicas:
        status, h = wait_until(f"{s.name} /healthz to report the download", lambda s=s: fetching(s),
                               60)
        check(status == 503 and "fetching datasets from s3://" in (h.get("reason") or ""),
              f"{s.name} while its download is held: {status} {h}")
    wait_until("the three downloads to reach the origin", lambda: gate.held >= 3, 30)
    check(not ctl.ready, f"replicas joined before their data was fetched: {ctl.ready}")
    t0 = time.monotonic()
    gate.release()
    for s in replicas:
        ctl.wait_joined(s, 60)
    # nginx applies an upstream change by a reload, which takes effect a moment after SIGHUP.
    seen = set()

    def routed():
        status, h, _ = get("127.0.0.1", nginx.port, "/v1/datasets/orders/rows/42", timeout=2)
        if status == 200:
            seen.add(h.get("x-upstream"))
        return len(seen) == 3
    wait_until("nginx to route to all three replicas", routed, 30)
    took = time.monotonic() - t0
    for s in replicas:
        status, row = s.get_json("/v1/datasets/orders/rows/42")
        check(status == 200 and row["gen"] == 1, f"{s.name} lookup 42: {status} {row}")
        got = metric(s, "quarry_fetch_downloaded_bytes_total")
        check(got == v1["size"], f"{s.name} downloaded {got} bytes, the object has {v1['size']}")
    report["ready"] = (f"3 replicas, --source s3://{BUCKET}/fleet, tmpfs caches: /healthz 503 "
                       f"'fetching datasets ... 0 of {v1['size']} bytes' while held; nginx "
                       f"routed to all three {took:.1f} s after the origin answered")
    log(report["ready"])

    # 3. publish v2 under load through nginx: every replica swaps, nothing fails or mixes
    front = [("127.0.0.1", nginx.port)]
    load = Load(front, "/v1/datasets/orders/rows?id=gte.{k}&limit=5", clients=4)
    load.start()
    time.sleep(1)
    write_orders_csv(os.path.join(inp, "orders.csv"), gen=2)
    etl_publish(net, etl_env, inp, "orders.csv", "orders", f"s3://{BUCKET}/fleet")
    published = time.monotonic()
    v2 = moto.manifest("fleet")["orders"]
    check(v2["version"] != v1["version"], f"the manifest still names {v1['version']}")
    for s in replicas:
        wait_until(f"{s.name} to serve v2",
                   lambda s=s: s.get_json("/v1/datasets/orders/rows/1")[1]["gen"] == 2,
                   RELOAD_INTERVAL_S + 20)
    all_in = time.monotonic() - published
    time.sleep(1)
    load.stop()
    check(load.failed == 0, f"publish under load: {load.failed} failed: {load.errors[:3]}; "
          f"upstream changes {ctl.events}; nginx: {nginx.error_log().splitlines()[:4]}")
    check(not load.mixed, f"responses mixing versions: {load.mixed[:5]}")
    check(not load.backwards, f"versions went backwards: {load.backwards[:5]}")
    ups = {u: sorted(g) for u, g in load.seen.items()}
    check(len(ups) == 3 and all(2 in g for g in ups.values()),
          f"every replica should have answered gen 2 through nginx: {ups}")
    for s in replicas:
        got = metric(s, "quarry_fetch_downloaded_bytes_total")
        check(got == v1["size"] + v2["size"], f"{s.name} downloaded {got} bytes, expected "
              f"{v1['size']} + {v2['size']}")
        status, h = s.get_json("/healthz")
        check(status == 200 and not h["fetch"]["errors"], f"{s.name} after v2: {status} {h}")
        info = s.get_json("/v1/datasets/orders")[1]
        check(info.get("version") == v2["version"],
              f"{s.name} serves version {info.get('version')}, the manifest names {v2['version']}")
    report["publish"] = (f"ETL published v2 under load: all 3 replicas served it {all_in:.1f} s "
                         f"later; {load.ok} requests, 0 failed ({load.reuse_retries} client "
                         f"retries on reuse), 0 mixed, 0 backwards")
    log(report["publish"])
    ctl.stop()
    for s in replicas:
        docker("rm", "-f", s.name)

    cache_full(work, net, moto, gate, etl_env, inp, report)
    resume_after_kill(work, net, moto, gate, etl_env, inp, report)
    print(json.dumps(report, indent=2))


def in_container(server, path):
    """`path` inside the running container's mount namespace, as this host (root) sees it."""
    pid = server.inspect()["State"]["Pid"]
    return f"/proc/{pid}/root{path}"


def fetch_error(server, *needles):
    status, h = server.get_json("/healthz", timeout=2)
    e = h["fetch"]["errors"].get("orders", "")
    return (status, h, e) if all(n in e for n in needles) else None


def cache_full(work, net, moto, gate, etl_env, inp, report):
    """A full cache volume for real. The server's tmpfs cache fits v1 and, when the fetcher
    checks the volume's free space, v2 too; while v2's download is held at the gate, this host
    fills the tmpfs (another writer on the same emptyDir), so the download's write fails with
    ENOSPC. The retry at the next poll meets the statvfs free-space check. Both say cache_full;
    the old version serves throughout. --cache-max-bytes is far above both versions, so it is
    never what refuses."""
    small = make_dir(os.path.join(work, "small-in"))
    write_orders_csv(os.path.join(small, "orders.csv"), gen=1)
    etl_publish(net, etl_env, small, "orders.csv", "orders", f"s3://{BUCKET}/small")
    a = moto.manifest("small")["orders"]
    s = source_server("full", net, gate, "small", "tmpfs:size=16m",
                      extra_env={"QUARRY_CACHE_MAX_BYTES": "1GiB"})
    s.wait_ready(60)
    cache = in_container(s, "/cache")
    check(os.path.exists(os.path.join(cache, "orders.qry")),
          f"cannot see the container's cache as {cache} (this test needs the Docker Engine on "
          "this host and root)")
    write_orders_csv(os.path.join(small, "orders.csv"), gen=2, rows=ROWS * 3)
    gate.hold(0)
    etl_publish(net, etl_env, small, "orders.csv", "orders", f"s3://{BUCKET}/small")
    b = moto.manifest("small")["orders"]
    # A ranged GET arrives only after the fetcher's size and free-space checks passed.
    wait_until("the v2 download to reach the origin", lambda: gate.held >= 1,
               RELOAD_INTERVAL_S + 20)
    st = os.statvfs(cache)
    free = st.f_bavail * st.f_frsize
    check(free >= b["size"], f"v2 ({b['size']} bytes) should have fitted at the check: {free} free")
    filler = os.path.join(cache, ".filler")  # a dot-file: the loader and fetcher ignore it
    with open(filler, "wb") as f:
        f.write(bytes(free - b["size"] // 2))
    st = os.statvfs(cache)
    left = st.f_bavail * st.f_frsize
    check(left < b["size"], f"after filling, {left} bytes free for v2's {b['size']}")
    gate.release()
    status, h, enospc = wait_until("/healthz to report the write's ENOSPC",
                                   lambda: fetch_error(s, "No space left on device"),
                                   RELOAD_INTERVAL_S + 20)
    obj = f"s3://{BUCKET}/small/{b['path']}"
    check(status == 200 and h["datasets"]["orders"]["state"] != "failed"
          and enospc.startswith(obj), f"after ENOSPC (the error should name {obj}): {status} {h}")
    status, h, statvfs_err = wait_until("the retry to meet the free-space check",
                                        lambda: fetch_error(s, "the cache volume has"),
                                        RELOAD_INTERVAL_S + 20)
    check(status == 200, f"after the free-space check: {status} {h}")
    status, row = s.get_json("/v1/datasets/orders/rows/7")
    check(status == 200 and row["gen"] == 1, f"the old version should serve: {status} {row}")
    status, info = s.get_json("/v1/datasets/orders")
    check(info.get("rows") == ROWS, f"the old version should serve: {info}")
    fails = metric(s, "quarry_fetch_failures_total", 'reason="cache_full"')
    check(fails is not None and fails >= 2, f"quarry_fetch_failures_total cache_full: {fails}")
    # `docker logs` may lag the server's stdout behind /healthz: wait for both lines.
    def cache_full_lines():
        lines = [l for l in s.log_lines() if l.get("message") == "dataset version not fetched"]
        named = [l for l in lines if l.get("reason") == "cache_full" and l.get("object") == obj]
        if (any("No space left on device" in l.get("error", "") for l in named)
                and any("the cache volume has" in l.get("error", "") for l in named)):
            return named
        return None
    named = wait_until(f"log lines naming {obj} with reason cache_full and either error",
                       cache_full_lines, 20)
    check(all(l.get("old_version_serving") is True for l in named),
          f"log lines should say the old version serves: {named[:4]}")
    st = s.inspect()["State"]
    check(st["Running"] and not st["OOMKilled"], f"the server should run on: {st}")
    # Space back: the next poll fetches v2 (from the bytes already written).
    os.remove(filler)
    wait_until("v2 once the space is back",
               lambda: s.get_json("/v1/datasets/orders/rows/7")[1]["gen"] == 2,
               RELOAD_INTERVAL_S + 20)
    report["cache_full"] = (f"tmpfs size=16m holding v1 ({a['size']} bytes); v2 ({b['size']} "
                            f"bytes) fitted at the check, then the volume was filled: write "
                            f"'{enospc.split(': ', 1)[-1][:160]}', then the free-space check "
                            f"'{statvfs_err.split(': ', 1)[-1][:160]}'; v1 served, /healthz 200, "
                            f"cache_full failures {fails:.0f}; v2 fetched once space was freed")
    log(report["cache_full"])
    docker("rm", "-f", s.name)


def resume_after_kill(work, net, moto, gate, etl_env, inp, report):
    """`docker kill` with one range of a download written, a new container on the same cache
    (a host directory: what survives a container restart in a pod, an emptyDir, survives here):
    it resumes from the `.part` instead of downloading it again."""
    rows = int(os.environ.get("QUARRY_RESUME_ROWS", "240000"))
    big = make_dir(os.path.join(work, "big-in"))
    blob = write_big_csv(os.path.join(big, "big.csv"), gen=1, rows=rows)
    etl_publish(net, etl_env, big, "big.csv", "big", f"s3://{BUCKET}/big")
    os.remove(os.path.join(big, "big.csv"))
    e = moto.manifest("big")["big"]
    cache = make_dir(os.path.join(work, "cache-resume"))
    mount = f"type=bind,source={cache},target=/cache"
    # The range at offset 0 passes, every later one waits: the `.part` holds exactly the first
    # range, whose length (the fetcher's range size) is the start of the second.
    gate.hold(1)
    k1 = source_server("k1", net, gate, "big", mount)

    def first_range():
        k1.check_running()
        with gate.lock:
            later = [s for s in gate.starts if s > 0]
        if not later:
            return None
        chunk = min(later)
        # Received bytes reach the `.part` a moment later (the fetcher's disk thread writes
        # them): wait for the file itself.
        on_disk = [os.path.getsize(os.path.join(cache, f))
                   for f in os.listdir(cache) if f.endswith(".part")]
        return chunk if on_disk == [chunk] else None
    chunk = wait_until(f"k1 to write the first range of {e['size']} bytes (the object must span "
                       "more than one of the fetcher's ranges)", first_range, 60)
    docker("kill", k1.name)
    parts = [f for f in os.listdir(cache) if f.endswith(".part")]
    check(len(parts) == 1 and os.path.getsize(os.path.join(cache, parts[0])) == chunk,
          f"after the kill the cache should hold one {chunk}-byte .part: "
          f"{[(f, os.path.getsize(os.path.join(cache, f))) for f in os.listdir(cache)]}")
    with gate.lock:
        gate.starts = []
    gate.release()
    k2 = source_server("k2", net, gate, "big", mount)
    k2.wait_ready(120)
    resumed = [l for l in k2.log_lines() if l.get("message") == "resuming a partial download"]
    check(resumed and resumed[0].get("bytes") == chunk and resumed[0].get("dataset") == "big",
          f"k2 should log 'resuming a partial download' with bytes {chunk}:\n"
          f"{k2.logs()[-3000:]}")
    got = metric(k2, "quarry_fetch_downloaded_bytes_total")
    check(got == e["size"] - chunk,
          f"k2 downloaded {got} bytes; resuming needs {e['size'] - chunk} of {e['size']}")
    with gate.lock:
        starts = sorted(gate.starts)
    check(starts and starts[0] == chunk, f"k2's ranged GETs started at {starts}")
    with open(os.path.join(cache, "big.qry"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    check(digest == e["sha256"], f"cached big.qry SHA-256 {digest}, published {e['sha256']}")
    status, info = k2.get_json("/v1/datasets/big")
    check(status == 200 and info.get("rows") == rows, f"/v1/datasets/big: {status} {info}")
    for k in (1, rows // 2, rows):
        status, row = k2.get_json(f"/v1/datasets/big/rows/{k}")
        check(status == 200 and row["blob"] == blob[(k - 1) * 40:k * 40] and row["gen"] == 1,
              f"big row {k}: {status} {row}")
    report["resume"] = (f"docker kill with {chunk} of {e['size']} bytes written; the new "
                        f"container on the same cache logged 'resuming a partial download' "
                        f"(bytes {chunk}), fetched {got:.0f} bytes from offset "
                        f"{starts[0]}, verified and served the dataset")
    log(report["resume"])
    docker("rm", "-f", k1.name, k2.name)


# ---- throughput through the proxy (not in CI) -----------------------------------------------

def proc_cpu(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / tick


def bench(work):
    secs = int(os.environ.get("BENCH_SECS", "10"))
    wrk = shutil.which("wrk")
    check(wrk, "wrk not found (apt-get install -y wrk)")
    inp = make_dir(os.path.join(work, "in"))
    data = make_dir(os.path.join(work, "data"))
    write_orders_csv(os.path.join(inp, "orders.csv"), gen=1)
    check(etl(inp, data, "orders.csv", "orders", key="id").returncode == 0, "ETL")
    net = f"{RUN_ID}-net"
    docker("network", "create", net)
    _networks.append(net)
    nginx = Nginx(work)
    lua = os.path.join(work, "paths.lua")
    with open(lua, "w") as f:
        f.write('math.randomseed(7)\nrequest = function()\n'
                f'  return wrk.format("GET", "/v1/datasets/orders/rows/" .. math.random(1, {ROWS}))\n'
                'end\n')
    reps = int(os.environ.get("BENCH_REPS", "3"))
    replicas = [Server(f"b{n}", data, network=net, publish=False) for n in (1, 2, 3)]
    for r in replicas:
        r.wait_ready(60)
    pids = [r.inspect()["State"]["Pid"] for r in replicas]
    runs = {1: [], 2: [], 3: []}
    for rep in range(reps):  # the three sizes interleaved within each repetition
        for n in (1, 2, 3):
            nginx.set_upstreams([r.addr() for r in replicas[:n]])
            nginx.reload()
            time.sleep(1)
            ng = nginx.pids()
            c0, s0 = proc_cpu(ng), proc_cpu(pids)
            p = run([wrk, "-t", "1", "-c", "64", "-d", f"{secs}s", "-s", lua,
                     f"http://127.0.0.1:{nginx.port}/"], timeout=secs + 60)
            c1, s1 = proc_cpu(ng), proc_cpu(pids)
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", p.stdout).group(1))
            errs = re.search(r"Non-2xx or 3xx responses: (\d+)", p.stdout)
            check(not errs, f"{n} replicas: non-2xx answers: {p.stdout}")
            done = rps * secs
            runs[n].append((rps, (c1 - c0) / secs, (s1 - s0) / secs,
                            (c1 - c0) / done * 1e6, (s1 - s0) / done * 1e6))
            log(f"rep {rep + 1}, {n} replica(s): {rps:,.0f} req/s, nginx {(c1 - c0) / secs:.2f} "
                f"cores, servers {(s1 - s0) / secs:.2f} cores")
    rows = []
    for n, rs in runs.items():
        med = sorted(rs)[len(rs) // 2]  # the run with the median req/s
        rows.append({"replicas": n, "req_s_median": med[0],
                     "req_s_min_max": [min(r[0] for r in rs), max(r[0] for r in rs)],
                     "nginx_cores": round(med[1], 2), "servers_cores": round(med[2], 2),
                     "nginx_us_per_req": round(med[3], 1), "servers_us_per_req": round(med[4], 1)})
    print(f"loadavg {open('/proc/loadavg').read().split()[:3]}, wrk -t1 -c64 -d{secs}s, "
          f"{reps} repetitions")
    print(json.dumps(rows, indent=2))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=["contract", "fleet", "objstore", "hostile", "bench"])
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix=f"{RUN_ID}-{a.what}-")
    os.chmod(work, 0o755)
    t0 = time.monotonic()
    try:
        {"contract": contract, "fleet": fleet, "objstore": objstore, "hostile": hostile,
         "bench": bench}[a.what](work)
    except Failure as e:
        log(f"FAILED ({a.what}): {e}")
        return 1
    finally:
        cleanup()
        shutil.rmtree(work, ignore_errors=True)
    log(f"{a.what}: passed in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
