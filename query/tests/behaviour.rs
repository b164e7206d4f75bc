//! Deterministic behaviour: index use, zone-map pruning, scan budgets, output formats, keys,
//! cursors and errors. Expected results come from the source rows, never from engine output.

mod common;

use common::*;
use quarry_format::{DataType, Encoding, Field, FileWriter, QuarryFile, Schema, WriteOptions};
use quarry_query::{
    negotiate, parse_key, parse_rows_query, row_json, Encoder, ErrorKind, KeyValue, Limits,
    OutputFormat, Scan,
};
use serde_json::Value as Json;

/// 1000 rows, 100 per row group: id = 10*i, x = i (sorted), g cycles through 3 strings,
/// s is null on every 7th row and "" on every 11th.
fn sorted_dataset() -> Dataset {
    let rows = (0..1000i64)
        .map(|i| {
            vec![
                RV::I(10 * i),
                RV::S(["red", "green", "blue"][(i % 3) as usize].into()),
                if i % 7 == 0 {
                    RV::Null
                } else if i % 11 == 0 {
                    RV::S(String::new())
                } else {
                    RV::S(format!("s,{i}\"q"))
                },
                RV::I(i),
                RV::F(i as f64 / 2.0),
                RV::B(i % 2 == 0),
                RV::D(i as i32),
                RV::T(i * 1_000_001),
            ]
        })
        .collect();
    build(rows, 100, true)
}

