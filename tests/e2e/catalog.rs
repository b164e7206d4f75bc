//! Thousands of datasets per process (issue 22) and files changed under the map (issue 20,
//! item 5): a loader that never holds the loop, one catalog and one mapping per dataset per
//! process, a paginated list, the port owned, and in-place changes that never crash the server
//! and take it out of readiness.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quarry_tests::data::Cell;
use quarry_tests::{temp_dir, Bins, Conn, Rng, Server, ServerOptions};
use serde_json::Value as Json;

use crate::fixtures::{build_csv, people};

/// Builds one small people file; returns its path and one key present in it.
fn small_file(dir: &Path, rows: usize) -> (PathBuf, i64) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let (mut rng, _seed) = Rng::from_env(22);
    let t = people(&mut rng, rows);
    let key = match t.rows[0][0] {
        Cell::Int(k) => k,
        ref c => panic!("people key is not an int: {c:?}"),
    };
    build_csv(&t, &src, &src, "one", &[]);
    (src.join("one.qry"), key)
}

/// `count` hard links of `file` named `{prefix}{i:05}.qry` in `data`.
fn link_many(file: &Path, data: &Path, prefix: &str, count: usize) {
    for i in 0..count {
        std::fs::hard_link(file, data.join(format!("{prefix}{i:05}.qry"))).expect("hard link");
    }
}

