//! Authentication with the real binary: `quarry-server hash-token`, a tokens file reloaded by
//! SIGHUP, the access log naming the token (never the secret), startup refusal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use quarry_tests::http;
use quarry_tests::server::{Server, ServerOptions};
use quarry_tests::Bins;

const TOKEN: &str = "e2e-analytics-7f3c9a1b5d2e4f60";
const ROTATED: &str = "e2e-rotated-0a9b8c7d6e5f4a3b";

fn flights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flights/flights.csv")
}

/// `quarry-server hash-token NAME` with the token on stdin; its stdout.
fn hash_token(name: &str, token: &str) -> String {
    let mut child = Command::new(&Bins::get().server)
        .args(["hash-token", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hash-token");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{token}\n").as_bytes())
        .expect("write token");
    let out = child.wait_with_output().expect("hash-token");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("utf8")
}

/// SHA-256 computed by Python's hashlib: a reference independent of the server's code.
fn reference_sha256(token: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())",
            token,
        ])
        .output()
        .expect("python3 (apt-get install python3)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn hash_token_sighup_rotation_and_the_access_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    for name in ["flights", "payroll"] {
        quarry_tests::etl_build(&flights(), &data, name, &["--key", "flight_id"]);
    }
    let entry = hash_token("analytics", TOKEN);
    assert!(
        entry.contains(&format!("sha256 = \"{}\"", reference_sha256(TOKEN))),
        "{entry}"
    );
    assert!(
        entry.starts_with("[[token]]\nname = \"analytics\"\n"),
        "{entry}"
    );
    assert!(
        !entry.contains(TOKEN),
        "hash-token printed the token: {entry}"
    );
    let tokens = dir.path().join("tokens.toml");
    write_atomically(
        &tokens,
        &entry.replace("datasets = []", "datasets = [\"flight*\"]"),
    );
    let opts = ServerOptions::default()
        .args(["--auth-tokens", tokens.to_str().expect("utf8")])
        .args(["--access-log", "--reload-interval", "0s"]);
    let mut server = Server::start_with(&data, opts);
    server.wait_ready();
    let auth = format!("Bearer {TOKEN}");
    let get = |token: &str, path: &str| {
        http::get_with(
            server.addr,
            path,
            &[("Authorization", &format!("Bearer {token}"))],
        )
    };
    assert_eq!(server.get("/v1/datasets/flights").status, 401);
    let ok = http::get_with(
        server.addr,
        "/v1/datasets/flights/rows?limit=1",
        &[("Authorization", &auth)],
    );
    assert_eq!(ok.status, 200);
    assert_eq!(get(TOKEN, "/v1/datasets/payroll").status, 404);

    // Rotation by SIGHUP: the new token works, the old one is gone.
    let rotated = hash_token("rotated", ROTATED).replace("datasets = []", "datasets = [\"*\"]");
    write_atomically(&tokens, &rotated);
    server.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while get(ROTATED, "/v1/datasets/payroll").status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not load the new tokens\n{}",
            server.logs_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(TOKEN, "/v1/datasets/flights").status, 401);

    // The access log names each request's token, never the token itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let logs = server.logs_text();
        if logs.contains("token:rotated") || std::time::Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let access: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "quarry::access")
        .collect();
    let field = |v: &serde_json::Value, k: &str| v["fields"].get(k).or(v.get(k)).cloned();
    let line_for = |uri: &str, status: u16| {
        access
            .iter()
            .find(|v| {
                field(v, "uri") == Some(uri.into()) && field(v, "status") == Some(status.into())
            })
            .unwrap_or_else(|| panic!("no access line for {uri} {status}:\n{logs}"))
    };
    let principal = |v: &serde_json::Value| {
        v["fields"]["principal"]
            .as_str()
            .or(v["principal"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let rows = line_for("/v1/datasets/flights/rows?limit=1", 200);
    assert_eq!(principal(rows), "token:analytics", "{rows}");
    assert_eq!(
        principal(line_for("/v1/datasets/payroll", 404)),
        "token:analytics"
    );
    assert_eq!(
        principal(line_for("/v1/datasets/payroll", 200)),
        "token:rotated"
    );
    assert!(
        access.iter().any(|v| principal(v) == "-"),
        "the 401 is logged too"
    );
    for secret in [TOKEN, ROTATED] {
        assert!(!logs.contains(secret), "a token reached the logs");
    }
}

#[test]
fn a_plaintext_token_in_the_file_refuses_startup_with_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "# team tokens\n\n[[token]]\nname = \"a\"\nsha256 = \"{TOKEN}\"\ndatasets = [\"*\"]\n"
        ),
    )
    .expect("write");
    let opts = ServerOptions::default().args(["--auth-tokens", tokens.to_str().expect("utf8")]);
    let (status, logs) = Server::start_expect_exit(&data, opts, Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(
        logs.contains("line 5, column 10: token \"a\": sha256 is not 64 hex digits"),
        "{logs}"
    );
    assert!(
        !logs.contains(TOKEN),
        "the plaintext token was echoed:\n{logs}"
    );
}
