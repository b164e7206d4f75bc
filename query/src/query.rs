//! The parsed form of a rows query, and the parser for PostgREST-style query strings.
//!
//! Grammar (after percent-decoding each name and value; `+` stays a literal plus):
//! - `col=[not.]op.value` with op in eq, neq, gt, gte, lt, lte, like, ilike;
//!   `col=[not.]in.(a,b,"quoted, with comma")`; `col=[not.]is.null|true|false`.
//!   Several filters are ANDed; a column may appear several times (a range).
//! - `select=a,b` or `*`; with aggregates `select=g1,g2,col.sum(),col.avg(),col.min(),
//!   col.max(),col.count(),count()` (plain columns become the group keys).
//! - `order=col[.asc|.desc][.nullsfirst|.nullslast]` (one column; nulls last by default);
//!   with aggregates `col` may also be an aggregate as written in select (`x.sum()`).
//! - `limit=N` (0..=max), `cursor=...` (a `next` from an earlier page).
//!
//! The names `select`, `order`, `limit`, `cursor` are reserved: columns with these names can
//! be selected but not filtered on.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use quarry_format::{DataType, Schema, Version};

use crate::cursor::Cursor;
use crate::error::QueryError;
use crate::like::LikePattern;
use crate::literal::{parse_literal, Literal};
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
}

#[derive(Clone, Debug)]
pub(crate) struct Filter {
    pub column: usize,
    pub pred: Predicate,
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
    fn name(self) -> &'static str {
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
    /// Output name: `count`, `count(col)`, `sum(col)`, `avg(col)`, `min(col)`, `max(col)`.
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
    pub(crate) filters: Vec<Filter>,
    pub(crate) projection: Projection,
    pub(crate) order: Option<OrderBy>,
    pub(crate) limit: usize,
    pub(crate) cursor: Option<Cursor>,
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
            Projection::Columns(cols) => cols.iter().map(|&c| self.fields[c].0.clone()).collect(),
            Projection::Aggregate { group_by, aggs } => group_by
                .iter()
                .map(|&c| self.fields[c].0.clone())
                .chain(aggs.iter().map(|a| a.name.clone()))
                .collect(),
        }
    }
}

/// The byte offset of the first `%` not followed by two hex digits (RFC 3986 2.1), if any.
/// `percent_decode_str` passes such a `%` through literally; Quarry refuses it instead.
pub(crate) fn malformed_escape(raw: &str) -> Option<usize> {
    let b = raw.as_bytes();
    (0..b.len()).find(|&i| {
        b[i] == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

fn decode(raw: &str, param_for_error: &str) -> Result<String, QueryError> {
    percent_decode(raw, param_for_error, "bad_encoding").map(Cow::into_owned)
}

/// Percent-decodes `raw`, borrowing it when it holds no `%` (the common case). A malformed
/// escape is 400 `bad_encoding`; bytes that are not UTF-8 once decoded are a 400 with the code
/// `utf8_code`.
pub(crate) fn percent_decode<'a>(
    raw: &'a str,
    param_for_error: &str,
    utf8_code: &'static str,
) -> Result<Cow<'a, str>, QueryError> {
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    if let Some(at) = malformed_escape(raw) {
        return Err(QueryError::bad(
            "bad_encoding",
            param_for_error,
            format!(
                "expected '%' followed by two hex digits at byte {at} of {raw:?} (write a literal '%' as %25)"
            ),
        ));
    }
    percent_decode_str(raw).decode_utf8().map_err(|_| {
        QueryError::bad(
            utf8_code,
            param_for_error,
            format!("expected UTF-8 after percent-decoding, found invalid bytes in {raw:?}"),
        )
    })
}

/// Parses a raw (still percent-encoded) query string for a dataset with `schema` at `version`.
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
    let fields: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.data_type))
        .collect();
    let mut filters = Vec::new();
    let mut select: Option<String> = None;
    let mut order: Option<String> = None;
    let mut limit: Option<usize> = None;
    let mut cursor: Option<String> = None;

    for piece in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
        let lossy_name = percent_decode_str(raw_name)
            .decode_utf8_lossy()
            .into_owned();
        let name = decode(raw_name, &lossy_name)?;
        let value = decode(raw_value, &name)?;
        let once = |given: bool| -> Result<(), QueryError> {
            if given {
                return Err(QueryError::bad(
                    "duplicate_parameter",
                    &name,
                    format!("parameter {name:?} given twice; give it once"),
                ));
            }
            Ok(())
        };
        match name.as_str() {
            "select" => {
                once(select.is_some())?;
                select = Some(value);
            }
            "order" => {
                once(order.is_some())?;
                order = Some(value);
            }
            "limit" => {
                once(limit.is_some())?;
                limit = Some(parse_limit(&value, limits)?);
            }
            "cursor" => {
                once(cursor.is_some())?;
                cursor = Some(value);
            }
            _ => {
                let Some(column) = schema.index_of(&name) else {
                    return Err(QueryError::bad(
                        "unknown_parameter",
                        &name,
                        format!(
                            "{name:?} is neither a query parameter (select, order, limit, cursor) \
                             nor a column; columns are: {}",
                            column_list(&fields)
                        ),
                    ));
                };
                filters.push(parse_filter(column, &name, fields[column].1, &value)?);
            }
        }
    }

    let projection = match select.as_deref() {
        None => Projection::Columns((0..fields.len()).collect()),
        Some(s) => parse_select(s, schema, &fields)?,
    };
    let order = order
        .as_deref()
        .map(|o| parse_order(o, schema, &projection))
        .transpose()?;
    let limit = limit.unwrap_or(limits.default_limit.min(limits.max_limit));
    let is_aggregate = matches!(projection, Projection::Aggregate { .. });
    let cursor = cursor
        .as_deref()
        .map(|c| Cursor::parse(c, version, order.as_ref(), is_aggregate))
        .transpose()?;
    Ok(RowsQuery {
        filters,
        projection,
        order,
        limit,
        cursor,
        count_exact: false,
        version,
        max_scan_rows: limits.max_scan_rows,
        fields,
    })
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