/// Longest answer of `targets`, asked in turn on one keep-alive connection while `until` is
/// false; every answer must have one of `ok` statuses.
fn probe_until(
    addr: std::net::SocketAddr,
    targets: &[String],
    ok: &[u16],
    until: &AtomicBool,
    worst: &Mutex<(Duration, String)>,
) -> usize {
    let mut conn = Conn::connect(addr).expect("connect");
    let mut n = 0usize;
    while !until.load(Ordering::Relaxed) {
        for t in targets {
            let t0 = Instant::now();
            let r = conn.get(t).unwrap_or_else(|e| panic!("GET {t}: {e}"));
            let took = t0.elapsed();
            assert!(ok.contains(&r.status), "GET {t}: {} {}", r.status, r.text());
            let mut w = worst.lock().expect("lock");
            if took > w.0 {
                *w = (took, format!("{t} -> {}", r.status));
            }
            n += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    n
}

/// Datasets at startup (20,000 with release binaries; 4,000 with debug ones, which load much
/// slower; `QUARRY_CATALOG_DATASETS` overrides) and half as many more by SIGHUP: `/livez` and a
/// point lookup answer within 100 ms throughout: the loader must yield by work done, not per
/// file, since a pass that does not yield between small files holds the loop for all of them. The
/// bound is over a control: a second server with one dataset probed the same way at the same
/// time, so time the machine takes from both is not blamed on the loader. With debug binaries
/// it is 200 ms: a busy debug process on a loaded 2-core host waits longer for its core than
/// the idle control does, whatever the loader's slices.
#[test]
fn thousands_of_datasets_never_hold_the_loop() {
    let start_count: usize = std::env::var("QUARRY_CATALOG_DATASETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            4_000
        } else {
            20_000
        });
    let more_count = start_count / 2;
    let bound_ms = if cfg!(debug_assertions) { 200 } else { 100 };
    let bound_over = Duration::from_millis(bound_ms);
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (file, key) = small_file(dir.path(), 40);
    link_many(&file, &data, "d", start_count);
    let control_data = dir.path().join("control");
    std::fs::create_dir_all(&control_data).expect("mkdir");
    link_many(&file, &control_data, "d", 1);
    let mut control = Server::start(&control_data);
    control.wait_ready();
    let control_addr = control.addr;
    let mut server = Server::start_with(
        &data,
        ServerOptions::default().args(["--reload-interval", "0s"]),
    );
    let addr = server.addr;
    let targets = vec![
        "/livez".to_string(),
        format!("/v1/datasets/d00000/rows/{key}"),
    ];
    let worst = Mutex::new((Duration::ZERO, String::new()));
    let control_worst = Mutex::new((Duration::ZERO, String::new()));
    let done = AtomicBool::new(false);
    let t0 = Instant::now();
    let probes = std::thread::scope(|s| {
        let h = s.spawn(|| probe_until(addr, &targets, &[200, 503], &done, &worst));
        s.spawn(|| probe_until(control_addr, &targets, &[200], &done, &control_worst));
        let ready = server.wait_health(
            |r| r.status == 200,
            Duration::from_secs(240),
            "ready with every dataset",
        );
        done.store(true, Ordering::Relaxed);
        (h.join().expect("prober"), ready)
    });
    let (probes, ready) = probes;
    let (startup_worst, what) = worst.lock().expect("lock").clone();
    eprintln!(
        "startup of {start_count} datasets: {:?}, {probes} probes, longest {startup_worst:?} ({what}); control {:?}",
        t0.elapsed(),
        control_worst.lock().expect("lock").0
    );
    let bound = bound_over + control_worst.lock().expect("lock").0;
    assert!(
        startup_worst < bound,
        "during startup {what} took {startup_worst:?} (bound {bound:?}: {bound_ms} ms over the control's longest)"
    );
    assert_eq!(ready["counts"]["ready"], start_count, "{}", ready["counts"]);

    link_many(&file, &data, "n", more_count);
    *worst.lock().expect("lock") = (Duration::ZERO, String::new());
    *control_worst.lock().expect("lock") = (Duration::ZERO, String::new());
    let done = AtomicBool::new(false);
    let t0 = Instant::now();
    let probes = std::thread::scope(|s| {
        let h = s.spawn(|| probe_until(addr, &targets, &[200], &done, &worst));
        s.spawn(|| probe_until(control_addr, &targets, &[200], &done, &control_worst));
        server.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let last = format!("/v1/datasets/n{:05}", more_count - 1);
            let r = quarry_tests::http::get(addr, &last);
            if r.status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "reload of {more_count} datasets did not finish"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        done.store(true, Ordering::Relaxed);
        h.join().expect("prober")
    });
    let (reload_worst, what) = worst.lock().expect("lock").clone();
    eprintln!(
        "reload of {more_count} datasets: {:?}, {probes} probes, longest {reload_worst:?} ({what}); control {:?}",
        t0.elapsed(),
        control_worst.lock().expect("lock").0
    );
    let bound = bound_over + control_worst.lock().expect("lock").0;
    assert!(
        reload_worst < bound,
        "during the reload {what} took {reload_worst:?} (bound {bound:?}: {bound_ms} ms over the control's longest)"
    );
    let h = server.get("/healthz").json();
    assert_eq!(
        h["counts"]["ready"],
        start_count + more_count,
        "{}",
        h["counts"]
    );
    server.assert_healthy_process();
    control.assert_healthy_process();
}

/// `/v1/datasets` pages: a bounded default page, `limit`, `cursor` (from `next`) and `prefix`;
/// every dataset exactly once; ETag/304 and HEAD; a bad `limit` is a 400 naming it.
#[test]
fn dataset_list_pages_with_limit_cursor_and_prefix() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (file, _) = small_file(dir.path(), 20);
    link_many(&file, &data, "a", 150);
    link_many(&file, &data, "b", 120);
    let mut server = Server::start(&data);
    server.wait_ready();

    let first = server.get("/v1/datasets");
    assert_eq!(first.status, 200);
    let j = first.json();
    let page = j["datasets"].as_array().expect("datasets");
    assert_eq!(page.len(), 100, "default page");
    assert_eq!(page[0]["name"], "a00000");
    assert_eq!(j["next"], "a00099", "{}", j["next"]);

    // Walk everything with limit=64.
    let mut seen = Vec::new();
    let mut target = "/v1/datasets?limit=64".to_string();
    loop {
        let r = server.get(&target);
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        let j = r.json();
        let items = j["datasets"].as_array().expect("datasets");
        assert!(items.len() <= 64);
        seen.extend(
            items
                .iter()
                .map(|d| d["name"].as_str().expect("name").to_string()),
        );
        match j["next"].as_str() {
            Some(c) => target = format!("/v1/datasets?limit=64&cursor={c}"),
            None => break,
        }
    }
    let mut want: Vec<String> = (0..150).map(|i| format!("a{i:05}")).collect();
    want.extend((0..120).map(|i| format!("b{i:05}")));
    assert_eq!(
        seen, want,
        "a cursor walk lists every dataset once, in name order"
    );

    // Prefix.
    let r = server.get("/v1/datasets?prefix=b&limit=1000").json();
    let names: Vec<&str> = r["datasets"]
        .as_array()
        .expect("datasets")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names.len(), 120);
    assert!(names.iter().all(|n| n.starts_with('b')));
    assert_eq!(r["next"], Json::Null);
    let r = server.get("/v1/datasets?prefix=a0014&cursor=a00145").json();
    let names: Vec<&str> = r["datasets"]
        .as_array()
        .expect("datasets")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["a00146", "a00147", "a00148", "a00149"]);

    // A list entry equals the dataset's own document.
    let d = server.get("/v1/datasets/b00007").json();
    let r = server.get("/v1/datasets?prefix=b00007").json();
    assert_eq!(r["datasets"][0], d);

    // ETag / 304 / HEAD.
    let etag = first.header("etag").expect("etag").to_string();
    let r = server.get_with("/v1/datasets", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let other = server.get("/v1/datasets?limit=5");
    assert_ne!(other.header("etag"), Some(etag.as_str()));
    let head = quarry_tests::http::request(server.addr, "HEAD", "/v1/datasets", &[]).expect("HEAD");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(first.body.len().to_string().as_str())
    );

    // Bad limits name the parameter.
    for bad in ["0", "1001", "x", "-1"] {
        let r = server.get(&format!("/v1/datasets?limit={bad}"));
        assert_eq!(r.status, 400, "limit={bad}");
        assert_eq!(r.error_param().as_deref(), Some("limit"), "{}", r.text());
    }

    // A new dataset changes the ETag.
    std::fs::hard_link(&file, data.join("c00000.qry")).expect("link");
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get("/v1/datasets/c00000").status != 200 {
        assert!(Instant::now() < deadline, "c00000 not loaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = server.get_with("/v1/datasets", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 200, "the catalog changed: no 304");
    server.assert_healthy_process();
}

/// Mapped regions of `path` in the process's address space.
fn mappings_of(pid: u32, path: &Path) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let p = path.to_string_lossy();
    maps.lines().filter(|l| l.ends_with(p.as_ref())).count()
}

