//! Generated tables shared by the modules, and building them with the real quarry-etl.

use std::path::{Path, PathBuf};

use quarry_tests::data::{random_string, Cell, Col, Table, Ty, WORDS};
use quarry_tests::{etl_build, Rng};

fn col(name: &str, ty: Ty, nullable: bool) -> Col {
    Col {
        name: name.into(),
        ty,
        nullable,
    }
}

/// Int key (unique, shuffled in input order, negatives included) and one column of every type,
/// each nullable with some nulls.
pub fn people(rng: &mut Rng, n: usize) -> Table {
    let mut ids: Vec<i64> = (0..n as i64).map(|i| i * 7 - (n as i64) * 3).collect();
    rng.shuffle(&mut ids);
    let rows = ids
        .into_iter()
        .map(|id| {
            let null = |rng: &mut Rng| rng.chance(0.12);
            vec![
                Cell::Int(id),
                if null(rng) {
                    Cell::Null
                } else {
                    Cell::Str(rng.pick(WORDS).to_string())
                },
                if null(rng) {
                    Cell::Null
                } else {
                    Cell::Int(rng.range_i64(-50, 120))
                },
                if null(rng) {
                    Cell::Null
                } else {
                    // Some exact duplicates (ties), some arbitrary doubles.
                    Cell::Float(if rng.chance(0.3) {
                        rng.range_i64(-4, 4) as f64 * 0.5
                    } else {
                        (rng.f64_unit() - 0.5) * 1e6
                    })
                },
                if null(rng) {
                    Cell::Null
                } else {
                    Cell::Bool(rng.chance(0.5))
                },
                if null(rng) {
                    Cell::Null
                } else {
                    Cell::Date(rng.range_i64(-800, 20_000) as i32)
                },
                if null(rng) {
                    Cell::Null
                } else {
                    let micros = rng.range_i64(-1_000_000_000, 2_000_000_000) * 1_000_000;
                    Cell::Ts(if rng.chance(0.5) {
                        micros + rng.range_i64(0, 999_999)
                    } else {
                        micros
                    })
                },
            ]
        })
        .collect();
    Table {
        cols: vec![
            col("id", Ty::Int64, false),
            col("name", Ty::Utf8, true),
            col("age", Ty::Int64, true),
            col("score", Ty::Float64, true),
            col("active", Ty::Bool, true),
            col("born", Ty::Date, true),
            col("seen", Ty::Timestamp, true),
        ],
        key: Some(0),
        rows,
    }
}

/// String key (unique, with commas, quotes, non-ASCII), wide strings (up to ~400 chars, some
/// with newlines), a low-cardinality group column and a mostly-null int.
pub fn words(rng: &mut Rng, n: usize) -> Table {
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::with_capacity(n);
    while rows.len() < n {
        let k = format!("{}{}", random_string(rng, 12), rng.below(1000));
        if !seen.insert(k.clone()) {
            continue;
        }
        rows.push(vec![
            Cell::Str(k),
            if rng.chance(0.1) {
                Cell::Null
            } else {
                Cell::Str(random_string(rng, 400))
            },
            if rng.chance(0.05) {
                Cell::Null
            } else {
                Cell::Str(["red", "green", "blue", "Blue", "vert"][rng.below(5) as usize].into())
            },
            if rng.chance(0.6) {
                Cell::Null
            } else {
                Cell::Int(rng.range_i64(-1_000_000, 1_000_000))
            },
            if rng.chance(0.2) {
                Cell::Null
            } else {
                Cell::Float(rng.range_i64(-100, 100) as f64 / 8.0)
            },
        ]);
    }
    Table {
        cols: vec![
            col("k", Ty::Utf8, false),
            col("body", Ty::Utf8, true),
            col("grp", Ty::Utf8, true),
            col("n", Ty::Int64, true),
            col("x", Ty::Float64, true),
        ],
        key: Some(0),
        rows,
    }
}

/// No key: rows in input order, duplicates everywhere; `seq` records the input position so the
/// oracle can reproduce row order. Floats include NaN and infinities.
pub fn events(rng: &mut Rng, n: usize) -> Table {
    let rows = (0..n)
        .map(|i| {
            vec![
                Cell::Int(i as i64),
                Cell::Str(["login", "logout", "view", "buy"][rng.below(4) as usize].into()),
                if rng.chance(0.15) {
                    Cell::Null
                } else {
                    Cell::Int(rng.range_i64(0, 9))
                },
                if rng.chance(0.1) {
                    Cell::Null
                } else if rng.chance(0.03) {
                    Cell::Float(*rng.pick(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY]))
                } else {
                    Cell::Float(rng.range_i64(-1000, 1000) as f64 / 4.0)
                },
                if rng.chance(0.3) {
                    Cell::Null
                } else {
                    Cell::Bool(rng.chance(0.3))
                },
            ]
        })
        .collect();
    Table {
        cols: vec![
            col("seq", Ty::Int64, false),
            col("kind", Ty::Utf8, false),
            col("user_id", Ty::Int64, true),
            col("amount", Ty::Float64, true),
            col("flag", Ty::Bool, true),
        ],
        key: None,
        rows,
    }
}

/// Writes `table` as CSV plus its schema file into `src`, builds `<out>/<name>.qry` with the
/// real quarry-etl (256-row groups unless `extra` sets them, so scans cross several), returns the CSV path.
pub fn build_csv(table: &Table, src: &Path, out: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let csv = src.join(format!("{name}.csv"));
    let schema = src.join(format!("{name}.schema.json"));
    table.write_csv(&csv);
    table.write_schema(&schema);
    let schema_s = schema.to_string_lossy().into_owned();
    let mut args = vec!["--schema", schema_s.as_str(), "--threads", "2"];
    if !extra.contains(&"--row-group-rows") {
        args.extend(["--row-group-rows", "256"]);
    }
    args.extend_from_slice(extra);
    etl_build(&csv, out, name, &args);
    csv
}

/// Minimal RFC 4180 reader for checking text/csv responses (quotes, doubled quotes, CRLF/LF).
/// An empty unquoted field is None (null); `""` is Some("").
pub fn parse_csv(text: &str) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut any = false;
    let finish = |field: &mut String, quoted: &mut bool| {
        let f = std::mem::take(field);
        let q = std::mem::replace(quoted, false);
        if f.is_empty() && !q {
            None
        } else {
            Some(f)
        }
    };
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                quoted = true;
            }
            ',' => row.push(finish(&mut field, &mut quoted)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(finish(&mut field, &mut quoted));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            c => field.push(c),
        }
    }
    if any {
        row.push(finish(&mut field, &mut quoted));
        rows.push(row);
    }
    rows
}