fn ids(rows: &[Json]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

fn lim() -> Limits {
    Limits::default()
}

/// The rows of one page of `query`, scanned 64 rows a step.
fn all_rows(ds: &Dataset, query: &str) -> Vec<Json> {
    run(ds, query, false, 64, 1 << 20, &lim()).unwrap().rows
}

#[test]
fn dictionary_encoding_is_exercised() {
    let ds = sorted_dataset();
    assert_eq!(ds.file.chunk_meta(0, 1).encoding, Encoding::Dictionary);
}

#[test]
fn key_eq_examines_one_row() {
    let ds = sorted_dataset();
    let r = run(&ds, "id=eq.5430", false, 1000, 4096, &lim()).unwrap();
    assert_eq!(ids(&r.rows), vec![5430]);
    assert_eq!(r.rows_examined, 1);
    let r = run(&ds, "id=eq.5431", false, 1000, 4096, &lim()).unwrap();
    assert!(r.rows.is_empty());
    assert_eq!(r.rows_examined, 0);
}

#[test]
fn key_in_and_ranges_use_the_index() {
    let ds = sorted_dataset();
    let r = run(&ds, "id=in.(30,7,9990,20,30)", false, 1000, 4096, &lim()).unwrap();
    assert_eq!(ids(&r.rows), vec![20, 30, 9990]);
    assert_eq!(r.rows_examined, 3);
    let r = run(
        &ds,
        "id=gt.100&id=lte.250&limit=100",
        true,
        1000,
        4096,
        &lim(),
    )
    .unwrap();
    let want: Vec<i64> = (11..=25).map(|i| i * 10).collect();
    assert_eq!(ids(&r.rows), want);
    assert_eq!(r.total, Some(15));
    assert_eq!(r.rows_examined, 15);
}

#[test]
fn zone_maps_prune_row_groups() {
    let ds = sorted_dataset();
    let r = run(&ds, "x=gt.950&limit=100", true, 1000, 4096, &lim()).unwrap();
    let want: Vec<i64> = (951..1000).map(|i| i * 10).collect();
    assert_eq!(ids(&r.rows), want);
    // Only the last row group (rows 900..1000) is read.
    assert_eq!(r.rows_examined, 100);
    // A row group where every row matches is taken without evaluating the filter, but the
    // rows still count as examined.
    let r = run(&ds, "x=lt.0", true, 1000, 4096, &lim()).unwrap();
    assert_eq!((r.rows.len(), r.rows_examined), (0, 0));
}

#[test]
fn row_order_stops_after_one_row_past_the_page() {
    let ds = sorted_dataset();
    let r = run(&ds, "limit=10", false, 1000, 4096, &lim()).unwrap();
    assert_eq!(r.rows.len(), 10);
    assert!(r.next.is_some());
    assert!(r.rows_examined <= 8192, "examined {}", r.rows_examined);
}

#[test]
fn order_by_the_key_reads_only_the_page() {
    let ds = sorted_dataset();
    let r = run(&ds, "order=id.desc&limit=5", false, 1000, 4096, &lim()).unwrap();
    assert_eq!(ids(&r.rows), vec![9990, 9980, 9970, 9960, 9950]);
    assert!(r.rows_examined <= 100, "examined {}", r.rows_examined);
    let r = run(
        &ds,
        "order=id.asc&id=gt.500&limit=3",
        false,
        1000,
        4096,
        &lim(),
    )
    .unwrap();
    assert_eq!(ids(&r.rows), vec![510, 520, 530]);
    assert!(r.rows_examined <= 100, "examined {}", r.rows_examined);
    // Walking backwards with a filter visits every match once, in descending key order.
    let (all, total) = walk(
        &ds,
        "order=id.desc&x=lt.250&g=eq.red&limit=7",
        true,
        33,
        512,
    )
    .unwrap();
    let want: Vec<i64> = (0..250)
        .rev()
        .filter(|i| i % 3 == 0)
        .map(|i| i * 10)
        .collect();
    assert_eq!(ids(&all), want);
    assert_eq!(total, Some(want.len() as u64));
}

#[test]
fn max_scan_rows_is_a_422_with_a_clear_message() {
    let ds = sorted_dataset();
    let limits = Limits {
        max_scan_rows: 50,
        ..Limits::default()
    };
    let e = run(&ds, "g=eq.purple", false, 7, 4096, &limits).unwrap_err();
    assert_eq!((e.status(), e.code), (422, "too_much_work"));
    assert!(e.message.contains("50"), "{}", e.message);
    // A page that fills within the allowance is fine.
    let r = run(&ds, "limit=10", false, 7, 4096, &limits).unwrap();
    assert_eq!(r.rows.len(), 10);
    assert!(r.rows_examined <= 50);
    // A filled page whose look-ahead runs out of allowance ends with a cursor.
    let r = run(&ds, "g=eq.red&limit=17", false, 7, 4096, &limits).unwrap();
    assert_eq!(r.rows.len(), 17);
    assert!(r.next.is_some());
}

#[test]
fn ndjson_and_csv_carry_the_same_rows() {
    let ds = sorted_dataset();
    let query = "x=lt.40&select=id,s,f,b,d,t&limit=40";
    let json_rows = run(&ds, query, false, 13, 4096, &lim()).unwrap().rows;
    assert_eq!(json_rows.len(), 40);

    let mut q = parse_rows_query(query, ds.file.schema(), ds.file.version(), &lim()).unwrap();
    q.count_exact(false);
    let encode = |format: OutputFormat, max_bytes: usize| -> (Vec<u8>, usize) {
        let mut scan = Scan::new(&q, &ds.file);
        while !scan.step(&q, &ds.file, 5).unwrap() {}
        let mut e = Encoder::new(&q, scan.finish(), format);
        let (mut body, mut pieces) = (Vec::new(), 0);
        while let Some(p) = e.step(&q, &ds.file, max_bytes) {
            body.extend_from_slice(&p);
            pieces += 1;
        }
        (body, pieces)
    };

    let (nd, pieces) = encode(OutputFormat::Ndjson, 100);
    assert!(pieces > 5, "{pieces} pieces: output is not streamed");
    let lines: Vec<Json> = String::from_utf8(nd)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, json_rows);

    let (csv_body, _) = encode(OutputFormat::Csv, 64);
    let text = String::from_utf8(csv_body.clone()).unwrap();
    let mut reader = csv::Reader::from_reader(&csv_body[..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, ["id", "s", "f", "b", "d", "t"]);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 40);
    for (rec, (i, row)) in records.iter().zip(ds.rows.iter().enumerate()) {
        assert_eq!(rec[0], lit_text(&row[0]));
        let s = match &row[2] {
            RV::Null => String::new(),
            other => lit_text(other),
        };
        assert_eq!(&rec[1], s, "row {i}");
        assert_eq!(rec[2].parse::<f64>().unwrap(), i as f64 / 2.0);
        assert_eq!(&rec[4], date_text(i as i32));
        assert_eq!(rec[5].to_string(), expected_json(&row[7]).as_str().unwrap());
    }
    // Null is an empty field, the empty string is "" (row 0 is null, row 11 is "").
    assert!(text.lines().nth(1).unwrap().starts_with("0,,"), "{text}");
    assert!(
        text.lines().nth(12).unwrap().starts_with("110,\"\","),
        "{text}"
    );
}

