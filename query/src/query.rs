//! The parsed form of a rows query, and the parser for PostgREST-style query strings.
//!
//! Grammar (after percent-decoding each name and value; `+` stays a literal plus in `/v1` and
//! is a space on the PostgREST face, as in PostgREST):
//! - `col=[not.]op.value` with op in eq, neq, gt, gte, lt, lte, like, ilike, isdistinct, match,
//!   imatch (regular expressions, the `regex` crate's syntax);
//!   `col=[not.]in.(a,b,"quoted, with comma")`; `col=[not.]is.null|true|false`.
//!   Several filters are ANDed; a column may appear several times (a range).
//! - `[not.]or=(f1,f2,...)` and `[not.]and=(...)`: each item `col.[not.]op.value` or a nested
//!   `[not.]or(...)` / `[not.]and(...)`; values holding `,()` in double quotes (`logic.rs`).
//! - `select=a,b` or `*`; with aggregates `select=g1,g2,col.sum(),col.avg(),col.min(),
//!   col.max(),col.count(),count()` (plain columns become the group keys); any item may be
//!   renamed with `alias:item`.
//! - `order=col[.asc|.desc][.nullsfirst|.nullslast],...` (several columns, in priority order);
//!   nulls sort last by default in `/v1` (`Dialect::V1`), and as in PostgreSQL on the
//!   PostgREST face (last for asc, first for desc); with aggregates `col` may also be an
//!   aggregate as written in select (`x.sum()`) or its output name.
//! - `limit=N` (0..=max), `offset=N` (0..=`Limits::max_offset`), `cursor=...` (a `next` from
//!   an earlier page).
//!
//! A cursor carries the normalized query that made it (`cursor.rs`): `cursor=X` alone
//! continues that query; sent with other parameters, they must equal the cursor's (`limit`
//! may change the page size), else 400 `cursor_mismatch` naming the first differing one.
//!
//! The names `select`, `order`, `limit`, `offset`, `cursor`, `or`, `and` are reserved: columns
//! with these names can be selected but not filtered on.

use std::borrow::Cow;

use quarry_format::{DataType, Schema, Version};

use crate::cursor::Cursor;
use crate::error::QueryError;
use crate::like::LikePattern;
use crate::literal::{parse_literal, Literal};
use crate::logic::{self, Cond};
use crate::percent::{decode_query, duplicate_parameter};
use crate::Limits;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    /// `not.op` as another op: exact under SQL null semantics (nulls never match either) and
    /// under our total order of floats (NaN above everything, equal to itself).
    fn negate(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Neq,
            CmpOp::Neq => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Gte,
            CmpOp::Lte => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Lte,
            CmpOp::Gte => CmpOp::Lt,
        }
    }

    /// Does `ord` (value compared with the literal) satisfy the op?
    pub(crate) fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Eq => ord == Equal,
            CmpOp::Neq => ord != Equal,
            CmpOp::Lt => ord == Less,
            CmpOp::Lte => ord != Greater,
            CmpOp::Gt => ord == Greater,
            CmpOp::Gte => ord != Less,
        }
    }
}

/// What a filter tests. Null values never match `Cmp`, `In` or `Like`, negated or not
/// (SQL three-valued logic); `IsNull` and `IsBool` are never unknown, so `not.` flips them.
#[derive(Clone, Debug)]
pub(crate) enum Predicate {
    Cmp(CmpOp, Literal),
    In {
        values: Vec<Literal>,
        negated: bool,
    },
    Like {
        pattern: LikePattern,
        negated: bool,
    },
    IsNull {
        negated: bool,
    },
    /// `is.true` / `is.false`: value == `value` (and not null).
    IsBool {
        value: bool,
        negated: bool,
    },
    /// `match` / `imatch`: the regular expression finds a match somewhere in the value (as
    /// PostgreSQL's `~` / `~*`), in the `regex` crate's syntax; linear time in the value.
    Regex {
        re: regex::Regex,
        negated: bool,
    },
}

