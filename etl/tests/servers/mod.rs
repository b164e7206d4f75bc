//! Test servers shared by the object-storage tests: moto's standalone S3 server (installed by
//! scripts/test.sh into the test venv, run through QUARRY_TEST_PYTHON) and Python's
//! `http.server`, each a child process on a free 127.0.0.1 port, killed on drop; and the etl
//! binary run against them.
// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path as FsPath;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;

pub const BIN: &str = env!("CARGO_BIN_EXE_quarry-etl");

pub fn python() -> String {
    std::env::var("QUARRY_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[path = "../../../tests/src/ports.rs"]
mod ports;
pub use ports::free_port;

/// A child process listening on `port`; killed on drop.
pub struct Server {
    child: Child,
    port: u16,
}

impl Server {
    pub fn start(mut cmd: Command, port: u16, what: &str) -> Server {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Server { child, port };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{what} exited ({status}): scripts/test.sh installs the test venv \
                     (tests/requirements.txt) and sets QUARRY_TEST_PYTHON"
                );
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// moto's S3 server; with `auth_after`, requests past the first `auth_after` must carry
    /// credentials that moto's IAM knows (none do, so they are refused).
    pub fn moto(auth_after: Option<u32>) -> Server {
        let port = free_port();
        let mut cmd = Command::new(python());
        cmd.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]);
        if let Some(n) = auth_after {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        Server::start(cmd, port, "python -m moto.server")
    }

    /// A static HTTP server of `dir`.
    pub fn http(dir: &FsPath) -> Server {
        let port = free_port();
        let mut cmd = Command::new(python());
        cmd.args([
            "-m",
            "http.server",
            "-b",
            "127.0.0.1",
            "-d",
            dir.to_str().expect("utf8"),
            &port.to_string(),
        ]);
        Server::start(cmd, port, "python -m http.server")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket with a plain unsigned PUT (moto accepts it).
    pub fn create_bucket(&self, bucket: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("send");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
    }

    pub fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_access_key_id("testing")
                .with_secret_access_key("testing")
                .with_region("us-east-1")
                .with_bucket_name(bucket)
                .build()
                .expect("store"),
        )
    }

    /// The etl binary with this S3 server's endpoint and test credentials.
    pub fn etl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        clear_env(&mut cmd);
        cmd.env("AWS_ENDPOINT", self.endpoint())
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .args(args)
            .output()
            .expect("run quarry-etl")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn clear_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_str()
            .is_some_and(|k| k.starts_with("AWS_") || k.starts_with("QUARRY_"))
        {
            cmd.env_remove(k);
        }
    }
}
