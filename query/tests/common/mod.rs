//! Test fixtures: random datasets written with the real `FileWriter`, the engine driven end to
//! end (parse -> Scan::step in small budgets -> Encoder::step in small pieces -> JSON parse),
//! and a naive row-by-row reference evaluator written independently of the engine.

#![allow(dead_code)]

use std::cmp::Ordering;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use quarry_format::{
    AlignedBuf, ColumnBuilder, DataType, DictionaryPolicy, Field, FileWriter, QuarryFile, Schema,
    Value, WriteOptions,
};
use quarry_query::{negotiate, parse_rows_query, Encoder, Limits, OutputFormat, QueryError, Scan};
use serde_json::{json, Value as Json};

/// A source value, owned.
#[derive(Clone, Debug, PartialEq)]
pub enum RV {
    Null,
    B(bool),
    I(i64),
    F(f64),
    S(String),
    D(i32),
    T(i64),
}

pub const COLS: [(&str, DataType); 8] = [
    ("id", DataType::Int64),
    ("g", DataType::Utf8),
    ("s", DataType::Utf8),
    ("x", DataType::Int64),
    ("f", DataType::Float64),
    ("b", DataType::Bool),
    ("d", DataType::Date),
    ("t", DataType::Timestamp),
];

#[derive(Debug)]
pub struct Dataset {
    pub rows: Vec<Vec<RV>>,
    pub file: QuarryFile<AlignedBuf>,
}

pub fn build(rows: Vec<Vec<RV>>, row_group_rows: usize, keyed: bool) -> Dataset {
    build_with(rows, row_group_rows, keyed, true)
}

/// `dictionary`: let the writer pick dictionary encoding (Auto) or forbid it (Never).
pub fn build_with(
    rows: Vec<Vec<RV>>,
    row_group_rows: usize,
    keyed: bool,
    dictionary: bool,
) -> Dataset {
    let fields: Vec<Field> = COLS
        .iter()
        .enumerate()
        .map(|(i, (n, t))| Field {
            name: n.to_string(),
            data_type: *t,
            nullable: i != 0,
        })
        .collect();
    let schema = Schema::new(fields, keyed.then_some(0)).unwrap();
    let dictionary = if dictionary {
        DictionaryPolicy::Auto
    } else {
        DictionaryPolicy::Never
    };
    let options = WriteOptions {
        row_group_rows,
        dictionary,
        ..WriteOptions::default()
    };
    let mut w = FileWriter::new(Vec::new(), schema, options).unwrap();
    for chunk in rows.chunks(row_group_rows.max(1)) {
        let mut builders: Vec<ColumnBuilder> =
            COLS.iter().map(|(_, t)| ColumnBuilder::new(*t)).collect();
        for row in chunk {
            for (b, v) in builders.iter_mut().zip(row) {
                match v {
                    RV::Null => b.push_null(),
                    RV::B(x) => b.push(Value::Bool(*x)).unwrap(),
                    RV::I(x) => b.push(Value::Int64(*x)).unwrap(),
                    RV::F(x) => b.push(Value::Float64(*x)).unwrap(),
                    RV::S(x) => b.push(Value::Utf8(x)).unwrap(),
                    RV::D(x) => b.push(Value::Date(*x)).unwrap(),
                    RV::T(x) => b.push(Value::Timestamp(*x)).unwrap(),
                }
            }
        }
        w.write_row_group(builders.into_iter().map(ColumnBuilder::finish).collect())
            .unwrap();
    }
    let (bytes, _) = w.finish().unwrap();
    let file = QuarryFile::open(AlignedBuf::from_slice(&bytes)).unwrap();
    file.verify().unwrap();
    Dataset { rows, file }
}

pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// Text form of a literal as a user would type it.
pub fn lit_text(v: &RV) -> String {
    match v {
        RV::Null => "null".into(),
        RV::B(b) => b.to_string(),
        RV::I(i) => i.to_string(),
        RV::F(f) if f.is_nan() => "NaN".into(),
        RV::F(f) if f.is_infinite() => if *f > 0.0 { "Infinity" } else { "-Infinity" }.into(),
        RV::F(f) => format!("{f:?}"),
        RV::S(s) => s.clone(),
        RV::D(d) => date_text(*d),
        RV::T(t) => chrono::DateTime::from_timestamp_micros(*t)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    }
}

