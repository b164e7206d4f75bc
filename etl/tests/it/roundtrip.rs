//! Every input value equals what the reader returns; expected values are computed here with
//! chrono and integer arithmetic, independently of the ETL's parsers.

use chrono::{NaiveDate, NaiveDateTime};

use crate::common::*;

const NAMES: &[&str] = &[
    "plain",
    "comma, inside",
    "quote \"q\" inside",
    "multi\nline",
    "crlf\r\nline",
    "ünïcødé ✓ 日本",
    "  spaced  ",
    "tab\there",
    "'single'",
];

#[derive(Debug, Clone)]
struct Row {
    id: i64,
    name: Option<String>,
    cents: Option<i64>,
    day: Option<NaiveDate>,
    ts: Option<NaiveDateTime>,
    flag: Option<bool>,
    count: Option<i64>,
}

fn rows(n: usize, seed: u64) -> Vec<Row> {
    let mut rng = Rng(seed);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    (0..n)
        .map(|i| {
            let null = |rng: &mut Rng| rng.below(10) == 0;
            Row {
                id: ((i as i64 * 7919) % n as i64) - (n as i64 / 2),
                name: (!null(&mut rng)).then(|| {
                    if rng.below(2) == 0 {
                        NAMES[rng.below(NAMES.len() as u64) as usize].to_string()
                    } else {
                        format!("n{}", rng.below(1000))
                    }
                }),
                cents: (!null(&mut rng)).then(|| rng.below(2_000_000) as i64 - 1_000_000),
                day: (!null(&mut rng))
                    .then(|| epoch + chrono::Duration::days(rng.below(80_000) as i64 - 20_000)),
                ts: (!null(&mut rng)).then(|| {
                    epoch.and_hms_opt(0, 0, 0).unwrap()
                        + chrono::Duration::microseconds(
                            (rng.next() % 6_000_000_000_000_000) as i64 - 2_000_000_000_000_000,
                        )
                }),
                flag: (!null(&mut rng)).then(|| rng.below(2) == 0),
                count: (!null(&mut rng)).then(|| match rng.below(20) {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    _ => rng.next() as i64 >> rng.below(60),
                }),
            }
        })
        .collect()
}

fn cents_text(c: i64) -> String {
    let sign = if c < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", c.abs() / 100, c.abs() % 100)
}

fn write_csv(rows: &[Row]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id", "name", "price", "day", "ts", "flag", "count"])
        .unwrap();
    for (i, r) in rows.iter().enumerate() {
        let ts = r.ts.map(|t| {
            if i % 2 == 0 {
                t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
            } else {
                t.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
            }
        });
        w.write_record([
            r.id.to_string(),
            r.name.clone().unwrap_or_default(),
            r.cents.map(cents_text).unwrap_or_default(),
            r.day
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            ts.unwrap_or_default(),
            r.flag.map(|b| b.to_string()).unwrap_or_default(),
            r.count.map(|c| c.to_string()).unwrap_or_default(),
        ])
        .unwrap();
    }
    w.into_inner().unwrap()
}

fn expected(r: &Row) -> Vec<V> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    vec![
        V::Int(r.id),
        r.name.clone().map_or(V::Null, V::Str),
        // The nearest f64 to cents/100: a correctly rounded division of exact integers.
        r.cents.map_or(V::Null, |c| V::Float(c as f64 / 100.0)),
        r.day
            .map_or(V::Null, |d| V::Date((d - epoch).num_days() as i32)),
        r.ts.map_or(V::Null, |t| V::Ts(t.and_utc().timestamp_micros())),
        r.flag.map_or(V::Null, V::Bool),
        r.count.map_or(V::Null, V::Int),
    ]
}

#[test]
fn csv_round_trip_keyed_preserves_every_value() {
    let env = Env::new();
    let data = rows(5000, 7);
    let input = env.write("in.csv", write_csv(&data));
    let report = build_in(
        &env,
        "t",
        &[&input],
        &["--key", "id", "--row-group-rows", "700"],
    )
    .unwrap();
    assert_eq!(report.rows, 5000);
    let types: Vec<String> = schema_of(&env.qry("t"))
        .into_iter()
        .map(|(_, t, _)| t)
        .collect();
    assert_eq!(
        types,
        [
            "int64",
            "utf8",
            "float64",
            "date",
            "timestamp",
            "bool",
            "int64"
        ]
    );
    let mut want: Vec<Vec<V>> = data.iter().map(expected).collect();
    want.sort_by_key(|r| match r[0] {
        V::Int(i) => i,
        _ => unreachable!(),
    });
    let got = read_rows(&env.qry("t"));
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "row {i}");
    }
}

#[test]
fn csv_round_trip_without_key_keeps_input_order_across_files() {
    let env = Env::new();
    let data = rows(3000, 11);
    let a = env.write("a.csv", write_csv(&data[..1000]));
    let b = env.write("b.csv.gz", {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&write_csv(&data[1000..])).unwrap();
        gz.finish().unwrap()
    });
    // A tiny memory limit makes 64 KiB chunks, so records cross chunk boundaries.
    build_in(
        &env,
        "t",
        &[&a, &b],
        &["--row-group-rows", "333", "--memory-limit", "1M"],
    )
    .unwrap();
    let want: Vec<Vec<V>> = data.iter().map(expected).collect();
    assert_eq!(read_rows(&env.qry("t")), want);
}

#[test]
fn jsonl_round_trip() {
    let env = Env::new();
    let data = rows(2000, 3);
    let mut text = String::new();
    for r in &data {
        let mut o = serde_json::Map::new();
        o.insert("id".into(), r.id.into());
        // Missing keys and explicit nulls are both null.
        if let Some(n) = &r.name {
            o.insert("name".into(), n.clone().into());
        }
        o.insert(
            "price".into(),
            r.cents
                .map(|c| serde_json::Value::from(c as f64 / 100.0))
                .unwrap_or_default(),
        );
        o.insert(
            "day".into(),
            r.day.map(|d| d.format("%Y-%m-%d").to_string()).into(),
        );
        o.insert(
            "ts".into(),
            r.ts.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string())
                .into(),
        );
        o.insert("flag".into(), r.flag.into());
        o.insert("count".into(), r.count.into());
        text.push_str(&serde_json::Value::Object(o).to_string());
        text.push('\n');
    }
    let input = env.write("in.jsonl", text);
    let schema = env.write(
        "schema.json",
        r#"{"fields":[{"name":"id","type":"int64"},{"name":"name","type":"utf8"},{"name":"price","type":"float64"},
            {"name":"day","type":"date"},{"name":"ts","type":"timestamp"},{"name":"flag","type":"bool"},
            {"name":"count","type":"int64"}],"key":"id"}"#,
    );
    let schema = schema.display().to_string();
    build_in(&env, "t", &[&input], &["--schema", &schema]).unwrap();
    let mut want: Vec<Vec<V>> = data.iter().map(expected).collect();
    want.sort_by_key(|r| match r[0] {
        V::Int(i) => i,
        _ => unreachable!(),
    });
    assert_eq!(read_rows(&env.qry("t")), want);
}