impl Predicate {
    /// SQL `NOT` of the predicate under three-valued logic: a row that is unknown (null) for
    /// `p` is unknown for `NOT p` too, and our predicates already never match unknown rows, so
    /// negating the operator is exact.
    pub(crate) fn negate(self) -> Predicate {
        match self {
            Predicate::Cmp(op, l) => Predicate::Cmp(op.negate(), l),
            Predicate::In { values, negated } => Predicate::In {
                values,
                negated: !negated,
            },
            Predicate::Like { pattern, negated } => Predicate::Like {
                pattern,
                negated: !negated,
            },
            Predicate::IsNull { negated } => Predicate::IsNull { negated: !negated },
            Predicate::IsBool { value, negated } => Predicate::IsBool {
                value,
                negated: !negated,
            },
            Predicate::Regex { re, negated } => Predicate::Regex {
                re,
                negated: !negated,
            },
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Filter {
    pub column: usize,
    pub pred: Predicate,
}

/// Which face parsed the query: only defaults and output names differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dialect {
    /// `/v1`: nulls last unless `.nullsfirst`; aggregates named `sum(col)`, `count`, ...
    #[default]
    V1,
    /// The PostgREST face: nulls as in PostgreSQL (first for desc); aggregates named by their
    /// function (`sum`, `avg`, `count`, ...), as PostgREST names them.
    PostgRest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AggFunc {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggFunc {
    pub(crate) fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
        }
    }
}

/// One aggregate output column. `column == None` only for `count()` (rows per group).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AggSpec {
    pub func: AggFunc,
    pub column: Option<usize>,
    /// Output name: `count`, `count(col)`, `sum(col)`, `avg(col)`, `min(col)`, `max(col)` in
    /// `/v1`; the function's name on the PostgREST face; the alias when one is given.
    pub name: String,
}

#[derive(Clone, Debug)]
pub(crate) enum Projection {
    Columns(Vec<usize>),
    Aggregate {
        group_by: Vec<usize>,
        aggs: Vec<AggSpec>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OrderTarget {
    Column(usize),
    /// Index into the aggregate list.
    Aggregate(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OrderBy {
    pub target: OrderTarget,
    pub desc: bool,
    pub nulls_first: bool,
}

/// A parsed, validated rows query for one dataset version.
#[derive(Clone, Debug)]
pub struct RowsQuery {
    /// ANDed single-column filters (key ranges and zone maps use these).
    pub(crate) filters: Vec<Filter>,
    /// ANDed `or=`/`and=` trees (and `isdistinct`), negations pushed down to the leaves.
    pub(crate) trees: Vec<Cond>,
    pub(crate) projection: Projection,
    /// Output names of `Projection::Columns` (aliases applied).
    pub(crate) names: Vec<String>,
    /// Sort keys in priority order; ties are broken by row number (or group keys).
    pub(crate) order: Vec<OrderBy>,
    pub(crate) limit: usize,
    /// Matches to skip before the page (`offset=`); never with a cursor.
    pub(crate) offset: usize,
    pub(crate) cursor: Option<Cursor>,
    /// The normalized query (sorted decoded pairs, without cursor and offset) that a `next`
    /// cursor carries.
    pub(crate) canonical: Vec<(String, String)>,
    pub(crate) count_exact: bool,
    pub(crate) version: Version,
    pub(crate) max_scan_rows: u64,
    /// Column names and types of the dataset, for encoding.
    pub(crate) fields: Vec<(String, DataType)>,
}

impl RowsQuery {
    /// `Prefer: count=exact`: also compute the total number of matching rows (or groups).
    pub fn count_exact(&mut self, yes: bool) {
        self.count_exact = yes;
    }

    /// The page size in effect.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Lowers the page size to at most `n` (the PostgREST face's single-object requests need
    /// only two rows to know whether there is exactly one).
    pub fn cap_limit(&mut self, n: usize) {
        self.limit = self.limit.min(n);
    }

    /// Matches skipped before the page (`offset=`).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// True when the query aggregates (`select=` has `fn()` items).
    pub fn is_aggregate(&self) -> bool {
        matches!(self.projection, Projection::Aggregate { .. })
    }

    /// Types of the output columns, in order (count -> int64, avg -> float64, sum and
    /// min/max -> the column's type).
    pub fn output_types(&self) -> Vec<DataType> {
        match &self.projection {
            Projection::Columns(cols) => cols.iter().map(|&c| self.fields[c].1).collect(),
            Projection::Aggregate { group_by, aggs } => group_by
                .iter()
                .map(|&c| self.fields[c].1)
                .chain(aggs.iter().map(|a| match (a.func, a.column) {
                    (AggFunc::Count, _) | (_, None) => DataType::Int64,
                    (AggFunc::Avg, _) => DataType::Float64,
                    (_, Some(c)) => self.fields[c].1,
                }))
                .collect(),
        }
    }

    /// Names of the output columns, in order.
    pub fn output_columns(&self) -> Vec<String> {
        match &self.projection {
            Projection::Columns(_) => self.names.clone(),
            Projection::Aggregate { aggs, .. } => self
                .names
                .iter()
                .cloned()
                .chain(aggs.iter().map(|a| a.name.clone()))
                .collect(),
        }
    }
}

/// Parses a raw (still percent-encoded) query string for a dataset with `schema` at `version`
/// (the `/v1` dialect).
///
/// # Errors
/// 400 naming the parameter for anything malformed or unknown; 409 `stale_cursor` for a cursor
/// made for another version.
pub fn parse_rows_query(
    raw_query: &str,
    schema: &Schema,
    version: Version,
    limits: &Limits,
) -> Result<RowsQuery, QueryError> {
    parse_rows_query_in(raw_query, schema, version, limits, Dialect::V1)
}

/// The pairs a cursor is compared on and carries: sorted, without `cursor` and `offset`.
fn normalize(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .filter(|(n, _)| n != "cursor" && n != "offset")
        .cloned()
        .collect();
    out.sort();
    out
}

/// Decoded (name, value) query parameters.
type Pairs = Vec<(String, String)>;

/// Resolves `cursor=`: the query a cursor continues. Alone (or with `limit`), the cursor's own
/// query is used; with other parameters, they must be the cursor's.
fn resolve_cursor(
    pairs: Vec<(String, String)>,
    version: Version,
) -> Result<(Pairs, Option<(Cursor, char)>), QueryError> {
    let mut cursors = pairs.iter().filter(|(n, _)| n == "cursor");
    let Some((_, raw)) = cursors.next() else {
        return Ok((pairs, None));
    };
    if cursors.next().is_some() {
        return Err(duplicate_parameter("cursor"));
    }
    if pairs.iter().any(|(n, _)| n == "offset") {
        return Err(QueryError::bad(
            "bad_cursor",
            "offset",
            "offset= cannot be combined with cursor=; the cursor already says where the page starts",
        ));
    }
    let (cursor, kind, carried) = Cursor::parse(raw, version)?;
    let carried = normalize(&decode_query(&carried).map_err(|_| {
        QueryError::bad(
            "bad_cursor",
            "cursor",
            "malformed cursor: its query is not a valid query string; pass the `next` value of a \
             previous page unchanged",
        )
    })?);
    let given = normalize(&pairs);
    let is_limit = |p: &&(String, String)| p.0 == "limit";
    let given_rest: Vec<&(String, String)> = given.iter().filter(|p| !is_limit(p)).collect();
    let carried_rest: Vec<&(String, String)> = carried.iter().filter(|p| !is_limit(p)).collect();
    let mut effective: Vec<(String, String)> = if given_rest.is_empty() {
        carried.iter().filter(|p| !is_limit(p)).cloned().collect()
    } else if given_rest != carried_rest {
        let mut names: Vec<&str> = given_rest
            .iter()
            .chain(&carried_rest)
            .map(|p| p.0.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        let values = |list: &[&(String, String)], name: &str| -> Vec<String> {
            list.iter()
                .filter(|p| p.0 == name)
                .map(|p| p.1.clone())
                .collect()
        };
        let differing = names
            .into_iter()
            .find(|n| values(&given_rest, n) != values(&carried_rest, n))
            .unwrap_or("cursor");
        let (was, is) = (
            values(&carried_rest, differing),
            values(&given_rest, differing),
        );
        return Err(QueryError::bad(
            "cursor_mismatch",
            differing,
            format!(
                "the cursor was made for a query with {differing}={was:?}, but this request has \
                 {differing}={is:?}; send the cursor alone (?cursor=...) to continue its query, \
                 or start the new query without a cursor"
            ),
        ));
    } else {
        given_rest.into_iter().cloned().collect()
    };
    // The page size may change while paging; it does not move the position.
    match given.iter().find(|p| p.0 == "limit") {
        Some(l) => effective.push(l.clone()),
        None => effective.extend(carried.iter().filter(|p| p.0 == "limit").cloned()),
    }
    Ok((effective, Some((cursor, kind))))
}

/// [`parse_rows_query`] for a given face.
///
/// # Errors
/// As [`parse_rows_query`].
pub fn parse_rows_query_in(
    raw_query: &str,
    schema: &Schema,
    version: Version,
    limits: &Limits,
    dialect: Dialect,
) -> Result<RowsQuery, QueryError> {
    let fields: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.data_type))
        .collect();
    // PostgREST decodes `+` as a space, as form encoding does (and as the HTTP libraries of its
    // clients encode spaces); `/v1` keeps it a literal plus.
    let raw_query: Cow<'_, str> = if dialect == Dialect::PostgRest && raw_query.contains('+') {
        Cow::Owned(raw_query.replace('+', "%20"))
    } else {
        Cow::Borrowed(raw_query)
    };
    let (pairs, cursor) = resolve_cursor(decode_query(&raw_query)?, version)?;
    let mut filters = Vec::new();
    let mut trees = Vec::new();
    let mut select: Option<String> = None;
    let mut order: Option<String> = None;
    let mut limit: Option<usize> = None;
    let mut offset: Option<usize> = None;

    for (name, value) in &pairs {
        let once = |given: bool| -> Result<(), QueryError> {
            if given {
                return Err(duplicate_parameter(name));
            }
            Ok(())
        };
        match name.as_str() {
            "select" => {
                once(select.is_some())?;
                select = Some(value.clone());
            }
            "order" => {
                once(order.is_some())?;
                order = Some(value.clone());
            }
            "limit" => {
                once(limit.is_some())?;
                limit = Some(parse_limit(value, limits)?);
            }
            "offset" => {
                once(offset.is_some())?;
                offset = Some(parse_offset(value, limits)?);
            }
            "cursor" => {}
            "or" | "and" | "not.or" | "not.and" => {
                let cond = logic::parse_tree(name, value, schema, &fields)?;
                push_cond(cond, &mut filters, &mut trees);
            }
            _ => {
                let Some(column) = schema.index_of(name) else {
                    return Err(QueryError::bad(
                        "unknown_parameter",
                        name,
                        format!(
                            "{name:?} is neither a query parameter (select, order, limit, offset, \
                             cursor, or, and) nor a column; columns are: {}",
                            column_list(&fields)
                        ),
                    ));
                };
                let cond = parse_cond(column, name, fields[column].1, value, false)?;
                push_cond(cond, &mut filters, &mut trees);
            }
        }
    }

    let (projection, names) = match select.as_deref() {
        None => (
            Projection::Columns((0..fields.len()).collect()),
            fields.iter().map(|f| f.0.clone()).collect(),
        ),
        Some(s) => parse_select(s, schema, &fields, dialect)?,
    };
    let order = order
        .as_deref()
        .map(|o| parse_order(o, schema, &fields, &projection, &names, dialect))
        .transpose()?
        .unwrap_or_default();
    let limit = limit.unwrap_or(limits.default_limit.min(limits.max_limit));
    let is_aggregate = matches!(projection, Projection::Aggregate { .. });
    let cursor = match cursor {
        None => None,
        Some((c, kind)) => {
            let expected = if is_aggregate {
                'g'
            } else if order.is_empty() {
                'r'
            } else {
                'o'
            };
            if kind != expected {
                return Err(QueryError::bad(
                    "bad_cursor",
                    "cursor",
                    "malformed cursor: its kind does not fit its query; pass the `next` value of \
                     a previous page unchanged",
                ));
            }
            Some(c)
        }
    };
    Ok(RowsQuery {
        filters,
        trees,
        projection,
        names,
        order,
        limit,
        offset: offset.unwrap_or(0),
        cursor,
        canonical: normalize(&pairs),
        count_exact: false,
        version,
        max_scan_rows: limits.max_scan_rows,
        fields,
    })
}

/// A top-level condition: single filters (and ANDs of them) stay plain filters, which key
/// ranges and zone maps use; anything with an OR becomes a tree.
fn push_cond(cond: Cond, filters: &mut Vec<Filter>, trees: &mut Vec<Cond>) {
    match cond {
        Cond::Leaf(f) => filters.push(f),
        Cond::All(items) => {
            for c in items {
                push_cond(c, filters, trees);
            }
        }
        any @ Cond::Any(_) => trees.push(any),
    }
}

fn parse_offset(value: &str, limits: &Limits) -> Result<usize, QueryError> {
    let n: usize = value.parse().map_err(|_| {
        QueryError::bad(
            "bad_offset",
            "offset",
            format!(
                "expected a whole number 0..={}, found {value:?}",
                limits.max_offset
            ),
        )
    })?;
    if n > limits.max_offset {
        return Err(QueryError::bad(
            "offset_too_large",
            "offset",
            format!(
                "offset {n} is above the maximum {} (each skipped row costs work on every page); \
                 page further with cursors: follow the `next` cursor of the previous page \
                 (Link: rel=\"next\" header)",
                limits.max_offset
            ),
        ));
    }
    Ok(n)
}

fn column_list(fields: &[(String, DataType)]) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.0.as_str()).collect();
    names.join(", ")
}

fn parse_limit(value: &str, limits: &Limits) -> Result<usize, QueryError> {
    let n: usize = value.parse().map_err(|_| {
        QueryError::bad(
            "bad_limit",
            "limit",
            format!(
                "expected a whole number 0..={}, found {value:?}",
                limits.max_limit
            ),
        )
    })?;
    if n > limits.max_limit {
        return Err(QueryError::bad(
            "bad_limit",
            "limit",
            format!(
                "limit {n} is above the maximum {}; page with the `next` cursor instead",
                limits.max_limit
            ),
        ));
    }
    Ok(n)
}

/// `[not.]op.value` on one column. `in_tree`: inside `or=(...)`/`and=(...)`, where a value
/// holding `,` or parentheses is written in double quotes (`name.eq."a,b"`).
pub(crate) fn parse_cond(
    column: usize,
    name: &str,
    data_type: DataType,
    value: &str,
    in_tree: bool,
) -> Result<Cond, QueryError> {
    let bad = |msg: String| QueryError::bad("bad_filter", name, msg);
    let (negated, rest) = match value.strip_prefix("not.") {
        Some(r) => (true, r),
        None => (false, value),
    };
    let Some((op, operand)) = rest.split_once('.') else {
        return Err(bad(format!(
            "expected {name}=[not.]op.value with op one of eq, neq, gt, gte, lt, lte, in, is, \
             isdistinct, like, ilike; found {value:?}"
        )));
    };
    let unquoted;
    let operand = if in_tree && op != "in" {
        unquoted = logic::unquote(operand).map_err(|why| bad(format!("{why} in {value:?}")))?;
        unquoted.as_str()
    } else {
        operand
    };
    if op == "isdistinct" {
        // IS DISTINCT FROM is never unknown: null is distinct from every value but null.
        if operand == "null" {
            return Ok(Cond::Leaf(Filter {
                column,
                pred: Predicate::IsNull { negated: !negated },
            }));
        }
        let lit = parse_literal(data_type, operand, name)?;
        let eq = Cond::Leaf(Filter {
            column,
            pred: Predicate::Cmp(CmpOp::Eq, lit),
        });
        return Ok(if negated {
            eq
        } else {
            Cond::Any(vec![
                Cond::Leaf(Filter {
                    column,
                    pred: Predicate::IsNull { negated: false },
                }),
                eq.negate(),
            ])
        });
    }
    let cmp = |c: CmpOp| -> Result<Predicate, QueryError> {
        let lit = parse_literal(data_type, operand, name)?;
        Ok(Predicate::Cmp(if negated { c.negate() } else { c }, lit))
    };
    let pred = match op {
        "eq" => cmp(CmpOp::Eq)?,
        "neq" => cmp(CmpOp::Neq)?,
        "gt" => cmp(CmpOp::Gt)?,
        "gte" => cmp(CmpOp::Gte)?,
        "lt" => cmp(CmpOp::Lt)?,
        "lte" => cmp(CmpOp::Lte)?,
        "in" => {
            let items = parse_in_list(operand).map_err(|why| {
                bad(format!(
                    "expected in.(v1,v2,...) with \"double quotes\" around values \
                     holding commas or parentheses; {why}; found {operand:?}"
                ))
            })?;
            let values = items
                .iter()
                .map(|v| parse_literal(data_type, v, name))
                .collect::<Result<Vec<_>, _>>()?;
            Predicate::In { values, negated }
        }
        "is" => match operand {
            "null" => Predicate::IsNull { negated },
            "true" | "false" if data_type == DataType::Bool => Predicate::IsBool {
                value: operand == "true",
                negated,
            },
            "true" | "false" => {
                return Err(bad(format!(
                    "is.{operand} needs a bool column; {name:?} has type {data_type}"
                )))
            }
            _ => {
                return Err(bad(format!(
                    "expected is.null, is.true or is.false, found is.{operand}"
                )))
            }
        },
        "like" | "ilike" => {
            if data_type != DataType::Utf8 {
                return Err(bad(format!(
                    "{op} needs a utf8 column; {name:?} has type {data_type}"
                )));
            }
            let chars = operand.chars().count();
            if chars > crate::like::MAX_PATTERN_CHARS {
                return Err(QueryError::bad(
                    "pattern_too_long",
                    name,
                    format!(
                        "{op} pattern for {name:?} is {chars} characters; the limit is {}",
                        crate::like::MAX_PATTERN_CHARS
                    ),
                ));
            }
            Predicate::Like {
                pattern: LikePattern::new(operand, op == "ilike"),
                negated,
            }
        }
        "match" | "imatch" => {
            if data_type != DataType::Utf8 {
                return Err(bad(format!(
                    "{op} needs a utf8 column; {name:?} has type {data_type}"
                )));
            }
            let re = regex::RegexBuilder::new(operand)
                .case_insensitive(op == "imatch")
                // Bounds the compiled program (and so the fallback's work per byte) whatever
                // the pattern.
                .size_limit(64 << 10)
                .dfa_size_limit(1 << 20)
                .build()
                .map_err(|e| bad(format!("invalid regular expression {operand:?}: {e}")))?;
            Predicate::Regex { re, negated }
        }
        "fts" | "plfts" | "phfts" | "wfts" | "cs" | "cd" | "ov" | "sl" | "sr" | "nxr" | "nxl"
        | "adj" | "like(any)" | "like(all)" => {
            return Err(bad(format!(
                "operator {op:?} is not supported by Quarry; supported: eq, neq, gt, gte, lt, \
                 lte, in, is, isdistinct, like, ilike, match, imatch (optionally after not.), and \
                 or=/and="
            )))
        }
        _ => {
            return Err(bad(format!(
                "unknown operator {op:?}: expected one of eq, neq, gt, gte, lt, lte, in, is, \
                 isdistinct, like, ilike, match, imatch (optionally after not.)"
            )))
        }
    };
    Ok(Cond::Leaf(Filter { column, pred }))
}

/// `(a,b,"c,d")` -> ["a","b","c,d"]. Inside quotes `\"` and `\\` escape. `()` is empty.
fn parse_in_list(s: &str) -> Result<Vec<String>, String> {
    let inner = s
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| "the list must be in parentheses".to_string())?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Ok(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("a quoted value is not closed".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => item.push(c),
                        None => return Err("a quoted value ends in a backslash".into()),
                    },
                    Some(c) => item.push(c),
                }
            }
            match chars.next() {
                None => {
                    out.push(item);
                    return Ok(out);
                }
                Some(',') => out.push(item),
                Some(c) => return Err(format!("unexpected {c:?} after a quoted value")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(item);
                        return Ok(out);
                    }
                    Some(',') => {
                        out.push(item);
                        break;
                    }
                    Some(c @ ('"' | '(' | ')')) => {
                        return Err(format!("{c:?} inside an unquoted value"))
                    }
                    Some(c) => item.push(c),
                }
            }
        }
    }
}

