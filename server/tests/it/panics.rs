//! Issue #20 item 4: a panic while answering one request is contained (cargo feature
//! `fault-injection`, enabled for these tests only: `x-quarry-fault: <stage>` panics there).

use crate::support::*;

fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let text = get(addr, "/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[test]
fn a_panicking_request_gets_500_and_the_loop_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    write_people(dir.path(), "people", &people(3000), 500);
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    wait_ready(addr);
    let admin = server.admin_addr();
    let before = metric(admin, "quarry_request_panics_total");

    // In the synchronous handler and inside a scan (after a yield): 500 with the JSON body.
    for (path, stage) in [
        ("/v1/datasets/people/rows/3", "handler"),
        ("/v1/datasets/people", "handler"),
        ("/v1/datasets/people/rows?limit=10&order=score.desc", "scan"),
        ("/v1/datasets/people/rows?select=name,count()", "scan"),
    ] {
        let r = get_with(addr, path, &[("x-quarry-fault", stage)]);
        assert_eq!(r.status, 500, "{path} ({stage}): {}", r.text());
        assert_eq!(r.error_code(), "internal", "{path}");
        // The same loop answers the next request on a new connection.
        assert_eq!(get(addr, "/livez").status, 200);
        assert_eq!(get(addr, "/v1/datasets/people/rows/3").status, 200);
    }
    // In the body, after the head is sent: the connection is aborted, the loop goes on.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    std::io::Write::write_all(
        &mut s,
        b"GET /v1/datasets/people/rows?limit=1000 HTTP/1.1\r\nHost: t\r\nx-quarry-fault: body\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut got);
    let text = String::from_utf8_lossy(&got);
    // The head goes out with the first frame, so the client sees nothing or a cut-off body,
    // never a complete response.
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a complete chunked body: {text}"
    );

    assert_eq!(get(addr, "/livez").status, 200);
    let r = get(addr, "/v1/datasets/people/rows?limit=5");
    assert_eq!(r.status, 200, "{}", r.text());
    let after = metric(admin, "quarry_request_panics_total");
    assert_eq!(after - before, 5.0, "panics counted");
    server.shutdown();
    server.join().unwrap();
}
