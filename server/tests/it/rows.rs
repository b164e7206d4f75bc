//! Point lookups and scans, checked against references computed from the source rows.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use crate::support::*;

/// Days since 1970-01-01 -> (y, m, d) (H. Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn date_str(days: i32) -> String {
    let (y, m, d) = civil(i64::from(days));
    format!("{y:04}-{m:02}-{d:02}")
}

/// "YYYY-MM-DDTHH:MM:SS[.f]Z" -> microseconds since the epoch.
fn parse_ts(s: &str) -> i64 {
    let body = s
        .strip_suffix('Z')
        .unwrap_or_else(|| panic!("timestamp {s:?} does not end in Z"));
    let (date, time) = body.split_once('T').unwrap();
    let days = days_of(date);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let p: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let micros: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}")[..6].parse().unwrap()
    };
    ((days * 24 + p[0]) * 60 + p[1]) * 60_000_000 + p[2] * 1_000_000 + micros
}

fn days_of(date: &str) -> i64 {
    // Inverse by search around the year: small and independent of the server's code.
    let y: i64 = date[..4].parse().unwrap();
    let mut d = (y - 1970) * 365 + (y - 1969) / 4 - 2;
    while date_str(d as i32) != date {
        d += 1;
        assert!(d < (y - 1969) * 366 + 800, "no day for {date}");
    }
    d
}

/// Checks one row object against the source row.
fn assert_row(got: &Json, p: &Person) {
    assert_eq!(got["id"], p.id, "{got}");
    match &p.name {
        Some(n) => assert_eq!(got["name"], n.as_str(), "{got}"),
        None => assert!(got["name"].is_null(), "{got}"),
    }
    match p.score {
        Some(v) => assert_eq!(got["score"].as_f64(), Some(v), "{got}"),
        None => assert!(got["score"].is_null(), "{got}"),
    }
    assert_eq!(got["born"], date_str(p.born), "{got}");
    assert_eq!(got["active"], p.active, "{got}");
    match p.seen {
        Some(v) => assert_eq!(parse_ts(got["seen"].as_str().unwrap()), v, "{got}"),
        None => assert!(got["seen"].is_null(), "{got}"),
    }
    assert_eq!(got.as_object().unwrap().len(), 6, "{got}");
}

fn ids(page: &Json) -> Vec<i64> {
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    server: quarry_server::ServerHandle,
    rows: Vec<Person>,
}

impl Fixture {
    fn new(n: usize, extra: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let rows = people(n);
        write_people(dir.path(), "people", &rows, 256);
        let server = start(dir.path(), extra);
        wait_ready(server.local_addr());
        Fixture {
            _dir: dir,
            server,
            rows,
        }
    }

    fn get(&self, path: &str) -> Resp {
        get(self.server.local_addr(), path)
    }

    fn finish(self) {
        self.server.shutdown();
        self.server.join().unwrap();
    }
}

#[test]
fn point_lookups_match_the_source_rows() {
    let f = Fixture::new(1500, &[]);
    for p in f.rows.iter().step_by(97).chain(f.rows.last()) {
        let r = f.get(&format!("/v1/datasets/people/rows/{}", p.id));
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("etag").is_some());
        assert_row(&r.json(), p);
    }
    for absent in [1, -3, 4, 3 * 1500, i64::MAX] {
        let r = f.get(&format!("/v1/datasets/people/rows/{absent}"));
        assert_eq!(r.status, 404, "{absent}: {}", r.text());
        assert_eq!(r.error_code(), "key_not_found");
    }
    let bad = f.get("/v1/datasets/people/rows/abc");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["param"], "key");
    f.finish();
}

