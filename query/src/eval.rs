//! Vectorised filter evaluation over one slice of one column chunk, and zone-map pruning.
//!
//! A slice's filters AND into a `mask: &mut [bool]` (one entry per row of the slice). Each
//! (type, operator) pair has its own tight loop over the typed view (`&[i64]`, `&[f64]`, ...),
//! with the operator chosen outside the loop so the compiler can vectorise it. Dictionary
//! strings evaluate the predicate once per dictionary entry, then test codes.
//!
//! Semantics shared with the reference evaluator in the tests:
//! - nulls never match comparisons, `in` or `like`, with or without `not.`;
//! - floats are totally ordered with NaN above every number and equal to itself, -0 == 0.

use std::cmp::Ordering;

use quarry_format::{Bitmap, ChunkMeta, ColumnChunk, DataType, Stat};

use crate::literal::Literal;
use crate::query::{CmpOp, Predicate};

/// Float order used everywhere in the engine: NaN greatest (and equal to itself).
#[inline]
pub(crate) fn cmp_f64(a: f64, b: f64) -> Ordering {
    match a.partial_cmp(&b) {
        Some(o) => o,
        None => a.is_nan().cmp(&b.is_nan()),
    }
}

/// Predicates with literals converted to the column's comparison domain once per query.
#[derive(Debug)]
pub(crate) enum Compiled {
    /// int64, date, timestamp.
    Int(IntPred),
    Float(FloatPred),
    Bool(BoolPred),
    Str(StrPred),
    IsNull {
        negated: bool,
    },
}

#[derive(Debug)]
pub(crate) enum IntPred {
    Cmp(CmpOp, i64),
    /// Sorted, deduplicated.
    In(Vec<i64>, bool),
}

#[derive(Debug)]
pub(crate) enum FloatPred {
    Cmp(CmpOp, f64),
    In(Vec<f64>, bool),
}

#[derive(Debug)]
pub(crate) enum BoolPred {
    Cmp(CmpOp, bool),
    In(Vec<bool>, bool),
    /// (value, negated): `is.true` / `is.false`, never unknown.
    Is(bool, bool),
}

#[derive(Debug)]
pub(crate) enum StrPred {
    Cmp(CmpOp, String),
    /// Sorted, deduplicated.
    In(Vec<String>, bool),
    Like(crate::like::LikePattern, bool),
    Regex(regex::Regex, bool),
}

fn lit_i64(l: &Literal) -> i64 {
    match l {
        Literal::Int(v) => *v,
        // parse_literal produces the column's literal type; other cases cannot occur.
        _ => 0,
    }
}
fn lit_f64(l: &Literal) -> f64 {
    match l {
        Literal::Float(v) => *v,
        _ => f64::NAN,
    }
}
fn lit_bool(l: &Literal) -> bool {
    matches!(l, Literal::Bool(true))
}
fn lit_str(l: &Literal) -> String {
    match l {
        Literal::Str(s) => s.clone(),
        _ => String::new(),
    }
}

impl Compiled {
    pub(crate) fn new(pred: &Predicate, data_type: DataType) -> Compiled {
        if let Predicate::IsNull { negated } = pred {
            return Compiled::IsNull { negated: *negated };
        }
        match data_type {
            DataType::Int64 | DataType::Date | DataType::Timestamp => Compiled::Int(match pred {
                Predicate::Cmp(op, l) => IntPred::Cmp(*op, lit_i64(l)),
                Predicate::In { values, negated } => {
                    let mut v: Vec<i64> = values.iter().map(lit_i64).collect();
                    v.sort_unstable();
                    v.dedup();
                    IntPred::In(v, *negated)
                }
                // Rejected by the parser for non-utf8 / non-bool columns.
                _ => IntPred::In(Vec::new(), false),
            }),
            DataType::Float64 => Compiled::Float(match pred {
                Predicate::Cmp(op, l) => FloatPred::Cmp(*op, lit_f64(l)),
                Predicate::In { values, negated } => {
                    FloatPred::In(values.iter().map(lit_f64).collect(), *negated)
                }
                _ => FloatPred::In(Vec::new(), false),
            }),
            DataType::Bool => Compiled::Bool(match pred {
                Predicate::Cmp(op, l) => BoolPred::Cmp(*op, lit_bool(l)),
                Predicate::In { values, negated } => {
                    BoolPred::In(values.iter().map(lit_bool).collect(), *negated)
                }
                Predicate::IsBool { value, negated } => BoolPred::Is(*value, *negated),
                _ => BoolPred::In(Vec::new(), false),
            }),
            DataType::Utf8 => Compiled::Str(match pred {
                Predicate::Cmp(op, l) => StrPred::Cmp(*op, lit_str(l)),
                Predicate::In { values, negated } => {
                    let mut v: Vec<String> = values.iter().map(lit_str).collect();
                    v.sort_unstable();
                    v.dedup();
                    StrPred::In(v, *negated)
                }
                Predicate::Like { pattern, negated } => StrPred::Like(pattern.clone(), *negated),
                Predicate::Regex { re, negated } => StrPred::Regex(re.clone(), *negated),
                _ => StrPred::In(Vec::new(), false),
            }),
        }
    }
}

