//! Connection limits, idle timeout, load shedding, several loops.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn idle_keep_alive_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--idle-timeout", "200ms"]);
    let addr = server.local_addr();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // Read the response, then wait for the server to close the idle connection (EOF).
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => panic!("connection not closed by the server: {e}"),
        }
    }
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn connections_over_the_limit_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--max-connections", "1"]);
    let addr = server.local_addr();
    let mut first = TcpStream::connect(addr).unwrap();
    first
        .write_all(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(first.read(&mut buf).unwrap() > 0);
    // The first connection is open (keep-alive): a second is closed without an answer.
    let mut second = TcpStream::connect(addr).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = second.write_all(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n");
    let n = second.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "got {:?}", String::from_utf8_lossy(&buf[..n]));
    drop(first);
    wait_until("a slot frees up", || {
        TcpStream::connect(addr)
            .and_then(|mut s| {
                s.write_all(b"GET /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
                let mut v = Vec::new();
                s.read_to_end(&mut v)?;
                Ok(v.starts_with(b"HTTP/1.1 200"))
            })
            .unwrap_or(false)
    });
    let m = get(server.admin_addr(), "/metrics").text();
    assert!(m.contains("quarry_http_connections_rejected_total "), "{m}");
    assert!(
        !m.contains("quarry_http_connections_rejected_total 0"),
        "{m}"
    );
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn overload_sheds_data_requests_but_never_probes() {
    let dir = tempfile::tempdir().unwrap();
    write_people(dir.path(), "people", &people(10), 16);
    // A bound of 0 in flight: every data request is over it (it counts itself).
    let server = start(dir.path(), &["--shed-in-flight", "0"]);
    let addr = server.local_addr();
    wait_ready(addr);
    let r = get(addr, "/v1/datasets/people");
    assert_eq!(r.status, 503);
    assert_eq!(r.error_code(), "overloaded");
    assert_eq!(r.header("retry-after"), Some("1"));
    for probe in ["/livez", "/healthz"] {
        assert_eq!(get(addr, probe).status, 200, "{probe}");
        assert_eq!(get(server.admin_addr(), probe).status, 200, "{probe}");
    }
    assert!(get(server.admin_addr(), "/metrics")
        .text()
        .contains("quarry_http_requests_shed_total 1"));
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn several_loops_share_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let rows = people(100);
    write_people(dir.path(), "people", &rows, 16);
    let server = start(dir.path(), &["--threads", "2"]);
    let addr = server.local_addr();
    // Both loops must be ready: keep asking until many answers in a row are 200.
    wait_until("every loop ready", || {
        (0..20).all(|_| get(addr, "/healthz").status == 200)
    });
    for p in rows.iter().step_by(7) {
        let r = get(addr, &format!("/v1/datasets/people/rows/{}", p.id));
        assert_eq!(r.json()["id"], p.id);
    }
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn force_epoll_flag_serves_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let rows = people(50);
    write_people(dir.path(), "people", &rows, 16);
    let server = start(dir.path(), &["--force-epoll"]);
    let addr = server.local_addr();
    wait_ready(addr);
    let r = get(addr, &format!("/v1/datasets/people/rows/{}", rows[7].id));
    assert_eq!(r.json()["id"], rows[7].id);
    server.reload();
    assert_eq!(get(addr, "/livez").status, 200);
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn a_long_scan_lets_lookups_on_other_connections_through() {
    let dir = tempfile::tempdir().unwrap();
    write_people(dir.path(), "people", &people(300_000), 65_536);
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    wait_ready(addr);
    // Groups all 300k rows by (born, active), 800 groups through the hash table; one connection.
    let scan = "/v1/datasets/people/rows?select=born,active,score.sum(),score.avg(),count()";
    let started = Instant::now();
    let r = get(addr, scan);
    let alone = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        alone >= Duration::from_millis(60),
        "the scan took {alone:?}: too short for this test to tell a yield from none"
    );

    let s = std::thread::spawn(move || {
        let r = get(addr, scan);
        (r.status, Instant::now())
    });
    // A lookup is sent once `/metrics` (served by the same loop) shows the scan in flight
    // beside itself: that is, while the scan runs, however long either takes on this machine.
    let admin = server.admin_addr();
    let mut looked_up = Vec::new();
    while !s.is_finished() {
        let in_flight = get(admin, "/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("quarry_http_requests_in_flight "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .expect("quarry_http_requests_in_flight");
        if in_flight >= 2.0 {
            let lookup = get(addr, "/v1/datasets/people/rows/30");
            assert_eq!(lookup.status, 200, "{}", lookup.text());
            looked_up.push(Instant::now());
        }
    }
    let (status, scanned) = s.join().unwrap();
    assert_eq!(status, 200);
    // Without yields neither `/metrics` nor the lookup is answered until the scan ends.
    assert!(
        looked_up.iter().any(|t| *t < scanned),
        "no lookup was answered while the scan ran ({} sent after it)",
        looked_up.len()
    );
    server.shutdown();
    server.join().unwrap();
}

/// Every scan is held to the request's memory budget, whichever face it comes through: a
/// group-by with a group per row is refused on `/v1` and on the PostgREST face alike.
#[test]
fn the_postgrest_face_is_held_to_the_request_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    write_people(dir.path(), "people", &people(50_000), 8192);
    let server = start(dir.path(), &["--max-request-memory", "256KiB"]);
    let addr = server.local_addr();
    wait_ready(addr);
    for path in [
        "/v1/datasets/people/rows?select=id,count()",
        "/rest/people?select=id,count()",
    ] {
        let r = get(addr, path);
        assert_eq!(r.status, 422, "{path}: {}", r.text());
        assert!(r.text().contains("too_much_memory"), "{path}: {}", r.text());
    }
}

/// A page is admitted only with room for one encoded frame beside it: a budget that holds the
/// scan and its page but not a 64 KiB frame answers 503 + Retry-After before the head (without
/// frames charged, the whole body went out), and releases everything.
#[test]
fn a_page_without_room_for_a_frame_is_shed_before_its_head() {
    let dir = tempfile::tempdir().unwrap();
    write_people(dir.path(), "people", &people(5_000), 8192);
    let server = start(dir.path(), &["--memory-budget", "48KiB"]);
    let addr = server.local_addr();
    wait_ready(addr);
    let r = get(addr, "/v1/datasets/people/rows?limit=1000");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some(), "503 without Retry-After");
    assert!(r.text().contains("--memory-budget"), "{}", r.text());
    wait_until("the charges are released", || {
        get(server.admin_addr(), "/metrics")
            .text()
            .contains("quarry_memory_charged_bytes 0\n")
    });
    // A lookup needs no budget.
    let r = get(addr, "/v1/datasets/people/rows/9");
    assert_eq!(r.status, 200, "{}", r.text());
}
