//! Faults: corrupt and truncated dataset files, bad data directories, the ETL killed mid-run,
//! SIGTERM under load, and data swaps under load.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quarry_tests::data::{Cell, Col, Table, Ty};
use quarry_tests::http::{read_response, Conn};
use quarry_tests::{etl_build, temp_dir, Rng, Server, ServerOptions};
use serde_json::Value as Json;

use crate::fixtures::{build_csv, people};

/// Flips one bit in each of many copies of a valid file (header, body and footer positions) and
/// truncates others; one server loads all of them: every corrupt one must be reported failed in
/// /healthz with a reason, the healthy one keeps serving, the process never crashes.
#[test]
fn corrupt_and_truncated_files_fail_readiness_with_a_reason() {
    let dir = temp_dir();
    let src = dir.path().join("src");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (mut rng, seed) = Rng::from_env(77);
    let t = people(&mut rng, 900);
    build_csv(&t, &src, &src, "good", &[]);
    let good = std::fs::read(src.join("good.qry")).expect("read");
    std::fs::copy(src.join("good.qry"), data.join("good.qry")).expect("copy");
    let len = good.len();
    // Positions: the first and last 64 bytes (header, trailer/footer) and random ones.
    let mut positions: Vec<usize> = vec![0, 5, 9, 17, len - 1, len - 9, len - 40, len / 2];
    while positions.len() < 200 {
        positions.push(rng.below(len as u64) as usize);
    }
    let mut names = Vec::new();
    for (i, &p) in positions.iter().enumerate() {
        let mut bytes = good.clone();
        bytes[p] ^= 1 << rng.below(8);
        let name = format!("flip{i:02}_at{p}");
        std::fs::write(data.join(format!("{name}.qry")), bytes).expect("write");
        names.push(name);
    }
    let truncations = [0usize, 1, 63, 64, len / 3, len / 2, len - 64, len - 1];
    for &l in &truncations {
        let name = format!("trunc_to{l}");
        std::fs::write(data.join(format!("{name}.qry")), &good[..l]).expect("write");
        names.push(name);
    }
    let mut server = Server::start(&data);
    let h = server.wait_health(
        |r| r.json()["status"] == "failed",
        Duration::from_secs(120),
        "status failed",
    );
    server.assert_healthy_process();
    let reason = h["reason"].as_str().unwrap_or_default().to_string();
    for name in &names {
        let d = &h["datasets"][name];
        assert_eq!(
            d["state"], "failed",
            "seed {seed}: {name} was not reported failed: {d}"
        );
        assert!(
            d["error"].as_str().is_some_and(|e| e.len() > 10),
            "{name}: no error text: {d}"
        );
        assert!(
            reason.contains(name.as_str()),
            "/healthz reason does not name {name}: {reason}"
        );
    }
    assert_eq!(h["datasets"]["good"]["state"], "ready");
    let r = server.get("/healthz");
    assert_eq!(r.status, 503);
    assert_eq!(server.get("/livez").status, 200);
    // The failures are in the logs too, naming the dataset.
    let logs = server.logs_text();
    for name in names.iter().take(5) {
        assert!(logs.contains(name.as_str()), "logs do not name {name}");
    }
    // The healthy dataset still answers; corrupt ones are not served.
    let Cell::Int(id) = t.rows[0][0] else {
        unreachable!()
    };
    assert_eq!(
        server.get(&format!("/v1/datasets/good/rows/{id}")).status,
        200
    );
    let r = server.get(&format!("/v1/datasets/{}/rows?limit=5", names[0]));
    assert!(
        r.status == 404 || r.status == 503,
        "a failed dataset must not be served: {}",
        r.status
    );
    server.assert_healthy_process();
    eprintln!(
        "corruption: {} bit flips, {} truncations, all reported failed",
        positions.len(),
        truncations.len()
    );
}

