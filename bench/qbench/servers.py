"""Starts and stops the servers under test, each pinned to the server core.

Every server is one process (nginx with `master_process off`), so utime+stime of that PID is the
whole cost of serving.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

from .common import BENCH, SERVER_CPU, WORK, free_port, log, pinned, wait_http_ok


class Server:
    def __init__(self, name, proc, port, log_path):
        self.name = name
        self.proc = proc
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, timeout_s=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop within {timeout_s} s; killing PID {self.pid}")
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _spawn(name, argv, env=None, cwd=None):
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    out = open(log_path, "w")
    proc = subprocess.Popen(
        pinned([SERVER_CPU], argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})}, cwd=cwd,
    )
    out.close()
    return proc, log_path


def _started(name, proc, port, log_path, ready_path, timeout_s):
    server = Server(name, proc, port, log_path)
    try:
        wait_http_ok(server.base_url + ready_path, proc, timeout_s, name)
    except Exception:
        server.stop(5)
        tail = Path(log_path).read_text(errors="replace")[-2000:]
        log(f"{name} failed to start; log tail:\n{tail}")
        raise
    return server


def start_quarry(cfg, data_dir: Path, timeout_s=300) -> Server:
    port = free_port()
    admin_port = free_port()
    argv = [
        str(cfg.bin_dir / "quarry-server"), "--data-dir", str(data_dir),
        "--listen", f"127.0.0.1:{port}", "--log-format", "text", "--drain-delay", "0s",
        "--admin-listen", f"127.0.0.1:{admin_port}",
    ]
    proc, log_path = _spawn("quarry-server", argv, env={"RUST_LOG": "warn"})
    # /healthz turns 200 once every dataset is mapped and verified (full checksums).
    server = _started("quarry-server", proc, port, log_path, "/healthz", timeout_s)
    # /metrics is served on the admin port only.
    server.admin_url = f"http://127.0.0.1:{admin_port}"
    return server


def start_fixed_body(cfg, body_bytes: int) -> Server:
    port = free_port()
    argv = [
        str(cfg.bin_dir / "examples" / "fixed_body"), "--listen", f"127.0.0.1:{port}",
        "--body-bytes", str(int(body_bytes)),
    ]
    proc, log_path = _spawn(f"fixed_body-{int(body_bytes)}", argv)
    return _started(f"fixed_body-{int(body_bytes)}", proc, port, log_path, "/", 30)


NGINX_CONF = """\
# One process (no master), like the other servers measured: its utime+stime is the whole cost.
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; use epoll; multi_accept on; }}
http {{
    access_log off;
    default_type application/json;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    open_file_cache max=1000 inactive=60s;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {www};
        location / {{ }}
    }}
}}
"""


def nginx_binary():
    for candidate in ("/usr/sbin/nginx", "/usr/bin/nginx"):
        if os.path.exists(candidate):
            return candidate
    return "nginx"


def start_nginx(www: Path) -> Server:
    """nginx serving the static files in www (for example body-230.json)."""
    port = free_port()
    prefix = WORK / "nginx"
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, www=www))
    argv = [nginx_binary(), "-e", "stderr", "-p", str(prefix), "-c", str(conf)]
    proc, log_path = _spawn("nginx", argv)
    return _started("nginx", proc, port, log_path, "/ready.txt", 30)


def static_file(www: Path, name: str, size: int) -> str:
    """Writes a static file of exactly size bytes (JSON-shaped, like fixed_body's) into www."""
    www.mkdir(parents=True, exist_ok=True)
    (www / "ready.txt").write_text("ok\n")
    head, tail = b'{"pad":"', b'"}'
    body = head + b"x" * (size - len(head) - len(tail)) + tail if size >= 10 else b" " * size
    path = www / name
    if not path.exists() or path.read_bytes() != body:
        path.write_bytes(body)
    return "/" + name


def start_datasette(db: Path) -> Server:
    """Datasette (uvicorn, one process) serving a SQLite file opened immutable (-i)."""
    port = free_port()
    datasette = BENCH / ".venv" / "bin" / "datasette"
    argv = [str(datasette), "serve", "-i", str(db), "--host", "127.0.0.1", "--port", str(port)]
    proc, log_path = _spawn("datasette", argv)
    return _started("datasette", proc, port, log_path, "/-/versions.json", 60)


def venv_python():
    return str(BENCH / ".venv" / "bin" / "python") if (BENCH / ".venv").exists() else sys.executable