impl IntPred {
    #[inline]
    fn test(&self, x: i64) -> bool {
        match self {
            IntPred::Cmp(op, v) => op.holds(x.cmp(v)),
            IntPred::In(vs, neg) => vs.binary_search(&x).is_ok() != *neg,
        }
    }
}

impl FloatPred {
    #[inline]
    fn test(&self, x: f64) -> bool {
        match self {
            FloatPred::Cmp(op, v) => op.holds(cmp_f64(x, *v)),
            FloatPred::In(vs, neg) => vs.iter().any(|v| cmp_f64(x, *v).is_eq()) != *neg,
        }
    }
}

impl BoolPred {
    #[inline]
    fn test(&self, x: bool) -> bool {
        match self {
            BoolPred::Cmp(op, v) => op.holds(x.cmp(v)),
            BoolPred::In(vs, neg) => vs.contains(&x) != *neg,
            BoolPred::Is(v, neg) => (x == *v) != *neg,
        }
    }
}

impl StrPred {
    #[inline]
    pub(crate) fn test(&self, s: &str) -> bool {
        match self {
            StrPred::Cmp(op, v) => op.holds(s.cmp(v.as_str())),
            StrPred::In(vs, neg) => vs.binary_search_by(|v| v.as_str().cmp(s)).is_ok() != *neg,
            StrPred::Like(p, neg) => p.matches(s) != *neg,
            StrPred::Regex(re, neg) => re.is_match(s) != *neg,
        }
    }
}

impl StrPred {
    /// Word operations per value byte tested (`like::LikePattern::cost_per_byte`).
    fn cost_per_byte(&self) -> u64 {
        match self {
            StrPred::Like(p, _) => p.cost_per_byte(),
            StrPred::Cmp(..) | StrPred::In(..) => 1,
            // An estimate: the lazy DFA tests a byte in a few operations; its fallback (when
            // the DFA cache thrashes) steps a state set that grows with the pattern, whose
            // compiled size `query/filter.rs` bounds at 64 KiB. Charged two plus one per 8 pattern
            // bytes, so longer patterns get smaller slices.
            StrPred::Regex(re, _) => re.as_str().len() as u64 / 8 + 2,
        }
    }
}

/// An upper estimate of the work `and_filter` does on rows `start..start + len` of a plain
/// string chunk, in word operations: string bytes tested times the predicate's cost per byte
/// (two offset reads, no scan of the data). 0 for fixed-width columns, whose cost is the row
/// count the caller already charges, and for dictionary chunks, whose entries are tested once
/// per chunk (`and_filter`'s cache) and whose rows are table lookups.
pub(crate) fn filter_work(
    chunk: &ColumnChunk<'_>,
    pred: &Compiled,
    start: usize,
    len: usize,
) -> u64 {
    let Compiled::Str(p) = pred else {
        return 0;
    };
    plain_string_bytes(chunk, start, len).saturating_mul(p.cost_per_byte())
}

