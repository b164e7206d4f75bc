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
//!
//! This module holds the parsed form; `params.rs` the query string as a whole, `filter.rs` and
//! `select.rs` the grammars of filters and of `select=`/`order=`.

mod filter;
mod params;
mod select;

use quarry_format::{DataType, Version};

use crate::cursor::Cursor;
use crate::like::LikePattern;
use crate::literal::Literal;
use crate::logic::Cond;

pub(crate) use filter::parse_cond;
pub use params::{parse_rows_query, parse_rows_query_in};

// The tests (`tests.rs`) and `cursor.rs`'s tests reach these through this module.
#[cfg(test)]
use crate::{error::QueryError, Limits};

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

#[cfg(test)]
mod tests;
