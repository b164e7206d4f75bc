//! Hostile HTTP: malformed request lines, oversized heads and URIs, bad percent-encoding,
//! invalid UTF-8, unknown methods, slowloris connections and a thousand idle connections. The
//! server must answer a clear 4xx (or 501/505 for what HTTP/1.1 says so) or close, keep
//! answering /livez within a bound, keep its memory bounded, and never panic.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use quarry_tests::http::{raw_exchange, raw_status};
use quarry_tests::{temp_dir, Rng, Server, ServerOptions};

use crate::fixtures::{build_csv, people};

/// Generous: the loop is single-threaded and must not be starved by bad clients. This is a
/// liveness bound, not a speed measurement.
const LIVEZ_BOUND: Duration = Duration::from_secs(5);

/// A server with `--header-read-timeout header_timeout`.
fn start(header_timeout: &str) -> (tempfile::TempDir, Server) {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (mut rng, _) = Rng::from_env(1);
    let t = people(&mut rng, 300);
    build_csv(&t, dir.path(), &data, "people", &[]);
    let mut server = Server::start_with(
        &data,
        ServerOptions::default().args([
            "--header-read-timeout",
            header_timeout,
            "--idle-timeout",
            "30s",
        ]),
    );
    server.wait_ready();
    (dir, server)
}

fn livez_within(server: &Server, bound: Duration) {
    let t0 = Instant::now();
    let r =
        quarry_tests::http::request(server.addr, "GET", "/livez", &[]).expect("/livez must answer");
    assert_eq!(r.status, 200);
    let took = t0.elapsed();
    assert!(took < bound, "/livez took {took:?} (bound {bound:?})");
}

