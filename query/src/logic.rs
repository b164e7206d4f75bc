//! PostgREST's logical trees: `or=(a.eq.1,b.gt.2)`, `and=(...)`, nested `or(...)`/`and(...)`,
//! `not.` before any of them; parsed into [`Cond`] with negations pushed down to the leaves,
//! and evaluated over a slice as masks.
//!
//! Negation is pushed down with De Morgan's laws, which hold in SQL's three-valued logic; a
//! negated leaf is exact because a leaf never matches a row that is unknown (null) for it,
//! negated or not (`Predicate::negate`). So `not.or=(a.eq.1,b.eq.2)` keeps a row only when both
//! `a` and `b` are non-null and differ, as PostgreSQL does.

use quarry_format::{DataType, QuarryFile, Schema};

use crate::error::QueryError;
use crate::eval::{and_filter, filter_work, Compiled};
use crate::query::{parse_cond, Filter};

/// A condition over one row.
#[derive(Clone, Debug)]
pub(crate) enum Cond {
    Leaf(Filter),
    /// Every item holds (empty: true).
    All(Vec<Cond>),
    /// Some item holds (empty: false).
    Any(Vec<Cond>),
}

impl Cond {
    pub(crate) fn negate(self) -> Cond {
        match self {
            Cond::Leaf(f) => Cond::Leaf(Filter {
                column: f.column,
                pred: f.pred.negate(),
            }),
            Cond::All(items) => Cond::Any(items.into_iter().map(Cond::negate).collect()),
            Cond::Any(items) => Cond::All(items.into_iter().map(Cond::negate).collect()),
        }
    }
}

/// Deepest nesting accepted: bounds the recursion whatever the query string.
const MAX_DEPTH: usize = 16;

/// Parses the parameter `name` (`or`, `and`, `not.or`, `not.and`) with value `(...)`.
pub(crate) fn parse_tree(
    name: &str,
    value: &str,
    schema: &Schema,
    fields: &[(String, DataType)],
) -> Result<Cond, QueryError> {
    let (negated, op) = match name.strip_prefix("not.") {
        Some(op) => (true, op),
        None => (false, name),
    };
    let cond = parse_group(op, value, schema, fields, name, 0)?;
    Ok(if negated { cond.negate() } else { cond })
}

