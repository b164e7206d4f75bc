#!/usr/bin/env python3
"""Hostile requests against the release build (issue #20), one case after another, each on a
fresh server pinned to core 0 with default flags unless named; clients on core 1.

  bench/hostile.py [CASE ...]     cases: wide like stalled corrupt pages slowloris (default all)

For each case it prints what the server did: the answer codes, peak RssAnon (anonymous memory,
sampled every 10 ms from /proc/PID/status), the longest /livez (admin port) and point lookup
answer polled beside the attack on their own connections, and for `stalled` the time from the
swap until the old version is no longer mapped.

  wide      six concurrent select=c0,...,c23,count()&limit=1 over WIDE_ROWS (1,100,000) rows of
            24 distinct int columns
  like      body=like.*<2,000 a>_b over 20,000 distinct 5,000-byte strings
  stalled   40 clients ask for 8 MB raw column reads and never read; v2 is published by rename
            + SIGHUP; the old file is unmapped once --write-timeout (default 30 s) aborts them
  corrupt   --verify cheap, one flipped high byte in a string offsets buffer, a raw read
  pages     16 clients stall on group-by pages of 6,000 distinct 4,000-byte strings (~25 MB
            each) under --memory-budget 256MiB
  slowloris 1,000 connections each send 30 KiB of an unfinished request head

Binaries: target/release (cargo build --release -p quarry-server -p quarry-etl). Scratch data
goes to bench/work/hostile/ (git-ignored).
"""
import http.client
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
# The ETL only writes the inputs: any build of it (QUARRY_ETL) writes the same files.
ETL = Path(os.environ.get("QUARRY_ETL", BIN / "quarry-etl"))
WORK = HERE / "work" / "hostile"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etl(csv, out, name, *extra):
    subprocess.run([str(ETL), "build", str(csv), "--out", str(out), "--name", name,
                    *extra], check=True, stdout=subprocess.DEVNULL)


def write_blobs(path, rows, fill):
    with open(path, "w") as f:
        f.write("id,body\n")
        for i in range(rows):
            f.write(f"{i},{fill(i)}\n")


class Server:
    def __init__(self, data, *extra):
        self.port, self.admin = free_port(), free_port()
        argv = ["taskset", "-c", "0", str(BIN / "quarry-server"), "--data-dir", str(data),
                "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin}",
                "--reload-interval", "0s", "--drain-delay", "0s", *extra]
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while self.get("/healthz", admin=True)[0] != 200:
            if time.time() > deadline or self.p.poll() is not None:
                raise SystemExit("server did not become ready")
            time.sleep(0.1)

    def get(self, path, admin=False, timeout=120):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.admin if admin else self.port,
                                           timeout=timeout)
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        except OSError as e:
            return None, str(e).encode()

    def rss_anon(self):
        for line in open(f"/proc/{self.p.pid}/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        self.p.kill()
        self.p.wait()


class Watch:
    """Peak RssAnon and the longest /livez and lookup answers while the attack runs."""

    def __init__(self, server, lookup):
        self.s, self.lookup, self.stop_flag = server, lookup, False
        self.peak, self.livez, self.lkp, self.probes = server.rss_anon(), 0.0, 0.0, 0
        self.threads = [threading.Thread(target=self._rss), threading.Thread(target=self._probe)]
        for t in self.threads:
            t.start()

    def _rss(self):
        while not self.stop_flag:
            self.peak = max(self.peak, self.s.rss_anon())
            time.sleep(0.01)

    def _probe(self):
        live = http.client.HTTPConnection("127.0.0.1", self.s.admin, timeout=60)
        look = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=60)
        while not self.stop_flag:
            for conn, path, attr in ((live, "/livez", "livez"), (look, self.lookup, "lkp")):
                t = time.perf_counter()
                conn.request("GET", path)
                conn.getresponse().read()
                setattr(self, attr, max(getattr(self, attr), time.perf_counter() - t))
            self.probes += 1
            time.sleep(0.005)

    def done(self):
        self.stop_flag = True
        for t in self.threads:
            t.join()
        return (f"peak RssAnon {self.peak / 2**20:.0f} MiB, worst /livez "
                f"{self.livez * 1e3:.1f} ms, worst lookup {self.lkp * 1e3:.1f} ms "
                f"({self.probes} probes)")