pub fn date_text(d: i32) -> String {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    (epoch + chrono::Duration::days(i64::from(d)))
        .format("%Y-%m-%d")
        .to_string()
}

/// The JSON the API promises for a value (README.md, "The query API"), built with chrono and serde_json.
pub fn expected_json(v: &RV) -> Json {
    match v {
        RV::Null => Json::Null,
        RV::B(b) => json!(b),
        RV::I(i) => json!(i),
        RV::F(f) if f.is_nan() => json!("NaN"),
        RV::F(f) if f.is_infinite() => json!(if *f > 0.0 { "Infinity" } else { "-Infinity" }),
        RV::F(f) => json!(f),
        RV::S(s) => json!(s),
        RV::D(d) => json!(date_text(*d)),
        RV::T(t) => {
            let dt = chrono::DateTime::from_timestamp_micros(*t).unwrap();
            let mut s = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
            let micros = t.rem_euclid(1_000_000);
            if micros != 0 {
                s.push_str(&format!(".{micros:06}"));
            }
            s.push('Z');
            json!(s)
        }
    }
}

/// Reference order of two non-null values of one column: floats with NaN greatest.
pub fn ref_cmp(a: &RV, b: &RV) -> Ordering {
    match (a, b) {
        (RV::B(x), RV::B(y)) => x.cmp(y),
        (RV::I(x), RV::I(y)) | (RV::T(x), RV::T(y)) => x.cmp(y),
        (RV::D(x), RV::D(y)) => x.cmp(y),
        (RV::S(x), RV::S(y)) => x.as_bytes().cmp(y.as_bytes()),
        (RV::F(x), RV::F(y)) => match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => x.partial_cmp(y).unwrap(),
        },
        _ => panic!("mixed types {a:?} {b:?}"),
    }
}

