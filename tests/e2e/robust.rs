//! Issue #20, "no request can kill, bloat or stall a pod": corrupt data under `--verify cheap`
//! answered as errors, bounded work per loop turn (LIKE), slow clients released by the write
//! timeout, memory budgets. Every test drives the real binary over HTTP.

use quarry_format::{read_file, DataType, Encoding};
use quarry_tests::data::{Cell, Col, Table, Ty};
use quarry_tests::{temp_dir, Server, ServerOptions};

use crate::fixtures::build_csv;

fn col(name: &str, ty: Ty) -> Col {
    Col {
        name: name.into(),
        ty,
        nullable: false,
    }
}

/// `id` int key and `body`, distinct strings (so its chunks are plain, not dictionary).
fn bodies(n: usize, len: usize, fill: impl Fn(usize) -> String) -> Table {
    let rows = (0..n)
        .map(|i| {
            let mut s = fill(i);
            s.truncate(len);
            vec![Cell::Int(i as i64), Cell::Str(s)]
        })
        .collect();
    Table {
        cols: vec![col("id", Ty::Int64), col("body", Ty::Utf8)],
        key: Some(0),
        rows,
    }
}

/// One flipped high byte in a string offsets buffer, `--verify cheap`, then raw reads of that
/// column: a 500 `corrupt_data` naming dataset, column and row group; the server lives on.
#[test]
fn corrupt_string_offsets_under_cheap_verify_answer_corrupt_data() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let t = bodies(600, 40, |i| format!("row {i:05} some text"));
    build_csv(&t, dir.path(), dir.path(), "base", &[]);
    let path = dir.path().join("base.qry");
    let file = read_file(&path).expect("open the built file");
    let body = file.schema().index_of("body").expect("body column");
    assert_eq!(file.schema().fields()[body].data_type, DataType::Utf8);
    let meta = file.chunk_meta(1, body);
    assert_eq!(meta.encoding, Encoding::Plain, "distinct strings are plain");
    // The high byte of row 3's end offset: a huge offset, past the map.
    let at = meta.buffers.values.range().start + 8 * 4 + 7;
    drop(file);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[at] ^= 0x40;
    std::fs::write(data.join("bad.qry"), &bytes).expect("write");

    let mut server =
        Server::start_with(&data, ServerOptions::default().args(["--verify", "cheap"]));
    server.wait_ready();
    // Row group 1 starts at row 256 (256-row groups); its offsets[4] is the bad one.
    for target in [
        "/v1/datasets/bad/columns/body?offset=256&limit=4",
        "/v1/datasets/bad/columns/body?offset=260&limit=2",
        "/v1/datasets/bad/columns/body?offset=258&limit=10&part=offsets",
    ] {
        let r = server.get(target);
        if target.contains("part=offsets") {
            // The offsets themselves are served as stored: the client sees the bad value.
            assert_eq!(r.status, 200, "{target}: {}", r.text());
            continue;
        }
        assert_eq!(r.status, 500, "{target}: {}", r.text());
        assert_eq!(r.error_code(), "corrupt_data", "{target}");
        let msg = r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        for what in ["\"bad\"", "\"body\"", "row group 1"] {
            assert!(msg.contains(what), "{target}: message {msg:?} lacks {what}");
        }
    }
    // Other rows and the loop keep serving.
    let ok = server.get("/v1/datasets/bad/columns/body?offset=0&limit=10");
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(server.get("/livez").status, 200);
    server.assert_healthy_process();
}

/// Longest answer time of `/livez` and a point lookup polled while `busy` runs on another
/// thread; also returns `busy`'s result.
fn probe_while<T: Send>(
    server: &Server,
    lookup: &str,
    busy: impl FnOnce() -> T + Send,
) -> (std::time::Duration, usize, T) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let r = busy();
            done.store(true, Ordering::SeqCst);
            r
        });
        let mut worst = std::time::Duration::ZERO;
        let mut probes = 0;
        while !done.load(Ordering::SeqCst) {
            for target in ["/livez", lookup] {
                let t0 = std::time::Instant::now();
                let r = server.get(target);
                assert_eq!(r.status, 200, "{target}: {}", r.text());
                worst = worst.max(t0.elapsed());
                probes += 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        (worst, probes, worker.join().expect("busy thread"))
    })
}