/// `alias:item` -> (Some(alias), item). A `:` inside `::` (a PostgreSQL cast) is not an alias.
fn split_alias(item: &str) -> (Option<&str>, &str) {
    match item.split_once(':') {
        Some((alias, rest)) if !rest.starts_with(':') && !alias.is_empty() => {
            (Some(alias.trim()), rest.trim())
        }
        _ => (None, item),
    }
}

fn parse_select(
    s: &str,
    schema: &Schema,
    fields: &[(String, DataType)],
    dialect: Dialect,
) -> Result<(Projection, Vec<String>), QueryError> {
    let bad = |msg: String| QueryError::bad("bad_select", "select", msg);
    let mut columns: Vec<usize> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut aggs: Vec<AggSpec> = Vec::new();
    let mut star = false;
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad(format!(
                "empty item in select={s:?}; expected a,b,... or *"
            )));
        }
        if item == "*" {
            star = true;
            columns.extend(0..fields.len());
            names.extend(fields.iter().map(|f| f.0.clone()));
            continue;
        }
        let (alias, body) = split_alias(item);
        if body.contains("::") {
            return Err(bad(format!(
                "casts (::) are not supported, found {item:?}; select the column as it is"
            )));
        }
        if body.contains('(') && !body.ends_with("()") {
            return Err(bad(format!(
                "{item:?} looks like an embedded resource; Quarry has no relations between \
                 datasets (no embedding or joins)"
            )));
        }
        if let Some(mut spec) = parse_agg(body, schema, fields, dialect).map_err(bad)? {
            if let Some(a) = alias {
                spec.name = a.to_string();
            }
            if aggs.contains(&spec) {
                return Err(bad(format!("{item:?} appears twice in select")));
            }
            aggs.push(spec);
            continue;
        }
        let Some(c) = schema.index_of(body) else {
            return Err(bad(format!(
                "unknown column {body:?} in select; columns are: {}",
                column_list(fields)
            )));
        };
        let name = alias.unwrap_or(body).to_string();
        if names.contains(&name) {
            return Err(bad(format!(
                "output name {name:?} appears twice in select; rename one with alias:column"
            )));
        }
        columns.push(c);
        names.push(name);
    }
    if aggs.is_empty() {
        return Ok((Projection::Columns(columns), names));
    }
    if star {
        return Err(bad(
            "* cannot be combined with aggregates; name the group columns".into(),
        ));
    }
    if columns.len() > crate::aggregate::MAX_GROUP_COLUMNS {
        return Err(bad(format!(
            "at most {} group columns are supported, found {}",
            crate::aggregate::MAX_GROUP_COLUMNS,
            columns.len()
        )));
    }
    let mut seen: Vec<&str> = names.iter().map(String::as_str).collect();
    for a in &aggs {
        if seen.contains(&a.name.as_str()) {
            return Err(bad(format!(
                "output name {:?} appears twice in select; rename one with alias:{}",
                a.name, a.name
            )));
        }
        seen.push(&a.name);
    }
    Ok((
        Projection::Aggregate {
            group_by: columns,
            aggs,
        },
        names,
    ))
}

