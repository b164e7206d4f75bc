//! Routes, methods, limits and the error shape, on a server with no datasets.

use std::collections::BTreeSet;

use crate::support::*;

fn assert_error_shape(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["error"]["code"], code, "{j}");
    assert!(
        j["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{j}"
    );
    assert!(
        j["error"].get("param").is_some(),
        "param key present (maybe null): {j}"
    );
}

#[test]
fn probes_answer_and_unknown_routes_are_json_404s() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    let live = get(addr, "/livez");
    assert_eq!(live.status, 200);
    assert_eq!(live.json()["status"], "alive");
    wait_ready(addr);
    let health = get(addr, "/healthz").json();
    assert_eq!(health["status"], "ready");
    assert_eq!(health["datasets"], serde_json::json!({}));
    assert_eq!(
        get(addr, "/v1/datasets").json()["datasets"],
        serde_json::json!([])
    );

    for path in [
        "/",
        "/nope",
        "/livez/",
        "/v1/datasets/",
        "/v1/datasets/x/other",
    ] {
        assert_error_shape(&get(addr, path), 404, "route_not_found");
    }
    assert_error_shape(&get(addr, "/v1/datasets/missing"), 404, "dataset_not_found");
    assert_error_shape(
        &get(addr, "/v1/datasets/missing/rows/1"),
        404,
        "dataset_not_found",
    );
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn wrong_methods_get_405_with_allow() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let r = request(addr, method, "/v1/datasets", &[("Content-Length", "0")]);
        assert_error_shape(&r, 405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn head_has_headers_and_no_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    let got = get(addr, "/openapi.json");
    let head = request(addr, "HEAD", "/openapi.json", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn oversized_uri_and_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &["--max-uri-bytes", "100", "--max-header-bytes", "2048"],
    );
    let addr = server.local_addr();
    let long = format!("/v1/datasets?{}", "a".repeat(200));
    assert_error_shape(&get(addr, &long), 414, "uri_too_long");
    // Over --max-header-bytes: our JSON 431 naming the flag.
    let big = "b".repeat(3000);
    let r = get_with(addr, "/livez", &[("X-Big", &big)]);
    assert_error_shape(&r, 431, "header_too_large");
    assert!(r.text().contains("--max-header-bytes"), "{}", r.text());
    // Just under it: answered.
    let fits = "b".repeat(1800);
    assert_eq!(get_with(addr, "/livez", &[("X-Big", &fits)]).status, 200);
    // Far over it (past hyper's own limit, twice ours plus 8 KiB): hyper's bodiless 431.
    let huge = "b".repeat(40_000);
    let r = get_with(addr, "/livez", &[("X-Big", &huge)]);
    assert_eq!(r.status, 431);
    // Malformed request line: hyper answers 400 and the server keeps serving.
    let r = raw(addr, b"GARBAGE\r\n\r\n");
    assert_eq!(r.status, 400);
    assert_eq!(get(addr, "/livez").status, 200);
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn openapi_document_lists_exactly_the_routes() {
    let doc: serde_json::Value = serde_json::from_str(quarry_server::OPENAPI_JSON).unwrap();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let documented: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // `/metrics` is served on the admin port only, so the API port's document omits it.
    let routed: BTreeSet<&str> = quarry_server::routes::TEMPLATES
        .iter()
        .copied()
        .filter(|t| *t != "/metrics")
        .collect();
    assert_eq!(documented, routed);
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(item.get("get").is_some(), "{path} documents GET");
    }
    // And it is what the server serves.
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let served = get(server.local_addr(), "/openapi.json").json();
    assert_eq!(served, doc);
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn metrics_are_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    assert_eq!(get(addr, "/nope").status, 404);
    let m = get(server.admin_addr(), "/metrics");
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(
        text.contains("quarry_http_requests_total{route=\"unknown\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE quarry_http_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.contains("process_cpu_seconds_total "), "{text}");
    assert!(text.trim_end().ends_with("# EOF"));
    server.shutdown();
    server.join().unwrap();
}

/// A `%` not followed by two hex digits in a path segment is a 400
/// naming the segment, never decoded literally.
#[test]
fn malformed_percent_escapes_in_path_segments_are_400s() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    wait_ready(addr);
    for (path, param) in [
        ("/v1/datasets/a%ZZ", "name"),
        ("/v1/datasets/a%", "name"),
        ("/v1/datasets/a%2/rows", "name"),
        ("/v1/datasets/%G1/rows/1", "name"),
        ("/v1/datasets/t/columns/c%4", "col"),
    ] {
        let r = get(addr, path);
        assert_error_shape(&r, 400, "bad_encoding");
        assert_eq!(r.json()["error"]["param"], param, "{path}");
    }
    // Well-formed escapes decode as before: an unknown dataset, named decoded.
    let r = get(addr, "/v1/datasets/a%25b");
    assert_error_shape(&r, 404, "dataset_not_found");
    assert!(r.text().contains("a%b"), "{}", r.text());
    server.shutdown();
    server.join().unwrap();
}

/// Each loop keeps its own handles on the per-route series; the exported counts are still the
/// totals over every loop, one series per (route, status) actually seen.
#[test]
fn request_counts_add_up_across_loops() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--threads", "2"]);
    let addr = server.local_addr();
    wait_ready(addr);
    let sent = [
        ("/livez", "/livez", 200, 7),
        ("/nope", "unknown", 404, 5),
        ("/v1/datasets/missing", "/v1/datasets/{name}", 404, 3),
        ("/v1/datasets", "/v1/datasets", 200, 4),
    ];
    for (path, _, status, n) in sent {
        for _ in 0..n {
            assert_eq!(get(addr, path).status, status, "{path}");
        }
    }
    let text = get(server.admin_addr(), "/metrics").text();
    for (_, route, status, n) in sent {
        let line =
            format!("quarry_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Latency is observed once per request, per route (unknown + dataset 404s included).
    for (route, n) in [
        ("/livez", 7),
        ("unknown", 5),
        ("/v1/datasets/{name}", 3),
        ("/v1/datasets", 4),
    ] {
        let line = format!("quarry_http_request_duration_seconds_count{{route=\"{route}\"}} {n}");
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // No series for statuses never answered.
    assert!(!text.contains("route=\"/livez\",status=\"404\""), "{text}");
    server.shutdown();
    server.join().unwrap();
}
