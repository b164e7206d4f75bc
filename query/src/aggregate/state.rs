//! The accumulators (null counts, sums, minima, maxima per group) and the loops that fold a
//! slice's selected rows into them.

use quarry_format::{Bitmap, ColumnChunk};

use crate::eval::cmp_f64;

use super::group::validity_of;

/// Accumulators, shared between aggregates that need the same one (`x.sum()` and `x.avg()`
/// share one sum; `count(x)`, `sum(x)` and `avg(x)` derive their row counts from the group's
/// row count minus x's null count, so a column without nulls costs one loop, not two).
#[derive(Debug, PartialEq)]
pub(super) enum Kind {
    Nulls,
    Sum,
    Min,
    Max,
}

#[derive(Debug)]
pub(super) enum State {
    /// Null rows of the column per group (only counted for chunks that have nulls).
    Nulls {
        counts: Vec<u64>,
    },
    SumInt {
        sums: Vec<i128>,
    },
    SumFloat {
        sums: Vec<f64>,
    },
    /// int64, date, timestamp, bool (as 0/1).
    MinMaxInt {
        v: Vec<i64>,
        has: Vec<bool>,
        max: bool,
    },
    MinMaxFloat {
        v: Vec<f64>,
        has: Vec<bool>,
        max: bool,
    },
    MinMaxStr {
        v: Vec<Option<Box<str>>>,
        max: bool,
    },
}

impl State {
    pub(super) fn grow(&mut self, n: usize) {
        match self {
            State::Nulls { counts } => counts.resize(n, 0),
            State::SumInt { sums } => sums.resize(n, 0),
            State::SumFloat { sums } => sums.resize(n, 0.0),
            State::MinMaxInt { v, has, .. } => {
                v.resize(n, 0);
                has.resize(n, false);
            }
            State::MinMaxFloat { v, has, .. } => {
                v.resize(n, 0.0);
                has.resize(n, false);
            }
            State::MinMaxStr { v, .. } => v.resize(n, None),
        }
    }
}

/// Calls `f(group, offset)` for each selected row that is valid in `validity`.
#[inline]
fn for_valid(
    validity: Option<Bitmap<'_>>,
    sel: &[u32],
    gids: &[u32],
    mut f: impl FnMut(usize, usize),
) {
    match validity {
        None => {
            for (&off, &g) in sel.iter().zip(gids) {
                f(g as usize, off as usize);
            }
        }
        Some(bm) => {
            for (&off, &g) in sel.iter().zip(gids) {
                if bm.get(off as usize) {
                    f(g as usize, off as usize);
                }
            }
        }
    }
}

fn min_max_int(v: &mut [i64], has: &mut [bool], max: bool, g: usize, x: i64) {
    if !has[g] || (max && x > v[g]) || (!max && x < v[g]) {
        v[g] = x;
        has[g] = true;
    }
}

pub(super) fn update_state(state: &mut State, chunk: &ColumnChunk<'_>, sel: &[u32], gids: &[u32]) {
    let validity = validity_of(chunk);
    match (state, chunk) {
        (State::Nulls { counts }, _) => {
            if let Some(bm) = validity {
                for (&off, &g) in sel.iter().zip(gids) {
                    if !bm.get(off as usize) {
                        counts[g as usize] += 1;
                    }
                }
            }
        }
        // A value missing from a short (corrupt, unverified) chunk adds nothing.
        (State::SumInt { sums }, ColumnChunk::Int64(c)) => {
            let vals = c.values();
            for_valid(validity, sel, gids, |g, i| {
                sums[g] += i128::from(vals.get(i).copied().unwrap_or(0));
            });
        }
        (State::SumFloat { sums }, ColumnChunk::Float64(c)) => {
            let vals = c.values();
            for_valid(validity, sel, gids, |g, i| {
                sums[g] += vals.get(i).copied().unwrap_or(0.0);
            });
        }
        (State::MinMaxInt { v, has, max }, ColumnChunk::Int64(c) | ColumnChunk::Timestamp(c)) => {
            let vals = c.values();
            let max = *max;
            for_valid(validity, sel, gids, |g, i| {
                if let Some(&x) = vals.get(i) {
                    min_max_int(v, has, max, g, x);
                }
            });
        }
        (State::MinMaxInt { v, has, max }, ColumnChunk::Date(c)) => {
            let vals = c.values();
            let max = *max;
            for_valid(validity, sel, gids, |g, i| {
                if let Some(&x) = vals.get(i) {
                    min_max_int(v, has, max, g, i64::from(x));
                }
            });
        }
        (State::MinMaxInt { v, has, max }, ColumnChunk::Bool(c)) => {
            let max = *max;
            for_valid(validity, sel, gids, |g, i| {
                if let Some(x) = c.get(i) {
                    min_max_int(v, has, max, g, i64::from(x));
                }
            });
        }
        (State::MinMaxFloat { v, has, max }, ColumnChunk::Float64(c)) => {
            let vals = c.values();
            let max = *max;
            for_valid(validity, sel, gids, |g, i| {
                if let Some(&x) = vals.get(i) {
                    let ord = cmp_f64(x, v[g]);
                    if !has[g] || (max && ord.is_gt()) || (!max && ord.is_lt()) {
                        v[g] = x;
                        has[g] = true;
                    }
                }
            });
        }
        (State::MinMaxStr { v, max }, ColumnChunk::Utf8(c)) => {
            let max = *max;
            for (&off, &g) in sel.iter().zip(gids) {
                if let Some(s) = c.get(off as usize) {
                    let slot = &mut v[g as usize];
                    let better = match slot {
                        None => true,
                        Some(cur) => {
                            if max {
                                s > &**cur
                            } else {
                                s < &**cur
                            }
                        }
                    };
                    if better {
                        *slot = Some(s.into());
                    }
                }
            }
        }
        // A chunk whose type differs from the schema (corrupt file): contributes nothing.
        _ => {}
    }
}
