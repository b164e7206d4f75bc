//! Differential testing: seeded random queries (filters of every operator, projections, orders,
//! limits with cursors walked to the end, group-by aggregates) run against the real server and
//! against DuckDB loading the same CSV, compared value by value.
//!
//! Comparison rules (stated, not discovered):
//! - Row queries: the exact sequence. Default order is key order (keyed datasets) or input
//!   order (`seq`, unkeyed); `order=` sorts by the column with nulls last unless `nullsfirst`,
//!   ties broken by that default order. Floats compare bit for bit (NaN equals NaN).
//! - Aggregates: groups ordered by the group columns ascending (nulls last), or by `order=`
//!   with ties in that order. int sums/counts/min/max exact; float `sum` and
//!   any `avg` within |a-b| <= 1e-9*|b| + 1e-12*sum(|x|) (scaled by 1/count for avg).
//! - `Prefer: count=exact` totals equal the oracle's row (or group) count.
//!
//! Seed: QUARRY_TEST_SEED (default fixed); queries per dataset: QUARRY_DIFF_QUERIES (default 150).
//!
//! `random_queries_on_parquet_match_duckdb` runs the same generator over datasets built from
//! Parquet files that DuckDB wrote (zstd, small row groups), against DuckDB reading those files.

use std::fmt::Write as _;

use quarry_tests::data::{date_text, float_text, ts_text, Cell, Table, Ty};
use quarry_tests::{etl_build, pct, temp_dir, Oracle, Rng, Server};
use serde_json::Value as Json;

use crate::fixtures::{build_csv, events, people, words};

const DEFAULT_QUERIES: usize = 150;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Agg {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

/// How to compare one output column.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cmp {
    Exact,
    /// Float result of arithmetic: hidden oracle columns (sum of |x|, count) give the tolerance.
    Approx {
        sumabs_col: usize,
        count_col: usize,
        avg: bool,
    },
}

/// One generated query: the server's query string and the equivalent SQL.
struct Q {
    qs: String,
    sql: String,
    /// Columns of the oracle result the server returns (the rest are hidden tolerance inputs).
    visible: usize,
    cmps: Vec<Cmp>,
    /// Output column names, for reading the server's objects.
    names: Vec<String>,
    aggregate: bool,
}

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn sql_lit(c: &Cell) -> String {
    match c {
        Cell::Null => "NULL".into(),
        Cell::Bool(b) => b.to_string(),
        Cell::Int(i) => i.to_string(),
        Cell::Float(f) if f.is_finite() => format!("{f:?}::DOUBLE"),
        Cell::Float(f) => format!("'{}'::DOUBLE", float_text(*f)),
        Cell::Str(s) => sql_str(s),
        Cell::Date(d) => format!("DATE '{}'", date_text(*d)),
        Cell::Ts(t) => format!(
            "TIMESTAMP '{}'",
            ts_text(*t).trim_end_matches('Z').replace('T', " ")
        ),
    }
}

/// The literal as the query string carries it (before percent-encoding).
fn qs_lit(c: &Cell) -> String {
    c.text().unwrap_or_default()
}

/// Like `qs_lit`, but timestamps sometimes carry a UTC offset (the same instant), dates and
/// timestamps sometimes use other accepted spellings.
fn qs_lit_varied(c: &Cell, rng: &mut Rng) -> String {
    match c {
        Cell::Ts(t) if rng.chance(0.4) => {
            let minutes = *rng.pick(&[-330i64, -60, 60, 120, 345, 840]);
            let local = ts_text(t + minutes * 60_000_000);
            let sign = if minutes < 0 { '-' } else { '+' };
            format!(
                "{}{sign}{:02}:{:02}",
                local.trim_end_matches('Z'),
                minutes.abs() / 60,
                minutes.abs() % 60
            )
        }
        other => qs_lit(other),
    }
}