/// `count()`, `col.count()`, `col.sum()`, ... -> Some(spec); a plain name -> None.
fn parse_agg(
    item: &str,
    schema: &Schema,
    fields: &[(String, DataType)],
    dialect: Dialect,
) -> Result<Option<AggSpec>, String> {
    if item == "count()" {
        return Ok(Some(AggSpec {
            func: AggFunc::Count,
            column: None,
            name: "count".into(),
        }));
    }
    let Some(head) = item.strip_suffix("()") else {
        return Ok(None);
    };
    let Some((col, func)) = head.rsplit_once('.') else {
        return Err(format!("expected col.fn() or count(), found {item:?}"));
    };
    let func = match func {
        "count" => AggFunc::Count,
        "sum" => AggFunc::Sum,
        "avg" => AggFunc::Avg,
        "min" => AggFunc::Min,
        "max" => AggFunc::Max,
        _ => {
            return Err(format!(
                "unknown aggregate {func:?} in {item:?}; expected sum, avg, min, max or count"
            ))
        }
    };
    let Some(c) = schema.index_of(col) else {
        return Err(format!(
            "unknown column {col:?} in {item:?}; columns are: {}",
            column_list(fields)
        ));
    };
    let t = fields[c].1;
    if matches!(func, AggFunc::Sum | AggFunc::Avg)
        && !matches!(t, DataType::Int64 | DataType::Float64)
    {
        return Err(format!(
            "{}() needs an int64 or float64 column; {col:?} has type {t}",
            func.name()
        ));
    }
    Ok(Some(AggSpec {
        func,
        column: Some(c),
        name: match dialect {
            Dialect::V1 => format!("{}({col})", func.name()),
            Dialect::PostgRest => func.name().to_string(),
        },
    }))
}