/// With `--verify cheap` nothing proves the bodies; scans over files with flipped body bytes
/// may return wrong values but must never crash the server.
#[test]
fn unverified_corrupt_bodies_never_crash_the_server() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (mut rng, _) = Rng::from_env(78);
    let t = people(&mut rng, 700);
    build_csv(&t, dir.path(), dir.path(), "base", &[]);
    let good = std::fs::read(dir.path().join("base.qry")).expect("read");
    let mut flips = 0;
    for i in 0..30 {
        let mut bytes = good.clone();
        // Body bytes: skip the first 64 (header) and the last 25% (index, footer).
        let p = 64 + rng.below((good.len() * 3 / 4 - 64) as u64) as usize;
        bytes[p] ^= 0xff;
        flips += 1;
        std::fs::write(data.join(format!("c{i}.qry")), bytes).expect("write");
    }
    let mut server =
        Server::start_with(&data, ServerOptions::default().args(["--verify", "cheap"]));
    let _ = server.wait_health(
        |r| r.status == 200 || r.json()["status"] == "failed",
        Duration::from_secs(60),
        "loaded",
    );
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..30 {
        for q in [
            "limit=10000",
            "limit=10000&order=name.desc",
            "select=name,count(),score.sum(),born.min(),seen.max()",
            "name=like.*a*&age=gt.10&limit=10000",
            "limit=10000&order=seen.asc",
        ] {
            let r = server.get(&format!("/v1/datasets/c{i}/rows?{q}"));
            *statuses.entry(r.status).or_insert(0) += 1;
        }
        let _ = server.get(&format!("/v1/datasets/c{i}/rows/7"));
        let _ = server.get(&format!("/v1/datasets/c{i}/columns/name?limit=100"));
    }
    server.assert_healthy_process();
    assert_eq!(server.get("/livez").status, 200);
    eprintln!("unverified corrupt bodies: {flips} files, statuses {statuses:?}");
}

#[test]
fn missing_or_invalid_data_dir_is_a_clear_error() {
    let dir = temp_dir();
    let missing = dir.path().join("does-not-exist");
    let (st, logs) =
        Server::start_expect_exit(&missing, ServerOptions::default(), Duration::from_secs(30));
    assert_eq!(st.code(), Some(1), "missing data dir: exit code\n{logs}");
    assert!(
        logs.contains("does-not-exist"),
        "the error must name the directory\n{logs}"
    );
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let (st, logs) =
        Server::start_expect_exit(&file, ServerOptions::default(), Duration::from_secs(30));
    assert_eq!(st.code(), Some(1), "data dir is a file: exit code\n{logs}");
    assert!(
        logs.contains("a-file") && logs.contains("not a directory"),
        "{logs}"
    );
    // A usage error is exit 2.
    let (st, logs) = Server::start_expect_exit(
        dir.path(),
        ServerOptions::default().args(["--verify", "sometimes"]),
        Duration::from_secs(30),
    );
    assert_eq!(st.code(), Some(2), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

/// A dataset whose file cannot be opened (dangling symlink; the tests run as root, so
/// permission bits would not stop a read) fails readiness naming the dataset.
#[test]
fn unopenable_dataset_file_fails_readiness() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::os::unix::fs::symlink(dir.path().join("nowhere.qry"), data.join("ghost.qry"))
        .expect("symlink");
    let mut server = Server::start(&data);
    let h = server.wait_health(
        |r| r.json()["status"] == "failed",
        Duration::from_secs(60),
        "status failed",
    );
    assert_eq!(h["datasets"]["ghost"]["state"], "failed", "{h}");
    assert!(
        h["reason"].as_str().is_some_and(|r| r.contains("ghost")),
        "{h}"
    );
    server.assert_healthy_process();
}

fn dir_listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Kills `quarry-etl build` (SIGKILL) at random moments while it replaces a dataset: the
/// previous version stays byte-identical (or the new one is complete and verifies), nothing
/// else appears under a non-dot name, and the next run cleans stale temp files.
#[test]
fn etl_killed_at_random_moments_leaves_the_previous_version() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (mut rng, seed) = Rng::from_env(99);
    let small = people(&mut rng, 200);
    build_csv(&small, dir.path(), &data, "ds", &[]);
    let v1 = std::fs::read(data.join("ds.qry")).expect("read v1");
    // A bigger input that takes a while to build.
    let big = people(&mut rng, 120_000);
    let csv = dir.path().join("big.csv");
    big.write_csv(&csv);
    let schema = dir.path().join("big.schema.json");
    big.write_schema(&schema);
    let args = |out: &Path| -> Vec<std::ffi::OsString> {
        vec![
            "build".into(),
            csv.clone().into(),
            "--out".into(),
            out.into(),
            "--name".into(),
            "ds".into(),
            "--schema".into(),
            schema.clone().into(),
            "--threads".into(),
            "2".into(),
        ]
    };
    // Time one full build elsewhere to spread the kills over it.
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).expect("mkdir");
    let t0 = Instant::now();
    quarry_tests::etl(args(&scratch)).ok();
    let full = t0.elapsed();
    let v2 = std::fs::read(scratch.join("ds.qry")).expect("read v2");
    let kills = 10;
    let mut outcomes = (0, 0);
    for k in 0..kills {
        let delay = full.mul_f64(rng.f64_unit() * 1.1);
        let mut child = std::process::Command::new(&quarry_tests::Bins::get().etl)
            .args(args(&data))
            .env("QUARRY_PROGRESS", "none")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn etl");
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let now = std::fs::read(data.join("ds.qry")).unwrap_or_else(|e| {
            panic!("seed {seed} kill {k} after {delay:?}: ds.qry is gone: {e}")
        });
        if now == v1 {
            outcomes.0 += 1;
        } else if now == v2 {
            outcomes.1 += 1;
            // Completed: put v1 back for the next round.
            std::fs::write(data.join(".restore"), &v1).expect("write");
            std::fs::rename(data.join(".restore"), data.join("ds.qry")).expect("rename");
        } else {
            panic!("seed {seed} kill {k} after {delay:?}: ds.qry is neither the old nor the new version ({} bytes)", now.len());
        }
        let visible: Vec<String> = dir_listing(&data)
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert_eq!(
            visible,
            ["ds.qry"],
            "seed {seed} kill {k}: a partial file is visible"
        );
    }
    // The next complete run publishes v2 and leaves no stale temp files.
    quarry_tests::etl(args(&data)).ok();
    assert_eq!(
        std::fs::read(data.join("ds.qry")).expect("read"),
        v2,
        "deterministic rebuild"
    );
    let left: Vec<String> = dir_listing(&data)
        .into_iter()
        .filter(|n| n != "ds.qry")
        .collect();
    assert!(
        left.is_empty(),
        "stale files after a successful run: {left:?}"
    );
    let f = quarry_format::read_file(&data.join("ds.qry")).expect("open");
    f.verify().expect("verify");
    eprintln!(
        "etl kills: {kills} (full build {full:?}): {} left v1, {} completed v2",
        outcomes.0, outcomes.1
    );
}