/// `--threads 3`: one mapping per dataset for the whole process, and every loop answers
/// readiness and datasets from the same catalog (once ready, never unready on another loop;
/// once a dataset answers, it answers on every connection).
#[test]
fn loops_share_one_catalog_and_one_mapping_per_dataset() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (file, key) = small_file(dir.path(), 30);
    link_many(&file, &data, "d", 600);
    let mut server = Server::start_with(
        &data,
        ServerOptions::default().args(["--threads", "3", "--reload-interval", "0s"]),
    );
    let addr = server.addr;
    // Fresh connections spread over the loops (SO_REUSEPORT hashes each 4-tuple).
    let mut ready_seen = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut consecutive_ready = 0;
    while consecutive_ready < 30 {
        let r = quarry_tests::http::get(addr, "/healthz");
        if r.status == 200 {
            ready_seen = true;
            consecutive_ready += 1;
        } else {
            assert!(
                !ready_seen,
                "one loop answered ready, then another unready: {}",
                r.text()
            );
        }
        assert!(Instant::now() < deadline, "not ready within 120 s");
    }
    for i in (0..600).step_by(37) {
        for _ in 0..3 {
            let r = quarry_tests::http::get(addr, &format!("/v1/datasets/d{i:05}/rows/{key}"));
            assert_eq!(r.status, 200, "d{i:05}: {}", r.text());
        }
    }
    // The hard links share one inode, so /proc/PID/maps names each mapping by the path it was
    // opened with: one per dataset, not one per loop.
    for i in [0usize, 333, 599] {
        let p = data.join(format!("d{i:05}.qry"));
        assert_eq!(
            mappings_of(server.pid(), &p),
            1,
            "{} mapped once per process",
            p.display()
        );
    }
    server.assert_healthy_process();
}

/// Past the mapping limit a dataset fails, named, and the process stays up (unready: those
/// files were found at startup).
#[test]
fn mapping_limit_fails_the_datasets_past_it_by_name() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (file, _) = small_file(dir.path(), 10);
    link_many(&file, &data, "d", 60);
    let mut server = Server::start_with(
        &data,
        ServerOptions::default().args(["--max-mapped-datasets", "50"]),
    );
    let h = server.wait_health(
        |r| r.json()["status"] == "failed",
        Duration::from_secs(60),
        "failed: over the mapping limit",
    );
    assert_eq!(h["counts"]["ready"], 50, "{}", h["counts"]);
    assert_eq!(h["counts"]["failed"], 10, "{}", h["counts"]);
    let reason = h["reason"].as_str().expect("reason");
    for i in 50..60 {
        assert!(reason.contains(&format!("d{i:05}")), "{reason}");
    }
    assert!(reason.contains("limit is 50"), "{reason}");
    assert_eq!(server.get("/v1/datasets/d00049").status, 200);
    server.assert_healthy_process();
}

/// `--threads 2` on a port another server holds: a clear refusal, not a silent share.
#[test]
fn a_second_server_on_the_port_is_refused() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (file, _) = small_file(dir.path(), 10);
    link_many(&file, &data, "d", 1);
    let mut first = Server::start_with(&data, ServerOptions::default().args(["--threads", "2"]));
    first.wait_ready();
    let listen = first.addr.to_string();
    let mut second = Command::new(&Bins::get().server)
        .args(["--data-dir", &data.to_string_lossy(), "--listen", &listen])
        .args(["--threads", "2", "--log-format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = second.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second --threads 2 server started on {listen}, sharing the port");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = second.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!status.success(), "{text}");
    assert!(
        text.contains("another process is already listening"),
        "{text}"
    );
    assert!(text.contains(&listen), "{text}");
    first.assert_healthy_process();
}

