//! The filter grammar: `[not.]op.value` on one column (comparisons, patterns, `is.`, `in.(...)`).

use quarry_format::DataType;

use super::*;
use crate::error::QueryError;
use crate::like::LikePattern;
use crate::literal::parse_literal;
use crate::logic::{self, Cond};

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
