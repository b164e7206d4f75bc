//! Zero-downtime data swaps: new versions, new and removed datasets, bad files, in-flight
//! requests keeping their version.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::*;

fn version(addr: std::net::SocketAddr, name: &str) -> Option<String> {
    let r = get(addr, &format!("/v1/datasets/{name}"));
    (r.status == 200).then(|| r.json()["version"].as_str().unwrap().to_string())
}

#[test]
fn sighup_swaps_versions_adds_and_removes_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let old_rows = people(500);
    write_people(dir.path(), "people", &old_rows, 128);
    write_people(dir.path(), "gone", &old_rows[..3], 128);
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    wait_ready(addr);
    let v1 = version(addr, "people").unwrap();
    let page = get(addr, "/v1/datasets/people/rows?limit=10").json();
    let cursor = page["next"].as_str().unwrap().to_string();
    let tag = get(addr, "/v1/datasets/people/rows/3")
        .header("etag")
        .unwrap()
        .to_string();

    // New version with other rows, a new dataset, a removed one.
    let mut new_rows = people(40);
    for p in &mut new_rows {
        p.name = Some("renamed".into());
    }
    write_people(dir.path(), "people", &new_rows, 128);
    write_people(dir.path(), "fresh", &new_rows[..2], 128);
    std::fs::remove_file(dir.path().join("gone.qry")).unwrap();
    server.reload();
    wait_until("the new version serves", || {
        version(addr, "people").is_some_and(|v| v != v1)
    });

    assert_eq!(get(addr, "/v1/datasets/people").json()["rows"], 40);
    assert_eq!(
        get(addr, "/v1/datasets/people/rows/3").json()["name"],
        "renamed"
    );
    assert!(version(addr, "fresh").is_some());
    assert_eq!(get(addr, "/v1/datasets/gone").status, 404);
    // A cursor of the old version is refused clearly.
    let stale = get(
        addr,
        &format!("/v1/datasets/people/rows?limit=10&cursor={cursor}"),
    );
    assert_eq!(stale.status, 409, "{}", stale.text());
    assert_eq!(stale.error_code(), "stale_cursor");
    // The old ETag no longer matches.
    let r = get_with(
        addr,
        "/v1/datasets/people/rows/3",
        &[("If-None-Match", &tag)],
    );
    assert_eq!(r.status, 200);
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn a_bad_new_file_leaves_the_old_version_serving() {
    let dir = tempfile::tempdir().unwrap();
    write_people(dir.path(), "people", &people(100), 64);
    let server = start(dir.path(), &["--reload-interval", "50ms"]);
    let addr = server.local_addr();
    wait_ready(addr);
    let v1 = version(addr, "people").unwrap();
    let tmp = dir.path().join(".bad.tmp");
    std::fs::write(&tmp, b"QUARRY? no").unwrap();
    std::fs::rename(&tmp, dir.path().join("people.qry")).unwrap();
    // Picked up by polling, no signal.
    wait_until("the failure is reported", || {
        get(addr, "/healthz").json()["datasets"]["people"]["state"] == "failed"
    });
    let h = get(addr, "/healthz");
    assert_eq!(
        h.status, 200,
        "a failed reload does not make the pod unready"
    );
    assert_eq!(h.json()["datasets"]["people"]["version"], v1.as_str());
    assert_eq!(version(addr, "people"), Some(v1));
    assert_eq!(get(addr, "/v1/datasets/people/rows/3").status, 200);
    let metrics = get(server.admin_addr(), "/metrics").text();
    assert!(
        metrics.contains("quarry_dataset_reload_failures_total{dataset=\"people\"} 1"),
        "{metrics}"
    );
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn in_flight_requests_finish_on_the_version_they_started_with() {
    let dir = tempfile::tempdir().unwrap();
    let old_rows = people(20_000);
    write_people(dir.path(), "people", &old_rows, 4096);
    let server = start(dir.path(), &["--max-limit", "20000"]);
    let addr = server.local_addr();
    wait_ready(addr);
    let v1 = version(addr, "people").unwrap();

    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /v1/datasets/people/rows?limit=20000 HTTP/1.1\r\nHost: t\r\nAccept: application/x-ndjson\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    buf.truncate(n);

    write_people(dir.path(), "people", &people(5), 4096);
    server.reload();
    wait_until("the new version serves", || {
        version(addr, "people").is_some_and(|v| v != v1)
    });

    s.read_to_end(&mut buf).unwrap();
    let resp = parse(&buf, false);
    assert_eq!(resp.status, 200);
    let ids: Vec<i64> = resp
        .text()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let want: Vec<i64> = old_rows.iter().map(|p| p.id).collect();
    assert_eq!(ids, want);
    server.shutdown();
    server.join().unwrap();
}