/// String bytes of rows `start..start + len` of a plain utf8 chunk (two offset reads); 0 for
/// other chunks (dictionary codes and fixed-width values cost per row, not per byte).
pub(crate) fn plain_string_bytes(chunk: &ColumnChunk<'_>, start: usize, len: usize) -> u64 {
    let ColumnChunk::Utf8(c) = chunk else {
        return 0;
    };
    let Some(offsets) = c.plain_offsets() else {
        return 0;
    };
    let last = offsets.len().saturating_sub(1);
    let a = offsets.get(start.min(last)).copied().unwrap_or(0);
    let b = offsets.get((start + len).min(last)).copied().unwrap_or(0);
    b.saturating_sub(a)
}

/// `mask[i] &= f(values[i])` with the closure inlined per call site.
#[inline]
fn and_map<T: Copy>(mask: &mut [bool], values: &[T], f: impl Fn(T) -> bool) {
    for (m, &x) in mask.iter_mut().zip(values) {
        *m &= f(x);
    }
}

/// Comparison loops with the operator hoisted out: these vectorise.
fn and_cmp<T: Copy + PartialOrd>(mask: &mut [bool], values: &[T], op: CmpOp, v: T) {
    match op {
        CmpOp::Eq => and_map(mask, values, |x| x == v),
        CmpOp::Neq => and_map(mask, values, |x| x != v),
        CmpOp::Lt => and_map(mask, values, |x| x < v),
        CmpOp::Lte => and_map(mask, values, |x| x <= v),
        CmpOp::Gt => and_map(mask, values, |x| x > v),
        CmpOp::Gte => and_map(mask, values, |x| x >= v),
    }
}

fn and_valid(mask: &mut [bool], validity: Option<Bitmap<'_>>, start: usize) {
    if let Some(bm) = validity {
        for (i, m) in mask.iter_mut().enumerate() {
            *m &= bm.get(start + i);
        }
    }
}

/// `values[start..start + mask.len()]`, or an empty slice if the chunk is shorter (corrupt,
/// unverified file: rows past the end then never match).
fn window<T>(values: &[T], start: usize, len: usize) -> &[T] {
    values.get(start..start + len).unwrap_or(&[])
}

fn clear_if_short(mask: &mut [bool], got: usize) {
    if got < mask.len() {
        mask.iter_mut().for_each(|m| *m = false);
    }
}

fn and_int<T: Copy + Into<i64> + PartialOrd + TryFrom<i64>>(
    mask: &mut [bool],
    values: &[T],
    pred: &IntPred,
) {
    match pred {
        IntPred::Cmp(op, v) => match T::try_from(*v) {
            Ok(tv) => and_cmp(mask, values, *op, tv),
            // The literal is outside T's range (a date literal never is, but be exact).
            Err(_) => and_map(mask, values, |x| pred.test(x.into())),
        },
        IntPred::In(..) => and_map(mask, values, |x| pred.test(x.into())),
    }
}