#[test]
fn limit_zero_with_count_returns_only_the_total() {
    let ds = sorted_dataset();
    let r = run(&ds, "b=is.true&limit=0", true, 1000, 4096, &lim()).unwrap();
    assert!(r.rows.is_empty());
    assert_eq!(r.next, None);
    assert_eq!(r.total, Some(500));
}

#[test]
fn string_keys_use_the_index() {
    let schema = Schema::new(
        vec![
            Field {
                name: "k".into(),
                data_type: DataType::Utf8,
                nullable: false,
            },
            Field {
                name: "v".into(),
                data_type: DataType::Int64,
                nullable: false,
            },
        ],
        Some(0),
    )
    .unwrap();
    let keys: Vec<String> = (0..500).map(|i| format!("k{:04}", i * 2)).collect();
    let mut w = FileWriter::new(
        Vec::new(),
        schema,
        WriteOptions {
            row_group_rows: 64,
            ..Default::default()
        },
    )
    .unwrap();
    for chunk in keys.chunks(64) {
        let mut offsets = vec![0u64];
        let mut bytes = Vec::new();
        for k in chunk {
            bytes.extend_from_slice(k.as_bytes());
            offsets.push(bytes.len() as u64);
        }
        w.write_row_group(vec![
            quarry_format::ColumnData::Utf8 {
                offsets,
                bytes,
                validity: None,
            },
            quarry_format::ColumnData::Int64 {
                values: (0..chunk.len() as i64).collect(),
                validity: None,
            },
        ])
        .unwrap();
    }
    let (bytes, _) = w.finish().unwrap();
    let file = QuarryFile::open(quarry_format::AlignedBuf::from_slice(&bytes)).unwrap();
    let run_keys = |q: &str| -> (Vec<String>, u64) {
        let q = parse_rows_query(q, file.schema(), file.version(), &lim()).unwrap();
        let mut scan = Scan::new(&q, &file);
        while !scan.step(&q, &file, 100).unwrap() {}
        let page = scan.finish();
        let examined = page.rows_examined;
        let mut e = Encoder::new(&q, page, OutputFormat::Json);
        let mut body = Vec::new();
        while let Some(p) = e.step(&q, &file, 1 << 16) {
            body.extend_from_slice(&p);
        }
        let v: Json = serde_json::from_slice(&body).unwrap();
        let ks = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["k"].as_str().unwrap().to_string())
            .collect();
        (ks, examined)
    };
    assert_eq!(run_keys("k=eq.k0010"), (vec!["k0010".to_string()], 1));
    assert_eq!(run_keys("k=eq.k0011"), (vec![], 0));
    let (ks, examined) = run_keys("k=in.(k0998,k0000,nope)");
    assert_eq!(
        (ks, examined),
        (vec!["k0000".to_string(), "k0998".to_string()], 2)
    );
    let (ks, examined) = run_keys("k=gte.k0100&k=lt.k0110");
    let want: Vec<String> = keys
        .iter()
        .filter(|k| k.as_str() >= "k0100" && k.as_str() < "k0110")
        .cloned()
        .collect();
    assert_eq!(ks, want);
    assert_eq!(examined, want.len() as u64);

    // Lookups by path key.
    assert_eq!(
        parse_key("k0010", file.schema()).unwrap(),
        KeyValue::Utf8("k0010".into())
    );
    let key = parse_key("k%30010", file.schema()).unwrap();
    let row = file.find_key(key.as_key_ref()).unwrap();
    let v: Json = serde_json::from_slice(&row_json(&file, row)).unwrap();
    assert_eq!(v, serde_json::json!({"k": "k0010", "v": 5}));
}