#[test]
fn every_operator_matches_the_reference() {
    let f = Fixture::new(3000, &[]);
    let rows = &f.rows;
    let like_o = |p: &Person| p.name.as_deref().map(|n| n.contains('o'));
    let date = date_str(10_200);
    type Pred<'a> = Box<dyn Fn(&Person) -> bool + 'a>;
    let cases: Vec<(String, Pred<'_>)> = vec![
        ("id=eq.300".into(), Box::new(|p| p.id == 300)),
        ("id=neq.300".into(), Box::new(|p| p.id != 300)),
        ("id=gt.4500".into(), Box::new(|p| p.id > 4500)),
        ("id=gte.4500".into(), Box::new(|p| p.id >= 4500)),
        ("id=lt.30".into(), Box::new(|p| p.id < 30)),
        ("id=lte.30".into(), Box::new(|p| p.id <= 30)),
        (
            "id=in.(0,3,9999,33)".into(),
            Box::new(|p| [0, 3, 9999, 33].contains(&p.id)),
        ),
        (
            "id=not.in.(0,3)".into(),
            Box::new(|p| ![0, 3].contains(&p.id)),
        ),
        (
            "score=lt.0".into(),
            Box::new(|p| p.score.is_some_and(|s| s < 0.0)),
        ),
        (
            "score=gte.250.5".into(),
            Box::new(|p| p.score.is_some_and(|s| s >= 250.5)),
        ),
        ("score=is.null".into(), Box::new(|p| p.score.is_none())),
        ("score=not.is.null".into(), Box::new(|p| p.score.is_some())),
        (
            "name=eq.Oslo".into(),
            Box::new(|p| p.name.as_deref() == Some("Oslo")),
        ),
        (
            "name=neq.Oslo".into(),
            Box::new(|p| p.name.as_deref().is_some_and(|n| n != "Oslo")),
        ),
        (
            "name=like.*o*".into(),
            Box::new(move |p| like_o(p) == Some(true)),
        ),
        (
            "name=not.like.*o*".into(),
            Box::new(move |p| like_o(p) == Some(false)),
        ),
        (
            "name=eq.Quito%2C%20EC".into(),
            Box::new(|p| p.name.as_deref() == Some("Quito, EC")),
        ),
        ("active=eq.true".into(), Box::new(|p| p.active)),
        (format!("born=gte.{date}"), Box::new(|p| p.born >= 10_200)),
        ("seen=is.null".into(), Box::new(|p| p.seen.is_none())),
        (
            "active=eq.false&score=gt.0&name=not.is.null".into(),
            Box::new(|p| !p.active && p.score.is_some_and(|s| s > 0.0) && p.name.is_some()),
        ),
    ];
    for (query, pred) in &cases {
        let r = f.get(&format!("/v1/datasets/people/rows?{query}&limit=10000"));
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        let page = r.json();
        let expected: Vec<i64> = rows.iter().filter(|p| pred(p)).map(|p| p.id).collect();
        assert_eq!(ids(&page), expected, "{query}");
        assert!(page["next"].is_null(), "{query}");
        for row in page["rows"].as_array().unwrap().iter().take(20) {
            let id = row["id"].as_i64().unwrap();
            assert_row(row, &rows[(id / 3) as usize]);
        }
    }
    f.finish();
}

#[test]
fn select_order_limit_and_count() {
    let f = Fixture::new(2000, &[]);
    let page = f
        .get("/v1/datasets/people/rows?select=id,name&id=lt.30")
        .json();
    for (row, p) in page["rows"].as_array().unwrap().iter().zip(&f.rows) {
        let keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(BTreeSet::from_iter(keys), BTreeSet::from(["id", "name"]));
        assert_eq!(row["id"], p.id);
    }
    // Top 7 by score, descending.
    let r = f.get("/v1/datasets/people/rows?score=not.is.null&order=score.desc&limit=7");
    let mut expected: Vec<&Person> = f.rows.iter().filter(|p| p.score.is_some()).collect();
    expected.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap());
    let want: Vec<i64> = expected.iter().take(7).map(|p| p.id).collect();
    assert_eq!(ids(&r.json()), want);
    // Default limit and an exact count.
    let r = get_with(
        f.server.local_addr(),
        "/v1/datasets/people/rows?active=eq.true",
        &[("Prefer", "count=exact")],
    );
    let j = r.json();
    assert_eq!(j["rows"].as_array().unwrap().len(), 100);
    assert_eq!(j["total"], f.rows.iter().filter(|p| p.active).count());
    f.finish();
}