def blobs_data(rows=20_000, rg=2048):
    d = WORK / "blobs"
    if not (d / "blobs.qry").exists():
        d.mkdir(parents=True, exist_ok=True)
        write_blobs(WORK / "blobs.csv", rows, lambda i: f"{i:08}" + "a" * 4992)
        etl(WORK / "blobs.csv", d, "blobs", "--key", "id", "--row-group-rows", str(rg))
    return d


def concurrently(n, f):
    out = [None] * n
    ts = [threading.Thread(target=lambda i=i: out.__setitem__(i, f(i))) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def wide_data():
    rows = int(os.environ.get("WIDE_ROWS", "1100000"))
    d = WORK / f"wide-{rows}"
    if not (d / "wide.qry").exists():
        d.mkdir(parents=True, exist_ok=True)
        with open(WORK / "wide.csv", "w") as f:
            f.write(",".join(f"c{c}" for c in range(24)) + "\n")
            for i in range(rows):
                f.write(",".join(str((i * (2 * c + 1)) % rows) for c in range(24)) + "\n")
        etl(WORK / "wide.csv", d, "wide")
    shutil.copy(blobs_data() / "blobs.qry", d / "blobs.qry")
    return d


def v2_data():
    v2 = WORK / "blobs-v2"
    if not (v2 / "blobs.qry").exists():
        v2.mkdir(parents=True, exist_ok=True)
        write_blobs(WORK / "blobs2.csv", 20_000, lambda i: f"{i:08}" + "b" * 4992)
        etl(WORK / "blobs2.csv", v2, "blobs", "--key", "id", "--row-group-rows", "2048")
    return v2


def case_wide():
    d = wide_data()
    s = Server(d)
    w = Watch(s, "/v1/datasets/blobs/rows/1234")
    sel = ",".join(f"c{c}" for c in range(24))
    t = time.perf_counter()
    res = concurrently(6, lambda i: s.get(f"/v1/datasets/wide/rows?select={sel},count()&limit=1"))
    took = time.perf_counter() - t
    print(f"wide: statuses {[r[0] for r in res]} in {took:.2f} s; {w.done()}")
    s.stop()


def case_like():
    s = Server(blobs_data())
    w = Watch(s, "/v1/datasets/blobs/rows/1234")
    t = time.perf_counter()
    st, body = s.get(f"/v1/datasets/blobs/rows?body=like.*{'a' * 2000}_b&select=id")
    took = time.perf_counter() - t
    print(f"like: status {st} {body[:60]!r} in {took:.2f} s; {w.done()}")
    s.stop()


def case_stalled():
    d = blobs_data()
    live = WORK / "swap"
    shutil.rmtree(live, ignore_errors=True)
    live.mkdir(parents=True)
    shutil.copy(d / "blobs.qry", live / "blobs.qry")
    v2 = v2_data()
    s = Server(live)
    w = Watch(s, "/v1/datasets/blobs/rows/1234")
    stalled = []
    for k in range(40):
        c = socket.create_connection(("127.0.0.1", s.port))
        # 1,600 rows x 5,000 bytes: an 8 MB slice of the map, within one 2,048-row group.
        off = (k % 9) * 2048
        c.sendall(f"GET /v1/datasets/blobs/columns/body?offset={off}&limit=1600 HTTP/1.1\r\n"
                  "Host: h\r\n\r\n".encode())
        assert c.recv(64).startswith(b"HTTP/1.1 200"), "raw read refused"
        stalled.append(c)
    shutil.copy(v2 / "blobs.qry", live / ".blobs.qry")
    os.rename(live / ".blobs.qry", live / "blobs.qry")
    os.kill(s.p.pid, 1)  # SIGHUP
    t = time.perf_counter()
    while s.get("/v1/datasets/blobs/rows/1")[1].find(b"bbbb") < 0:
        time.sleep(0.02)
    served = time.perf_counter() - t
    while any("blobs.qry (deleted)" in ln for ln in open(f"/proc/{s.p.pid}/maps")):
        time.sleep(0.05)
    gone = time.perf_counter() - t
    print(f"stalled: v2 served {served:.2f} s after SIGHUP, old version unmapped {gone:.1f} s "
          f"after it; {w.done()}")
    for c in stalled:
        c.close()
    s.stop()


def case_corrupt():
    d = WORK / "corrupt"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    write_blobs(WORK / "small.csv", 600, lambda i: f"row {i:05} some text")
    etl(WORK / "small.csv", WORK, "bad", "--key", "id", "--row-group-rows", "256")
    raw = bytearray((WORK / "bad.qry").read_bytes())
    # Row group 1's offsets buffer (rows + 1 u64 offsets from 0, 19 bytes a string), found by
    # its bytes; the high byte of offsets[4] flipped: an offset far past the map.
    needle = b"".join(struct.pack("<Q", 19 * k) for k in range(257))
    at = raw.find(needle, raw.find(needle) + 1)  # the second match: row group 1
    assert at > 0, "offsets buffer not found"
    raw[at + 8 * 4 + 7] ^= 0x40
    (d / "bad.qry").write_bytes(raw)
    s = Server(d, "--verify", "cheap")
    st, body = s.get("/v1/datasets/bad/columns/body?offset=256&limit=4")
    live = s.get("/livez", admin=True)[0]
    print(f"corrupt: status {st} {body[:160]!r}; /livez after: {live}; "
          f"process alive: {s.p.poll() is None}")
    s.stop()


def case_pages():
    d = WORK / "long"
    if not (d / "long.qry").exists():
        d.mkdir(parents=True, exist_ok=True)
        write_blobs(WORK / "long.csv", 6000, lambda i: f"{i:06}" + "z" * 3994)
        etl(WORK / "long.csv", d, "long", "--key", "id", "--row-group-rows", "2048")
    s = Server(d, "--memory-budget", "256MiB")
    w = Watch(s, "/v1/datasets/long/rows/1234")
    stalled, codes = [], []
    for _ in range(16):
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(b"GET /v1/datasets/long/rows?select=body,count()&limit=6000 HTTP/1.1\r\n"
                  b"Host: h\r\n\r\n")
        codes.append(int(c.recv(64)[9:12]))
        stalled.append(c)
        time.sleep(0.3)
    print(f"pages: statuses {codes}; {w.done()}")
    for c in stalled:
        c.close()
    s.stop()


def case_slowloris():
    s = Server(blobs_data())
    before = s.rss_anon()
    conns = []
    for _ in range(1000):
        c = socket.create_connection(("127.0.0.1", s.port))
        c.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"p" * (30 << 10))
        conns.append(c)
    time.sleep(1)
    after = s.rss_anon()
    w = Watch(s, "/v1/datasets/blobs/rows/1234")
    time.sleep(2)
    print(f"slowloris: 1,000 connections with 30 KiB unfinished heads: RssAnon "
          f"{before / 2**20:.0f} -> {after / 2**20:.0f} MiB "
          f"({(after - before) / 1000 / 1024:.1f} KiB a connection); {w.done()}")
    for c in conns:
        c.close()
    s.stop()


CASES = {"wide": case_wide, "like": case_like, "stalled": case_stalled, "corrupt": case_corrupt,
         "pages": case_pages, "slowloris": case_slowloris}

if __name__ == "__main__":
    os.sched_setaffinity(0, {1})
    WORK.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[1:] or list(CASES):
        CASES[name]()
    print(f"load average: {open('/proc/loadavg').read().strip()}")