#[test]
fn int_keys_parse_or_name_the_key() {
    let ds = sorted_dataset();
    assert_eq!(
        parse_key("-5", ds.file.schema()).unwrap(),
        KeyValue::Int64(-5)
    );
    let e = parse_key("abc", ds.file.schema()).unwrap_err();
    assert_eq!((e.status(), e.param.as_deref()), (400, Some("key")));
    assert!(e.message.contains("int64") && e.message.contains("abc"));
    let e = parse_key("%FF", ds.file.schema()).unwrap_err();
    assert_eq!(e.status(), 400);
    let row = ds.file.find_key(KeyValue::Int64(70).as_key_ref()).unwrap();
    let v: Json = serde_json::from_slice(&row_json(&ds.file, row)).unwrap();
    assert_eq!(v, expected_row(&ds.rows[7], &(0..8).collect::<Vec<_>>()));
}

#[test]
fn datasets_without_a_key_have_no_lookups() {
    let ds = build(
        vec![vec![
            RV::I(1),
            RV::Null,
            RV::Null,
            RV::Null,
            RV::Null,
            RV::Null,
            RV::Null,
            RV::Null,
        ]],
        4,
        false,
    );
    let e = parse_key("1", ds.file.schema()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[test]
fn int64_sum_overflow_is_a_clear_error() {
    let row = |id: i64, x: i64| {
        vec![
            RV::I(id),
            RV::S("a".into()),
            RV::Null,
            RV::I(x),
            RV::Null,
            RV::Null,
            RV::Null,
            RV::Null,
        ]
    };
    let ds = build(vec![row(1, i64::MAX), row(2, 1), row(3, 5)], 2, true);
    let e = run(&ds, "select=x.sum()", false, 10, 4096, &lim()).unwrap_err();
    assert_eq!((e.status(), e.code), (422, "sum_overflow"));
    // Also when the overflowing group is not on the page.
    let ds2 = build(vec![row(1, 5), row(2, i64::MAX), row(2, 1)], 2, false);
    let e = run(&ds2, "select=id,x.sum()&limit=1", false, 10, 4096, &lim()).unwrap_err();
    assert_eq!((e.status(), e.code), (422, "sum_overflow"));
    // Back in range after the negative row: i128 accumulation is exact.
    let ds = build(vec![row(1, i64::MAX), row(2, 1), row(3, -2)], 2, true);
    let r = run(&ds, "select=x.sum(),x.avg()", false, 10, 4096, &lim()).unwrap();
    assert_eq!(r.rows[0]["sum(x)"], serde_json::json!(i64::MAX - 1));
}

#[test]
fn cursors_are_checked() {
    let ds = sorted_dataset();
    let r = run(&ds, "limit=5", false, 1000, 4096, &lim()).unwrap();
    let cursor = r.next.unwrap();
    // Another version of the data: 409.
    let other = build(ds.rows[..10].to_vec(), 100, true);
    let e = run(
        &other,
        &format!("limit=5&cursor={}", enc(&cursor)),
        false,
        100,
        4096,
        &lim(),
    )
    .unwrap_err();
    assert_eq!((e.status(), e.code), (409, "stale_cursor"));
    // A forged position past the end: 400 naming the cursor.
    let forged = format!("{}.r.n.5000", ds.file.version());
    let e = run(&ds, &format!("cursor={forged}"), false, 100, 4096, &lim()).unwrap_err();
    assert_eq!((e.status(), e.param.as_deref()), (400, Some("cursor")));
}

#[test]
fn negotiation_feeds_the_encoder() {
    assert_eq!(
        negotiate(Some("text/csv;q=0.9, application/x-ndjson")).unwrap(),
        OutputFormat::Ndjson
    );
    assert_eq!(OutputFormat::Csv.content_type(), "text/csv; charset=utf-8");
}

/// Runs `query` and encodes it as an Arrow IPC stream in pieces of `max_bytes`.
fn arrow_body(ds: &Dataset, query: &str, max_bytes: usize) -> (Vec<u8>, usize) {
    let format = negotiate(Some("application/vnd.apache.arrow.stream")).unwrap();
    assert_eq!(format, OutputFormat::ArrowStream);
    let mut q = parse_rows_query(query, ds.file.schema(), ds.file.version(), &lim()).unwrap();
    q.count_exact(true);
    let mut scan = Scan::new(&q, &ds.file);
    while !scan.step(&q, &ds.file, 97).unwrap() {}
    let mut e = Encoder::new(&q, scan.finish(), format);
    let (mut body, mut pieces) = (Vec::new(), 0);
    while let Some(p) = e.step(&q, &ds.file, max_bytes) {
        body.extend_from_slice(&p);
        pieces += 1;
    }
    (body, pieces)
}

#[test]
fn arrow_stream_reads_back_with_arrow_ipc() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
    use arrow_array::Array;

    let ds = sorted_dataset();
    let (body, pieces) = arrow_body(&ds, "x=lt.300&limit=250", 1024);
    assert!(pieces > 3, "{pieces} pieces: not streamed in batches");
    let reader = arrow_ipc::reader::StreamReader::try_new(&body[..], None).unwrap();
    let schema = reader.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, COLS.map(|c| c.0));
    assert_eq!(
        schema.metadata().get("quarry.total").map(String::as_str),
        Some("300")
    );
    assert!(schema.metadata().contains_key("quarry.next"));
    let mut row = 0usize;
    for batch in reader {
        let batch = batch.unwrap();
        for i in 0..batch.num_rows() {
            let src = &ds.rows[row];
            let id = batch.column(0).as_primitive::<Int64Type>().value(i);
            assert_eq!(RV::I(id), src[0]);
            let g = batch.column(1).as_string::<i32>().value(i);
            assert_eq!(RV::S(g.into()), src[1]);
            let s = batch.column(2).as_string::<i32>();
            let got = if s.is_null(i) {
                RV::Null
            } else {
                RV::S(s.value(i).into())
            };
            assert_eq!(got, src[2], "row {row}");
            assert_eq!(
                RV::F(batch.column(4).as_primitive::<Float64Type>().value(i)),
                src[4]
            );
            assert_eq!(RV::B(batch.column(5).as_boolean().value(i)), src[5]);
            assert_eq!(
                RV::D(batch.column(6).as_primitive::<Date32Type>().value(i)),
                src[6]
            );
            let t = batch.column(7).as_primitive::<TimestampMicrosecondType>();
            assert_eq!(RV::T(t.value(i)), src[7]);
            row += 1;
        }
    }
    assert_eq!(row, 250);
}

