//! Arbitrary query strings and Accept headers never make the engine panic: they parse into an
//! error, or run to completion through Scan and every encoder.

mod common;

use common::*;
use proptest::prelude::*;
use quarry_query::{negotiate, parse_rows_query, Encoder, Limits, OutputFormat, Scan};

/// Fragments users (and attackers) type, glued at random.
fn query_string() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        proptest::sample::select(
            &[
                "id",
                "g",
                "s",
                "x",
                "f",
                "b",
                "d",
                "t",
                "select",
                "order",
                "limit",
                "cursor",
                "=",
                "&",
                ".",
                ",",
                "(",
                ")",
                "\"",
                "\\",
                "%",
                "%2",
                "%FF",
                "%22",
                "+",
                "*",
                "not.",
                "eq.",
                "neq.",
                "gt.",
                "lte.",
                "in.(",
                "is.",
                "null",
                "true",
                "like.",
                "ilike.",
                "count()",
                ".sum()",
                ".avg()",
                ".min()",
                ".max()",
                ".count()",
                "asc",
                "desc",
                "nullsfirst",
                "0",
                "-1",
                "5",
                "1.5",
                "NaN",
                "2024-01-01",
                "2024-01-01T00:00:00Z",
                "99999999999999999999",
                "é",
            ][..]
        )
        .prop_map(str::to_string),
        "[ -~]{0,4}",
    ];
    proptest::collection::vec(frag, 0..16).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        .. ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_queries_never_panic(q in query_string(), accept in "[ -~]{0,30}", budget in 0u64..50) {
        let rows: Vec<Vec<RV>> = (0..40i64)
            .map(|i| vec![
                RV::I(i * 3),
                if i % 5 == 0 { RV::Null } else { RV::S(["a", "b", "é"][(i % 3) as usize].into()) },
                RV::S(format!("s{i}")),
                RV::I(i % 7 - 3),
                RV::F(if i % 9 == 0 { f64::NAN } else { i as f64 / 3.0 }),
                RV::B(i % 2 == 0),
                RV::D(i as i32 * 40),
                RV::T(i * 86_400_000_000),
            ])
            .collect();
        let ds = build(rows, 7, true);
        let limits = Limits { max_scan_rows: 100, ..Limits::default() };
        let _ = negotiate(Some(&accept));
        let Ok(mut query) = parse_rows_query(&q, ds.file.schema(), ds.file.version(), &limits) else {
            return Ok(());
        };
        query.count_exact(budget % 2 == 0);
        let mut scan = Scan::new(&query, &ds.file);
        let done = loop {
            match scan.step(&query, &ds.file, budget) {
                Ok(true) => break true,
                Ok(false) => {}
                Err(e) => {
                    prop_assert!(!e.message.is_empty());
                    break false;
                }
            }
        };
        if done {
            let page = scan.finish();
            for format in [OutputFormat::Json, OutputFormat::Ndjson, OutputFormat::Csv, OutputFormat::ArrowStream] {
                let mut e = Encoder::new(&query, page.clone(), format);
                let mut body = Vec::new();
                while let Some(p) = e.step(&query, &ds.file, 1 + budget as usize * 10) {
                    body.extend_from_slice(&p);
                }
                if format == OutputFormat::Json {
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    prop_assert!(v["rows"].is_array());
                }
            }
        }
    }
}