fn parse_order(
    s: &str,
    schema: &Schema,
    fields: &[(String, DataType)],
    projection: &Projection,
    names: &[String],
    dialect: Dialect,
) -> Result<Vec<OrderBy>, QueryError> {
    let mut out: Vec<OrderBy> = Vec::new();
    for item in split_order(s) {
        let o = parse_order_item(item.trim(), s, schema, fields, projection, names, dialect)?;
        if out.iter().any(|p| p.target == o.target) {
            return Err(QueryError::bad(
                "bad_order",
                "order",
                format!("{item:?} sorts by a column already named in order={s:?}"),
            ));
        }
        out.push(o);
    }
    Ok(out)
}

/// Splits `order=` at commas outside parentheses (`x.sum()` holds none today, but an
/// aggregate's parentheses must never split an item).
fn split_order(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_order_item(
    item: &str,
    whole: &str,
    schema: &Schema,
    fields: &[(String, DataType)],
    projection: &Projection,
    names: &[String],
    dialect: Dialect,
) -> Result<OrderBy, QueryError> {
    let bad = |msg: String| QueryError::bad("bad_order", "order", msg);
    let mut rest = item;
    let mut desc = None;
    let mut nulls_first = None;
    while let Some((head, last)) = rest.rsplit_once('.') {
        match last {
            "asc" | "desc" if desc.is_none() => desc = Some(last == "desc"),
            "nullsfirst" | "nullslast" if nulls_first.is_none() && desc.is_none() => {
                nulls_first = Some(last == "nullsfirst")
            }
            _ => break,
        }
        rest = head;
    }
    let by_alias = |name: &str| names.iter().position(|n| n == name);
    let target = match projection {
        Projection::Columns(cols) => schema
            .index_of(rest)
            .or_else(|| by_alias(rest).map(|i| cols[i]))
            .map(OrderTarget::Column),
        Projection::Aggregate { group_by, aggs } => {
            if let Some(c) = schema
                .index_of(rest)
                .filter(|c| group_by.contains(c))
                .or_else(|| by_alias(rest).map(|i| group_by[i]))
            {
                Some(OrderTarget::Column(c))
            } else {
                let spec = parse_agg(rest, schema, fields, dialect).ok().flatten();
                spec.and_then(|spec| {
                    aggs.iter()
                        .position(|a| a.func == spec.func && a.column == spec.column)
                })
                .or_else(|| aggs.iter().position(|a| a.name == rest))
                .or_else(|| {
                    // `sum(col)`: the /v1 output name, accepted on both faces.
                    aggs.iter().position(|a| {
                        a.column
                            .is_some_and(|c| format!("{}({})", a.func.name(), fields[c].0) == rest)
                    })
                })
                .map(OrderTarget::Aggregate)
            }
        }
    };
    let Some(target) = target else {
        let is_agg = matches!(projection, Projection::Aggregate { .. });
        if !is_agg && !rest.is_empty() && !rest.contains('(') {
            return Err(bad(format!(
                "unknown column {rest:?} in order={whole:?}; columns are: {}",
                column_list(fields)
            )));
        }
        let what = if is_agg {
            "a group column or an aggregate from select (e.g. x.sum())"
        } else {
            "a column"
        };
        return Err(bad(format!(
            "expected {what} followed by .asc or .desc (and optionally .nullsfirst/.nullslast), \
             found {item:?}"
        )));
    };
    let desc = desc.unwrap_or(false);
    Ok(OrderBy {
        target,
        desc,
        nulls_first: nulls_first.unwrap_or(match dialect {
            Dialect::V1 => false,
            // PostgreSQL: NULLS FIRST is the default for DESC.
            Dialect::PostgRest => desc,
        }),
    })
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
