//! Issue #23 over real HTTP: cursors bound to their query (`/v1` and `/rest`), and the PostgREST
//! face (`/rest/{table}`) driven by the real Python `postgrest` client from PyPI, every answer
//! checked against DuckDB on the same CSV (tests/oracle/postgrest_client.py).
//!
//! Data: examples/flights/flights.csv (real flights with nulls in several columns), built by
//! the real quarry-etl.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use quarry_tests::{pct, temp_dir, Server};
use serde_json::Value as Json;

fn flights_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join("flights")
        .join("flights.csv")
}

struct Fixture {
    _dir: tempfile::TempDir,
    server: Server,
}

fn setup() -> Fixture {
    let dir = temp_dir();
    let data = dir.path().join("data");
    quarry_tests::etl_build(
        &flights_csv(),
        &data,
        "flights",
        &["--key", "flight_id", "--row-group-rows", "1000"],
    );
    let mut server = Server::start(&data);
    server.wait_ready();
    Fixture { _dir: dir, server }
}

/// The reproduction: `?cursor=<next>` alone used to answer 200 with 100 rows that
/// ignored the filters and the select. Now it continues the query that made the cursor, and a
/// cursor sent with another query is a 400 naming the parameter that differs.
#[test]
fn a_cursor_alone_continues_its_query_and_a_changed_query_is_refused() {
    let f = setup();
    let base = "/v1/datasets/flights/rows";
    let query = "origin=eq.JFK&dep_delay=gt.200&select=flight_id,dep_delay&limit=3";
    let all = f
        .server
        .get(&format!(
            "{base}?origin=eq.JFK&dep_delay=gt.200&select=flight_id,dep_delay&limit=1000"
        ))
        .json();
    let want: Vec<Json> = all["rows"].as_array().expect("rows").clone();
    assert!(
        want.len() > 6,
        "the example needs several pages: {}",
        want.len()
    );

    let mut got: Vec<Json> = Vec::new();
    let mut target = format!("{base}?{query}");
    for _ in 0..1000 {
        let r = f.server.get(&target);
        assert_eq!(r.status, 200, "GET {target}: {}", r.text());
        let body = r.json();
        let rows = body["rows"].as_array().expect("rows");
        assert!(
            rows.len() <= 3,
            "the cursor keeps its query (limit=3, the filters): {} rows",
            rows.len()
        );
        got.extend(rows.iter().cloned());
        match body["next"].as_str() {
            Some(c) => target = format!("{base}?cursor={}", pct(c)),
            None => break,
        }
    }
    assert_eq!(
        got, want,
        "following `next` alone visits every row exactly once"
    );

    let first = f.server.get(&format!("{base}?{query}")).json();
    let cursor = pct(first["next"].as_str().expect("next"));
    for (changed, param) in [
        (
            "origin=eq.LGA&dep_delay=gt.200&select=flight_id,dep_delay",
            "origin",
        ),
        ("origin=eq.JFK&dep_delay=gt.200&select=flight_id", "select"),
        ("origin=eq.JFK&select=flight_id,dep_delay", "dep_delay"),
        (
            "origin=eq.JFK&dep_delay=gt.200&select=flight_id,dep_delay&order=dep_delay",
            "order",
        ),
    ] {
        let r = f.server.get(&format!("{base}?{changed}&cursor={cursor}"));
        assert_eq!(r.status, 400, "{changed}: {}", r.text());
        assert_eq!(r.error_code(), "cursor_mismatch", "{changed}");
        assert_eq!(
            r.error_param().as_deref(),
            Some(param),
            "{changed}: {}",
            r.text()
        );
    }
    // The same query (parameters in another order) and another page size are accepted.
    let r = f.server.get(&format!(
        "{base}?select=flight_id,dep_delay&dep_delay=gt.200&origin=eq.JFK&limit=2&cursor={cursor}"
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows"], Json::Array(want[3..5].to_vec()));
}

/// Multi-column order in /v1, walked with cursors alone, equals one big page of the same
/// order, every row once.
#[test]
fn multi_column_order_pages_with_cursors() {
    let f = setup();
    let base = "/v1/datasets/flights/rows";
    let q = "select=flight_id,origin,dep_delay&order=origin.desc,dep_delay.desc.nullsfirst,flight_id&date=eq.2013-01-03";
    let whole = f.server.get(&format!("{base}?{q}&limit=10000")).json();
    let want = whole["rows"].as_array().expect("rows").clone();
    assert!(want.len() > 500);
    let mut got: Vec<Json> = Vec::new();
    let mut target = format!("{base}?{q}&limit=97");
    loop {
        let body = f.server.get(&target).json();
        got.extend(body["rows"].as_array().expect("rows").iter().cloned());
        match body["next"].as_str() {
            Some(c) => target = format!("{base}?cursor={}", pct(c)),
            None => break,
        }
    }
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    let ids: HashSet<&str> = got.iter().filter_map(|r| r["flight_id"].as_str()).collect();
    assert_eq!(ids.len(), got.len(), "no row twice");
    // The order itself: origin descending, then dep_delay descending with nulls first.
    for w in want.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let (oa, ob) = (a["origin"].as_str(), b["origin"].as_str());
        assert!(oa >= ob, "{a} before {b}");
        if oa == ob {
            match (a["dep_delay"].as_i64(), b["dep_delay"].as_i64()) {
                (Some(x), Some(y)) => assert!(x >= y, "{a} before {b}"),
                (Some(_), None) => panic!("a null after a value in desc.nullsfirst: {a} {b}"),
                _ => {}
            }
        }
    }
}

/// The face's HTTP shape: bare array, Content-Range, Range header, 206, Prefer: count,
/// single objects, the Link cursor, errors as PostgREST objects.
#[test]
fn rest_face_speaks_postgrest_http() {
    let f = setup();
    let s = &f.server;
    let r = s.get_with(
        "/rest/flights?select=flight_id&origin=eq.EWR&order=flight_id",
        &[
            ("Range", "5-9"),
            ("Range-Unit", "items"),
            ("Prefer", "count=exact"),
        ],
    );
    assert_eq!(r.status, 206, "{}", r.text());
    let body = r.json();
    let rows = body.as_array().expect("a bare JSON array");
    assert_eq!(rows.len(), 5);
    let all = s
        .get("/v1/datasets/flights/rows?select=flight_id&origin=eq.EWR&limit=10000")
        .json();
    let all = all["rows"].as_array().expect("rows").clone();
    assert_eq!(rows[..], all[5..10]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("5-9/{}", all.len()).as_str())
    );
    assert_eq!(r.header("preference-applied"), Some("count=exact"));

    // A range wider than --max-limit is served up to it, as PostgREST's max-rows does.
    let r = s.get_with("/rest/flights?select=flight_id", &[("Range", "10-999999")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().as_array().map(Vec::len), Some(10_000));
    assert_eq!(r.header("content-range"), Some("10-10009/*"));
    // No count: the total is `*`, and the status 200.
    let r = s.get("/rest/flights?select=flight_id&limit=2&offset=3");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-range"), Some("3-4/*"));
    // An empty page.
    let r = s.get("/rest/flights?flight_id=eq.nope");
    assert_eq!((r.status, r.text().trim()), (200, "[]"));
    assert_eq!(r.header("content-range"), Some("*/*"));

    // Single object.
    let r = s.get_with(
        "/rest/flights?flight_id=eq.20130101-UA1545-EWR&select=flight_id,dep_delay",
        &[("Accept", "application/vnd.pgrst.object+json")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["flight_id"], "20130101-UA1545-EWR");
    let r = s.get_with(
        "/rest/flights?origin=eq.JFK",
        &[("Accept", "application/vnd.pgrst.object+json")],
    );
    assert_eq!(r.status, 406);
    let e = r.json();
    assert_eq!(e["code"], "PGRST116");
    for k in ["message", "details", "hint"] {
        assert!(e.get(k).is_some(), "PostgREST errors carry {k}: {e}");
    }

    // The Link header's cursor continues the query alone, past the offset bound.
    let r = s.get("/rest/flights?select=flight_id&order=flight_id.desc&limit=4000");
    let link = r.header("link").expect("a Link header").to_string();
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .map(|(t, _)| t.to_string())
        .expect("<target>");
    let page2 = s.get(&next);
    assert_eq!(page2.status, 200, "{next}: {}", page2.text());
    let mut ids: Vec<String> = r
        .json()
        .as_array()
        .expect("array")
        .iter()
        .chain(page2.json().as_array().expect("array"))
        .map(|v| v["flight_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 8000);
    let sorted = {
        let mut v = ids.clone();
        v.sort_by(|a, b| b.cmp(a));
        v
    };
    assert_eq!(ids, sorted);
    ids.dedup();
    assert_eq!(ids.len(), 8000);

    // Offsets past the bound point to cursors.
    let r = s.get("/rest/flights?offset=100001");
    assert_eq!(r.status, 416);
    assert_eq!(r.json()["code"], "PGRST103");
    assert!(r.text().contains("cursor"), "{}", r.text());

    // Writes, RPC, unknown tables.
    let r =
        quarry_tests::http::request(s.addr, "POST", "/rest/flights", &[("Content-Length", "0")])
            .expect("POST");
    assert_eq!((r.status, r.json()["code"].as_str()), (405, Some("25006")));
    let r = s.get("/rest/rpc/f");
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (404, Some("PGRST202"))
    );
    let r = s.get("/rest/nosuch");
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (404, Some("PGRST205"))
    );
}

/// The real `postgrest` client from PyPI, answers checked against DuckDB.
#[test]
fn python_postgrest_client_agrees_with_duckdb() {
    let f = setup();
    let python = std::env::var("QUARRY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("oracle")
        .join("postgrest_client.py");
    let base = format!("http://{}/rest", f.server.addr);
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&base)
        .arg(flights_csv())
        .arg("flights")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python:?} (needs Python 3 with postgrest and duckdb; scripts/test.sh installs them): {e}")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "postgrest_client.py failed ({}):\n{stdout}{}\n-- a failure, not a skip: scripts/test.sh \
         installs the packages into its venv (QUARRY_TEST_PYTHON)",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": 0 failed"), "{stdout}");
}