/// `like.*` + 2,000 `a` + `_b` over distinct 5,000-byte strings of `a`s: a backtracking
/// matcher is quadratic per value and held the loop for minutes; the NFA and work-bounded
/// slices keep `/livez` and lookups answering beside it.
#[test]
fn worst_case_like_keeps_the_loop_answering() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let t = bodies(1500, 5000, |i| format!("{i:08}{}", "a".repeat(5000)));
    build_csv(
        &t,
        dir.path(),
        &data,
        "texts",
        &["--row-group-rows", "1024"],
    );
    let mut server = Server::start(&data);
    server.wait_ready();

    let pattern = format!("*{}_b", "a".repeat(2000));
    let target = format!("/v1/datasets/texts/rows?body=like.{pattern}&select=id");
    let (worst, probes, r) = probe_while(&server, "/v1/datasets/texts/rows/1234", || {
        server.get(&target)
    });
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["rows"],
        serde_json::json!([]),
        "no value ends in b"
    );
    eprintln!("worst-case like: worst probe {worst:?} over {probes} probes");
    assert!(probes >= 2, "the scan ended before any probe");
    // Generous liveness bound (debug build, shared machine), not a speed claim.
    assert!(
        worst < std::time::Duration::from_millis(1000),
        "a probe beside the LIKE scan took {worst:?} ({probes} probes)"
    );
    // Matches are still found (the NFA is exact), and ilike takes the same path.
    let hit = server.get("/v1/datasets/texts/rows?body=ilike.*00001234A_a*&select=id");
    assert_eq!(hit.status, 200, "{}", hit.text());
    assert_eq!(hit.json()["rows"], serde_json::json!([{"id": 1234}]));

    // Longer patterns than the cap: a clear 400 naming the column.
    let long = format!("/v1/datasets/texts/rows?body=like.{}", "a_".repeat(2100));
    let r = server.get(&long);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "pattern_too_long");
    assert_eq!(r.error_param().as_deref(), Some("body"));
    // Loop lag is exported.
    let metrics = server.get_admin("/metrics").text();
    assert!(
        metrics.contains("quarry_event_loop_lag_seconds"),
        "{metrics}"
    );
    server.assert_healthy_process();
}

/// Lines of /proc/PID/maps naming `file` (a replaced file shows as `... (deleted)`).
fn mapped(pid: u32, file: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("read /proc/PID/maps")
        .lines()
        .filter(|l| l.contains(file))
        .map(str::to_string)
        .collect()
}

