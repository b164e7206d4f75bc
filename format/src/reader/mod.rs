//! Opening a file: validate everything that costs no more than the footer, then hand out typed
//! views without further checks on the hot path (SPEC.md: What a reader MUST check).
//!
//! `open.rs` holds the checks `open` makes; `meta.rs` the metadata types it produces; this
//! module the opened file and its typed, unchecked accessors.

mod meta;
mod open;

use zerocopy::FromBytes;

use crate::column::{
    slice_str, Bitmap, BoolChunk, ColumnChunk, PrimitiveChunk, StringChunk, StringRepr,
};
use crate::schema::{DataType, Schema};
use crate::value::{Value, Version};

pub(crate) use meta::KeyIndex;
pub use meta::{BufferRange, ChunkBuffers, ChunkMeta, Encoding, RowGroupMeta, Stat};

/// An opened Quarry file over any byte source (a [`MappedFile`](crate::MappedFile), an
/// [`AlignedBuf`](crate::AlignedBuf), ...).
#[derive(Debug)]
pub struct QuarryFile<B> {
    source: B,
    schema: Schema,
    num_rows: u64,
    row_groups: Vec<RowGroupMeta>,
    chunks: Vec<ChunkMeta>,
    version: Version,
    created_by: String,
    pub(crate) key_index: Option<KeyIndex>,
    /// String keys' index entries as integers, made on the first string lookup (`key.rs`).
    pub(crate) key_words: std::sync::OnceLock<crate::key::KeyWords>,
    pub(crate) footer_offset: u64,
    /// Unique per opened file, so a `Verifier` can tell which file it has been checking.
    pub(crate) id: u64,
    /// Set when a full verification of this file passed (`verify.rs`): where `bytes()` was
    /// then. While `bytes()` is still there, every string buffer is known to be UTF-8 cut at
    /// character boundaries, and strings are read without checking them again.
    pub(crate) verified_at: std::sync::OnceLock<(usize, usize)>,
}