/// Validates one 200 body of a load client (target, body).
pub(crate) type Check = Arc<dyn Fn(&str, &Json) -> Result<(), String> + Send + Sync>;

#[derive(Default)]
pub(crate) struct LoadStats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub refused: AtomicU64,
    pub stale: AtomicU64,
    pub errors: Mutex<Vec<String>>,
}

impl LoadStats {
    fn fail(&self, msg: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().expect("lock");
        if e.len() < 20 {
            e.push(msg);
        }
    }
}

/// One client: keep-alive requests from `targets` until `stop`; reconnects when the server
/// says `Connection: close` or closes an idle connection before answering (a request the server
/// never accepted). `check` validates each 200 body.
pub(crate) fn client_loop(
    addr: std::net::SocketAddr,
    targets: Vec<String>,
    stop: Arc<AtomicBool>,
    stats: Arc<LoadStats>,
    check: Check,
) {
    let mut conn: Option<Conn> = None;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let target = &targets[i % targets.len()];
        i += 1;
        if conn.is_none() {
            match Conn::connect(addr) {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    // Not accepted (listener closed): not a failed request.
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n");
        if std::io::Write::write_all(&mut c.stream(), req.as_bytes()).is_err() {
            conn = None;
            stats.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut reader = std::io::BufReader::new(c.stream());
        // Peek: no byte at all means the server closed the connection without taking the
        // request (idle keep-alive close); anything else must be a full, valid response.
        let first = std::io::BufRead::fill_buf(&mut reader)
            .map(|b| b.len())
            .unwrap_or(0);
        if first == 0 {
            conn = None;
            stats.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match read_response(&mut reader, false) {
            Ok(r) => {
                let close = r
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                if !reader.buffer().is_empty() {
                    stats.fail(format!("{target}: extra bytes after the response"));
                    conn = None;
                    continue;
                }
                if r.status == 200 {
                    match serde_json::from_slice::<Json>(&r.body) {
                        Ok(j) => match check(target, &j) {
                            Ok(()) => {
                                stats.ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => stats.fail(format!("{target}: {e}")),
                        },
                        Err(e) => stats.fail(format!("{target}: body is not JSON: {e}")),
                    }
                } else if r.status == 409 && target.contains("cursor=") {
                    stats.stale.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.fail(format!("{target}: status {} {}", r.status, r.text()));
                }
                if close {
                    conn = None;
                }
            }
            Err(e) => {
                stats.fail(format!("{target}: broken response: {e}"));
                conn = None;
            }
        }
    }
}

pub(crate) fn targets_for(t: &Table, rng: &mut Rng, dataset: &str) -> Vec<String> {
    let mut v = Vec::new();
    for _ in 0..40 {
        let Cell::Int(id) = rng.pick(&t.rows)[0] else {
            unreachable!()
        };
        v.push(format!("/v1/datasets/{dataset}/rows/{id}"));
    }
    v.push(format!(
        "/v1/datasets/{dataset}/rows?limit=200&order=age.desc"
    ));
    v.push(format!(
        "/v1/datasets/{dataset}/rows?select=active,count(),age.avg()"
    ));
    v.push(format!(
        "/v1/datasets/{dataset}/rows?name=like.*a*&limit=50"
    ));
    v.push(format!("/v1/datasets/{dataset}"));
    rng.shuffle(&mut v);
    v
}

/// SIGTERM while 4 clients hammer the server: /healthz turns 503 "draining" at once, requests
/// keep succeeding through the drain delay, none that the server accepted fails, exit 0.
#[test]
fn sigterm_under_load_fails_no_accepted_request() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (mut rng, _) = Rng::from_env(123);
    let t = people(&mut rng, 2000);
    build_csv(&t, dir.path(), &data, "people", &[]);
    let mut server = Server::start_with(
        &data,
        ServerOptions::default().args(["--drain-delay", "5s", "--shutdown-timeout", "10s"]),
    );
    server.wait_ready();
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(LoadStats::default());
    let check: Check = Arc::new(|_, _| Ok(()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, targets, stop, stats, check) = (
                server.addr,
                targets_for(&t, &mut rng, "people"),
                stop.clone(),
                stats.clone(),
                check.clone(),
            );
            std::thread::spawn(move || client_loop(addr, targets, stop, stats, check))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let before = stats.ok.load(Ordering::Relaxed);
    server.signal("TERM");
    // Readiness drops at once while the process still serves. `kill` returns before the
    // server's handler has run, so a probe right after it may still be answered first: poll,
    // well inside the 5 s drain delay (a loaded machine may take a while to run the handler).
    let signalled = Instant::now();
    let h = loop {
        let h = quarry_tests::http::request(server.addr, "GET", "/healthz", &[])
            .expect("healthz during drain");
        if h.status != 200 || signalled.elapsed() > Duration::from_secs(4) {
            break h;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(h.status, 503, "{}", h.text());
    assert_eq!(h.json()["status"], "draining");
    let st = server
        .wait_exit(Duration::from_secs(20))
        .expect("server did not exit within 20 s of SIGTERM");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    let ok = stats.ok.load(Ordering::Relaxed);
    let failed = stats.failed.load(Ordering::Relaxed);
    eprintln!(
        "sigterm under load: {ok} ok ({} after SIGTERM), {failed} failed, {} not accepted",
        ok - before,
        stats.refused.load(Ordering::Relaxed)
    );
    assert_eq!(
        failed,
        0,
        "failed requests: {:?}",
        stats.errors.lock().expect("lock")
    );
    assert!(ok > before, "no request succeeded during the drain delay");
    assert_eq!(
        st.code(),
        Some(0),
        "exit status after SIGTERM\n{}",
        server.logs_text()
    );
    assert!(!server.logs_text().contains("panicked"));
}

pub(crate) fn versioned(base: &Table, ver: i64) -> Table {
    let mut t = base.clone();
    t.cols.push(Col {
        name: "ver".into(),
        ty: Ty::Int64,
        nullable: false,
    });
    for r in &mut t.rows {
        r.push(Cell::Int(ver));
    }
    t
}

/// Renames new versions over the served file while 4 clients run lookups, scans (with cursor
/// continuations) and aggregates: no request fails, and every response comes from exactly one
/// version (all its rows carry the same `ver`; dataset metadata names a known version).
#[test]
fn data_swap_under_load_is_atomic_per_request() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let stage = dir.path().join("stage");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::create_dir_all(&stage).expect("mkdir");
    let (mut rng, _) = Rng::from_env(321);
    let base = people(&mut rng, 3000);
    let v1 = versioned(&base, 1);
    let v2 = versioned(&base, 2);
    build_csv(&v1, dir.path(), &stage, "v1", &[]);
    build_csv(&v2, dir.path(), &stage, "v2", &[]);
    let hex = |name: &str| {
        quarry_format::read_file(&stage.join(format!("{name}.qry")))
            .expect("open")
            .version()
            .to_hex()
    };
    let versions: HashSet<String> = [hex("v1"), hex("v2")].into_iter().collect();
    std::fs::copy(stage.join("v1.qry"), data.join("swap.qry")).expect("copy");
    let mut server = Server::start_with(
        &data,
        ServerOptions::default().args(["--reload-interval", "50ms"]),
    );
    server.wait_ready();

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(LoadStats::default());
    let versions2 = versions.clone();
    let check: Check = Arc::new(move |target, j| {
        if let Some(rows) = j["rows"].as_array() {
            let vers: HashSet<String> = rows.iter().map(|r| r["ver"].to_string()).collect();
            if vers.len() > 1 {
                return Err(format!("rows of two versions in one page: {vers:?}"));
            }
            return Ok(());
        }
        if let Some(v) = j.get("version") {
            return if versions2.contains(v.as_str().unwrap_or("")) {
                Ok(())
            } else {
                Err(format!("unknown version {v}"))
            };
        }
        if j.get("ver").is_some() {
            return Ok(());
        }
        Err(format!("unexpected body for {target}: {j}"))
    });
    let mut targets = targets_for(&base, &mut rng, "swap");
    targets.push("/v1/datasets/swap/rows?select=ver,count(),ver.min(),ver.max()".into());
    targets.push("/v1/datasets/swap/rows?limit=500&select=id,ver".into());
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, targets, stop, stats, check) = (
                server.addr,
                targets.clone(),
                stop.clone(),
                stats.clone(),
                check.clone(),
            );
            std::thread::spawn(move || client_loop(addr, targets, stop, stats, check))
        })
        .collect();
    // A cursor walker: continuations across a swap are either consistent or 409 stale_cursor.
    let walker = {
        let (addr, stop, stats) = (server.addr, stop.clone(), stats.clone());
        std::thread::spawn(move || {
            let mut walks = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut target = "/v1/datasets/swap/rows?limit=700&select=id,ver".to_string();
                let mut seen_ver: Option<i64> = None;
                loop {
                    let r = match quarry_tests::http::request(addr, "GET", &target, &[]) {
                        Ok(r) => r,
                        Err(e) => {
                            stats.fail(format!("walker {target}: {e}"));
                            break;
                        }
                    };
                    if r.status == 409 {
                        stats.stale.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    if r.status != 200 {
                        stats.fail(format!("walker {target}: {}", r.status));
                        break;
                    }
                    let j = r.json();
                    for row in j["rows"].as_array().into_iter().flatten() {
                        let v = row["ver"].as_i64();
                        if seen_ver.is_some() && v != seen_ver {
                            stats.fail(format!(
                                "walker: a cursor walk mixed versions {seen_ver:?} and {v:?}"
                            ));
                        }
                        seen_ver = v;
                    }
                    stats.ok.fetch_add(1, Ordering::Relaxed);
                    match j["next"].as_str() {
                        Some(c) => {
                            target = format!(
                                "/v1/datasets/swap/rows?limit=700&select=id,ver&cursor={}",
                                quarry_tests::pct(c)
                            )
                        }
                        None => break,
                    }
                }
                walks += 1;
            }
            walks
        })
    };
    let mut swaps = 0;
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        let next = if swaps % 2 == 0 { "v2" } else { "v1" };
        // Publish like the ETL: a dot temp file in the same directory, then rename.
        std::fs::copy(stage.join(format!("{next}.qry")), data.join(".swap.tmp")).expect("copy");
        std::fs::rename(data.join(".swap.tmp"), data.join("swap.qry")).expect("rename");
        swaps += 1;
        if swaps % 3 == 0 {
            server.signal("HUP");
        }
    }
    // One more swap through the real ETL, then wait until that version is served.
    etl_build(
        &dir.path().join("v2.csv"),
        &data,
        "swap",
        &[
            "--schema",
            dir.path().join("v2.schema.json").to_str().expect("utf8"),
            "--row-group-rows",
            "256",
        ],
    );
    let want = hex("v2");
    let wait_until = Instant::now() + Duration::from_secs(20);
    loop {
        let d = server.get("/v1/datasets/swap").json();
        if d["version"] == want.as_str() {
            break;
        }
        assert!(
            Instant::now() < wait_until,
            "the ETL-published version was not picked up: {d}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    let walks = walker.join().expect("walker");
    server.assert_healthy_process();
    let failed = stats.failed.load(Ordering::Relaxed);
    eprintln!(
        "data swap under load: {swaps} swaps + 1 ETL publish, {} ok, {failed} failed, {} stale cursors (409), {walks} cursor walks",
        stats.ok.load(Ordering::Relaxed),
        stats.stale.load(Ordering::Relaxed)
    );
    assert_eq!(
        failed,
        0,
        "failed requests: {:?}",
        stats.errors.lock().expect("lock")
    );
}