/// Each case: raw bytes, and the statuses that are acceptable (empty: only a close is).
fn cases() -> Vec<(String, Vec<u8>, &'static [u16])> {
    const BAD: &[u16] = &[400];
    const BAD_OR_VERSION: &[u16] = &[400, 505];
    const METHOD: &[u16] = &[400, 405, 501];
    let mut v: Vec<(String, Vec<u8>, &'static [u16])> = vec![
        ("garbage line".into(), b"GARBAGE\r\n\r\n".to_vec(), BAD),
        ("method only".into(), b"GET\r\n\r\n".to_vec(), BAD),
        ("no version".into(), b"GET /livez\r\n\r\n".to_vec(), BAD_OR_VERSION),
        ("HTTP/9.9".into(), b"GET /livez HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), BAD_OR_VERSION),
        ("HTTP/2 preface".into(), b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), BAD_OR_VERSION),
        ("extra token".into(), b"GET /livez HTTP/1.1 extra\r\nHost: x\r\n\r\n".to_vec(), BAD_OR_VERSION),
        ("double space".into(), b"GET  /livez HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), BAD),
        ("NUL in target".into(), b"GET /li\0vez HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), BAD),
        ("header without colon".into(), b"GET /livez HTTP/1.1\r\nHost x\r\n\r\n".to_vec(), BAD),
        ("space before colon".into(), b"GET /livez HTTP/1.1\r\nHost : x\r\n\r\n".to_vec(), BAD),
        ("control char in header".into(), b"GET /livez HTTP/1.1\r\nX-A: a\x01b\r\n\r\n".to_vec(), BAD),
        ("bare LF line endings".into(), b"GET /v1/datasets/nope HTTP/1.1\nHost: x\n\n".to_vec(), &[400, 404]),
        ("obs-fold header".into(), b"GET /livez HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n".to_vec(), &[400, 200]),
        ("binary junk".into(), (0u8..=255).rev().cycle().take(3000).collect(), BAD_OR_VERSION),
        ("CL and TE together".into(), b"GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), &[400, 200]),
        ("negative CL".into(), b"GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(), BAD),
        ("two different CL".into(), b"GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(), BAD),
        ("bad chunk size".into(), b"GET /livez HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nab\r\n0\r\n\r\n".to_vec(), &[400, 200]),
        ("unknown method".into(), b"FOO /livez HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), METHOD),
        ("DELETE".into(), b"DELETE /v1/datasets/people HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[405]),
        ("PUT with body".into(), b"PUT /v1/datasets/people HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".to_vec(), &[405]),
        ("POST rows".into(), b"POST /v1/datasets/people/rows HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(), &[405]),
        ("TRACE".into(), b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[404, 405]),
        ("CONNECT".into(), b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".to_vec(), &[400, 404, 405]),
        ("OPTIONS *".into(), b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[400, 404, 405]),
        ("lowercase method".into(), b"get /livez HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), METHOD),
        ("absolute-form target".into(), b"GET http://x/livez HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[200, 400]),
        ("relative target".into(), b"GET livez HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[400, 404]),
        ("dot segments".into(), b"GET /v1/datasets/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[400, 404]),
        ("encoded slash in name".into(), b"GET /v1/datasets/..%2F..%2Fetc%2Fpasswd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[400, 404]),
        ("percent invalid UTF-8 value".into(), b"GET /v1/datasets/people/rows?name=eq.%C3%28 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), BAD),
        ("percent invalid UTF-8 name".into(), b"GET /v1/datasets/people/rows?%FF=eq.1 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), BAD),
        ("percent invalid UTF-8 key".into(), b"GET /v1/datasets/people/rows/%E0%A4 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), BAD),
        ("percent invalid UTF-8 dataset".into(), b"GET /v1/datasets/%FF%FE/rows HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), BAD),
        ("raw invalid UTF-8 in path".into(), b"GET /v1/datasets/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[400, 404]),
        ("raw invalid UTF-8 in query".into(), b"GET /v1/datasets/people/rows?name=eq.\xc3\x28 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), BAD),
        ("raw invalid UTF-8 in header".into(), b"GET /v1/datasets/people/rows HTTP/1.1\r\nHost: x\r\nAccept: \xff\xfe\r\n\r\n".to_vec(), &[400, 406]),
        ("huge limit".into(), b"GET /v1/datasets/people/rows?limit=99999999999999999999999 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), BAD),
        ("deep in-list".into(), format!("GET /v1/datasets/people/rows?age=in.({}) HTTP/1.1\r\nHost: x\r\n\r\n", vec!["1"; 2000].join(",")).into_bytes(), &[200, 400]),
        ("unbalanced quotes in-list".into(), b"GET /v1/datasets/people/rows?name=in.(%22a,b) HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), BAD),
        ("many filters".into(), format!("GET /v1/datasets/people/rows?{} HTTP/1.1\r\nHost: x\r\n\r\n", vec!["age=gt.1"; 700].join("&")).into_bytes(), &[200, 400, 414]),
        ("pathological like".into(), format!("GET /v1/datasets/people/rows?name=like.{}b HTTP/1.1\r\nHost: x\r\n\r\n", "*a".repeat(1000)).into_bytes(), &[200, 400]),
        ("huge Accept".into(), format!("GET /v1/datasets/people/rows HTTP/1.1\r\nHost: x\r\nAccept: {}\r\n\r\n", "text/x;q=0.1,".repeat(900)).into_bytes(), &[200, 406, 400, 431]),
        ("bad q-value".into(), b"GET /v1/datasets/people/rows HTTP/1.1\r\nHost: x\r\nAccept: text/csv;q=abc\r\n\r\n".to_vec(), &[200, 400, 406]),
        ("If-None-Match junk".into(), b"GET /v1/datasets HTTP/1.1\r\nHost: x\r\nIf-None-Match: \xff\"\"\"\r\n\r\n".to_vec(), &[200, 400]),
        ("Range junk on column".into(), b"GET /v1/datasets/people/columns/id HTTP/1.1\r\nHost: x\r\nRange: bytes=999999-1\r\n\r\n".to_vec(), &[200, 206, 400, 416]),
        ("column offset overflow".into(), b"GET /v1/datasets/people/columns/id?offset=18446744073709551615&limit=18446744073709551615 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[200, 400, 416]),
    ];
    // Oversized URI (limit 8192) and heads (limit 16384).
    v.push((
        "URI 9000 bytes".into(),
        format!(
            "GET /livez?{} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(9000)
        )
        .into_bytes(),
        &[414, 400, 431],
    ));
    v.push((
        "URI 200 KB".into(),
        format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(200_000)).into_bytes(),
        &[414, 400, 431],
    ));
    v.push((
        "header 20 KB".into(),
        format!(
            "GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "b".repeat(20_000)
        )
        .into_bytes(),
        &[431, 400],
    ));
    v.push((
        "500 headers".into(),
        format!(
            "GET /livez HTTP/1.1\r\nHost: x\r\n{}\r\n",
            "X-H: v\r\n".repeat(500)
        )
        .into_bytes(),
        &[431, 400],
    ));
    v.push((
        "head 1 MB".into(),
        format!(
            "GET /livez HTTP/1.1\r\nHost: x\r\n{}\r\n",
            "X-H: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n".repeat(20_000)
        )
        .into_bytes(),
        &[431, 400],
    ));
    v
}

#[test]
fn malformed_requests_get_4xx_or_close_and_never_crash() {
    let (_dir, mut server) = start("2s");
    let rss0 = server.rss_kib();
    let mut report = Vec::new();
    let mut problems = Vec::new();
    let all = cases();
    for (name, bytes, ok) in &all {
        let out = raw_exchange(server.addr, bytes, Duration::from_secs(5)).unwrap_or_default();
        let status = raw_status(&out);
        match status {
            None if out.is_empty() => report.push(format!("{name}: closed")),
            None => problems.push(format!(
                "{name}: non-HTTP reply {:?}",
                String::from_utf8_lossy(&out[..out.len().min(80)])
            )),
            Some(s) if ok.contains(&s) => report.push(format!("{name}: {s}")),
            Some(s) => problems.push(format!(
                "{name}: status {s} not in {ok:?}: {}",
                String::from_utf8_lossy(&out[..out.len().min(300)])
            )),
        }
        if let Some(s) = status {
            // Error answers carry the JSON error body when they come from our code.
            if s >= 500 && s != 505 && s != 501 {
                problems.push(format!("{name}: 5xx {s}"));
            }
        }
        server.assert_alive();
        livez_within(&server, LIVEZ_BOUND);
    }
    server.assert_healthy_process();
    let rss1 = server.rss_kib();
    eprintln!(
        "hostile: {} cases; rss {rss0} -> {rss1} KiB\n  {}",
        all.len(),
        report.join("\n  ")
    );
    assert!(
        problems.is_empty(),
        "{} hostile cases misbehaved:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        rss1 < rss0 + 64 * 1024,
        "RSS grew from {rss0} to {rss1} KiB"
    );
}

/// Slowloris: connections that trickle a request head byte by byte are closed after
/// --header-read-timeout, while /livez keeps answering.
#[test]
fn slowloris_connections_are_cut_and_livez_answers() {
    let (_dir, mut server) = start("2s");
    let mut conns: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).expect("connect");
            s.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
                .expect("write");
            s.set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
            s
        })
        .collect();
    let t0 = Instant::now();
    let mut closed = vec![false; conns.len()];
    // Trickle one header byte per connection every 200 ms for up to 12 s.
    while t0.elapsed() < Duration::from_secs(12) && closed.iter().any(|c| !c) {
        for (i, s) in conns.iter_mut().enumerate() {
            if closed[i] {
                continue;
            }
            if s.write_all(b"X").is_err() {
                closed[i] = true;
                continue;
            }
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(0) => closed[i] = true,
                Ok(n) => {
                    // A 408 (or 400) then close is fine; a 200 would mean no timeout.
                    let st = raw_status(&buf[..n]);
                    assert!(
                        matches!(st, Some(408 | 400)),
                        "slow connection got {:?}",
                        String::from_utf8_lossy(&buf[..n])
                    );
                    closed[i] = true;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => closed[i] = true,
            }
        }
        livez_within(&server, LIVEZ_BOUND);
        std::thread::sleep(Duration::from_millis(200));
    }
    let n_closed = closed.iter().filter(|c| **c).count();
    eprintln!(
        "slowloris: {n_closed}/{} trickling connections closed by the server within {:?}",
        conns.len(),
        t0.elapsed()
    );
    assert_eq!(
        n_closed,
        conns.len(),
        "slowloris connections outlived --header-read-timeout 2s by 10 s"
    );
    server.assert_healthy_process();
}

/// A thousand idle connections (no bytes sent) do not stop /livez or real queries, the
/// server's RSS stays bounded, and its descriptors are released when the clients go away.
#[test]
fn a_thousand_idle_connections_do_not_starve_the_loop() {
    // The connections must outlive the connects and probes on a loaded machine: the header
    // timeout (tested on its own above) would otherwise close them before they are counted.
    let (_dir, mut server) = start("60s");
    let rss0 = server.rss_kib();
    let fds0 = server.open_fds();
    let conns: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    // Half of them start a request and stop mid-head.
    for s in conns.iter().step_by(2) {
        let _ = (&*s).write_all(b"GET /v1/datasets HTTP/1.1\r\n");
    }
    for _ in 0..20 {
        livez_within(&server, LIVEZ_BOUND);
        let r = server.get("/v1/datasets/people/rows?limit=3");
        assert_eq!(r.status, 200);
    }
    let rss1 = server.rss_kib();
    let fds1 = server.open_fds();
    drop(conns);
    // Descriptors come back (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.open_fds() > fds0 + 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let fds2 = server.open_fds();
    eprintln!("idle connections: 1000; fds {fds0} -> {fds1} -> {fds2}; rss {rss0} -> {rss1} KiB");
    assert!(
        fds1 >= fds0 + 900,
        "the server did not hold the connections ({fds0} -> {fds1}): test is not testing"
    );
    assert!(fds2 <= fds0 + 20, "descriptors leaked: {fds0} -> {fds2}");
    // 1000 idle connections: well under 64 KiB each.
    assert!(
        rss1 < rss0 + 64 * 1024,
        "RSS grew from {rss0} to {rss1} KiB for 1000 idle connections"
    );
    server.assert_healthy_process();
}

/// A `%` not followed by two hex digits is malformed (RFC 3986 2.1): 400 naming the parameter,
/// as invalid UTF-8 after decoding already is.
#[test]
fn invalid_percent_escapes_are_400_naming_the_parameter() {
    let (_dir, mut server) = start("2s");
    for q in [
        "name=eq.%ZZ",
        "name=eq.%",
        "name=eq.a%2",
        "name=like.%G1*",
        "n%ZZame=eq.a",
    ] {
        let r = server.get(&format!("/v1/datasets/people/rows?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert!(r.error_param().is_some(), "{q}: no param in {}", r.text());
    }
    server.assert_healthy_process();
}
