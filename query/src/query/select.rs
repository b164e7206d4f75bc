//! The `select=` grammar (columns, aggregates, aliases) and the `order=` grammar.

use quarry_format::{DataType, Schema};

use super::params::column_list;
use super::*;
use crate::error::QueryError;

/// `alias:item` -> (Some(alias), item). A `:` inside `::` (a PostgreSQL cast) is not an alias.
fn split_alias(item: &str) -> (Option<&str>, &str) {
    match item.split_once(':') {
        Some((alias, rest)) if !rest.starts_with(':') && !alias.is_empty() => {
            (Some(alias.trim()), rest.trim())
        }
        _ => (None, item),
    }
}

pub(crate) fn parse_select(
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

pub(crate) fn parse_order(
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