fn parse_group(
    op: &str,
    list: &str,
    schema: &Schema,
    fields: &[(String, DataType)],
    param: &str,
    depth: usize,
) -> Result<Cond, QueryError> {
    let bad = |msg: String| QueryError::bad("bad_filter", param, msg);
    if depth > MAX_DEPTH {
        return Err(bad(format!("or/and nested more than {MAX_DEPTH} deep")));
    }
    let inner = list
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            bad(format!(
                "expected {op}=(filter,filter,...) with each filter col.[not.]op.value or a \
                 nested or(...)/and(...); found {list:?}"
            ))
        })?;
    let items = split_items(inner).map_err(|why| bad(format!("{why} in {list:?}")))?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let item = item.trim();
        let (negated, body) = match item.strip_prefix("not.") {
            Some(b) => (true, b),
            None => (false, item),
        };
        let nested = ["or", "and"]
            .into_iter()
            .find(|k| body.starts_with(k) && body[k.len()..].starts_with('('));
        let cond = if let Some(k) = nested {
            parse_group(k, &body[k.len()..], schema, fields, param, depth + 1)?
        } else {
            // A leaf: col.[not.]op.value (`not.` goes after the column, as in PostgREST).
            if negated {
                return Err(bad(format!(
                    "write not. after the column (col.not.eq.1), found {item:?}"
                )));
            }
            let Some((col, rest)) = item.split_once('.') else {
                return Err(bad(format!(
                    "expected col.[not.]op.value or or(...)/and(...), found {item:?}"
                )));
            };
            let Some(c) = schema.index_of(col) else {
                return Err(bad(format!(
                    "unknown column {col:?} in {param}; columns are: {}",
                    fields
                        .iter()
                        .map(|f| f.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            parse_cond(c, col, fields[c].1, rest, true)
                .map_err(|e| QueryError::bad(e.code, param, e.message))?
        };
        out.push(if negated { cond.negate() } else { cond });
    }
    Ok(if op == "or" {
        Cond::Any(out)
    } else {
        Cond::All(out)
    })
}

/// Splits at commas outside parentheses and double quotes (`\` escapes inside quotes).
fn split_items(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| "unbalanced ')'".to_string())?
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err("a quoted value is not closed".into());
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    out.push(&s[start..]);
    if out.iter().any(|i| i.trim().is_empty()) {
        return Err("an empty item".into());
    }
    Ok(out)
}

/// `"a,b"` -> `a,b` (`\"` and `\\` escape); an unquoted value is returned as is.
pub(crate) fn unquote(s: &str) -> Result<String, String> {
    let Some(inner) = s.strip_prefix('"') else {
        return Ok(s.to_string());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err("a quoted value is not closed".into());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => out.push(e),
                None => return Err("a quoted value ends in a backslash".into()),
            },
            '"' => return Err("a '\"' inside a quoted value must be escaped as \\\"".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A [`Cond`] with its leaves compiled for the column types.
#[derive(Debug)]
pub(crate) enum CompiledCond {
    Leaf(usize, Compiled),
    All(Vec<CompiledCond>),
    Any(Vec<CompiledCond>),
}

impl CompiledCond {
    pub(crate) fn new(cond: &Cond, fields: &[(String, DataType)]) -> CompiledCond {
        match cond {
            Cond::Leaf(f) => {
                CompiledCond::Leaf(f.column, Compiled::new(&f.pred, fields[f.column].1))
            }
            Cond::All(items) => {
                CompiledCond::All(items.iter().map(|c| CompiledCond::new(c, fields)).collect())
            }
            Cond::Any(items) => {
                CompiledCond::Any(items.iter().map(|c| CompiledCond::new(c, fields)).collect())
            }
        }
    }

    /// `eval::filter_work` of every string leaf over rows `off..off + len` (`Scan::slice_work`).
    pub(crate) fn work<B: AsRef<[u8]>>(
        &self,
        file: &QuarryFile<B>,
        rg: usize,
        off: usize,
        len: usize,
    ) -> u64 {
        match self {
            CompiledCond::Leaf(col, pred @ Compiled::Str(_)) => {
                filter_work(&file.chunk(rg, *col), pred, off, len)
            }
            CompiledCond::Leaf(..) => 0,
            CompiledCond::All(items) | CompiledCond::Any(items) => items
                .iter()
                .map(|c| c.work(file, rg, off, len))
                .fold(0, u64::saturating_add),
        }
    }

    /// ANDs the condition over rows `off..off + mask.len()` of row group `rg` into `mask`.
    pub(crate) fn and_into<B: AsRef<[u8]>>(
        &self,
        file: &QuarryFile<B>,
        rg: usize,
        off: usize,
        mask: &mut [bool],
    ) {
        match self {
            CompiledCond::Leaf(col, pred) => {
                and_filter(&file.chunk(rg, *col), pred, off, mask, &mut None)
            }
            CompiledCond::All(items) => {
                for c in items {
                    c.and_into(file, rg, off, mask);
                }
            }
            CompiledCond::Any(items) => {
                let mut any = vec![false; mask.len()];
                let mut one = vec![true; mask.len()];
                for c in items {
                    one.iter_mut().for_each(|m| *m = true);
                    c.and_into(file, rg, off, &mut one);
                    any.iter_mut().zip(&one).for_each(|(a, o)| *a |= *o);
                }
                mask.iter_mut().zip(&any).for_each(|(m, a)| *m &= *a);
            }
        }
    }
}
