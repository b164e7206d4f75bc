//! Column buffers that workers fill row by row, and the gather step that assembles a row
//! group's columns from slices of batches.

use std::ops::Range;

use quarry_format::{ColumnData, DataType};

/// Validity that stays `None` (no allocation) until the first null.
#[derive(Debug, Default, Clone)]
pub struct Nulls(Option<Vec<bool>>);

impl Nulls {
    fn valid(&mut self) {
        if let Some(v) = &mut self.0 {
            v.push(true);
        }
    }
    fn null(&mut self, len_before: usize) {
        self.0
            .get_or_insert_with(|| vec![true; len_before])
            .push(false);
    }
    fn truncate(&mut self, len: usize) {
        if let Some(v) = &mut self.0 {
            v.truncate(len);
        }
    }
    fn finish(self) -> Option<Vec<bool>> {
        self.0.filter(|v| v.iter().any(|b| !b))
    }
}

/// A typed column being built.
#[derive(Debug, Clone)]
pub enum ColBuf {
    Bool(Vec<bool>, Nulls),
    Int64(Vec<i64>, Nulls),
    Float64(Vec<f64>, Nulls),
    Date(Vec<i32>, Nulls),
    Timestamp(Vec<i64>, Nulls),
    Utf8 {
        offsets: Vec<u64>,
        bytes: Vec<u8>,
        nulls: Nulls,
    },
}

