//! The query string as a whole: decode the pairs, resolve a cursor against them, hand each
//! parameter to its grammar (`filter.rs`, `select.rs`), and bound `limit` and `offset`.

use std::borrow::Cow;

use quarry_format::{DataType, Schema, Version};

use super::filter::parse_cond;
use super::select::{parse_order, parse_select};
use super::*;
use crate::cursor::Cursor;
use crate::error::QueryError;
use crate::logic::{self, Cond};
use crate::percent::{decode_query, duplicate_parameter};
use crate::Limits;

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

pub(crate) fn column_list(fields: &[(String, DataType)]) -> String {
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