#[test]
fn cursors_walk_every_page_and_link_matches_next() {
    let f = Fixture::new(1000, &[]);
    let addr = f.server.local_addr();
    let mut path = "/v1/datasets/people/rows?score=not.is.null&limit=64".to_string();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = get(addr, &path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let j = r.json();
        seen.extend(ids(&j));
        pages += 1;
        assert!(pages < 100, "pagination does not end");
        match j["next"].as_str() {
            None => {
                assert!(r.header("link").is_none());
                break;
            }
            Some(next) => {
                let link = r.header("link").expect("Link header with a next page");
                let target = link
                    .strip_prefix('<')
                    .and_then(|l| l.split_once(">; rel=\"next\""))
                    .unwrap()
                    .0;
                assert!(target.starts_with("/v1/datasets/people/rows?"), "{link}");
                assert!(target.ends_with(&format!("cursor={next}")), "{link}");
                path = target.to_string();
            }
        }
    }
    let expected: Vec<i64> = f
        .rows
        .iter()
        .filter(|p| p.score.is_some())
        .map(|p| p.id)
        .collect();
    assert_eq!(seen, expected);
    f.finish();
}

#[test]
fn ndjson_and_csv_carry_the_same_rows() {
    let f = Fixture::new(300, &[]);
    let addr = f.server.local_addr();
    let q = "/v1/datasets/people/rows?id=lt.60";
    let expected: Vec<&Person> = f.rows.iter().filter(|p| p.id < 60).collect();
    let nd = get_with(addr, q, &[("Accept", "application/x-ndjson")]);
    assert_eq!(nd.status, 200);
    assert!(nd
        .header("content-type")
        .unwrap()
        .starts_with("application/x-ndjson"));
    let lines: Vec<Json> = nd
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected.len());
    for (l, p) in lines.iter().zip(&expected) {
        assert_row(l, p);
    }
    let csv = get_with(addr, q, &[("Accept", "text/csv")]);
    assert_eq!(csv.status, 200);
    let text = csv.text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,name,score,born,active,seen"));
    assert_eq!(lines.count(), expected.len());
    assert!(text.contains("\"Quito, EC\""), "{text}");
    assert!(text.contains("\"São \"\"Paulo\"\"\""), "{text}");
    let none = get_with(addr, q, &[("Accept", "image/png")]);
    assert_eq!(none.status, 406);
    // Different representations, different tags.
    assert_ne!(nd.header("etag"), csv.header("etag"));
    f.finish();
}

#[test]
fn bad_queries_are_400s_naming_the_parameter() {
    let f = Fixture::new(100, &["--max-limit", "500"]);
    for (query, param) in [
        ("bogus=eq.1", "bogus"),
        ("id=eq.abc", "id"),
        ("id=zz.1", "id"),
        ("select=nope", "select"),
        ("order=nope.asc", "order"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("cursor=%%%", "cursor"),
    ] {
        let r = f.get(&format!("/v1/datasets/people/rows?{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        let j = r.json();
        assert_eq!(j["error"]["param"], param, "{query}: {j}");
    }
    f.finish();
}

#[test]
fn max_scan_rows_ends_runaway_queries() {
    let f = Fixture::new(2000, &["--max-scan-rows", "500"]);
    // "Nowhere" sorts inside every row group's name range (no zone-map pruning), never occurs.
    let r = f.get("/v1/datasets/people/rows?name=eq.Nowhere&limit=10");
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.error_code(), "too_much_work");
    // A key lookup examines few rows and passes.
    assert_eq!(f.get("/v1/datasets/people/rows?id=eq.30").status, 200);
    f.finish();
}