/// ANDs `pred` over rows `start..start + mask.len()` of `chunk` into `mask`.
///
/// `dict_verdicts` caches a dictionary chunk's per-entry verdicts: the caller keeps it for one
/// chunk (and clears it for the next), so each entry is tested once per chunk, not per call.
pub(crate) fn and_filter(
    chunk: &ColumnChunk<'_>,
    pred: &Compiled,
    start: usize,
    mask: &mut [bool],
    dict_verdicts: &mut Option<Vec<bool>>,
) {
    let len = mask.len();
    if let Compiled::IsNull { negated } = pred {
        let validity = match chunk {
            ColumnChunk::Bool(c) => c.validity(),
            ColumnChunk::Int64(c) | ColumnChunk::Timestamp(c) => c.validity(),
            ColumnChunk::Float64(c) => c.validity(),
            ColumnChunk::Date(c) => c.validity(),
            ColumnChunk::Utf8(c) => c.validity(),
        };
        match validity {
            // No nulls: is.null matches nothing, not.is.null everything.
            None => {
                if !negated {
                    mask.iter_mut().for_each(|m| *m = false);
                }
            }
            Some(bm) => {
                for (i, m) in mask.iter_mut().enumerate() {
                    *m &= bm.get(start + i) == *negated;
                }
            }
        }
        return;
    }
    match (chunk, pred) {
        (ColumnChunk::Int64(c) | ColumnChunk::Timestamp(c), Compiled::Int(p)) => {
            let vals = window(c.values(), start, len);
            clear_if_short(mask, vals.len());
            and_int(mask, vals, p);
            and_valid(mask, c.validity(), start);
        }
        (ColumnChunk::Date(c), Compiled::Int(p)) => {
            let vals = window(c.values(), start, len);
            clear_if_short(mask, vals.len());
            and_int(mask, vals, p);
            and_valid(mask, c.validity(), start);
        }
        (ColumnChunk::Float64(c), Compiled::Float(p)) => {
            let vals = window(c.values(), start, len);
            clear_if_short(mask, vals.len());
            match p {
                // With a non-NaN literal, IEEE comparisons give our order except that NaN
                // values must count as greater than everything.
                FloatPred::Cmp(op, v) if !v.is_nan() => {
                    let v = *v;
                    match op {
                        CmpOp::Eq => and_map(mask, vals, |x| x == v),
                        CmpOp::Neq => and_map(mask, vals, |x| x != v),
                        CmpOp::Lt => and_map(mask, vals, |x| x < v),
                        CmpOp::Lte => and_map(mask, vals, |x| x <= v),
                        CmpOp::Gt => and_map(mask, vals, |x| x > v || x.is_nan()),
                        CmpOp::Gte => and_map(mask, vals, |x| x >= v || x.is_nan()),
                    }
                }
                _ => and_map(mask, vals, |x| p.test(x)),
            }
            and_valid(mask, c.validity(), start);
        }
        (ColumnChunk::Bool(c), Compiled::Bool(BoolPred::Is(value, negated))) => {
            // is.true / is.false are never unknown: a null row matches exactly when negated.
            let bits = c.values();
            for (i, m) in mask.iter_mut().enumerate() {
                let r = start + i;
                *m &= if c.is_valid(r) {
                    (bits.get(r) == *value) != *negated
                } else {
                    *negated
                };
            }
            if start + len > bits.len() {
                mask.iter_mut().for_each(|m| *m = false);
            }
        }
        (ColumnChunk::Bool(c), Compiled::Bool(p)) => {
            let bits = c.values();
            for (i, m) in mask.iter_mut().enumerate() {
                *m &= p.test(bits.get(start + i));
            }
            if start + len > bits.len() {
                mask.iter_mut().for_each(|m| *m = false);
            }
            and_valid(mask, c.validity(), start);
        }
        (ColumnChunk::Utf8(c), Compiled::Str(p)) => {
            if let Some(codes) = c.codes() {
                // Once per dictionary entry and chunk, then a table lookup per row.
                let table: &Vec<bool> = dict_verdicts.get_or_insert_with(|| {
                    (0..c.dictionary_len())
                        .map(|k| p.test(c.dictionary_value(k as u32)))
                        .collect()
                });
                let codes = window(codes, start, len);
                clear_if_short(mask, codes.len());
                and_map(mask, codes, |k| {
                    table.get(k as usize).copied().unwrap_or(false)
                });
                and_valid(mask, c.validity(), start);
            } else {
                for (i, m) in mask.iter_mut().enumerate() {
                    if *m {
                        *m = c.get(start + i).is_some_and(|s| p.test(s));
                    }
                }
            }
        }
        // A chunk whose type differs from the schema's (corrupt file): nothing matches.
        _ => mask.iter_mut().for_each(|m| *m = false),
    }
}

/// What a zone map says about a filter over a whole chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Zone {
    /// No row can match: skip the chunk.
    None,
    /// Every row matches: skip evaluating this filter.
    All,
    /// Evaluate.
    Some,
}

/// Orders a literal against a stat of the same domain; None if not comparable (NaN, types).
fn cmp_stat(pred: &Compiled, lit: LitRef<'_>, stat: &Stat) -> Option<Ordering> {
    let _ = pred;
    match (lit, stat) {
        (LitRef::Int(v), Stat::Int(s)) => Some(v.cmp(s)),
        (LitRef::Float(v), Stat::Float(s)) if !v.is_nan() && !s.is_nan() => v.partial_cmp(s),
        (LitRef::Bool(v), Stat::Bool(s)) => Some(v.cmp(s)),
        (LitRef::Str(v), Stat::Utf8(s)) => Some(v.cmp(s.as_str())),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum LitRef<'a> {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'a str),
}

