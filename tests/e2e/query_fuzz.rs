//! Property test: arbitrary query strings (a soup of the query language's own tokens, stray
//! percent signs, quotes and non-ASCII) sent to a live server never produce a 5xx, every error
//! is a JSON error body, and the server stays alive. Bounded: QUARRY_QUERY_FUZZ_CASES (default
//! 600) cases against one server.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use quarry_tests::{temp_dir, Rng, Server};

use crate::fixtures::{build_csv, people, words};

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "id", "name", "age", "score", "active", "born", "seen", "k", "body", "grp", "n", "x", "nosuch",
            "=", "=", "&", "&", ".", ",", "(", ")", "\"", "*", "%", "\\", "+", " ",
            "eq.", "neq.", "gt.", "gte.", "lt.", "lte.", "like.", "ilike.", "in.(", "is.", "not.", "null", "true", "false",
            "select=", "order=", "limit=", "cursor=", ".asc", ".desc", ".nullsfirst", ".nullslast",
            "count()", ".count()", ".sum()", ".avg()", ".min()", ".max()", "()",
            "NaN", "Infinity", "-Infinity", "1e308", "-0", "9223372036854775807", "-9223372036854775808", "99999999999999999999",
            "2024-02-30", "2024-01-31T12:00:00Z", "1970-01-01", "%00", "%FF", "%C3%28", "%E2%82", "%25", "%26", "%3D", "%2C",
        ]).prop_map(str::to_string),
        2 => "[a-z0-9_.-]{1,6}",
        1 => any::<char>().prop_map(|c| c.to_string()),
        1 => "[0-9a-f]{32}\\.[rog]\\.[a-z0-9]{1,6}\\.[0-9]{1,4}",
    ]
}

/// `name=[not.]op.value` pieces with arbitrary values, plus select/order/limit: gets past the
/// parser more often than the token soup.
fn structured() -> impl Strategy<Value = String> {
    let col = prop::sample::select(vec![
        "id", "name", "age", "score", "active", "born", "seen", "k", "body", "grp", "n", "x",
    ]);
    let op = prop::sample::select(vec![
        "eq.",
        "neq.",
        "gt.",
        "gte.",
        "lt.",
        "lte.",
        "like.",
        "ilike.",
        "is.",
        "in.(",
        "not.eq.",
        "not.like.",
        "not.in.(",
        "not.is.",
    ]);
    let filter = (col.clone(), op, prop::collection::vec(token(), 0..3))
        .prop_map(|(c, o, v)| format!("{c}={o}{}", v.concat()));
    let extra = prop_oneof![
        (
            col.clone(),
            prop::sample::select(vec![
                "",
                ".asc",
                ".desc",
                ".desc.nullsfirst",
                ".sum().desc",
                ".count()"
            ])
        )
            .prop_map(|(c, d)| format!("order={c}{d}")),
        prop::collection::vec(
            (
                col,
                prop::sample::select(vec!["", ".sum()", ".avg()", ".min()", ".max()", ".count()"])
            ),
            1..4
        )
        .prop_map(|v| format!(
            "select={}",
            v.iter()
                .map(|(c, a)| format!("{c}{a}"))
                .collect::<Vec<_>>()
                .join(",")
        )),
        (0u64..20_000).prop_map(|n| format!("limit={n}")),
    ];
    (
        prop::collection::vec(filter, 0..4),
        prop::collection::vec(extra, 0..3),
    )
        .prop_map(|(f, e)| {
            let mut parts = f;
            parts.extend(e);
            parts.join("&")
        })
}

fn query_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(token(), 0..14).prop_map(|t| t.concat()),
        structured()
    ]
}

/// Keeps URI-legal ASCII (including a raw `%`, to test bad escapes), percent-encodes the rest.
fn encode_for_uri(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?%".contains(c) {
            out.push(c);
        } else {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

#[test]
fn arbitrary_query_strings_never_5xx() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (mut rng, _) = Rng::from_env(4242);
    build_csv(&people(&mut rng, 500), dir.path(), &data, "people", &[]);
    build_csv(&words(&mut rng, 300), dir.path(), &data, "words", &[]);
    let mut server = Server::start(&data);
    server.wait_ready();
    let cases: u32 = std::env::var("QUARRY_QUERY_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let addr = server.addr;
    let mut statuses = std::collections::BTreeMap::new();
    let stats = std::cell::RefCell::new(&mut statuses);
    let result = runner.run(
        &(query_string(), any::<bool>(), 0usize..8),
        |(qs, on_words, route)| {
            let ds = if on_words { "words" } else { "people" };
            let enc = encode_for_uri(&qs);
            let target = match route {
                0..=5 => format!("/v1/datasets/{ds}/rows?{enc}"),
                6 => format!(
                    "/v1/datasets/{ds}/rows/{}",
                    if enc.is_empty() {
                        "x".into()
                    } else {
                        enc.replace(['/', '?'], "_")
                    }
                ),
                _ => format!(
                    "/v1/datasets/{ds}/columns/{}",
                    if enc.is_empty() {
                        "x".into()
                    } else {
                        enc.replace(['/', '?'], "_")
                    }
                ),
            };
            let r = quarry_tests::http::request(
                addr,
                "GET",
                &target,
                &[("Accept", "application/json, text/csv;q=0.5")],
            )
            .map_err(|e| TestCaseError::fail(format!("GET {target}: no response: {e}")))?;
            *stats.borrow_mut().entry(r.status).or_insert(0u32) += 1;
            prop_assert!(
                r.status < 500,
                "GET {} -> {} {}",
                target,
                r.status,
                r.text()
            );
            if r.status >= 400 {
                let j: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| {
                    TestCaseError::fail(format!(
                        "GET {target}: error body is not JSON ({e}): {}",
                        r.text()
                    ))
                })?;
                prop_assert!(
                    j["error"]["code"].is_string() && j["error"]["message"].is_string(),
                    "GET {}: bad error body {}",
                    target,
                    j
                );
            }
            Ok(())
        },
    );
    server.assert_healthy_process();
    eprintln!("query fuzz: {cases} cases, statuses {statuses:?}");
    if let Err(e) = result {
        panic!("{e}");
    }
}