/// Clients that ask for large raw column reads and never read: after a swap the old version
/// is still mapped while they hold it, and unmapped once `--write-timeout` aborts them.
#[test]
fn stalled_readers_are_aborted_and_release_the_old_version() {
    use std::io::{Read, Write};
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    // One row group of 4,096 rows x 5,000 bytes: a 20 MB raw read, more than the socket
    // buffers of both ends take.
    let v1 = bodies(4096, 5000, |i| format!("{i:06}{}", "x".repeat(5000)));
    build_csv(
        &v1,
        dir.path(),
        &data,
        "blobs",
        &["--row-group-rows", "4096"],
    );
    // v2 is built before the readers stall, so only a rename and a reload lie between the
    // stall and the check that they still hold v1 (the write timeout runs from the stall).
    let v2 = bodies(4096, 5000, |i| format!("{i:06}{}", "y".repeat(5000)));
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&staging).expect("mkdir");
    build_csv(
        &v2,
        dir.path(),
        &staging,
        "blobs",
        &["--row-group-rows", "4096"],
    );
    let mut server = Server::start_with(
        &data,
        ServerOptions::default().args(["--write-timeout", "5s", "--reload-interval", "0s"]),
    );
    server.wait_ready();
    let old_version = server.get("/v1/datasets/blobs").json()["version"].clone();

    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut s = std::net::TcpStream::connect(server.addr).expect("connect");
        s.write_all(b"GET /v1/datasets/blobs/columns/body?limit=4096 HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        let mut head = [0u8; 512];
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .expect("timeout");
        let n = s.read(&mut head).expect("the response starts");
        assert!(
            head[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&head[..n])
        );
        stalled.push(s); // and never read again
    }

    // Publish v2 by rename and reload.
    std::fs::rename(staging.join("blobs.qry"), data.join("blobs.qry")).expect("rename");
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.get("/v1/datasets/blobs").json()["version"] == old_version {
        assert!(std::time::Instant::now() < deadline, "v2 never served");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let swapped = std::time::Instant::now();
    // The stalled responses still hold v1 (this is what a missing write timeout leaves forever).
    let pid = server.pid();
    assert!(
        !mapped(pid, "blobs.qry (deleted)").is_empty(),
        "the old version should still be mapped while its responses are stalled"
    );
    // Within the write timeout plus the check interval (bounded generously), v1 is unmapped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !mapped(pid, "blobs.qry (deleted)").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the old version is still mapped 30 s after the swap: {:?}",
            mapped(pid, "blobs.qry")
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!(
        "stalled readers: the old version unmapped {:?} after the swap was served",
        swapped.elapsed()
    );
    let metrics = server.get_admin("/metrics").text();
    let aborted = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("quarry_http_responses_aborted_total{reason=\"write_timeout\"} ")
        })
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert_eq!(aborted, Some(4.0), "{metrics}");
    // The aborted connections were closed: reading drains what the kernel holds, then EOF
    // or a reset, never the full 20 MB body.
    for mut s in stalled {
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        assert!(sink.len() < 4096 * 5000, "a stalled response completed");
    }
    assert_eq!(server.get("/livez").status, 200);
    server.assert_healthy_process();
}

/// RssAnon of `pid` in bytes (anonymous memory: the heap, not the mapped files).
fn rss_anon(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .expect("RssAnon in /proc/PID/status")
        * 1024
}

