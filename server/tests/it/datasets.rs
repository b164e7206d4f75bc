//! Metadata endpoints and conditional requests.

use crate::support::*;

#[test]
fn metadata_lists_every_dataset_with_schema() {
    let dir = tempfile::tempdir().unwrap();
    let rows = people(1000);
    write_people(dir.path(), "people", &rows, 300);
    write_people(dir.path(), "few", &rows[..5], 300);
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    wait_ready(addr);
    let list = get(addr, "/v1/datasets").json();
    let names: Vec<&str> = list["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["few", "people"]);
    let one = get(addr, "/v1/datasets/people");
    assert_eq!(one.status, 200);
    let j = one.json();
    assert_eq!(j, list["datasets"][1]);
    assert_eq!(j["rows"], 1000);
    assert_eq!(j["row_groups"], 4);
    assert_eq!(j["key"], "id");
    let file_len = std::fs::metadata(dir.path().join("people.qry"))
        .unwrap()
        .len();
    assert_eq!(j["bytes"], file_len);
    assert_eq!(j["version"].as_str().unwrap().len(), 32);
    let cols: Vec<(String, String, bool)> = j["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["type"].as_str().unwrap().into(),
                c["nullable"].as_bool().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, String, bool)> = people_schema()
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.data_type.name().to_string(), f.nullable))
        .collect();
    assert_eq!(cols, expected);
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn etag_and_if_none_match_give_304() {
    let dir = tempfile::tempdir().unwrap();
    write_people(dir.path(), "people", &people(10), 16);
    let server = start(dir.path(), &["--cache-control", "public, max-age=7"]);
    let addr = server.local_addr();
    wait_ready(addr);
    let first = get(addr, "/v1/datasets/people");
    let tag = first.header("etag").unwrap().to_string();
    assert_eq!(first.header("cache-control"), Some("public, max-age=7"));
    let again = get_with(addr, "/v1/datasets/people", &[("If-None-Match", &tag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(tag.as_str()));
    let other = get_with(
        addr,
        "/v1/datasets/people",
        &[("If-None-Match", "\"something-else\"")],
    );
    assert_eq!(other.status, 200);
    // A different target has a different tag.
    assert_ne!(get(addr, "/v1/datasets").header("etag"), Some(tag.as_str()));
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn metrics_report_datasets_and_work() {
    let dir = tempfile::tempdir().unwrap();
    write_people(dir.path(), "people", &people(700), 256);
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    wait_ready(addr);
    let version = get(addr, "/v1/datasets/people").json()["version"]
        .as_str()
        .unwrap()
        .to_string();
    // A filter no zone map can prune: every row is examined.
    assert_eq!(
        get(addr, "/v1/datasets/people/rows?name=eq.Nowhere").status,
        200
    );
    let m = get(server.admin_addr(), "/metrics").text();
    for line in [
        "quarry_dataset_rows{dataset=\"people\"} 700".to_string(),
        format!("quarry_dataset_version{{dataset=\"people\",version=\"{version}\"}} 1"),
        "quarry_rows_examined_total 700".to_string(),
        "quarry_http_requests_total{route=\"/v1/datasets/{name}/rows\",status=\"200\"} 1"
            .to_string(),
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
    }
    server.shutdown();
    server.join().unwrap();
}

/// The list's query string goes through the one decoder: escaped names decode, and a `%` not
/// followed by two hex digits is 400 `bad_encoding` naming the parameter, not a literal `%`.
#[test]
fn the_list_query_string_is_decoded_like_the_rows_query_string() {
    let dir = tempfile::tempdir().unwrap();
    let rows = people(10);
    write_people(dir.path(), "people", &rows, 300);
    write_people(dir.path(), "few", &rows[..5], 300);
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    wait_ready(addr);
    let r = get(addr, "/v1/datasets?pre%66ix=pe");
    assert_eq!(r.status, 200, "{}", r.text());
    let names: Vec<String> = r.json()["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["people"]);
    let r = get(addr, "/v1/datasets?prefix=%ZZ");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "bad_encoding");
    assert_eq!(r.json()["error"]["param"], "prefix");
    server.shutdown();
    server.join().unwrap();
}
