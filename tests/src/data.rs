//! Generated tables: the same rows written as CSV, JSON Lines and a `--schema` file for
//! quarry-etl, and loaded into DuckDB from the same CSV for the oracle.
//!
//! Text forms are written here, independently of the ETL and the query engine: dates via
//! Hinnant's days-to-civil, timestamps as RFC 3339 UTC with 6 fraction digits when non-zero,
//! floats in Rust's shortest round-trip form.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value as Json;

use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Bool,
    Int64,
    Float64,
    Utf8,
    Date,
    Timestamp,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Bool => "bool",
            Ty::Int64 => "int64",
            Ty::Float64 => "float64",
            Ty::Utf8 => "utf8",
            Ty::Date => "date",
            Ty::Timestamp => "timestamp",
        }
    }
    pub fn duckdb(self) -> &'static str {
        match self {
            Ty::Bool => "BOOLEAN",
            Ty::Int64 => "BIGINT",
            Ty::Float64 => "DOUBLE",
            Ty::Utf8 => "VARCHAR",
            Ty::Date => "DATE",
            Ty::Timestamp => "TIMESTAMP",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since the epoch, UTC.
    Ts(i64),
}

#[derive(Clone, Debug)]
pub struct Col {
    pub name: String,
    pub ty: Ty,
    pub nullable: bool,
}

/// A table of generated rows; `rows` are in input (file) order.
#[derive(Clone, Debug)]
pub struct Table {
    pub cols: Vec<Col>,
    pub key: Option<usize>,
    pub rows: Vec<Vec<Cell>>,
}

/// (year, month, day) of a day number (days since 1970-01-01).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn date_text(days: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(days));
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn ts_text(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let rem = micros.rem_euclid(86_400_000_000);
    let (secs, frac) = (rem / 1_000_000, rem % 1_000_000);
    let mut s = format!(
        "{}T{:02}:{:02}:{:02}",
        date_text(days as i32),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let _ = write!(s, ".{frac:06}");
    }
    s.push('Z');
    s
}

pub fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "Infinity".into()
    } else if f == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        format!("{f:?}")
    }
}

impl Cell {
    /// The cell as CSV text (unquoted); None for null.
    pub fn text(&self) -> Option<String> {
        Some(match self {
            Cell::Null => return None,
            Cell::Bool(b) => b.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => float_text(*f),
            Cell::Str(s) => s.clone(),
            Cell::Date(d) => date_text(*d),
            Cell::Ts(t) => ts_text(*t),
        })
    }

    /// The value as the server must render it in JSON (README.md, "The query API").
    pub fn to_json(&self) -> Json {
        match self {
            Cell::Null => Json::Null,
            Cell::Bool(b) => Json::Bool(*b),
            Cell::Int(i) => Json::from(*i),
            Cell::Float(f) if f.is_finite() => Json::from(*f),
            Cell::Float(f) => Json::String(float_text(*f)),
            Cell::Str(s) => Json::String(s.clone()),
            Cell::Date(d) => Json::String(date_text(*d)),
            Cell::Ts(t) => Json::String(ts_text(*t)),
        }
    }
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl Table {
    pub fn col_index(&self, name: &str) -> usize {
        self.cols
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    /// CSV with a header row; strings always quoted, nulls as empty fields.
    pub fn write_csv(&self, path: &Path) {
        let mut out = String::new();
        let names: Vec<String> = self.cols.iter().map(|c| c.name.clone()).collect();
        out.push_str(&names.join(","));
        out.push('\n');
        for row in &self.rows {
            let fields: Vec<String> = row
                .iter()
                .map(|c| match c {
                    Cell::Null => String::new(),
                    Cell::Str(s) => csv_field(s),
                    other => other.text().unwrap_or_default(),
                })
                .collect();
            out.push_str(&fields.join(","));
            out.push('\n');
        }
        std::fs::write(path, out).expect("writing CSV");
    }

    /// JSON Lines, one object a row; nulls as JSON null (floats must be finite).
    pub fn write_jsonl(&self, path: &Path) {
        let mut out = String::new();
        // Written by hand: serde_json's Map sorts keys, and the column order is the file's.
        for row in &self.rows {
            out.push('{');
            for (i, (c, cell)) in self.cols.iter().zip(row).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String(c.name.clone()).to_string());
                out.push(':');
                out.push_str(&cell.to_json().to_string());
            }
            out.push_str("}\n");
        }
        std::fs::write(path, out).expect("writing JSONL");
    }

    /// The `--schema` file (etl/src/schema_file.rs format).
    pub fn write_schema(&self, path: &Path) {
        let fields: Vec<Json> = self
            .cols
            .iter()
            .map(|c| serde_json::json!({"name": c.name, "type": c.ty.name(), "nullable": c.nullable}))
            .collect();
        let key = self
            .key
            .map(|k| Json::String(self.cols[k].name.clone()))
            .unwrap_or(Json::Null);
        std::fs::write(
            path,
            serde_json::json!({"fields": fields, "key": key}).to_string(),
        )
        .expect("writing schema");
    }

    /// SQL that loads the CSV written by `write_csv` into DuckDB table `name`.
    pub fn duckdb_load_sql(&self, name: &str, csv: &Path) -> String {
        let cols: Vec<String> = self
            .cols
            .iter()
            .map(|c| format!("'{}': '{}'", c.name.replace('\'', "''"), c.ty.duckdb()))
            .collect();
        format!(
            "CREATE OR REPLACE TABLE \"{name}\" AS SELECT * FROM read_csv('{}', header = true, delim = ',', \
             quote = '\"', escape = '\"', auto_detect = false, columns = {{{}}})",
            csv.display().to_string().replace('\'', "''"),
            cols.join(", ")
        )
    }

    /// Row indices (into `rows`) in the server's default order: key order when keyed, else
    /// input order.
    pub fn default_order(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.rows.len()).collect();
        if let Some(k) = self.key {
            idx.sort_by(|&a, &b| match (&self.rows[a][k], &self.rows[b][k]) {
                (Cell::Int(x), Cell::Int(y)) => x.cmp(y),
                (Cell::Str(x), Cell::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
                _ => std::cmp::Ordering::Equal,
            });
        }
        idx
    }
}

/// Strings from a fixed pool that stress CSV and JSON: commas, quotes, newlines, non-ASCII.
pub const WORDS: &[&str] = &[
    "alpha",
    "beta",
    "Gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "a,b",
    "quote\"d",
    "new\nline",
    "tab\there",
    "café",
    "Ünïcödé",
    "日本語",
    "emoji 🚀",
    "straße",
    "  padded  ",
    "x",
    "xy",
    "xyz",
    "ALPHA",
    "percent%",
    "under_score",
    "star*",
    "back\\slash",
    "semi;colon",
    "(paren)",
];

/// A random word-ish string of 1..=max_len characters (ASCII letters and some non-ASCII).
pub fn random_string(rng: &mut Rng, max_len: usize) -> String {
    const ALPHABET: &[char] = &[
        'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'k', 'm', 'n', 'p', 'r', 's', 't', 'A', 'B', 'Z',
        '0', '7', ' ', '-', ',', '"', 'é', 'ß', '日', '\n',
    ];
    let len = 1 + rng.below(max_len as u64) as usize;
    let mut s: String = (0..len).map(|_| *rng.pick(ALPHABET)).collect();
    // No leading/trailing spaces or newlines: both parsers agree on those only when quoted.
    s = s.trim().to_string();
    if s.is_empty() {
        s.push('q');
    }
    s
}