impl ColBuf {
    pub fn new(t: DataType, rows: usize) -> ColBuf {
        match t {
            DataType::Bool => ColBuf::Bool(Vec::with_capacity(rows), Nulls::default()),
            DataType::Int64 => ColBuf::Int64(Vec::with_capacity(rows), Nulls::default()),
            DataType::Float64 => ColBuf::Float64(Vec::with_capacity(rows), Nulls::default()),
            DataType::Date => ColBuf::Date(Vec::with_capacity(rows), Nulls::default()),
            DataType::Timestamp => ColBuf::Timestamp(Vec::with_capacity(rows), Nulls::default()),
            DataType::Utf8 => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                ColBuf::Utf8 {
                    offsets,
                    bytes: Vec::with_capacity(rows * 8),
                    nulls: Nulls::default(),
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ColBuf::Bool(v, _) => v.len(),
            ColBuf::Int64(v, _) | ColBuf::Timestamp(v, _) => v.len(),
            ColBuf::Float64(v, _) => v.len(),
            ColBuf::Date(v, _) => v.len(),
            ColBuf::Utf8 { offsets, .. } => offsets.len() - 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push_null(&mut self) {
        let n = self.len();
        match self {
            ColBuf::Bool(v, nl) => {
                v.push(false);
                nl.null(n)
            }
            ColBuf::Int64(v, nl) | ColBuf::Timestamp(v, nl) => {
                v.push(0);
                nl.null(n)
            }
            ColBuf::Float64(v, nl) => {
                v.push(0.0);
                nl.null(n)
            }
            ColBuf::Date(v, nl) => {
                v.push(0);
                nl.null(n)
            }
            ColBuf::Utf8 {
                offsets,
                bytes,
                nulls,
            } => {
                offsets.push(bytes.len() as u64);
                nulls.null(n)
            }
        }
    }

    pub fn push_bool(&mut self, x: bool) {
        if let ColBuf::Bool(v, nl) = self {
            v.push(x);
            nl.valid();
        }
    }
    /// int64 or timestamp.
    pub fn push_i64(&mut self, x: i64) {
        if let ColBuf::Int64(v, nl) | ColBuf::Timestamp(v, nl) = self {
            v.push(x);
            nl.valid();
        }
    }
    pub fn push_f64(&mut self, x: f64) {
        if let ColBuf::Float64(v, nl) = self {
            v.push(x);
            nl.valid();
        }
    }
    pub fn push_date(&mut self, x: i32) {
        if let ColBuf::Date(v, nl) = self {
            v.push(x);
            nl.valid();
        }
    }
    pub fn push_str(&mut self, s: &str) {
        if let ColBuf::Utf8 {
            offsets,
            bytes,
            nulls,
        } = self
        {
            bytes.extend_from_slice(s.as_bytes());
            offsets.push(bytes.len() as u64);
            nulls.valid();
        }
    }

    /// Drops rows past `len` (used to undo a partly pushed bad row).
    pub fn truncate(&mut self, len: usize) {
        match self {
            ColBuf::Bool(v, nl) => {
                v.truncate(len);
                nl.truncate(len)
            }
            ColBuf::Int64(v, nl) | ColBuf::Timestamp(v, nl) => {
                v.truncate(len);
                nl.truncate(len)
            }
            ColBuf::Float64(v, nl) => {
                v.truncate(len);
                nl.truncate(len)
            }
            ColBuf::Date(v, nl) => {
                v.truncate(len);
                nl.truncate(len)
            }
            ColBuf::Utf8 {
                offsets,
                bytes,
                nulls,
            } => {
                if offsets.len() > len + 1 {
                    offsets.truncate(len + 1);
                    bytes.truncate(offsets[len] as usize);
                }
                nulls.truncate(len)
            }
        }
    }

    pub fn finish(self) -> ColumnData {
        match self {
            ColBuf::Bool(values, n) => ColumnData::Bool {
                values,
                validity: n.finish(),
            },
            ColBuf::Int64(values, n) => ColumnData::Int64 {
                values,
                validity: n.finish(),
            },
            ColBuf::Float64(values, n) => ColumnData::Float64 {
                values,
                validity: n.finish(),
            },
            ColBuf::Date(values, n) => ColumnData::Date {
                values,
                validity: n.finish(),
            },
            ColBuf::Timestamp(values, n) => ColumnData::Timestamp {
                values,
                validity: n.finish(),
            },
            ColBuf::Utf8 {
                offsets,
                bytes,
                nulls,
            } => ColumnData::Utf8 {
                offsets,
                bytes,
                validity: nulls.finish(),
            },
        }
    }
}

/// Heap bytes held by a column (for the memory budget).
pub fn heap_bytes(c: &ColumnData) -> usize {
    let (vals, validity) = match c {
        ColumnData::Bool { values, validity } => (values.capacity(), validity),
        ColumnData::Int64 { values, validity } | ColumnData::Timestamp { values, validity } => {
            (values.capacity() * 8, validity)
        }
        ColumnData::Float64 { values, validity } => (values.capacity() * 8, validity),
        ColumnData::Date { values, validity } => (values.capacity() * 4, validity),
        ColumnData::Utf8 {
            offsets,
            bytes,
            validity,
        } => (offsets.capacity() * 8 + bytes.capacity(), validity),
    };
    vals + validity.as_ref().map_or(0, |v| v.capacity())
}

fn validity_of(c: &ColumnData) -> Option<&Vec<bool>> {
    match c {
        ColumnData::Bool { validity, .. }
        | ColumnData::Int64 { validity, .. }
        | ColumnData::Float64 { validity, .. }
        | ColumnData::Date { validity, .. }
        | ColumnData::Timestamp { validity, .. }
        | ColumnData::Utf8 { validity, .. } => validity.as_ref(),
    }
}

fn gather_validity(parts: &[(&ColumnData, Range<usize>)], rows: usize) -> Option<Vec<bool>> {
    if parts
        .iter()
        .all(|(c, r)| validity_of(c).is_none_or(|v| v[r.clone()].iter().all(|b| *b)))
    {
        return None;
    }
    let mut out = Vec::with_capacity(rows);
    for (c, r) in parts {
        match validity_of(c) {
            Some(v) => out.extend_from_slice(&v[r.clone()]),
            None => out.resize(out.len() + r.len(), true),
        }
    }
    Some(out)
}

macro_rules! gather_fixed {
    ($variant:ident, $parts:expr, $rows:expr) => {{
        let mut values = Vec::with_capacity($rows);
        for (c, r) in $parts {
            if let ColumnData::$variant { values: v, .. } = c {
                values.extend_from_slice(&v[r.clone()]);
            }
        }
        ColumnData::$variant {
            values,
            validity: gather_validity($parts, $rows),
        }
    }};
}

/// Concatenates row ranges of columns of one type (all `parts` have type `t`).
pub fn gather(t: DataType, parts: &[(&ColumnData, Range<usize>)]) -> ColumnData {
    let rows = parts.iter().map(|(_, r)| r.len()).sum();
    match t {
        DataType::Bool => gather_fixed!(Bool, parts, rows),
        DataType::Int64 => gather_fixed!(Int64, parts, rows),
        DataType::Float64 => gather_fixed!(Float64, parts, rows),
        DataType::Date => gather_fixed!(Date, parts, rows),
        DataType::Timestamp => gather_fixed!(Timestamp, parts, rows),
        DataType::Utf8 => {
            let mut offsets = Vec::with_capacity(rows + 1);
            offsets.push(0u64);
            let mut bytes = Vec::new();
            for (c, r) in parts {
                if let ColumnData::Utf8 {
                    offsets: o,
                    bytes: b,
                    ..
                } = c
                {
                    if r.is_empty() {
                        continue;
                    }
                    let (lo, hi) = (o[r.start] as usize, o[r.end] as usize);
                    let base = bytes.len() as u64;
                    bytes.extend_from_slice(&b[lo..hi]);
                    offsets.extend(o[r.start + 1..=r.end].iter().map(|x| x - lo as u64 + base));
                }
            }
            ColumnData::Utf8 {
                offsets,
                bytes,
                validity: gather_validity(parts, rows),
            }
        }
    }
}

/// The utf8 value at `row` of a Utf8 column (bytes), `None` for other types.
pub fn str_at(c: &ColumnData, row: usize) -> Option<&[u8]> {
    match c {
        ColumnData::Utf8 { offsets, bytes, .. } => {
            Some(&bytes[offsets[row] as usize..offsets[row + 1] as usize])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_concatenates_strings_and_nulls() {
        let mut a = ColBuf::new(DataType::Utf8, 0);
        a.push_str("ab");
        a.push_null();
        a.push_str("c");
        let a = a.finish();
        let mut b = ColBuf::new(DataType::Utf8, 0);
        b.push_str("xyz");
        b.push_str("");
        let b = b.finish();
        let g = gather(DataType::Utf8, &[(&a, 1..3), (&b, 0..2), (&a, 0..1)]);
        assert_eq!(
            g,
            ColumnData::Utf8 {
                offsets: vec![0, 0, 1, 4, 4, 6],
                bytes: b"cxyzab".to_vec(),
                validity: Some(vec![false, true, true, true, true]),
            }
        );
        let g = gather(DataType::Utf8, &[(&b, 0..2)]);
        assert_eq!(g, b);
    }

    #[test]
    fn truncate_undoes_pushes() {
        let mut c = ColBuf::new(DataType::Int64, 0);
        c.push_i64(1);
        c.push_null();
        c.truncate(1);
        assert_eq!(
            c.finish(),
            ColumnData::Int64 {
                values: vec![1],
                validity: None
            }
        );
    }
}