/// Six concurrent group-bys over 24 distinct int columns (every row its own group): each is
/// refused (422 `too_much_memory` at the request budget, or 503 + Retry-After at the process
/// budget) while the server's anonymous memory stays under the process budget plus slack.
/// Without budgets each request grew to ~60 MB here (1.3 GB for the 1.1M rows).
#[test]
fn wide_group_bys_stay_inside_the_memory_budget() {
    const ROWS: usize = 200_000;
    const BUDGET_MIB: u64 = 64;
    const SLACK_MIB: u64 = 64;
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let cols: Vec<Col> = (0..24).map(|c| col(&format!("c{c}"), Ty::Int64)).collect();
    let rows = (0..ROWS)
        .map(|i| {
            (0..24)
                .map(|c| Cell::Int(((i * (2 * c + 1)) % ROWS) as i64))
                .collect()
        })
        .collect();
    let t = Table {
        cols,
        key: None,
        rows,
    };
    build_csv(
        &t,
        dir.path(),
        &data,
        "wide",
        &["--row-group-rows", "65536"],
    );
    let mut server = Server::start_with(
        &data,
        ServerOptions::default().args([
            "--max-request-memory",
            "16MiB",
            "--memory-budget",
            &format!("{BUDGET_MIB}MiB"),
        ]),
    );
    server.wait_ready();
    let pid = server.pid();
    let select: Vec<String> = (0..24).map(|c| format!("c{c}")).collect();
    let target = format!(
        "/v1/datasets/wide/rows?select={},count()&limit=1",
        select.join(",")
    );

    let done = std::sync::atomic::AtomicUsize::new(0);
    let (peak, results) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let r = server.get(&target);
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    r
                })
            })
            .collect();
        let mut peak = 0;
        while done.load(std::sync::atomic::Ordering::SeqCst) < 6 {
            peak = peak.max(rss_anon(pid));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let results: Vec<_> = workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect();
        (peak, results)
    });
    eprintln!(
        "wide group-bys: peak RssAnon {} MiB (budget {BUDGET_MIB} MiB), statuses {:?}",
        peak >> 20,
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &results {
        match r.status {
            422 => {
                assert_eq!(r.error_code(), "too_much_memory", "{}", r.text());
                assert!(r.text().contains("--max-request-memory"), "{}", r.text());
            }
            503 => assert!(r.header("retry-after").is_some(), "503 without Retry-After"),
            s => panic!("status {s}: {}", r.text()),
        }
    }
    assert!(
        peak < (BUDGET_MIB + SLACK_MIB) << 20,
        "peak RssAnon {} MiB over the {BUDGET_MIB} MiB budget + {SLACK_MIB} MiB slack",
        peak >> 20
    );
    let metrics = server.get_admin("/metrics").text();
    assert!(
        metrics.contains("quarry_memory_rejections_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("quarry_memory_charged_bytes 0"),
        "charges released: {metrics}"
    );
    // Narrow group-bys still work.
    let ok = server.get("/v1/datasets/wide/rows?select=c0,count()&c0=lt.10");
    assert_eq!(ok.status, 200, "{}", ok.text());
    server.assert_healthy_process();
}

/// Group-by pages of long strings to clients that stop reading: each page (every group's string,
/// owned) lives until its body is written, so it stays charged to the process budget until
/// then, and so do the encoded frames waiting for the socket. Requests past the budget get a
/// 503 with Retry-After before their head; the server's anonymous memory stays under the
/// budget plus slack (eight uncharged pages alone would exceed both).
#[test]
fn stalled_large_pages_stay_inside_the_memory_budget() {
    use std::io::{Read, Write};
    const ROWS: usize = 6_000;
    const BUDGET_MIB: u64 = 96;
    const SLACK_MIB: u64 = 64;
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let t = bodies(ROWS, 4000, |i| format!("{i:06}{}", "z".repeat(4000)));
    build_csv(&t, dir.path(), &data, "long", &["--row-group-rows", "2048"]);
    let mut server = Server::start_with(
        &data,
        ServerOptions::default().args([
            "--memory-budget",
            &format!("{BUDGET_MIB}MiB"),
            "--write-timeout",
            "120s",
        ]),
    );
    server.wait_ready();
    let pid = server.pid();
    let accepts = [
        "application/json",
        "text/csv",
        "application/vnd.apache.arrow.stream",
        "application/x-ndjson",
    ];
    let mut stalled = Vec::new();
    let mut statuses = Vec::new();
    let mut peak = rss_anon(pid);
    for i in 0..8 {
        let mut s = std::net::TcpStream::connect(server.addr).expect("connect");
        let req = format!(
            "GET /v1/datasets/long/rows?select=body,count()&limit={ROWS} HTTP/1.1\r\n\
             Host: t\r\nAccept: {}\r\n\r\n",
            accepts[i % accepts.len()]
        );
        s.write_all(req.as_bytes()).expect("send");
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .expect("timeout");
        let mut head = [0u8; 4096];
        let n = s.read(&mut head).expect("the response starts");
        let head = String::from_utf8_lossy(&head[..n]).to_string();
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {head:?}"));
        match status {
            200 => stalled.push(s), // and never read again
            503 => assert!(
                head.to_ascii_lowercase().contains("retry-after"),
                "503 without Retry-After: {head}"
            ),
            s => panic!("status {s}: {head}"),
        }
        statuses.push(status);
        // Let the server fill the socket and block on it.
        std::thread::sleep(std::time::Duration::from_millis(300));
        peak = peak.max(rss_anon(pid));
    }
    eprintln!(
        "stalled large pages: peak RssAnon {} MiB (budget {BUDGET_MIB} MiB), statuses {statuses:?}",
        peak >> 20
    );
    assert!(
        peak < (BUDGET_MIB + SLACK_MIB) << 20,
        "peak RssAnon {} MiB over the {BUDGET_MIB} MiB budget + {SLACK_MIB} MiB slack; statuses \
         {statuses:?}",
        peak >> 20
    );
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    drop(stalled);
    // Closed connections release everything: pages, encoders and frames in flight.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let metrics = server.get_admin("/metrics").text();
        if metrics.contains("quarry_memory_charged_bytes 0\n") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "charges not released: {metrics}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ok = server.get("/v1/datasets/long/rows?select=id,body&limit=3");
    assert_eq!(ok.status, 200, "{}", ok.text());
    server.assert_healthy_process();
}