/// Source of [`QuarryFile::id`].
static NEXT_FILE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl<B: AsRef<[u8]>> QuarryFile<B> {
    pub fn bytes(&self) -> &[u8] {
        self.source.as_ref()
    }

    /// Whether a full verification ([`QuarryFile::verify`] or a [`crate::Verifier`] run to the
    /// end) of these very bytes passed. Strings are then read without checking their UTF-8
    /// again: `check_strings` in `verify.rs` checked every string buffer and offset once.
    #[inline]
    pub fn fully_verified(&self) -> bool {
        let b = self.bytes();
        self.verified_at.get() == Some(&(b.as_ptr() as usize, b.len()))
    }

    /// Records that a full verification passed (called by `Verifier::step` only).
    pub(crate) fn mark_fully_verified(&self) {
        let b = self.bytes();
        let _ = self.verified_at.set((b.as_ptr() as usize, b.len()));
    }

    pub fn source(&self) -> &B {
        &self.source
    }

    pub fn into_inner(self) -> B {
        self.source
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn num_rows(&self) -> u64 {
        self.num_rows
    }

    /// The content hash of the file (xxh3-128 of the footer), used as dataset version and ETag.
    pub fn version(&self) -> Version {
        self.version
    }

    pub fn created_by(&self) -> &str {
        &self.created_by
    }

    pub fn file_len(&self) -> u64 {
        self.bytes().len() as u64
    }

    pub fn row_groups(&self) -> &[RowGroupMeta] {
        &self.row_groups
    }

    pub(crate) fn chunk_metas(&self) -> &[ChunkMeta] {
        &self.chunks
    }

    /// # Panics
    /// When `row_group` or `column` is out of range (a caller bug, not a file problem).
    pub fn chunk_meta(&self, row_group: usize, column: usize) -> &ChunkMeta {
        assert!(column < self.schema.len(), "column {column} out of range");
        &self.chunks[row_group * self.schema.len() + column]
    }

    /// The row group holding global row `row`, and the row's index within it.
    ///
    /// # Panics
    /// When `row >= num_rows()`.
    pub fn locate(&self, row: u64) -> (usize, usize) {
        assert!(
            row < self.num_rows,
            "row {row} out of range ({} rows)",
            self.num_rows
        );
        let g = self.row_groups.partition_point(|rg| rg.first_row <= row) - 1;
        (g, (row - self.row_groups[g].first_row) as usize)
    }

    /// The value of `column` at global row `row`.
    ///
    /// # Panics
    /// When `row` or `column` is out of range.
    pub fn value(&self, row: u64, column: usize) -> Value<'_> {
        let (g, i) = self.locate(row);
        self.value_at(g, column, i)
    }

    /// The value at `index` of chunk (`row_group`, `column`): exactly
    /// `chunk(row_group, column).get(index)`, read straight from the buffers without building
    /// the chunk's view (a point lookup reads one value of every column).
    ///
    /// # Panics
    /// When `row_group` or `column` is out of range (a caller bug, not a file problem).
    pub fn value_at(&self, row_group: usize, column: usize, index: usize) -> Value<'_> {
        let meta = self.chunk_meta(row_group, column);
        let n = meta.num_rows as usize;
        let bytes = self.bytes();
        let slice = |r: BufferRange| bytes.get(r.range()).unwrap_or(&[]);
        let valid = |i: usize| {
            meta.buffers
                .validity
                .is_none_or(|v| Bitmap::new(slice(v), n).get(i))
        };
        if index >= n || !valid(index) {
            return Value::Null;
        }
        // The same slices and casts as `chunk`, for one row.
        let values = slice(meta.buffers.values);
        let v = match self.schema.fields()[column].data_type {
            DataType::Bool => Some(Value::Bool(Bitmap::new(values, n).get(index))),
            DataType::Int64 => cast(values).get(index).map(|&v| Value::Int64(v)),
            DataType::Timestamp => cast(values).get(index).map(|&v| Value::Timestamp(v)),
            DataType::Float64 => cast(values).get(index).map(|&v| Value::Float64(v)),
            DataType::Date => cast(values).get(index).map(|&v| Value::Date(v)),
            DataType::Utf8 => {
                let data = meta.buffers.data.map_or(&[][..], slice);
                Some(Value::Utf8(match meta.encoding {
                    Encoding::Dictionary => {
                        let code = cast::<u32>(values).get(index).copied().unwrap_or(u32::MAX);
                        let dict = meta.buffers.dictionary.map_or(&[][..], slice);
                        slice_str(cast(data), dict, code as usize, self.fully_verified())
                    }
                    _ => slice_str(cast(values), data, index, self.fully_verified()),
                }))
            }
        };
        v.unwrap_or(Value::Null)
    }

    /// Loads the first byte of row `index` of every chunk of `row_group` (validity, then the
    /// value, offset or code) and discards it. A point lookup calls this before reading the
    /// row: the loads do not depend on each other, so their cache and TLB misses overlap
    /// instead of being paid one column after another. Out-of-range arguments do nothing.
    pub fn prefetch_row(&self, row_group: usize, index: usize) {
        let bytes = self.bytes();
        let columns = self.schema.len();
        let Some(metas) = row_group
            .checked_mul(columns)
            .and_then(|start| self.chunks.get(start..start.checked_add(columns)?))
        else {
            return;
        };
        let byte_at = |offset: u64, at: Option<usize>| {
            let at = usize::try_from(offset).ok()?.checked_add(at?)?;
            bytes.get(at).copied()
        };
        let mut acc = 0u8;
        for (meta, field) in metas.iter().zip(self.schema.fields()) {
            let at = match field.data_type {
                DataType::Bool => Some(index / 8),
                DataType::Utf8 if meta.encoding == Encoding::Dictionary => index.checked_mul(4),
                DataType::Utf8 => index.checked_mul(8),
                t => index.checked_mul(t.fixed_width().unwrap_or(8)),
            };
            acc ^= byte_at(meta.buffers.values.offset, at).unwrap_or(0);
            if let Some(v) = meta.buffers.validity {
                acc ^= byte_at(v.offset, Some(index / 8)).unwrap_or(0);
            }
        }
        // Second stage: a string's bytes sit behind its offset (or code, then dictionary
        // offset). Those loads wait for the first stage's, but start before any value is
        // formatted, so the last column's string is not a miss of its own at the end.
        // (Element `i`, `width` bytes little-endian, of the buffer at `offset`.)
        let le_at = |offset: u64, i: usize, width: usize| -> Option<u64> {
            let at = usize::try_from(offset)
                .ok()?
                .checked_add(i.checked_mul(width)?)?;
            let mut w = [0u8; 8];
            w[..width].copy_from_slice(bytes.get(at..at.checked_add(width)?)?);
            Some(u64::from_le_bytes(w))
        };
        for (meta, field) in metas.iter().zip(self.schema.fields()) {
            if field.data_type != DataType::Utf8 {
                continue;
            }
            let values = meta.buffers.values.offset;
            let (start, base) = match (meta.encoding, meta.buffers.data, meta.buffers.dictionary) {
                (Encoding::Dictionary, Some(dict_offsets), Some(dict)) => (
                    le_at(values, index, 4).and_then(|c| le_at(dict_offsets.offset, c as usize, 8)),
                    dict.offset,
                ),
                (Encoding::Dictionary, ..) => continue,
                (_, Some(data), _) => (le_at(values, index, 8), data.offset),
                _ => continue,
            };
            acc ^= start
                .and_then(|s| byte_at(base, usize::try_from(s).ok()))
                .unwrap_or(0);
        }
        std::hint::black_box(acc);
    }

    /// Typed view of one column chunk, straight from the bytes.
    ///
    /// # Panics
    /// When `row_group` or `column` is out of range (a caller bug, not a file problem).
    pub fn chunk(&self, row_group: usize, column: usize) -> ColumnChunk<'_> {
        let meta = self.chunk_meta(row_group, column);
        let bytes = self.bytes();
        let n = meta.num_rows as usize;
        let slice = |r: BufferRange| bytes.get(r.range()).unwrap_or(&[]);
        let validity = meta.buffers.validity.map(|r| Bitmap::new(slice(r), n));
        let values = slice(meta.buffers.values);
        let nulls = meta.null_count;
        // The casts cannot fail for a file that `open` accepted (lengths are checked multiples of
        // the width, offsets 64-aligned, the base 8-aligned); empty views are the safe fallback.
        match self.schema.fields()[column].data_type {
            DataType::Bool => {
                ColumnChunk::Bool(BoolChunk::new(Bitmap::new(values, n), validity, nulls))
            }
            DataType::Int64 => {
                ColumnChunk::Int64(PrimitiveChunk::new(cast(values), validity, nulls))
            }
            DataType::Timestamp => {
                ColumnChunk::Timestamp(PrimitiveChunk::new(cast(values), validity, nulls))
            }
            DataType::Float64 => {
                ColumnChunk::Float64(PrimitiveChunk::new(cast(values), validity, nulls))
            }
            DataType::Date => ColumnChunk::Date(PrimitiveChunk::new(cast(values), validity, nulls)),
            DataType::Utf8 => {
                let data = meta.buffers.data.map_or(&[][..], slice);
                let repr = match meta.encoding {
                    Encoding::Dictionary => StringRepr::Dictionary {
                        codes: cast(values),
                        dict_offsets: cast(data),
                        dict_bytes: meta.buffers.dictionary.map_or(&[][..], slice),
                    },
                    _ => StringRepr::Plain {
                        offsets: cast(values),
                        bytes: data,
                    },
                };
                ColumnChunk::Utf8(StringChunk::new(
                    n,
                    validity,
                    nulls,
                    repr,
                    self.fully_verified(),
                ))
            }
        }
    }
}

fn cast<T: FromBytes + zerocopy::Immutable>(bytes: &[u8]) -> &[T] {
    <[T]>::ref_from_bytes(bytes).unwrap_or(&[])
}