/// An in-list item: strings always quoted with `\"` and `\\` escaped.
fn qs_in_item(c: &Cell) -> String {
    match c {
        Cell::Str(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        other => qs_lit(other),
    }
}

fn random_value(t: &Table, col: usize, rng: &mut Rng) -> Cell {
    // Mostly existing values (so filters match), sometimes values near them.
    for _ in 0..20 {
        let v = rng.pick(&t.rows)[col].clone();
        if v == Cell::Null {
            continue;
        }
        if rng.chance(0.25) {
            return match v {
                Cell::Int(i) => Cell::Int(i.saturating_add(rng.range_i64(-3, 3))),
                Cell::Float(f) if f.is_finite() => {
                    Cell::Float(f + rng.range_i64(-2, 2) as f64 * 0.25)
                }
                Cell::Date(d) => Cell::Date(d + rng.range_i64(-2, 2) as i32),
                Cell::Ts(x) => Cell::Ts(x + rng.range_i64(-2_000_000, 2_000_000)),
                Cell::Str(s) => Cell::Str(format!("{s}{}", rng.pick(&["", "a", " ", "~"]))),
                other => other,
            };
        }
        return v;
    }
    match t.cols[col].ty {
        Ty::Bool => Cell::Bool(true),
        Ty::Int64 => Cell::Int(0),
        Ty::Float64 => Cell::Float(0.0),
        Ty::Utf8 => Cell::Str("a".into()),
        Ty::Date => Cell::Date(0),
        Ty::Timestamp => Cell::Ts(0),
    }
}

/// One element of a generated LIKE pattern.
enum LikeEl {
    Lit(String),
    Any,
    One,
}

/// A LIKE pattern around a piece of an existing value; the piece may hold `%`, `_`, `*` and
/// `\`, which are escaped (server: `\` before any of them; SQL: `ESCAPE '\'`).
fn like_pattern(t: &Table, col: usize, rng: &mut Rng) -> Vec<LikeEl> {
    let mut piece = String::from("a");
    for _ in 0..20 {
        if let Cell::Str(s) = &rng.pick(&t.rows)[col] {
            let chars: Vec<char> = s.chars().collect();
            let len = 1 + rng.below(3) as usize;
            let start = rng.below(chars.len() as u64) as usize;
            piece = chars[start..(start + len).min(chars.len())]
                .iter()
                .collect();
            break;
        }
    }
    use LikeEl::*;
    let lit = Lit(piece);
    match rng.below(6) {
        0 => vec![Any, lit, Any],
        1 => vec![lit, Any],
        2 => vec![Any, lit],
        3 => vec![lit],
        4 => vec![One, lit, Any],
        _ => vec![Any, lit, One, Any],
    }
}

/// The pattern as the query string carries it (before percent-encoding); `*` or `%` for Any.
fn like_qs(p: &[LikeEl], rng: &mut Rng) -> String {
    let mut out = String::new();
    for e in p {
        match e {
            LikeEl::Any => out.push(if rng.chance(0.7) { '*' } else { '%' }),
            LikeEl::One => out.push('_'),
            LikeEl::Lit(s) => {
                for c in s.chars() {
                    if matches!(c, '*' | '%' | '_' | '\\') {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
        }
    }
    out
}

/// The pattern for SQL `LIKE ... ESCAPE '\'`.
fn like_sql(p: &[LikeEl]) -> String {
    let mut out = String::new();
    for e in p {
        match e {
            LikeEl::Any => out.push('%'),
            LikeEl::One => out.push('_'),
            LikeEl::Lit(s) => {
                for c in s.chars() {
                    if matches!(c, '%' | '_' | '\\') {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
        }
    }
    out
}

fn flip_case(s: &str, rng: &mut Rng) -> String {
    s.chars()
        .map(|c| {
            if rng.chance(0.5) {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// One random filter: (query-string piece, SQL predicate).
fn gen_filter(t: &Table, rng: &mut Rng) -> (String, String) {
    let col = rng.below(t.cols.len() as u64) as usize;
    let c = &t.cols[col];
    let name = &c.name;
    let id = ident(name);
    let not = rng.chance(0.2);
    let neg = |sql: String| if not { format!("NOT ({sql})") } else { sql };
    let pre = if not { "not." } else { "" };
    let choice = rng.below(10);
    if choice == 0 {
        return (
            format!("{name}={pre}is.null"),
            if not {
                format!("{id} IS NOT NULL")
            } else {
                format!("{id} IS NULL")
            },
        );
    }
    if c.ty == Ty::Bool && choice <= 2 {
        let b = rng.chance(0.5);
        let sql = if not {
            format!("{id} IS NOT {}", b.to_string().to_uppercase())
        } else {
            format!("{id} IS {}", b.to_string().to_uppercase())
        };
        return (format!("{name}={pre}is.{b}"), sql);
    }
    if c.ty == Ty::Utf8 && choice <= 3 {
        let ilike = rng.chance(0.4);
        let mut p = like_pattern(t, col, rng);
        if ilike {
            for e in &mut p {
                if let LikeEl::Lit(s) = e {
                    *s = flip_case(s, rng);
                }
            }
        }
        let op = if ilike { "ilike" } else { "like" };
        return (
            format!("{name}={pre}{op}.{}", pct(&like_qs(&p, rng))),
            neg(format!(
                "{id} {} {} ESCAPE '\\'",
                op.to_uppercase(),
                sql_str(&like_sql(&p))
            )),
        );
    }
    if choice <= 5 {
        let n = 1 + rng.below(4);
        let vals: Vec<Cell> = (0..n).map(|_| random_value(t, col, rng)).collect();
        let qs: Vec<String> = vals.iter().map(qs_in_item).collect();
        let sql: Vec<String> = vals.iter().map(sql_lit).collect();
        return (
            format!("{name}={pre}in.({})", pct(&qs.join(","))),
            neg(format!("{id} IN ({})", sql.join(", "))),
        );
    }
    let v = random_value(t, col, rng);
    let (op, sqlop) = *rng.pick(&[
        ("eq", "="),
        ("neq", "<>"),
        ("gt", ">"),
        ("gte", ">="),
        ("lt", "<"),
        ("lte", "<="),
    ]);
    (
        format!("{name}={pre}{op}.{}", pct(&qs_lit_varied(&v, rng))),
        neg(format!("{id} {sqlop} {}", sql_lit(&v))),
    )
}

/// The column that reproduces the server's default row order.
fn tiebreak(t: &Table) -> String {
    match t.key {
        Some(k) => ident(&t.cols[k].name),
        None => ident("seq"),
    }
}

fn gen_query(t: &Table, table_name: &str, rng: &mut Rng, group_cols: &[usize]) -> Q {
    let nf = rng.below(4) as usize;
    let mut qs_parts = Vec::new();
    let mut wheres = Vec::new();
    for _ in 0..nf {
        let (q, s) = gen_filter(t, rng);
        qs_parts.push(q);
        wheres.push(s);
    }
    let where_sql = if wheres.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", wheres.join(" AND "))
    };
    let tb = tiebreak(t);
    let from = ident(table_name);

    if rng.chance(0.3) {
        // Aggregate query.
        let mut groups: Vec<usize> = Vec::new();
        for _ in 0..rng.below(3) {
            let g = *rng.pick(group_cols);
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let mut aggs: Vec<(Agg, Option<usize>)> = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let col = rng.below(t.cols.len() as u64) as usize;
            let numeric = matches!(t.cols[col].ty, Ty::Int64 | Ty::Float64);
            let a = match rng.below(6) {
                0 => (Agg::CountStar, None),
                1 => (Agg::Count, Some(col)),
                2 if numeric => (Agg::Sum, Some(col)),
                3 if numeric => (Agg::Avg, Some(col)),
                4 => (Agg::Min, Some(col)),
                _ => (Agg::Max, Some(col)),
            };
            if !aggs.contains(&a) {
                aggs.push(a);
            }
        }
        let mut select_items: Vec<String> =
            groups.iter().map(|&g| t.cols[g].name.clone()).collect();
        let mut names: Vec<String> = select_items.clone();
        let mut sql_cols: Vec<String> = groups.iter().map(|&g| ident(&t.cols[g].name)).collect();
        let mut cmps: Vec<Cmp> = groups.iter().map(|_| Cmp::Exact).collect();
        let mut hidden: Vec<String> = Vec::new();
        let visible = groups.len() + aggs.len();
        let mut agg_items = Vec::new();
        for &(a, col) in &aggs {
            let (item, out_name, sql) = match (a, col) {
                (Agg::CountStar, _) => (
                    "count()".to_string(),
                    "count".to_string(),
                    "count(*)".to_string(),
                ),
                (f, Some(c)) => {
                    let n = &t.cols[c].name;
                    let fname = match f {
                        Agg::Count => "count",
                        Agg::Sum => "sum",
                        Agg::Avg => "avg",
                        Agg::Min => "min",
                        _ => "max",
                    };
                    (
                        format!("{n}.{fname}()"),
                        format!("{fname}({n})"),
                        format!("{fname}({})", ident(n)),
                    )
                }
                _ => unreachable!(),
            };
            let float_math = match (a, col) {
                (Agg::Avg, _) => true,
                (Agg::Sum, Some(c)) => t.cols[c].ty == Ty::Float64,
                _ => false,
            };
            if float_math {
                let c = ident(&t.cols[col.unwrap_or(0)].name);
                let base = visible + hidden.len();
                hidden.push(format!("sum(abs({c}::DOUBLE))"));
                hidden.push(format!("count({c})"));
                cmps.push(Cmp::Approx {
                    sumabs_col: base,
                    count_col: base + 1,
                    avg: a == Agg::Avg,
                });
            } else {
                cmps.push(Cmp::Exact);
            }
            agg_items.push(item.clone());
            select_items.push(item);
            names.push(out_name);
            sql_cols.push(sql);
        }
        // Order: a group column or an aggregate, or first-seen order.
        // Default group order: the group columns ascending, nulls last (query/src/scan/page.rs
        // page_groups); `order=` ties keep that order.
        let mut by_groups: Vec<String> = groups
            .iter()
            .map(|&g| format!("{} ASC NULLS LAST", ident(&t.cols[g].name)))
            .collect();
        if by_groups.is_empty() {
            by_groups.push("1".into());
        }
        let first_seen = by_groups.join(", ");
        let mut order_sql = if groups.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {first_seen}")
        };
        if rng.chance(0.5) {
            let n_targets = groups.len() + aggs.len();
            let i = rng.below(n_targets as u64) as usize;
            let (target_qs, target_sql) = if i < groups.len() {
                (t.cols[groups[i]].name.clone(), sql_cols[i].clone())
            } else {
                (agg_items[i - groups.len()].clone(), sql_cols[i].clone())
            };
            let desc = rng.chance(0.5);
            let nulls_first = rng.chance(0.3);
            let mut o = target_qs;
            o.push_str(if desc { ".desc" } else { ".asc" });
            if nulls_first {
                o.push_str(".nullsfirst");
            }
            qs_parts.push(format!("order={}", pct(&o)));
            order_sql = format!(
                " ORDER BY {target_sql} {} NULLS {}, {first_seen}",
                if desc { "DESC" } else { "ASC" },
                if nulls_first { "FIRST" } else { "LAST" }
            );
        }
        qs_parts.push(format!("select={}", pct(&select_items.join(","))));
        let group_sql = if groups.is_empty() {
            String::new()
        } else {
            format!(
                " GROUP BY {}",
                groups
                    .iter()
                    .map(|&g| ident(&t.cols[g].name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut all_cols = sql_cols;
        all_cols.extend(hidden);
        // Without GROUP BY an aggregate over zero rows is still one row (SQL); so is ours.
        let sql = format!(
            "SELECT {} FROM {from}{where_sql}{group_sql}{order_sql}",
            all_cols.join(", ")
        );
        return Q {
            qs: qs_parts.join("&"),
            sql,
            visible,
            cmps,
            names,
            aggregate: true,
        };
    }

    // Row query: projection, order.
    let mut cols: Vec<usize> = (0..t.cols.len()).collect();
    if rng.chance(0.5) {
        rng.shuffle(&mut cols);
        cols.truncate(1 + rng.below(t.cols.len() as u64) as usize);
        qs_parts.push(format!(
            "select={}",
            cols.iter()
                .map(|&c| t.cols[c].name.clone())
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    let mut order_sql = format!(" ORDER BY {tb}");
    if rng.chance(0.5) {
        let c = rng.below(t.cols.len() as u64) as usize;
        let desc = rng.chance(0.5);
        let nulls_first = rng.chance(0.3);
        let mut o = t.cols[c].name.clone();
        if desc || rng.chance(0.5) {
            o.push_str(if desc { ".desc" } else { ".asc" });
        }
        if nulls_first {
            o.push_str(".nullsfirst");
        }
        qs_parts.push(format!("order={o}"));
        order_sql = format!(
            " ORDER BY {} {} NULLS {}, {tb}",
            ident(&t.cols[c].name),
            if desc { "DESC" } else { "ASC" },
            if nulls_first { "FIRST" } else { "LAST" }
        );
    }
    let names: Vec<String> = cols.iter().map(|&c| t.cols[c].name.clone()).collect();
    let sql_cols: Vec<String> = names.iter().map(|n| ident(n)).collect();
    let sql = format!(
        "SELECT {} FROM {from}{where_sql}{order_sql}",
        sql_cols.join(", ")
    );
    Q {
        qs: qs_parts.join("&"),
        sql,
        visible: names.len(),
        cmps: vec![Cmp::Exact; names.len()],
        names,
        aggregate: false,
    }
}

/// A JSON value as f64 if it is a number or a non-finite float spelled out.
fn as_float(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) if s == "NaN" => Some(f64::NAN),
        Json::String(s) if s == "Infinity" => Some(f64::INFINITY),
        Json::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
        Json::Object(o) => o.get("float").and_then(as_float),
        _ => None,
    }
}

fn same_value(server: &Json, oracle: &Json, cmp: Cmp, oracle_row: &[Json]) -> bool {
    match (server, oracle) {
        (Json::Null, Json::Null) => true,
        (Json::Null, _) | (_, Json::Null) => false,
        (Json::Number(a), Json::Number(b)) if a.is_i64() && b.is_i64() => a.as_i64() == b.as_i64(),
        _ => match (as_float(server), as_float(oracle)) {
            (Some(a), Some(b)) => {
                if a.is_nan() || b.is_nan() || a.is_infinite() || b.is_infinite() {
                    return a.is_nan() && b.is_nan() || a == b;
                }
                match cmp {
                    Cmp::Exact => a.to_bits() == b.to_bits() || a == b,
                    Cmp::Approx {
                        sumabs_col,
                        count_col,
                        avg,
                    } => {
                        let sumabs = as_float(&oracle_row[sumabs_col]).unwrap_or(0.0);
                        let count = as_float(&oracle_row[count_col]).unwrap_or(1.0).max(1.0);
                        let scale = if avg { sumabs / count } else { sumabs };
                        (a - b).abs() <= 1e-9 * b.abs() + 1e-12 * scale
                    }
                }
            }
            _ => server == oracle,
        },
    }
}

struct Run<'a> {
    server: &'a Server,
    oracle: &'a mut Oracle,
    dataset: String,
    table_name: String,
    queries: usize,
    pages: usize,
    rows_compared: usize,
    failures: Vec<String>,
}

impl Run<'_> {
    fn check(&mut self, q: &Q, rng: &mut Rng) {
        let want = match self.oracle.query(&q.sql) {
            Ok(r) => r.rows,
            Err(e) => {
                self.failures.push(format!("oracle failed: {e}"));
                return;
            }
        };
        // Keep pages <= ~25 per walk.
        let mut limit = *rng.pick(&[1usize, 3, 10, 50, 100, 500, 2000]);
        limit = limit.max(want.len().div_ceil(25)).max(1);
        let base = format!("/v1/datasets/{}/rows", self.dataset);
        let count_exact = rng.chance(0.3);
        let mut got: Vec<Vec<Json>> = Vec::new();
        let mut target = format!(
            "{base}?{}{}limit={limit}",
            q.qs,
            if q.qs.is_empty() { "" } else { "&" }
        );
        let first_target = target.clone();
        let mut first = true;
        // A quarter of the walks use NDJSON and follow the `Link: <...>; rel="next"` header.
        let ndjson = rng.chance(0.25);
        loop {
            let mut headers: Vec<(&str, &str)> = Vec::new();
            if first && count_exact {
                headers.push(("Prefer", "count=exact"));
            }
            if ndjson {
                headers.push(("Accept", "application/x-ndjson"));
            }
            let r = self.server.get_with(&target, &headers);
            self.pages += 1;
            if r.status != 200 {
                self.failures.push(format!(
                    "GET {target} -> {} {}\n  SQL: {}",
                    r.status,
                    r.text(),
                    q.sql
                ));
                return;
            }
            let (rows, next): (Vec<Json>, Option<String>) = if ndjson {
                let mut rows = Vec::new();
                for line in r.text().lines() {
                    match serde_json::from_str::<Json>(line) {
                        Ok(v) => rows.push(v),
                        Err(e) => {
                            self.failures
                                .push(format!("GET {target} (ndjson): bad line {line:?}: {e}"));
                            return;
                        }
                    }
                }
                let next = r.header("link").and_then(|l| {
                    let (url, rel) = l.split_once(">;")?;
                    rel.contains("rel=\"next\"")
                        .then(|| url.trim_start_matches('<').to_string())
                });
                if first
                    && count_exact
                    && r.header("content-range") != Some(format!("*/{}", want.len()).as_str())
                {
                    self.failures.push(format!(
                        "GET {target} (ndjson, Prefer: count=exact): Content-Range {:?} but oracle has {} rows",
                        r.header("content-range"),
                        want.len()
                    ));
                }
                (rows, next)
            } else {
                let body = r.json();
                if first && count_exact && body["total"] != want.len() {
                    self.failures.push(format!(
                        "GET {target} (Prefer: count=exact): total {} but oracle has {} rows\n  SQL: {}",
                        body["total"],
                        want.len(),
                        q.sql
                    ));
                }
                let Some(rows) = body["rows"].as_array() else {
                    self.failures
                        .push(format!("GET {target}: no rows array: {body}"));
                    return;
                };
                // The Link header and the body agree on the next page.
                let link_has_next = r.header("link").is_some_and(|l| l.contains("rel=\"next\""));
                if link_has_next != body["next"].is_string() {
                    self.failures.push(format!(
                        "GET {target}: Link header and body `next` disagree"
                    ));
                }
                let next = body["next"].as_str().map(|c| {
                    format!(
                        "{base}?{}{}limit={limit}&cursor={}",
                        q.qs,
                        if q.qs.is_empty() { "" } else { "&" },
                        pct(c)
                    )
                });
                (rows.clone(), next)
            };
            first = false;
            if rows.len() > limit {
                self.failures.push(format!(
                    "GET {target}: {} rows above limit {limit}",
                    rows.len()
                ));
                return;
            }
            for row in &rows {
                let vals: Vec<Json> = q
                    .names
                    .iter()
                    .map(|n| {
                        row.get(n)
                            .cloned()
                            .unwrap_or(Json::String(format!("<missing {n}>")))
                    })
                    .collect();
                if row.as_object().map_or(0, |o| o.len()) != q.names.len() {
                    self.failures.push(format!(
                        "GET {target}: row has keys {:?}, want {:?}",
                        row.as_object().map(|o| o.keys().collect::<Vec<_>>()),
                        q.names
                    ));
                    return;
                }
                got.push(vals);
            }
            match next {
                Some(n) => {
                    if rows.is_empty() {
                        self.failures
                            .push(format!("GET {target}: empty page with a next cursor"));
                        return;
                    }
                    target = n;
                }
                None => break,
            }
        }
        self.queries += 1;
        let mut diff = String::new();
        if got.len() != want.len() {
            let _ = write!(diff, "row count {} vs oracle {}; ", got.len(), want.len());
        }
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let same = (0..q.visible).all(|c| same_value(&g[c], &w[c], q.cmps[c], w));
            if !same {
                let _ = write!(
                    diff,
                    "first difference at row {i}: server {:?} vs oracle {:?}",
                    g,
                    &w[..q.visible]
                );
                break;
            }
            self.rows_compared += 1;
        }
        if !diff.is_empty() {
            self.failures.push(format!(
                "{}: GET {first_target} (walked with limit {limit}, aggregate: {})\n  SQL: {}\n  {diff}",
                self.table_name, q.aggregate, q.sql
            ));
        }
    }
}

#[test]
fn random_queries_match_duckdb() {
    let mut oracle = Oracle::start();
    let (mut rng, seed) = Rng::from_env(0x5eed_0001);
    let per_dataset: usize = std::env::var("QUARRY_DIFF_QUERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_QUERIES);
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let tables: Vec<(&str, Table, Vec<&str>)> = vec![
        (
            "people",
            people(&mut rng, 3000),
            vec!["name", "age", "active", "born"],
        ),
        ("words", words(&mut rng, 1500), vec!["grp", "n"]),
        (
            "events",
            events(&mut rng, 3000),
            vec!["kind", "user_id", "flag"],
        ),
    ];
    for (name, t, _) in &tables {
        let csv = build_csv(t, dir.path(), &data, name, &[]);
        oracle.exec(&t.duckdb_load_sql(name, &csv));
        // The oracle must see the same rows as the generator wrote (a loader sanity check).
        let n = oracle.exec(&format!("SELECT count(*) FROM {name}")).rows[0][0].as_u64();
        assert_eq!(
            n,
            Some(t.rows.len() as u64),
            "DuckDB loaded a different row count for {name}"
        );
    }
    let mut server = Server::start(&data);
    server.wait_ready();
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    for (name, t, groups) in &tables {
        let group_cols: Vec<usize> = groups.iter().map(|g| t.col_index(g)).collect();
        let mut run = Run {
            server: &server,
            oracle: &mut oracle,
            dataset: name.to_string(),
            table_name: name.to_string(),
            queries: 0,
            pages: 0,
            rows_compared: 0,
            failures: Vec::new(),
        };
        for _ in 0..per_dataset {
            let q = gen_query(t, name, &mut rng, &group_cols);
            run.check(&q, &mut rng);
        }
        summary.push(format!(
            "{name}: {} queries, {} pages, {} rows compared, {} failures",
            run.queries,
            run.pages,
            run.rows_compared,
            run.failures.len()
        ));
        failures.extend(run.failures);
    }
    server.assert_healthy_process();
    eprintln!(
        "differential (seed {seed}, DuckDB {}): {}",
        oracle.duckdb_version,
        summary.join("; ")
    );
    if !failures.is_empty() {
        let all =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential-failures.txt");
        let _ = std::fs::write(&all, failures.join("\n\n"));
        eprintln!("all differential failures: {}", all.display());
        let shown: Vec<&String> = failures.iter().take(12).collect();
        panic!(
            "{} of {} differential queries disagree with DuckDB (seed {seed}; rerun with QUARRY_TEST_SEED={seed}):\n{}",
            failures.len(),
            per_dataset * tables.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n\n")
        );
    }
}

/// quarry-etl reading Parquet: DuckDB writes each generated table as Parquet, the ETL builds it
/// (types inferred from the Parquet schema), and the oracle table is DuckDB reading the same
/// Parquet file.
#[test]
fn random_queries_on_parquet_match_duckdb() {
    let mut oracle = Oracle::start();
    let (mut rng, seed) = Rng::from_env(0x5eed_0017);
    let per_dataset: usize = std::env::var("QUARRY_DIFF_QUERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_QUERIES)
        .div_ceil(2);
    let dir = temp_dir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let tables: Vec<(&str, Table, Vec<&str>)> = vec![
        (
            "people",
            people(&mut rng, 3000),
            vec!["name", "age", "active", "born"],
        ),
        (
            "events",
            events(&mut rng, 3000),
            vec!["kind", "user_id", "flag"],
        ),
    ];
    for (name, t, _) in &tables {
        let csv = dir.path().join(format!("{name}.csv"));
        t.write_csv(&csv);
        let parquet = dir.path().join(format!("{name}.parquet"));
        let src = format!("{name}_csv");
        oracle.exec(&t.duckdb_load_sql(&src, &csv));
        oracle.exec(&format!(
            "COPY (SELECT * FROM {src}) TO '{}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 700)",
            parquet.display()
        ));
        oracle.exec(&format!(
            "CREATE OR REPLACE TABLE {name} AS SELECT * FROM read_parquet('{}')",
            parquet.display()
        ));
        let n = oracle.exec(&format!("SELECT count(*) FROM {name}")).rows[0][0].as_u64();
        assert_eq!(n, Some(t.rows.len() as u64), "DuckDB read {name}.parquet");
        let mut args = vec!["--threads", "2", "--row-group-rows", "256"];
        if let Some(k) = t.key {
            args.extend(["--key", t.cols[k].name.as_str()]);
        }
        etl_build(&parquet, &data, name, &args);
    }
    let mut server = Server::start(&data);
    server.wait_ready();
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    for (name, t, groups) in &tables {
        let group_cols: Vec<usize> = groups.iter().map(|g| t.col_index(g)).collect();
        let mut run = Run {
            server: &server,
            oracle: &mut oracle,
            dataset: name.to_string(),
            table_name: name.to_string(),
            queries: 0,
            pages: 0,
            rows_compared: 0,
            failures: Vec::new(),
        };
        for _ in 0..per_dataset {
            let q = gen_query(t, name, &mut rng, &group_cols);
            run.check(&q, &mut rng);
        }
        summary.push(format!(
            "{name}.parquet: {} queries, {} rows compared, {} failures",
            run.queries,
            run.rows_compared,
            run.failures.len()
        ));
        failures.extend(run.failures);
    }
    server.assert_healthy_process();
    eprintln!(
        "differential over Parquet (seed {seed}, DuckDB {}): {}",
        oracle.duckdb_version,
        summary.join("; ")
    );
    assert!(
        failures.is_empty(),
        "{} differential queries over Parquet disagree with DuckDB (seed {seed}; rerun with QUARRY_TEST_SEED={seed}):\n{}",
        failures.len(),
        failures.iter().take(12).cloned().collect::<Vec<_>>().join("\n\n")
    );
}