#[test]
fn arrow_stream_carries_aggregates() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};

    let ds = sorted_dataset();
    let query = "select=g,count(),x.sum(),f.avg()";
    let json = run(&ds, query, false, 100, 4096, &lim()).unwrap().rows;
    let (body, _) = arrow_body(&ds, query, 1 << 16);
    let reader = arrow_ipc::reader::StreamReader::try_new(&body[..], None).unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let mut got = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            got.push(serde_json::json!({
                "g": b.column(0).as_string::<i32>().value(i),
                "count": b.column(1).as_primitive::<Int64Type>().value(i),
                "sum(x)": b.column(2).as_primitive::<Int64Type>().value(i),
                "avg(f)": b.column(3).as_primitive::<Float64Type>().value(i),
            }));
        }
    }
    assert_eq!(got, json);
    // Independent check of one group: "blue" is i % 3 == 2.
    let blue: Vec<i64> = (0..1000).filter(|i| i % 3 == 2).collect();
    assert_eq!(json[0]["g"], "blue");
    assert_eq!(json[0]["count"], blue.len());
    assert_eq!(json[0]["sum(x)"], blue.iter().sum::<i64>());
}

#[test]
fn arrow_stream_of_an_empty_page_is_valid() {
    let ds = sorted_dataset();
    let (body, _) = arrow_body(&ds, "x=lt.0", 1024);
    let reader = arrow_ipc::reader::StreamReader::try_new(&body[..], None).unwrap();
    assert_eq!(reader.schema().fields().len(), 8);
    assert_eq!(
        reader
            .map(Result::unwrap)
            .map(|b| b.num_rows())
            .sum::<usize>(),
        0
    );
}