/// Order with nulls placed first or last, then `desc` applied to values only.
pub fn ref_cmp_nulls(a: &RV, b: &RV, desc: bool, nulls_first: bool) -> Ordering {
    match (a == &RV::Null, b == &RV::Null) {
        (true, true) => Ordering::Equal,
        (true, false) => {
            if nulls_first {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (false, true) => {
            if nulls_first {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        _ => {
            let o = ref_cmp(a, b);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

/// SQL LIKE by plain recursion: `*`/`%` any run, `_` one char, `\` escapes.
pub fn ref_like(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*' | '%') => (0..=s.len()).any(|k| ref_like(&p[1..], &s[k..])),
        Some('_') => !s.is_empty() && ref_like(&p[1..], &s[1..]),
        Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && ref_like(&p[2..], &s[1..]),
        Some(c) => s.first() == Some(c) && ref_like(&p[1..], &s[1..]),
    }
}

#[derive(Clone, Debug)]
pub enum RefOp {
    Cmp(&'static str, RV),
    In(Vec<RV>),
    Like(String, bool),
    IsNull,
    IsTrue,
    IsFalse,
}

#[derive(Clone, Debug)]
pub struct RefFilter {
    pub col: usize,
    pub not: bool,
    pub op: RefOp,
}

impl RefFilter {
    pub fn query_text(&self) -> String {
        let name = COLS[self.col].0;
        let not = if self.not { "not." } else { "" };
        let body = match &self.op {
            RefOp::Cmp(op, v) => format!("{op}.{}", lit_text(v)),
            RefOp::In(vs) => {
                let items: Vec<String> = vs
                    .iter()
                    .map(|v| {
                        let t = lit_text(v);
                        format!("\"{}\"", t.replace('\\', "\\\\").replace('"', "\\\""))
                    })
                    .collect();
                format!("in.({})", items.join(","))
            }
            RefOp::Like(p, ci) => format!("{}.{p}", if *ci { "ilike" } else { "like" }),
            RefOp::IsNull => "is.null".into(),
            RefOp::IsTrue => "is.true".into(),
            RefOp::IsFalse => "is.false".into(),
        };
        format!("{name}={}", enc(&format!("{not}{body}")))
    }

    /// Row-by-row: nulls never match comparisons, in or like (negated or not).
    pub fn matches(&self, row: &[RV]) -> bool {
        let v = &row[self.col];
        let null = v == &RV::Null;
        match &self.op {
            RefOp::IsNull => null != self.not,
            RefOp::IsTrue => (v == &RV::B(true)) != self.not,
            RefOp::IsFalse => (v == &RV::B(false)) != self.not,
            _ if null => false,
            RefOp::Cmp(op, lit) => {
                let o = ref_cmp(v, lit);
                let holds = match *op {
                    "eq" => o == Ordering::Equal,
                    "neq" => o != Ordering::Equal,
                    "lt" => o == Ordering::Less,
                    "lte" => o != Ordering::Greater,
                    "gt" => o == Ordering::Greater,
                    "gte" => o != Ordering::Less,
                    _ => unreachable!(),
                };
                holds != self.not
            }
            RefOp::In(vs) => vs.iter().any(|l| ref_cmp(v, l) == Ordering::Equal) != self.not,
            RefOp::Like(p, ci) => {
                let RV::S(s) = v else { unreachable!() };
                let (p, s) = if *ci {
                    (p.to_lowercase(), s.to_lowercase())
                } else {
                    (p.clone(), s.clone())
                };
                let p: Vec<char> = p.chars().collect();
                let s: Vec<char> = s.chars().collect();
                ref_like(&p, &s) != self.not
            }
        }
    }
}

/// What one request returned.
#[derive(Debug)]
pub struct Response {
    pub rows: Vec<Json>,
    pub next: Option<String>,
    pub total: Option<u64>,
    pub rows_examined: u64,
}

/// Runs a query through the engine with small budgets, as the server would.
pub fn run(
    ds: &Dataset,
    query: &str,
    count: bool,
    budget: u64,
    max_bytes: usize,
    limits: &Limits,
) -> Result<Response, QueryError> {
    let mut q = parse_rows_query(query, ds.file.schema(), ds.file.version(), limits)?;
    q.count_exact(count);
    let mut scan = Scan::new(&q, &ds.file);
    let mut steps = 0u64;
    while !scan.step(&q, &ds.file, budget)? {
        steps += 1;
        assert!(steps < 10_000_000, "scan does not finish");
    }
    let examined = scan.rows_examined();
    let page = scan.finish();
    let format = negotiate(Some("application/json")).unwrap();
    assert_eq!(format, OutputFormat::Json);
    let mut e = Encoder::new(&q, page, format);
    let next_header = e.next_cursor().map(str::to_string);
    let mut body = Vec::new();
    while let Some(piece) = e.step(&q, &ds.file, max_bytes) {
        assert!(!piece.is_empty(), "empty piece");
        body.extend_from_slice(&piece);
    }
    let v: Json = serde_json::from_slice(&body)
        .unwrap_or_else(|err| panic!("invalid JSON {err}: {}", String::from_utf8_lossy(&body)));
    let next = v["next"].as_str().map(str::to_string);
    assert_eq!(next, next_header, "Link header cursor differs from body");
    Ok(Response {
        rows: v["rows"].as_array().unwrap().clone(),
        next,
        total: v.get("total").map(|t| t.as_u64().unwrap()),
        rows_examined: examined,
    })
}

/// Follows `next` to the end (the cursor alone on odd pages); returns every row and the
/// first page's total.
pub fn walk(
    ds: &Dataset,
    query: &str,
    count: bool,
    budget: u64,
    max_bytes: usize,
) -> Result<(Vec<Json>, Option<u64>), QueryError> {
    let limits = Limits::default();
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut total = None;
    for page in 0.. {
        assert!(page <= ds.rows.len() + 2, "cursor walk does not end");
        // A cursor carries its query (issue #23): every other page sends the cursor alone,
        // the others repeat the whole query with it; both must continue the same query.
        let q = match &cursor {
            Some(c) if page % 2 == 1 => format!("cursor={}", enc(c)),
            Some(c) => format!("{query}&cursor={}", enc(c)),
            None => query.to_string(),
        };
        let r = run(ds, &q, count, budget, max_bytes, &limits)?;
        if page == 0 {
            total = r.total;
        } else if count {
            assert_eq!(r.total, total, "total changes between pages");
        }
        all.extend(r.rows);
        match r.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    Ok((all, total))
}

/// A row as the API should print it, over `cols`.
pub fn expected_row(row: &[RV], cols: &[usize]) -> Json {
    let mut m = serde_json::Map::new();
    for &c in cols {
        m.insert(COLS[c].0.to_string(), expected_json(&row[c]));
    }
    Json::Object(m)
}
