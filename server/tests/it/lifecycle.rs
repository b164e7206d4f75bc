//! Startup, readiness, failures and the drain sequence.

use std::time::Duration;

use crate::support::*;

#[test]
fn missing_data_dir_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = quarry_server::start(config(&missing, &[])).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("nope") && msg.contains("data directory"),
        "{msg}"
    );
}

#[test]
fn corrupt_dataset_keeps_the_pod_unready_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    write_people(dir.path(), "good", &people(50), 16);
    std::fs::write(dir.path().join("bad.qry"), b"this is not a quarry file").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
    // A FIFO must not block the loop on open(2).
    let fifo = std::process::Command::new("mkfifo")
        .arg(dir.path().join("pipe.qry"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    wait_until("startup finished", || {
        get(addr, "/healthz").json()["status"] != "starting"
    });
    let h = get(addr, "/healthz");
    assert_eq!(h.status, 503);
    let j = h.json();
    assert_eq!(j["status"], "failed");
    assert!(j["reason"].as_str().unwrap().contains("bad"), "{j}");
    assert_eq!(j["datasets"]["bad"]["state"], "failed");
    assert_eq!(j["datasets"]["good"]["state"], "ready");
    assert_eq!(j["datasets"]["pipe"]["state"], "failed");
    assert!(j["datasets"].get("notes").is_none());
    // The good one is served meanwhile; liveness is unaffected.
    assert_eq!(get(addr, "/v1/datasets/good").status, 200);
    assert_eq!(get(addr, "/livez").status, 200);
    // Fixing the file (and a reload) makes the pod ready.
    write_people(dir.path(), "bad", &people(10), 16);
    std::fs::remove_file(dir.path().join("pipe.qry")).unwrap();
    server.reload();
    wait_ready(addr);
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn corrupt_body_fails_full_verification_but_not_cheap() {
    let dir = tempfile::tempdir().unwrap();
    write_people(dir.path(), "p", &people(2000), 500);
    let path = dir.path().join("p.qry");
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip a byte early in the body (row group 0), well before the footer.
    bytes[200] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();

    let full = start(dir.path(), &["--verify", "full"]);
    let addr = full.local_addr();
    wait_until("startup finished", || {
        get(addr, "/healthz").json()["status"] != "starting"
    });
    assert_eq!(get(addr, "/healthz").json()["status"], "failed");
    full.shutdown();
    full.join().unwrap();

    let cheap = start(dir.path(), &["--verify", "cheap"]);
    wait_ready(cheap.local_addr());
    cheap.shutdown();
    cheap.join().unwrap();
}

#[test]
fn drain_turns_readiness_503_then_stops_accepting() {
    let dir = tempfile::tempdir().unwrap();
    write_people(dir.path(), "p", &people(10), 16);
    // The delay is long enough for the probes below on a loaded machine.
    let server = start(dir.path(), &["--drain-delay", "5s"]);
    let addr = server.local_addr();
    wait_ready(addr);
    server.shutdown();
    wait_until("readiness turns 503", || {
        get(addr, "/healthz").status == 503
    });
    let h = get(addr, "/healthz");
    assert_eq!(h.json()["status"], "draining");
    assert_eq!(h.header("connection"), Some("close"));
    // Still serving during the drain delay.
    assert_eq!(get(addr, "/v1/datasets/p").status, 200);
    server.join().unwrap();
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

/// Starts the real binary; returns the child and its address (from the "listening" log line).
fn spawn_binary(
    dir: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quarry-server"))
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            // Not the default 0.0.0.0:9090: parallel tests, and anything else on the machine,
            // would collide on it.
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            // No load shedding: a loaded test machine makes the loop late with no load of ours.
            "--shed-lag",
            "0s",
        ])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        let j: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        if j["message"] == "listening" {
            break j["addr"].as_str().unwrap().parse().unwrap();
        }
    };
    // Keep draining the logs so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let rows = people(20_000);
    write_people(dir.path(), "people", &rows, 4096);
    let (mut child, addr) =
        spawn_binary(dir.path(), &["--drain-delay", "3s", "--max-limit", "20000"]);
    wait_ready(addr);

    // A large response read slowly, so it is still in flight when the listener closes.
    let reader = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /v1/datasets/people/rows?limit=20000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 << 10];
        loop {
            let n = s.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            std::thread::sleep(Duration::from_millis(40));
        }
        parse(&buf, false)
    });
    std::thread::sleep(Duration::from_millis(100));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_until("readiness 503 after SIGTERM", || {
        get(addr, "/healthz").status == 503
    });
    assert_eq!(get(addr, "/livez").status, 200);

    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let resp = reader.join().unwrap();
    assert_eq!(resp.status, 200);
    let j = resp.json();
    let got: Vec<i64> = j["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let want: Vec<i64> = rows.iter().map(|p| p.id).collect();
    assert_eq!(got, want);
}

#[test]
fn binary_exits_1_on_missing_dir_and_2_on_bad_flags() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quarry-server"))
        .args([
            "--data-dir",
            "/definitely/not/here",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/definitely/not/here"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quarry-server"))
        .args(["--data-dir", "/tmp", "--verify", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sighup_reloads_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    write_people(dir.path(), "people", &people(10), 16);
    let (mut child, addr) = spawn_binary(
        dir.path(),
        &["--drain-delay", "0s", "--reload-interval", "0s"],
    );
    wait_ready(addr);
    assert_eq!(get(addr, "/v1/datasets/people").json()["rows"], 10);
    write_people(dir.path(), "people", &people(20), 16);
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_until("the new version serves", || {
        get(addr, "/v1/datasets/people").json()["rows"] == 20
    });
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