#[test]
fn running_on_another_version_is_refused_not_a_panic() {
    let ds = sorted_dataset();
    let other = build(ds.rows[..3].to_vec(), 100, true);
    let q = parse_rows_query(
        "order=x.desc&limit=5",
        ds.file.schema(),
        ds.file.version(),
        &lim(),
    )
    .unwrap();
    let mut scan = Scan::new(&q, &other.file);
    let e = scan.step(&q, &other.file, 100).unwrap_err();
    assert_eq!((e.status(), e.code), (409, "version_changed"));
    // A page from the right file encoded against another file ends at once.
    let mut scan = Scan::new(&q, &ds.file);
    while !scan.step(&q, &ds.file, 1000).unwrap() {}
    let mut enc = Encoder::new(&q, scan.finish(), OutputFormat::Json);
    assert!(enc.step(&q, &other.file, 4096).is_none());
    assert_eq!(row_json(&other.file, 99), b"null");
}

#[test]
fn integer_group_columns_group_like_a_reference_map() {
    // x: small range with negatives and nulls (the direct index); d: dates; t: a range far over
    // the direct index's bound (the hash table). 100 rows a row group, unsorted values.
    let rows: Vec<Vec<RV>> = (0..1000i64)
        .map(|i| {
            vec![
                RV::I(i),
                RV::S("g".into()),
                RV::Null,
                if i % 9 == 4 {
                    RV::Null
                } else {
                    RV::I((i * 37) % 50 - 20)
                },
                RV::F(i as f64),
                RV::B(true),
                RV::D(((i * 11) % 13) as i32 - 3),
                RV::T(((i * 13) % 17) * 1_000_000_007),
            ]
        })
        .collect();
    let ds = build(rows.clone(), 100, true);
    for (col, idx) in [("x", 3usize), ("d", 6), ("t", 7)] {
        let mut want: std::collections::BTreeMap<Option<i64>, (i64, f64)> = Default::default();
        for r in &rows {
            let k = match &r[idx] {
                RV::I(v) | RV::T(v) => Some(*v),
                RV::D(v) => Some(i64::from(*v)),
                _ => None,
            };
            let RV::F(f) = r[4] else { unreachable!() };
            let e = want.entry(k).or_default();
            e.0 += 1;
            e.1 += f;
        }
        let got = all_rows(&ds, &format!("select={col},count(),f.sum()&limit=1000"));
        // Ascending, nulls last: BTreeMap puts None first, so rotate it to the end.
        let mut want: Vec<_> = want.into_iter().collect();
        if want.first().is_some_and(|(k, _)| k.is_none()) {
            want.rotate_left(1);
        }
        assert_eq!(got.len(), want.len(), "{col}: {got:?}");
        for (g, (k, (n, sum))) in got.iter().zip(&want) {
            assert_eq!(g["count"], *n, "{col} {k:?}");
            assert_eq!(g["sum(f)"].as_f64().unwrap(), *sum, "{col} {k:?}");
            match k {
                None => assert!(g[col].is_null(), "{col}: {g}"),
                Some(v) if col == "x" => assert_eq!(g[col], *v),
                Some(_) => assert!(!g[col].is_null(), "{col}: {g}"),
            }
        }
    }
}

#[test]
fn plain_string_groups_keep_every_distinct_value() {
    // s: null on every 7th row, "" on every 11th, otherwise unique (plain-encoded, interned).
    let ds = sorted_dataset();
    let mut want: std::collections::BTreeMap<String, i64> = Default::default();
    let mut nulls = 0;
    for r in &ds.rows {
        match &r[2] {
            RV::S(v) => *want.entry(v.clone()).or_default() += 1,
            _ => nulls += 1,
        }
    }
    let got = all_rows(&ds, "select=s,count()&limit=2000");
    assert_eq!(
        got.len(),
        want.len() + 1,
        "one group per value plus the null group"
    );
    for (g, (v, n)) in got.iter().zip(&want) {
        assert_eq!(
            (g["s"].as_str(), g["count"].as_i64()),
            (Some(v.as_str()), Some(*n))
        );
    }
    let last = got.last().unwrap();
    assert!(last["s"].is_null());
    assert_eq!(last["count"], nulls);
}
