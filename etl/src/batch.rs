//! Typed rows on their way from the parsers to the file.

use quarry_format::ColumnData;

use crate::columns::{heap_bytes, str_at};

/// Where a batch's rows came from (for messages naming file:line).
#[derive(Debug)]
pub enum Origin {
    /// Parsed from one chunk: row i is at line `base_line + line_offsets[i]` of input `file`.
    /// `line_offsets` is empty when nobody will ask (builds without a key).
    Chunk {
        file: u32,
        base_line: u64,
        line_offsets: Vec<u64>,
    },
    /// Read back from a spilled run: one file and line per row.
    Rows { files: Vec<u32>, lines: Vec<u64> },
}

/// Rows in columnar form, schema column order.
#[derive(Debug)]
pub struct Batch {
    pub columns: Vec<ColumnData>,
    pub rows: usize,
    pub origin: Origin,
}

/// A key value borrowed from a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyVal<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl std::fmt::Display for KeyVal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyVal::Int(i) => write!(f, "{i}"),
            KeyVal::Str(s) => write!(f, "{:?}", String::from_utf8_lossy(s)),
        }
    }
}

impl Batch {
    /// (input index, line) of a row.
    pub fn location(&self, row: usize) -> (u32, u64) {
        match &self.origin {
            Origin::Chunk {
                file,
                base_line,
                line_offsets,
            } => (
                *file,
                base_line + line_offsets.get(row).copied().unwrap_or(0),
            ),
            Origin::Rows { files, lines } => (files[row], lines[row]),
        }
    }

    pub fn key(&self, key_col: usize, row: usize) -> KeyVal<'_> {
        match &self.columns[key_col] {
            ColumnData::Int64 { values, .. } => KeyVal::Int(values[row]),
            c => KeyVal::Str(str_at(c, row).unwrap_or_default()),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        let origin = match &self.origin {
            Origin::Chunk { line_offsets, .. } => line_offsets.capacity() * 8,
            Origin::Rows { files, lines } => files.capacity() * 4 + lines.capacity() * 8,
        };
        self.columns.iter().map(heap_bytes).sum::<usize>() + origin
    }
}
