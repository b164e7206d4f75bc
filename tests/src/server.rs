//! Starting the real `quarry-server` on an ephemeral loopback port, and a guard that kills it.
//!
//! The server is started with `--listen 127.0.0.1:0`; the port the kernel picked is read from
//! the server's JSON log line `"message":"listening","addr":"127.0.0.1:PORT"` (no bind-then-drop
//! race, and SO_REUSEPORT cannot make two test servers share a port). Logs go to files in a
//! private temp dir so a chatty server never blocks on a full pipe.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::bins::Bins;
use crate::http::{self, Response};

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra flags after `--data-dir D --listen 127.0.0.1:0 --log-format json`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl ServerOptions {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
}

/// True when the suite runs in its "epoll forced" pass (scripts/test.sh).
pub fn epoll_forced() -> bool {
    let on = |k: &str| std::env::var(k).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    on("QUARRY_FORCE_EPOLL") || on("MONOIO_FORCE_LEGACY_DRIVER")
}

/// Whether this environment lets a process create an io_uring (the default seccomp profiles
/// of Docker 25+ and containerd 2.0+ block it, and `kernel.io_uring_disabled` can): asks the kernel
/// with `io_uring_setup(8, params)` (syscall 425 on every Linux architecture) from Python,
/// which the test suite requires anyway. Panics when Python cannot run the probe.
pub fn io_uring_allowed() -> bool {
    const PROBE: &str = "import ctypes, os\n\
libc = ctypes.CDLL(None, use_errno=True)\n\
params = ctypes.create_string_buffer(120)\n\
fd = libc.syscall(425, 8, params)\n\
print('yes' if fd >= 0 else 'no', ctypes.get_errno())\n\
if fd >= 0: os.close(fd)\n";
    let out = Command::new("python3")
        .args(["-c", PROBE])
        .output()
        .expect("python3 runs (the io_uring probe)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && (text.starts_with("yes") || text.starts_with("no")),
        "io_uring probe failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.starts_with("yes")
}

/// A running `quarry-server`; killed (SIGKILL) when dropped unless it already exited.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// `--admin-listen` (127.0.0.1:0 unless the test sets it): `/metrics` and probes.
    pub admin_addr: SocketAddr,
    logs: tempfile::TempDir,
    exited: Option<ExitStatus>,
}

