//! Sort keys for `order=`: values borrowed from the file or owned, compared in the output
//! order with the row number breaking ties, and the entries of the bounded top-k heap.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

use quarry_format::Value;

use crate::eval::cmp_f64;
use crate::output::OwnedValue;

/// A sort key borrowed from the file or owned (kept in the heap across steps).
#[derive(Clone, Debug)]
pub(super) enum Key<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
}

impl<'a> Key<'a> {
    pub(super) fn of(v: Value<'a>) -> Key<'a> {
        match v {
            Value::Null => Key::Null,
            Value::Bool(b) => Key::Bool(b),
            Value::Int64(i) | Value::Timestamp(i) => Key::Int(i),
            Value::Date(d) => Key::Int(i64::from(d)),
            Value::Float64(f) => Key::Float(f),
            Value::Utf8(s) => Key::Str(Cow::Borrowed(s)),
        }
    }
    pub(super) fn of_owned(v: &'a OwnedValue) -> Key<'a> {
        Key::of(v.as_value())
    }
    pub(super) fn into_owned(self) -> Key<'static> {
        match self {
            Key::Null => Key::Null,
            Key::Bool(b) => Key::Bool(b),
            Key::Int(i) => Key::Int(i),
            Key::Float(f) => Key::Float(f),
            Key::Str(s) => Key::Str(Cow::Owned(s.into_owned())),
        }
    }
}

/// Compares two non-null keys of the same column.
fn cmp_values(a: &Key<'_>, b: &Key<'_>) -> Ordering {
    match (a, b) {
        (Key::Bool(x), Key::Bool(y)) => x.cmp(y),
        (Key::Int(x), Key::Int(y)) => x.cmp(y),
        (Key::Float(x), Key::Float(y)) => cmp_f64(*x, *y),
        (Key::Str(x), Key::Str(y)) => x.as_ref().cmp(y.as_ref()),
        _ => Ordering::Equal,
    }
}

/// Output order of (key, tiebreak) pairs under `order`; the tiebreak (row number or group
/// index) always ascends.
pub(super) fn cmp_ordered(
    a: &Key<'_>,
    ta: u64,
    b: &Key<'_>,
    tb: u64,
    desc: bool,
    nulls_first: bool,
) -> Ordering {
    let o = match (matches!(a, Key::Null), matches!(b, Key::Null)) {
        (true, true) => Ordering::Equal,
        (true, false) => {
            if nulls_first {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (false, true) => {
            if nulls_first {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (false, false) => {
            let o = cmp_values(a, b);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    };
    o.then(ta.cmp(&tb))
}

/// Output order of (keys, row) pairs under `dirs` ((desc, nulls_first) per sort key); ties
/// are broken by row number, ascending.
pub(super) fn cmp_multi(
    a: &[Key<'_>],
    ra: u64,
    b: &[Key<'_>],
    rb: u64,
    dirs: &[(bool, bool)],
) -> Ordering {
    for ((x, y), &(desc, nulls_first)) in a.iter().zip(b).zip(dirs) {
        let o = cmp_ordered(x, 0, y, 0, desc, nulls_first);
        if o != Ordering::Equal {
            return o;
        }
    }
    ra.cmp(&rb)
}

/// Bytes of the strings among `keys` (owned in the top-k heap: `Scan::memory_bytes`).
pub(super) fn str_bytes(keys: &[Key<'_>]) -> usize {
    keys.iter()
        .map(|k| match k {
            Key::Str(s) => s.len(),
            _ => 0,
        })
        .sum()
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) keys: Box<[Key<'static>]>,
    pub(super) row: u64,
    pub(super) dirs: Arc<[(bool, bool)]>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_multi(&self.keys, self.row, &other.keys, other.row, &self.dirs)
    }
}
