//! Every route over real HTTP against datasets built by the real quarry-etl from CSV and JSON
//! Lines. Expected values come from the generated table (tests/src/data.rs), never from the
//! server's own output.

use std::path::{Path, PathBuf};

use quarry_tests::data::{Cell, Table};
use quarry_tests::{pct, temp_dir, Rng, Server};
use serde_json::{json, Value as Json};

use crate::fixtures::{build_csv, parse_csv, people, words};

/// The expected JSON object of one row (all columns).
fn row_object(t: &Table, row: &[Cell]) -> Json {
    let mut m = serde_json::Map::new();
    for (c, v) in t.cols.iter().zip(row) {
        m.insert(c.name.clone(), v.to_json());
    }
    Json::Object(m)
}

fn rows_of(body: &Json) -> Vec<Json> {
    body["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows array in {body}"))
        .clone()
}

/// Follows `next` cursors from `first_target` to the end; returns all rows and the page count.
pub fn walk(server: &Server, base: &str, query: &str) -> (Vec<Json>, usize) {
    let mut out = Vec::new();
    let mut pages = 0;
    let mut target = if query.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{query}")
    };
    loop {
        let r = server.get(&target);
        assert_eq!(r.status, 200, "GET {target}: {}", r.text());
        let body = r.json();
        out.extend(rows_of(&body));
        pages += 1;
        assert!(pages < 100_000, "cursor walk does not end");
        match body["next"].as_str() {
            None => {
                assert!(
                    body["next"].is_null(),
                    "next must be a string or null: {body}"
                );
                return (out, pages);
            }
            Some(c) => {
                let sep = if query.is_empty() { "" } else { "&" };
                target = format!("{base}?{query}{sep}cursor={}", pct(c));
            }
        }
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    table: Table,
    server: Server,
}

fn setup(n: usize) -> Fixture {
    let (mut rng, _) = Rng::from_env(11);
    let table = people(&mut rng, n);
    let (dir, data) = build_in_data_dir(&table, "people");
    // The same rows as JSON Lines, schema inferred, key given on the command line.
    let jsonl = dir.path().join("people.jsonl");
    table.write_jsonl(&jsonl);
    quarry_tests::etl_build(
        &jsonl,
        &data,
        "people_json",
        &["--key", "id", "--row-group-rows", "100"],
    );
    let mut server = Server::start(&data);
    server.wait_ready();
    Fixture {
        _dir: dir,
        data,
        table,
        server,
    }
}

/// `table` built by quarry-etl into `<temp>/data/<name>.qry`; the temp dir and the data dir.
fn build_in_data_dir(table: &Table, name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    build_csv(table, dir.path(), &data, name, &[]);
    (dir, data)
}

fn file_version(path: &Path) -> String {
    let f = quarry_format::read_file(path).expect("reading the built file");
    f.version().to_hex()
}