/// Zone-map verdict for `pred` over a chunk of `rows` rows with metadata `meta`.
pub(crate) fn zone(pred: &Compiled, meta: &ChunkMeta, rows: u64) -> Zone {
    let nulls = meta.null_count;
    let all_null = nulls >= rows;
    if let Compiled::IsNull { negated } = pred {
        return match (negated, nulls) {
            (false, 0) => Zone::None,
            (true, 0) => Zone::All,
            (false, _) if all_null => Zone::All,
            (true, _) if all_null => Zone::None,
            _ => Zone::Some,
        };
    }
    if all_null {
        // Comparisons, in, like and is.true/false never match nulls... except negated `is`.
        return match pred {
            Compiled::Bool(BoolPred::Is(_, true)) => Zone::All,
            _ => Zone::None,
        };
    }
    let (Some(min), Some(max)) = (&meta.min, &meta.max) else {
        return Zone::Some;
    };
    // Floats may hold NaN, which the stats exclude: never claim All, and only prune with
    // operators that NaN cannot satisfy.
    let is_float = matches!(pred, Compiled::Float(_));
    let exact = !is_float && nulls == 0;
    let range_verdict = |op: CmpOp, lit: LitRef<'_>| -> Zone {
        let (Some(lo), Some(hi)) = (cmp_stat(pred, lit, min), cmp_stat(pred, lit, max)) else {
            return Zone::Some;
        };
        // lo = lit vs min, hi = lit vs max.
        use Ordering::*;
        let (none, all) = match op {
            CmpOp::Eq => (lo == Less || hi == Greater, lo == Equal && hi == Equal),
            CmpOp::Neq => (
                !is_float && lo == Equal && hi == Equal,
                lo == Less || hi == Greater,
            ),
            CmpOp::Lt => (lo != Greater, hi == Greater),
            CmpOp::Lte => (lo == Less, hi != Less),
            CmpOp::Gt => (!is_float && hi != Less, lo == Less),
            CmpOp::Gte => (!is_float && hi == Greater, lo != Greater),
        };
        if none {
            Zone::None
        } else if all && exact {
            Zone::All
        } else {
            Zone::Some
        }
    };
    let in_verdict = |lits: &mut dyn Iterator<Item = LitRef<'_>>| -> Zone {
        for l in lits {
            if range_verdict(CmpOp::Eq, l) != Zone::None {
                return Zone::Some;
            }
        }
        Zone::None
    };
    match pred {
        Compiled::Int(IntPred::Cmp(op, v)) => range_verdict(*op, LitRef::Int(*v)),
        Compiled::Int(IntPred::In(vs, false)) => {
            in_verdict(&mut vs.iter().map(|v| LitRef::Int(*v)))
        }
        Compiled::Float(FloatPred::Cmp(op, v)) if !v.is_nan() => {
            range_verdict(*op, LitRef::Float(*v))
        }
        Compiled::Float(FloatPred::In(vs, false)) if vs.iter().all(|v| !v.is_nan()) => {
            in_verdict(&mut vs.iter().map(|v| LitRef::Float(*v)))
        }
        Compiled::Bool(BoolPred::Cmp(op, v)) => range_verdict(*op, LitRef::Bool(*v)),
        Compiled::Bool(BoolPred::Is(v, false)) => range_verdict(CmpOp::Eq, LitRef::Bool(*v)),
        Compiled::Str(StrPred::Cmp(op, v)) => range_verdict(*op, LitRef::Str(v)),
        Compiled::Str(StrPred::In(vs, false)) => in_verdict(&mut vs.iter().map(|v| LitRef::Str(v))),
        _ => Zone::Some,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_order_puts_nan_last() {
        assert_eq!(cmp_f64(f64::NAN, f64::INFINITY), Ordering::Greater);
        assert_eq!(cmp_f64(1.0, f64::NAN), Ordering::Less);
        assert_eq!(cmp_f64(f64::NAN, f64::NAN), Ordering::Equal);
        assert_eq!(cmp_f64(-0.0, 0.0), Ordering::Equal);
    }
}
