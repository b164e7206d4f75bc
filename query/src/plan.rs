//! Planning: which row ranges a scan must visit. Filters on the key column use the key index
//! (`eq` -> one lookup, `in` -> one lookup per value, ranges -> lower/upper bounds); every filter
//! is still evaluated on the visited rows, so the ranges only need to be a superset.

use std::ops::Range;

use quarry_format::{KeyRef, QuarryFile};

use crate::literal::Literal;
use crate::query::{CmpOp, Filter, Predicate};

fn key_ref(l: &Literal) -> Option<KeyRef<'_>> {
    match l {
        Literal::Int(v) => Some(KeyRef::Int64(*v)),
        Literal::Str(s) => Some(KeyRef::Utf8(s)),
        _ => None,
    }
}

/// Sorted, disjoint, non-empty row ranges that contain every row matching `filters`.
pub(crate) fn candidate_ranges<B: AsRef<[u8]>>(
    filters: &[Filter],
    file: &QuarryFile<B>,
) -> Vec<Range<u64>> {
    let n = file.num_rows();
    let mut lo = 0u64;
    let mut hi = n;
    // Some(rows): only these rows (sorted, deduplicated) can match.
    let mut points: Option<Vec<u64>> = None;
    if let Some(key) = file.schema().key() {
        for f in filters.iter().filter(|f| f.column == key) {
            match &f.pred {
                Predicate::Cmp(op, lit) => {
                    let Some(k) = key_ref(lit) else { continue };
                    match op {
                        CmpOp::Eq => {
                            let rows: Vec<u64> = file.find_key(k).into_iter().collect();
                            points = Some(intersect_points(points, rows));
                        }
                        CmpOp::Gt => lo = lo.max(file.key_upper_bound(k)),
                        CmpOp::Gte => lo = lo.max(file.key_lower_bound(k)),
                        CmpOp::Lt => hi = hi.min(file.key_lower_bound(k)),
                        CmpOp::Lte => hi = hi.min(file.key_upper_bound(k)),
                        CmpOp::Neq => {}
                    }
                }
                Predicate::In {
                    values,
                    negated: false,
                } => {
                    let mut rows: Vec<u64> = values
                        .iter()
                        .filter_map(key_ref)
                        .filter_map(|k| file.find_key(k))
                        .collect();
                    rows.sort_unstable();
                    rows.dedup();
                    points = Some(intersect_points(points, rows));
                }
                _ => {}
            }
        }
    }
    match points {
        Some(rows) => rows
            .into_iter()
            .filter(|r| (lo..hi).contains(r) && *r < n)
            .map(|r| r..r + 1)
            .collect(),
        None if lo < hi => std::iter::once(lo..hi).collect(),
        None => Vec::new(),
    }
}

fn intersect_points(a: Option<Vec<u64>>, b: Vec<u64>) -> Vec<u64> {
    match a {
        None => b,
        Some(a) => a
            .into_iter()
            .filter(|r| b.binary_search(r).is_ok())
            .collect(),
    }
}

/// Clips sorted ranges to the rows inside `keep`.
pub(crate) fn clip(ranges: &mut Vec<Range<u64>>, keep: &Range<u64>) {
    ranges.retain_mut(|r| {
        r.start = r.start.max(keep.start);
        r.end = r.end.min(keep.end);
        r.start < r.end
    });
}