#[test]
fn datasets_list_and_detail_describe_the_built_files() {
    let f = setup(500);
    let r = f.server.get("/v1/datasets");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    let list = r.json();
    let items = list["datasets"].as_array().expect("datasets array");
    let mut names: Vec<&str> = items.iter().filter_map(|d| d["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["people", "people_json"]);
    for name in ["people", "people_json"] {
        let d = f.server.get(&format!("/v1/datasets/{name}"));
        assert_eq!(d.status, 200);
        let d = d.json();
        let in_list = items.iter().find(|i| i["name"] == name).expect("listed");
        assert_eq!(&d, in_list, "detail and list entry differ for {name}");
        assert_eq!(d["rows"], json!(f.table.rows.len()));
        assert_eq!(d["key"], json!("id"));
        let path = f.data.join(format!("{name}.qry"));
        assert_eq!(d["version"], json!(file_version(&path)));
        assert_eq!(
            d["bytes"],
            json!(std::fs::metadata(&path).expect("stat").len())
        );
        let expected_groups = f
            .table
            .rows
            .len()
            .div_ceil(if name == "people" { 256 } else { 100 });
        assert_eq!(d["row_groups"], json!(expected_groups));
        let cols: Vec<(String, String)> = d["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or("").to_string(),
                    c["type"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = f
            .table
            .cols
            .iter()
            .map(|c| (c.name.clone(), c.ty.name().to_string()))
            .collect();
        assert_eq!(cols, want, "{name} columns");
        let key_col = &d["columns"][0];
        assert_eq!(
            key_col["nullable"],
            json!(false),
            "the key column is not nullable"
        );
    }
    let missing = f.server.get("/v1/datasets/nope");
    assert_eq!(missing.status, 404);
    assert!(!missing.error_code().is_empty());
}

#[test]
fn point_lookups_hit_miss_and_bad_keys() {
    let f = setup(400);
    let (mut rng, _) = Rng::from_env(5);
    for _ in 0..60 {
        let row = rng.pick(&f.table.rows).clone();
        let Cell::Int(id) = row[0] else {
            unreachable!()
        };
        for ds in ["people", "people_json"] {
            let r = f.server.get(&format!("/v1/datasets/{ds}/rows/{id}"));
            assert_eq!(r.status, 200, "{ds} key {id}: {}", r.text());
            assert_eq!(r.json(), row_object(&f.table, &row), "{ds} key {id}");
        }
    }
    // Keys that are not there: between two keys (ids are multiples of 7 shifted), below, above.
    for miss in ["1", "-99999999", "99999999", "9223372036854775807"] {
        let r = f.server.get(&format!("/v1/datasets/people/rows/{miss}"));
        assert_eq!(r.status, 404, "key {miss}: {}", r.text());
        assert!(r.json()["error"]["message"].is_string());
    }
    for bad in ["abc", "1.5", "99999999999999999999", "%FF"] {
        let r = f.server.get(&format!("/v1/datasets/people/rows/{bad}"));
        assert_eq!(r.status, 400, "key {bad}: {}", r.text());
        assert_eq!(r.error_param().as_deref(), Some("key"), "key {bad}");
    }
    let r = f.server.get("/v1/datasets/nope/rows/1");
    assert_eq!(r.status, 404);
}

#[test]
fn cursor_walks_return_every_row_once_in_key_order() {
    let f = setup(700);
    let want: Vec<Json> = f
        .table
        .default_order()
        .into_iter()
        .map(|i| row_object(&f.table, &f.table.rows[i]))
        .collect();
    for ds in ["people", "people_json"] {
        let base = format!("/v1/datasets/{ds}/rows");
        // Default limit (100 unless configured): 7 pages.
        let (rows, pages) = walk(&f.server, &base, "");
        quarry_tests::assert_rows_eq(&rows, &want, &format!("{ds}: default page walk"));
        assert_eq!(pages, 7);
        for limit in [1, 37, 256, 700, 10_000] {
            let (rows, pages) = walk(&f.server, &base, &format!("limit={limit}"));
            quarry_tests::assert_rows_eq(&rows, &want, &format!("{ds} limit {limit}"));
            assert!(
                pages >= want.len().div_ceil(limit),
                "{ds} limit {limit}: {pages} pages"
            );
        }
    }
    let r = f.server.get("/v1/datasets/people/rows?limit=0");
    assert_eq!(r.status, 200);
    assert_eq!(rows_of(&r.json()).len(), 0);
}

/// A reference predicate over the generated cells for the operators tested below.
fn check_filter(f: &Fixture, query: &str, pred: impl Fn(&[Cell]) -> bool) {
    let want: Vec<Json> = f
        .table
        .default_order()
        .into_iter()
        .filter(|&i| pred(&f.table.rows[i]))
        .map(|i| row_object(&f.table, &f.table.rows[i]))
        .collect();
    let (got, _) = walk(
        &f.server,
        "/v1/datasets/people/rows",
        &format!("{query}&limit=113"),
    );
    quarry_tests::assert_rows_eq(&got, &want, query);
    // Prefer: count=exact gives the total of matching rows.
    let r = f.server.get_with(
        &format!("/v1/datasets/people/rows?{query}&limit=5"),
        &[("Prefer", "count=exact")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["total"], json!(want.len()), "{query}: total");
}

#[test]
fn filters_of_every_operator_match_a_reference() {
    let f = setup(600);
    let age = |r: &[Cell]| {
        if let Cell::Int(v) = r[2] {
            Some(v)
        } else {
            None
        }
    };
    let name = |r: &[Cell]| {
        if let Cell::Str(s) = &r[1] {
            Some(s.clone())
        } else {
            None
        }
    };
    let id = |r: &[Cell]| {
        if let Cell::Int(v) = r[0] {
            v
        } else {
            unreachable!()
        }
    };
    let active = |r: &[Cell]| {
        if let Cell::Bool(b) = r[4] {
            Some(b)
        } else {
            None
        }
    };
    check_filter(&f, "age=eq.30", |r| age(r) == Some(30));
    check_filter(&f, "age=neq.30", |r| age(r).is_some_and(|v| v != 30));
    check_filter(&f, "age=gt.100", |r| age(r).is_some_and(|v| v > 100));
    check_filter(&f, "age=gte.100", |r| age(r).is_some_and(|v| v >= 100));
    check_filter(&f, "age=lt.-40", |r| age(r).is_some_and(|v| v < -40));
    check_filter(&f, "age=lte.-40", |r| age(r).is_some_and(|v| v <= -40));
    check_filter(&f, "age=gte.10&age=lt.20", |r| {
        age(r).is_some_and(|v| (10..20).contains(&v))
    });
    check_filter(&f, "age=in.(1,2,3,50)", |r| {
        age(r).is_some_and(|v| [1, 2, 3, 50].contains(&v))
    });
    check_filter(&f, "age=not.in.(1,2,3,50)", |r| {
        age(r).is_some_and(|v| ![1, 2, 3, 50].contains(&v))
    });
    check_filter(&f, "age=is.null", |r| age(r).is_none());
    check_filter(&f, "age=not.is.null", |r| age(r).is_some());
    check_filter(&f, "age=not.eq.30", |r| age(r).is_some_and(|v| v != 30));
    check_filter(&f, "id=gte.0&id=lt.700", |r| (0..700).contains(&id(r)));
    check_filter(&f, "id=eq.-1100", |r| id(r) == -1100);
    check_filter(&f, "id=in.(-1100,-1093,5,-1800)", |r| {
        [-1100, -1093, -1800].contains(&id(r))
    });
    check_filter(&f, "name=eq.alpha", |r| name(r).as_deref() == Some("alpha"));
    check_filter(&f, &format!("name=eq.{}", pct("a,b")), |r| {
        name(r).as_deref() == Some("a,b")
    });
    check_filter(
        &f,
        &format!("name=in.({},{})", pct("\"a,b\""), pct("café")),
        |r| matches!(name(r).as_deref(), Some("a,b" | "café")),
    );
    check_filter(&f, "name=like.*ta", |r| {
        name(r).is_some_and(|s| s.ends_with("ta"))
    });
    check_filter(&f, "name=like.a*", |r| {
        name(r).is_some_and(|s| s.starts_with('a'))
    });
    check_filter(&f, "name=ilike.a*", |r| {
        name(r).is_some_and(|s| s.to_lowercase().starts_with('a'))
    });
    check_filter(&f, "name=not.like.*a*", |r| {
        name(r).is_some_and(|s| !s.contains('a'))
    });
    check_filter(&f, "name=gt.m", |r| {
        name(r).is_some_and(|s| s.as_str() > "m")
    });
    check_filter(&f, "active=is.true", |r| active(r) == Some(true));
    check_filter(&f, "active=eq.false", |r| active(r) == Some(false));
    check_filter(
        &f,
        "born=gte.2000-01-01",
        |r| matches!(r[5], Cell::Date(d) if d >= 10_957),
    );
    check_filter(
        &f,
        "seen=lt.1970-01-01T00:00:00Z",
        |r| matches!(r[6], Cell::Ts(t) if t < 0),
    );
    check_filter(
        &f,
        "score=gt.0.5",
        |r| matches!(r[3], Cell::Float(x) if x > 0.5),
    );
}

#[test]
fn select_and_order_shape_the_rows() {
    let f = setup(300);
    let (rows, _) = walk(
        &f.server,
        "/v1/datasets/people/rows",
        "select=name,id&limit=50",
    );
    let want: Vec<Json> = f
        .table
        .default_order()
        .into_iter()
        .map(|i| json!({"name": f.table.rows[i][1].to_json(), "id": f.table.rows[i][0].to_json()}))
        .collect();
    quarry_tests::assert_rows_eq(&rows, &want, "select=name,id");
    // Output column order follows select=.
    let r = f
        .server
        .get("/v1/datasets/people/rows?select=name,id&limit=1");
    // serde_json sorts object keys, so check the order on the wire.
    let text = r.text();
    let (n, i) = (text.find("\"name\":"), text.find("\"id\":"));
    assert!(
        n.is_some() && i.is_some() && n < i,
        "select=name,id must put name first: {text}"
    );
}

#[test]
fn order_desc_with_nulls_last_and_ties_by_key() {
    let f = setup(500);
    let mut idx = f.table.default_order();
    // Stable sort keeps key order among ties; nulls last.
    idx.sort_by(|&a, &b| match (&f.table.rows[a][2], &f.table.rows[b][2]) {
        (Cell::Int(x), Cell::Int(y)) => y.cmp(x),
        (Cell::Null, Cell::Null) => std::cmp::Ordering::Equal,
        (Cell::Null, _) => std::cmp::Ordering::Greater,
        (_, Cell::Null) => std::cmp::Ordering::Less,
        _ => unreachable!(),
    });
    let want: Vec<Json> = idx
        .iter()
        .map(|&i| json!({"id": f.table.rows[i][0].to_json(), "age": f.table.rows[i][2].to_json()}))
        .collect();
    let (got, _) = walk(
        &f.server,
        "/v1/datasets/people/rows",
        "select=id,age&order=age.desc&limit=41",
    );
    quarry_tests::assert_rows_eq(&got, &want, "order=age.desc");
}

#[test]
fn accept_ndjson_and_csv_carry_the_same_rows() {
    let f = setup(260);
    let want: Vec<&Vec<Cell>> = f
        .table
        .default_order()
        .into_iter()
        .map(|i| &f.table.rows[i])
        .collect();
    let target = "/v1/datasets/people/rows?limit=1000";
    let nd = f
        .server
        .get_with(target, &[("Accept", "application/x-ndjson")]);
    assert_eq!(nd.status, 200);
    assert!(nd
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-ndjson")));
    let lines: Vec<Json> = nd
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson line"))
        .collect();
    let want_json: Vec<Json> = want.iter().map(|r| row_object(&f.table, r)).collect();
    quarry_tests::assert_rows_eq(&lines, &want_json, "ndjson");

    let csv = f.server.get_with(target, &[("Accept", "text/csv")]);
    assert_eq!(csv.status, 200);
    assert!(csv
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/csv")));
    let parsed = parse_csv(&csv.text());
    let header: Vec<Option<String>> = f.table.cols.iter().map(|c| Some(c.name.clone())).collect();
    assert_eq!(parsed[0], header);
    let body: Vec<Vec<Option<String>>> = want
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| {
                    c.text().map(|t| match c {
                        Cell::Float(x) if x.is_finite() => {
                            // Compare floats by value below; keep text for others.
                            t
                        }
                        _ => t,
                    })
                })
                .collect()
        })
        .collect();
    assert_eq!(parsed.len() - 1, body.len());
    for (got, want) in parsed[1..].iter().zip(&body) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            if let (Some(g), Some(w), Cell::Float(_)) = (g, w, &f.table.rows[0][i].clone()) {
                let gv: f64 = g.parse().unwrap_or_else(|_| panic!("csv float {g:?}"));
                let wv: f64 = w.parse().expect("float");
                assert_eq!(gv.to_bits(), wv.to_bits(), "csv float column {i}");
            } else {
                assert_eq!(g, w, "csv column {i}");
            }
        }
    }
    // A q-valued list picks the best available; an unknown type is 406.
    let q = f
        .server
        .get_with(target, &[("Accept", "text/html;q=0.9, text/csv;q=0.5")]);
    assert_eq!(q.status, 200);
    assert!(q
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/csv")));
    let r = f.server.get_with(target, &[("Accept", "image/png")]);
    assert_eq!(r.status, 406, "{}", r.text());
}

#[test]
fn errors_name_their_parameter() {
    let f = setup(50);
    let base = "/v1/datasets/people/rows";
    for (query, status, param) in [
        ("nosuchcol=eq.1", 400, Some("nosuchcol")),
        ("age=eq.notanint", 400, Some("age")),
        ("age=wat.1", 400, Some("age")),
        ("age=in.(1,2", 400, Some("age")),
        ("limit=-1", 400, Some("limit")),
        ("limit=abc", 400, Some("limit")),
        ("limit=10001", 400, Some("limit")),
        ("order=nosuch.asc", 400, Some("order")),
        ("select=nosuch", 400, Some("select")),
        ("cursor=garbage", 400, Some("cursor")),
        ("born=eq.2020-13-45", 400, Some("born")),
        ("name=like", 400, Some("name")),
        ("age=like.1*", 400, Some("age")),
    ] {
        let r = f.server.get(&format!("{base}?{query}"));
        assert_eq!(r.status, status, "{query}: {}", r.text());
        assert_eq!(r.error_param().as_deref(), param, "{query}: {}", r.text());
        let e = &r.json()["error"];
        assert!(
            e["code"].as_str().is_some_and(|c| !c.is_empty())
                && e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{query}"
        );
    }
    let r = f.server.get("/no/such/route");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_object());
    let r = quarry_tests::http::request(
        f.server.addr,
        "POST",
        "/v1/datasets",
        &[("Content-Length", "0")],
    )
    .expect("POST");
    assert_eq!(r.status, 405);
    assert!(
        r.header("allow").is_some_and(|a| a.contains("GET")),
        "405 needs Allow"
    );
    // A cursor from another dataset version is refused as stale (409).
    let page = f.server.get(&format!("{base}?limit=5")).json();
    let cursor = page["next"].as_str().expect("next").to_string();
    let (ver, rest) = cursor.split_once('.').expect("versioned cursor");
    let other: String = ver
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let r = f
        .server
        .get(&format!("{base}?limit=5&cursor={other}.{}", pct(rest)));
    assert_eq!(r.status, 409, "{}", r.text());
}

#[test]
fn etag_and_if_none_match_give_304() {
    let f = setup(80);
    let Cell::Int(some_id) = f.table.rows[17][0] else {
        unreachable!()
    };
    let lookup = format!("/v1/datasets/people/rows/{some_id}");
    for target in [
        "/v1/datasets",
        "/v1/datasets/people",
        "/v1/datasets/people/rows?age=gt.3&limit=7",
        lookup.as_str(),
    ] {
        let r = f.server.get(target);
        assert_eq!(r.status, 200, "{target}");
        let tag = r
            .header("etag")
            .unwrap_or_else(|| panic!("{target}: no ETag"))
            .to_string();
        let again = f.server.get_with(target, &[("If-None-Match", &tag)]);
        assert_eq!(again.status, 304, "{target}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), Some(tag.as_str()));
        let other = f
            .server
            .get_with(target, &[("If-None-Match", "\"not-it\"")]);
        assert_eq!(other.status, 200, "{target}");
        assert_eq!(other.body, r.body);
    }
    let a = f
        .server
        .get("/v1/datasets/people/rows?limit=7")
        .header("etag")
        .map(str::to_string);
    let b = f
        .server
        .get("/v1/datasets/people/rows?limit=8")
        .header("etag")
        .map(str::to_string);
    assert_ne!(a, b, "different queries need different ETags");
    let c = f
        .server
        .get_with(
            "/v1/datasets/people/rows?limit=7",
            &[("Accept", "text/csv")],
        )
        .header("etag")
        .map(str::to_string);
    assert_ne!(a, c, "the ETag must vary with Accept");
}

#[test]
fn probes_metrics_and_openapi() {
    let f = setup(30);
    let r = f.server.get("/livez");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"status": "alive"}));
    let h = f.server.get("/healthz");
    assert_eq!(h.status, 200);
    let h = h.json();
    assert_eq!(h["status"], "ready");
    for ds in ["people", "people_json"] {
        assert_eq!(h["datasets"][ds]["state"], "ready", "{h}");
        assert_eq!(
            h["datasets"][ds]["version"],
            json!(file_version(&f.data.join(format!("{ds}.qry"))))
        );
    }
    // Requests so far show up in the metrics.
    let Cell::Int(some_id) = f.table.rows[3][0] else {
        unreachable!()
    };
    for _ in 0..3 {
        assert_eq!(
            f.server
                .get(&format!("/v1/datasets/people/rows/{some_id}"))
                .status,
            200
        );
    }
    // Metrics live on the admin port only; the API port answers 404 like any unknown path.
    assert_eq!(f.server.get("/metrics").status, 404);
    let m = f.server.get_admin("/metrics");
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain") || c.contains("openmetrics")));
    let text = m.text();
    assert!(text.contains("# TYPE"), "not Prometheus text: {text}");
    assert!(
        text.contains("/v1/datasets/{name}/rows/{key}"),
        "no per-route request metric: {text}"
    );
    let o = f.server.get("/openapi.json");
    assert_eq!(o.status, 200);
    let doc = o.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')));
    for path in [
        "/livez",
        "/healthz",
        "/v1/datasets",
        "/v1/datasets/{name}",
        "/v1/datasets/{name}/rows",
        "/v1/datasets/{name}/rows/{key}",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "openapi.json lacks {path}"
        );
    }
    // The loop runs the driver the environment allows: epoll when forced (scripts/test.sh runs
    // the suite twice) or when the kernel refuses io_uring_setup, io_uring otherwise.
    let logs = f.server.logs_text();
    let expected =
        if quarry_tests::server::epoll_forced() || !quarry_tests::server::io_uring_allowed() {
            "epoll"
        } else {
            "io_uring"
        };
    assert!(
        logs.contains(&format!("\"driver\":\"{expected}\"")),
        "expected the {expected} driver (forced epoll: {})\n{logs}",
        quarry_tests::server::epoll_forced()
    );
    // The driver the log names is the one /metrics reports, with the reason in the log line.
    let driver = expected;
    let gauge = format!("quarry_io_driver{{driver=\"{driver}\"}} 1\n");
    assert!(text.contains(&gauge), "no `{gauge}` in /metrics:\n{text}");
    let reason = match (driver, quarry_tests::server::epoll_forced()) {
        ("epoll", true) => "\"reason\":\"forced",
        ("epoll", false) => "\"reason\":\"io_uring refused",
        _ => "\"reason\":\"allowed",
    };
    assert!(logs.contains(reason), "no {reason} in the logs\n{logs}");
    // The test's data directory is a temporary directory on a read-write filesystem.
    assert!(
        logs.contains("the data directory is on a read-write mount"),
        "no read-write mount warning\n{logs}"
    );
    // HEAD: same status and headers, no body.
    let head = quarry_tests::http::request(f.server.addr, "HEAD", "/v1/datasets/people", &[])
        .expect("HEAD");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn raw_int64_column_bytes_are_the_keys_in_order() {
    let f = setup(600);
    let keys: Vec<i64> = f
        .table
        .default_order()
        .into_iter()
        .map(|i| {
            if let Cell::Int(v) = f.table.rows[i][0] {
                v
            } else {
                0
            }
        })
        .collect();
    // Across row groups (256 rows each).
    let r = f
        .server
        .get("/v1/datasets/people/columns/id?offset=200&limit=100");
    assert_eq!(r.status, 200, "{}", r.text());
    let got: Vec<i64> = r
        .body
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    assert_eq!(got, keys[200..300]);
    let r = f.server.get("/v1/datasets/people/columns/nosuch");
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn limit_flags_are_enforced() {
    let (mut rng, _) = Rng::from_env(12);
    let table = people(&mut rng, 1000);
    let (_dir, data) = build_in_data_dir(&table, "people");
    let opts = quarry_tests::ServerOptions::default().args([
        "--default-limit",
        "7",
        "--max-limit",
        "50",
        "--max-scan-rows",
        "300",
    ]);
    let mut server = Server::start_with(&data, opts);
    server.wait_ready();
    let r = server.get("/v1/datasets/people/rows");
    assert_eq!(r.status, 200);
    assert_eq!(rows_of(&r.json()).len(), 7, "--default-limit 7");
    let r = server.get("/v1/datasets/people/rows?limit=51");
    assert_eq!(r.status, 400, "--max-limit 50: {}", r.text());
    assert_eq!(r.error_param().as_deref(), Some("limit"));
    // A filter that matches nothing and that zone maps cannot prune ("bb" sorts between the
    // names of every row group) must examine every row: more than --max-scan-rows.
    let r = server.get("/v1/datasets/people/rows?name=eq.bb&limit=5");
    assert_eq!(r.status, 422, "--max-scan-rows 300: {}", r.text());
    let r = server.get("/v1/datasets/people/rows?select=count()");
    assert_eq!(
        r.status,
        422,
        "an aggregate over 1000 rows with --max-scan-rows 300: {}",
        r.text()
    );
    // A key lookup examines one row.
    let Cell::Int(id) = table.rows[0][0] else {
        unreachable!()
    };
    assert_eq!(
        server
            .get(&format!("/v1/datasets/people/rows?id=eq.{id}"))
            .status,
        200
    );
}

/// `--threads 2`: two loops on one port (SO_REUSEPORT); every connection is served correctly.
#[test]
fn two_loops_serve_the_same_answers() {
    let (mut rng, _) = Rng::from_env(13);
    let table = people(&mut rng, 300);
    let (_dir, data) = build_in_data_dir(&table, "people");
    let mut server = Server::start_with(
        &data,
        quarry_tests::ServerOptions::default().args(["--threads", "2"]),
    );
    server.wait_ready();
    for row in table.rows.iter().take(40) {
        let Cell::Int(id) = row[0] else {
            unreachable!()
        };
        let r = server.get(&format!("/v1/datasets/people/rows/{id}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), row_object(&table, row));
    }
    // Readiness is the same on every loop: 40 fresh connections all see ready.
    for _ in 0..40 {
        assert_eq!(server.get("/healthz").status, 200);
    }
    server.assert_healthy_process();
}

/// Raw utf8 reads: for plain-encoded chunks, `offsets` + `values` rebuild the strings and
/// `validity` bits (from `Quarry-Bit-Offset`) match the nulls; dictionary-encoded chunks (the
/// file says which, read with quarry-format) are refused with 400 `dictionary_encoded`.
#[test]
fn raw_utf8_offsets_values_and_validity_rebuild_the_column() {
    let (mut rng, _) = Rng::from_env(14);
    let table = words(&mut rng, 600);
    let (_dir, data) = build_in_data_dir(&table, "words");
    let file = quarry_format::read_file(&data.join("words.qry")).expect("open");
    let mut server = Server::start(&data);
    server.wait_ready();
    let order = table.default_order();
    let (offset, limit) = (10usize, 20usize);
    let mut plain_checked = 0;
    for name in ["k", "body", "grp"] {
        let col = table.col_index(name);
        let base = format!("/v1/datasets/words/columns/{name}?offset={offset}&limit={limit}");
        if matches!(
            file.chunk_meta(0, col).encoding,
            quarry_format::Encoding::Dictionary
        ) {
            // Covered by raw_read_of_a_dictionary_chunk_is_a_400_naming_the_column.
            continue;
        }
        plain_checked += 1;
        let offs = server.get(&format!("{base}&part=offsets"));
        assert_eq!(offs.status, 200, "{name}: {}", offs.text());
        let end: usize = offs
            .header("quarry-row-end")
            .and_then(|v| v.parse().ok())
            .expect("Quarry-Row-End");
        assert_eq!(
            end,
            offset + limit,
            "rows 10..30 lie in the first 256-row group"
        );
        let o: Vec<u64> = offs
            .body
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        assert_eq!(o.len(), limit + 1);
        let vals = server.get(&format!("{base}&part=values"));
        assert_eq!(vals.status, 200);
        assert_eq!(vals.body.len() as u64, o[limit] - o[0]);
        let validity = server.get(&format!("{base}&part=validity"));
        assert_eq!(validity.status, 200);
        let bit0: usize = validity
            .header("quarry-bit-offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for i in 0..limit {
            let want = &table.rows[order[offset + i]][col];
            let valid = if validity.body.is_empty() {
                true
            } else {
                let bit = bit0 + i;
                validity.body[bit / 8] >> (bit % 8) & 1 == 1
            };
            let s = &vals.body[(o[i] - o[0]) as usize..(o[i + 1] - o[0]) as usize];
            match want {
                Cell::Str(w) => {
                    assert!(valid, "{name} row {}: validity says null", offset + i);
                    assert_eq!(
                        std::str::from_utf8(s).expect("utf8"),
                        w,
                        "{name} row {}",
                        offset + i
                    );
                }
                Cell::Null => assert!(
                    !valid,
                    "{name} row {}: validity says valid for a null",
                    offset + i
                ),
                _ => unreachable!(),
            }
        }
        // Issue #23: the header counts the nulls of the rows returned, not of the row group.
        let nulls = (0..limit)
            .filter(|&i| matches!(table.rows[order[offset + i]][col], Cell::Null))
            .count();
        assert_eq!(
            validity
                .header("quarry-null-count")
                .and_then(|v| v.parse::<usize>().ok()),
            Some(nulls),
            "{name}: Quarry-Null-Count of rows {offset}..{}",
            offset + limit
        );
    }
    eprintln!("raw utf8: {plain_checked} plain columns rebuilt");
    assert!(
        plain_checked > 0,
        "no plain utf8 column in the fixture: the test tests nothing"
    );
}

/// A raw read of a dictionary-encoded chunk is a 400 `dictionary_encoded` naming the column
/// (the codes alone mean nothing to a client).
#[test]
fn raw_read_of_a_dictionary_chunk_is_a_400_naming_the_column() {
    let (mut rng, _) = Rng::from_env(14);
    let table = words(&mut rng, 600);
    let (_dir, data) = build_in_data_dir(&table, "words");
    let file = quarry_format::read_file(&data.join("words.qry")).expect("open");
    let grp = table.col_index("grp");
    assert!(
        matches!(
            file.chunk_meta(0, grp).encoding,
            quarry_format::Encoding::Dictionary
        ),
        "five distinct values in 256 rows should be dictionary-encoded"
    );
    let mut server = Server::start(&data);
    server.wait_ready();
    let r = server.get("/v1/datasets/words/columns/grp?limit=5&part=values");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "dictionary_encoded");
    assert!(r.text().contains(r#""param":"col""#), "{}", r.text());
}

/// A cell as pyarrow_client.py prints it: dates and timestamps as their raw Arrow integers.
fn arrow_cell(c: &Cell) -> Json {
    match c {
        Cell::Date(d) => json!(d),
        Cell::Ts(t) => json!(t),
        other => other.to_json(),
    }
}

/// Runs tests/oracle/pyarrow_client.py on `url`: what pyarrow decodes from the Arrow stream.
fn read_with_pyarrow(url: &str) -> Json {
    let python = std::env::var("QUARRY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("oracle")
        .join("pyarrow_client.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python:?} (needs Python 3 with pyarrow; scripts/test.sh installs it): {e}")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pyarrow_client.py {url} failed ({}): {stdout}{} -- this is a failure, not a skip: \
         pyarrow in QUARRY_TEST_PYTHON's environment (scripts/test.sh makes a venv from \
         tests/requirements.txt)",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("pyarrow_client.py output: {e}: {stdout}"))
}

#[test]
fn arrow_stream_reads_in_pyarrow_with_every_type_and_null() {
    let f = setup(900);
    let t = &f.table;
    let base = format!("http://{}/v1/datasets/people/rows", f.server.addr);
    let arrow_type = |ty: quarry_tests::data::Ty| match ty {
        quarry_tests::data::Ty::Bool => "bool",
        quarry_tests::data::Ty::Int64 => "int64",
        quarry_tests::data::Ty::Float64 => "double",
        quarry_tests::data::Ty::Utf8 => "string",
        quarry_tests::data::Ty::Date => "date32[day]",
        quarry_tests::data::Ty::Timestamp => "timestamp[us, tz=UTC]",
    };

    // Every row and column.
    let got = read_with_pyarrow(&format!("{base}?limit=900"));
    // Every Arrow field is declared nullable (query/src/arrow_out.rs), the key included.
    let want_schema: Vec<Json> = t
        .cols
        .iter()
        .map(|c| json!([c.name, arrow_type(c.ty), true]))
        .collect();
    assert_eq!(got["schema"], Json::Array(want_schema), "{got}");
    let want: Vec<Json> = t
        .default_order()
        .into_iter()
        .map(|i| Json::Array(t.rows[i].iter().map(arrow_cell).collect()))
        .collect();
    let rows = got["rows"].as_array().expect("rows").clone();
    quarry_tests::assert_rows_eq(&rows, &want, "pyarrow: all rows");
    assert!(
        t.rows.iter().any(|r| r.contains(&Cell::Null)),
        "the fixture should hold nulls"
    );

    // A filter and a projection: only the selected columns, in the order asked.
    let (id, seen, score, active) = (
        t.col_index("id"),
        t.col_index("seen"),
        t.col_index("score"),
        t.col_index("active"),
    );
    let got = read_with_pyarrow(&format!(
        "{base}?select=seen,score,id&active=is.true&limit=900"
    ));
    let names: Vec<&str> = got["schema"]
        .as_array()
        .expect("schema")
        .iter()
        .map(|f| f[0].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["seen", "score", "id"]);
    let want: Vec<Json> = t
        .default_order()
        .into_iter()
        .filter(|&i| t.rows[i][active] == Cell::Bool(true))
        .map(|i| {
            let r = &t.rows[i];
            json!([
                arrow_cell(&r[seen]),
                arrow_cell(&r[score]),
                arrow_cell(&r[id])
            ])
        })
        .collect();
    assert!(!want.is_empty());
    let rows = got["rows"].as_array().expect("rows").clone();
    quarry_tests::assert_rows_eq(&rows, &want, "pyarrow: filtered and selected");

    // No rows: a stream with the schema and no batches still reads.
    let got = read_with_pyarrow(&format!("{base}?id=eq.-999999999"));
    assert_eq!(got["rows"], json!([]));
    assert_eq!(got["schema"].as_array().map(Vec::len), Some(t.cols.len()));
}