fn parse_filter(
    column: usize,
    name: &str,
    data_type: DataType,
    value: &str,
) -> Result<Filter, QueryError> {
    let bad = |msg: String| QueryError::bad("bad_filter", name, msg);
    let (negated, rest) = match value.strip_prefix("not.") {
        Some(r) => (true, r),
        None => (false, value),
    };
    let Some((op, operand)) = rest.split_once('.') else {
        return Err(bad(format!(
            "expected {name}=[not.]op.value with op one of eq, neq, gt, gte, lt, lte, in, is, \
             like, ilike; found {value:?}"
        )));
    };
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
        _ => {
            return Err(bad(format!(
                "unknown operator {op:?}: expected one of eq, neq, gt, gte, lt, lte, in, is, \
                 like, ilike (optionally after not.)"
            )))
        }
    };
    Ok(Filter { column, pred })
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

fn parse_select(
    s: &str,
    schema: &Schema,
    fields: &[(String, DataType)],
) -> Result<Projection, QueryError> {
    let bad = |msg: String| QueryError::bad("bad_select", "select", msg);
    let mut columns: Vec<usize> = Vec::new();
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
            continue;
        }
        if let Some(spec) = parse_agg(item, schema, fields).map_err(bad)? {
            if aggs.contains(&spec) {
                return Err(bad(format!("{item:?} appears twice in select")));
            }
            aggs.push(spec);
            continue;
        }
        let Some(c) = schema.index_of(item) else {
            return Err(bad(format!(
                "unknown column {item:?} in select; columns are: {}",
                column_list(fields)
            )));
        };
        if columns.contains(&c) {
            return Err(bad(format!("column {item:?} appears twice in select")));
        }
        columns.push(c);
    }
    if aggs.is_empty() {
        return Ok(Projection::Columns(columns));
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
    Ok(Projection::Aggregate {
        group_by: columns,
        aggs,
    })
}

/// `count()`, `col.count()`, `col.sum()`, ... -> Some(spec); a plain name -> None.
fn parse_agg(
    item: &str,
    schema: &Schema,
    fields: &[(String, DataType)],
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
        name: format!("{}({col})", func.name()),
    }))
}

fn parse_order(s: &str, schema: &Schema, projection: &Projection) -> Result<OrderBy, QueryError> {
    let bad = |msg: String| QueryError::bad("bad_order", "order", msg);
    if s.contains(',') {
        return Err(bad(format!(
            "expected one column (col.asc or col.desc), found {s:?}"
        )));
    }
    let mut rest = s;
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
    let target = match projection {
        Projection::Columns(_) => schema.index_of(rest).map(OrderTarget::Column),
        Projection::Aggregate { group_by, aggs } => {
            if let Some(c) = schema.index_of(rest).filter(|c| group_by.contains(c)) {
                Some(OrderTarget::Column(c))
            } else {
                let fields: Vec<(String, DataType)> = schema
                    .fields()
                    .iter()
                    .map(|f| (f.name.clone(), f.data_type))
                    .collect();
                let spec = parse_agg(rest, schema, &fields).ok().flatten();
                spec.and_then(|spec| aggs.iter().position(|a| *a == spec))
                    .or_else(|| aggs.iter().position(|a| a.name == rest))
                    .map(OrderTarget::Aggregate)
            }
        }
    };
    let Some(target) = target else {
        let what = if matches!(projection, Projection::Aggregate { .. }) {
            "a group column or an aggregate from select (e.g. x.sum())"
        } else {
            "a column"
        };
        return Err(bad(format!(
            "expected {what} followed by .asc or .desc (and optionally .nullsfirst/.nullslast), \
             found {s:?}"
        )));
    };
    Ok(OrderBy {
        target,
        desc: desc.unwrap_or(false),
        nulls_first: nulls_first.unwrap_or(false),
    })
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