impl Server {
    /// Starts a server on `data_dir` with default options and waits until it listens.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, ServerOptions::default())
    }

    /// Starts a server and waits (bounded) until it has bound its port.
    pub fn start_with(data_dir: &Path, opts: ServerOptions) -> Server {
        let (child, logs) = spawn(data_dir, &opts);
        let mut s = Server {
            child,
            addr: "127.0.0.1:1".parse().expect("addr"),
            admin_addr: "127.0.0.1:1".parse().expect("addr"),
            logs,
            exited: None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((addr, admin)) = s.logged_addr() {
                s.addr = addr;
                s.admin_addr = admin;
                return s;
            }
            if let Ok(Some(st)) = s.child.try_wait() {
                s.exited = Some(st);
                panic!(
                    "quarry-server exited ({st}) before listening\n{}",
                    s.logs_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "quarry-server did not log its address within 60 s\n{}",
                s.logs_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a server that is expected to fail at startup; returns its exit status and logs.
    pub fn start_expect_exit(
        data_dir: &Path,
        opts: ServerOptions,
        within: Duration,
    ) -> (ExitStatus, String) {
        let (child, logs) = spawn(data_dir, &opts);
        let mut s = Server {
            child,
            addr: "127.0.0.1:1".parse().expect("addr"),
            admin_addr: "127.0.0.1:1".parse().expect("addr"),
            logs,
            exited: None,
        };
        let st = s.wait_exit(within).unwrap_or_else(|| {
            panic!(
                "quarry-server did not exit within {within:?}\n{}",
                s.logs_text()
            )
        });
        (st, s.logs_text())
    }

    fn logged_addr(&self) -> Option<(SocketAddr, SocketAddr)> {
        let text = std::fs::read_to_string(self.stdout_path()).ok()?;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let msg = v
                .get("message")
                .or_else(|| v.get("fields").and_then(|f| f.get("message")));
            if msg.and_then(|m| m.as_str()) == Some("listening") {
                let field = |name: &str| {
                    v.get(name)
                        .or_else(|| v.get("fields").and_then(|f| f.get(name)))
                        .and_then(|a| a.as_str())
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                };
                if let (Some(a), Some(admin)) = (field("addr"), field("admin_addr")) {
                    return Some((a, admin));
                }
            }
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout_path(&self) -> PathBuf {
        self.logs.path().join("stdout.log")
    }

    pub fn stderr_path(&self) -> PathBuf {
        self.logs.path().join("stderr.log")
    }

    /// Both logs, for failure messages and log assertions.
    pub fn logs_text(&self) -> String {
        let out = std::fs::read_to_string(self.stdout_path()).unwrap_or_default();
        let err = std::fs::read_to_string(self.stderr_path()).unwrap_or_default();
        format!("--- server stdout ---\n{out}\n--- server stderr ---\n{err}")
    }

    /// Polls `/healthz` until 200 (bounded); returns its JSON.
    pub fn wait_ready(&mut self) -> serde_json::Value {
        self.wait_health(|r| r.status == 200, Duration::from_secs(90), "200 ready")
    }

    /// Polls `/healthz` until `pred` holds (bounded); returns the last JSON.
    pub fn wait_health(
        &mut self,
        pred: impl Fn(&Response) -> bool,
        within: Duration,
        what: &str,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        loop {
            if let Ok(r) = http::request(self.addr, "GET", "/healthz", &[]) {
                if pred(&r) {
                    return r.json();
                }
                last = format!("{} {}", r.status, r.text());
            }
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "/healthz not {what} within {within:?}; last: {last}\n{}",
                self.logs_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Panics (with logs) if the process has exited.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(st)) = self.child.try_wait() {
            self.exited = Some(st);
            panic!(
                "quarry-server exited unexpectedly ({st})\n{}",
                self.logs_text()
            );
        }
    }

    /// Still running, and nothing in the logs says a thread panicked.
    pub fn assert_healthy_process(&mut self) {
        self.assert_alive();
        let logs = self.logs_text();
        assert!(
            !logs.contains("panicked"),
            "the server logged a panic\n{logs}"
        );
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(st.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return self.exited;
        }
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = Some(st);
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident set size in KiB (from /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("reading /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Number of open file descriptors of the server.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn get(&self, target: &str) -> Response {
        http::get(self.addr, target)
    }

    pub fn get_with(&self, target: &str, headers: &[(&str, &str)]) -> Response {
        http::get_with(self.addr, target, headers)
    }

    /// GET on the admin port (`/metrics`, probes).
    pub fn get_admin(&self, target: &str) -> Response {
        http::get(self.admin_addr, target)
    }
}

fn spawn(data_dir: &Path, opts: &ServerOptions) -> (Child, tempfile::TempDir) {
    let logs = tempfile::Builder::new()
        .prefix("quarry-server-logs-")
        .tempdir()
        .expect("log dir");
    let out = std::fs::File::create(logs.path().join("stdout.log")).expect("stdout log");
    let err = std::fs::File::create(logs.path().join("stderr.log")).expect("stderr log");
    let mut cmd = Command::new(&Bins::get().server);
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"]);
    if epoll_forced() {
        cmd.arg("--force-epoll");
    }
    // Loop-lag load shedding answers 503 when the OS delays the loop's timers. On a shared
    // 2-core machine running debug binaries (load average ~10 while other builds run) that
    // happens with a single sequential client, so tests turn it off unless they set it.
    if !opts.args.iter().any(|a| a == "--admin-listen") {
        cmd.args(["--admin-listen", "127.0.0.1:0"]);
    }
    if !opts.args.iter().any(|a| a == "--shed-lag") {
        cmd.args(["--shed-lag", "0s"]);
    }
    cmd.args(&opts.args);
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    cmd.env(
        "RUST_LOG",
        std::env::var("QUARRY_TEST_SERVER_LOG").unwrap_or_else(|_| "info".into()),
    );
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let child = cmd.spawn().expect("spawning quarry-server");
    (child, logs)
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs_text());
        }
    }
}