/// Runs `change` on a served file in a thread (it may wait for the server to release its
/// read lease), under light load of lookups and raw column reads of that dataset; the server
/// must stay up, turn unready naming the dataset, and keep serving the others.
fn change_under_load(how: &str, leases: bool, change: impl FnOnce(&Path) + Send) {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (file, key) = small_file(dir.path(), 3000);
    // Copies, not links: each changed file is its own inode.
    std::fs::copy(&file, data.join("victim.qry")).expect("copy");
    std::fs::copy(&file, data.join("other.qry")).expect("copy");
    let mut opts = ServerOptions::default().args(["--reload-interval", "200ms"]);
    if !leases {
        opts = opts.arg("--no-read-leases");
    }
    let mut server = Server::start_with(&data, opts);
    server.wait_ready();
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let victim = data.join("victim.qry");
    std::thread::scope(|s| {
        let mut load = Vec::new();
        for t in [
            format!("/v1/datasets/victim/rows/{key}"),
            "/v1/datasets/victim/columns/name".to_string(),
            "/v1/datasets/victim/rows?limit=500".to_string(),
        ] {
            let stop = stop.clone();
            load.push(s.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Any answer is fine; the connection must not die with the process.
                    if let Ok(r) = quarry_tests::http::request(addr, "GET", &t, &[]) {
                        // Without a lease, requests may read the bytes as they change.
                        assert!(!leases || r.status != 500, "{t}: {}", r.text());
                    }
                    n += 1;
                }
                n
            }));
        }
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        let writer = s.spawn(|| change(&victim));
        writer.join().expect("the change");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{how}: the writer waited {:?} for the lease",
            t0.elapsed()
        );
        std::thread::sleep(Duration::from_millis(600));
        stop.store(true, Ordering::Relaxed);
        for h in load {
            h.join().expect("load thread");
        }
    });
    server.assert_healthy_process();
    let h = server.wait_health(
        |r| r.status == 503,
        Duration::from_secs(10),
        "unready after an in-place change",
    );
    let reason = h["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("victim"), "{how}: {reason}");
    assert_eq!(h["datasets"]["victim"]["state"], "failed", "{how}: {h}");
    assert_eq!(
        server.get(&format!("/v1/datasets/other/rows/{key}")).status,
        200,
        "{how}: the other dataset keeps serving"
    );
    // Readiness comes back with a new version published by rename.
    let tmp = data.join(".victim.tmp");
    std::fs::copy(&file, &tmp).expect("copy");
    std::fs::rename(&tmp, data.join("victim.qry")).expect("rename");
    server.wait_health(
        |r| r.status == 200,
        Duration::from_secs(20),
        "ready again after a rename",
    );
    assert_eq!(
        server
            .get(&format!("/v1/datasets/victim/rows/{key}"))
            .status,
        200
    );
    server.assert_healthy_process();
}

#[test]
fn truncating_a_served_file_never_crashes_and_unreadies() {
    change_under_load("truncate", true, |p| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .expect("open for writing");
        f.set_len(100).expect("truncate");
    });
}

#[test]
fn copying_over_a_served_file_never_crashes_and_unreadies() {
    change_under_load("cp over", true, |p| {
        let bytes = std::fs::read(p).expect("read");
        let half = &bytes[..bytes.len() / 2];
        // cp(1): open with O_TRUNC, write, close.
        std::fs::write(p, half).expect("write over");
    });
}

/// `dd conv=notrunc`: the same size, other bytes.
fn overwrite_in_place(p: &Path) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .expect("open for writing");
    let len = f.metadata().expect("meta").len();
    f.seek(SeekFrom::Start(len / 3)).expect("seek");
    f.write_all(&[0xff; 64]).expect("overwrite");
    f.sync_all().expect("sync");
}

#[test]
fn bytes_changed_in_place_take_the_pod_out_of_readiness() {
    change_under_load("dd conv=notrunc", true, overwrite_in_place);
}

/// Without a lease (`--no-read-leases`, as for a server that does not own its files) the
/// change is found by the next pass: the same inode with another mtime.
#[test]
fn bytes_changed_in_place_without_a_lease_are_found_by_polling() {
    change_under_load("dd conv=notrunc, no lease", false, overwrite_in_place);
}
