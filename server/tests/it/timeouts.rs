//! Issue #20 item 3: `--response-timeout` ends a response that is not finished in time, even
//! when `--write-timeout` would wait longer (the client reads nothing, so writes stall).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn a_response_past_its_deadline_is_aborted() {
    let dir = tempfile::tempdir().unwrap();
    // 2M rows: the raw `id` column is 16 MB, more than both ends' socket buffers hold.
    write_people(dir.path(), "people", &people(2_000_000), 1 << 20);
    let server = start(
        dir.path(),
        &["--write-timeout", "60s", "--response-timeout", "1s"],
    );
    let addr = server.local_addr();
    wait_ready(addr);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /v1/datasets/people/columns/id HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 256];
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let n = s.read(&mut head).unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));
    let stalled_at = Instant::now();
    // Read nothing until the server says it aborted the response.
    let aborted = || {
        get(server.admin_addr(), "/metrics")
            .text()
            .lines()
            .find_map(|l| {
                l.strip_prefix("quarry_http_responses_aborted_total{reason=\"response_timeout\"} ")
            })
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    wait_until("the response is aborted", || aborted().is_some());
    assert_eq!(aborted(), Some(1.0));
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        n + rest.len() < 16_000_000,
        "the whole body arrived: the response was not aborted"
    );
    assert!(stalled_at.elapsed() < Duration::from_secs(30));
    assert_eq!(get(addr, "/livez").status, 200);
    server.shutdown();
    server.join().unwrap();
}
