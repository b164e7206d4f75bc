//! Opening a file: validate everything that costs no more than the footer, then hand out typed
//! views without further checks on the hot path (SPEC.md: What a reader MUST check).

use std::ops::Range;

use xxhash_rust::xxh3::xxh3_128;
use zerocopy::FromBytes;

use crate::column::{
    slice_str, Bitmap, BoolChunk, ColumnChunk, PrimitiveChunk, StringChunk, StringRepr,
};
use crate::error::{FormatError, Result};
use crate::layout::{ChunkMetaRaw, ColumnMetaRaw, FooterHeader, Header, RowGroupMetaRaw, Trailer};
use crate::schema::{DataType, Field, Schema};
use crate::spec::{
    self, encoding_tag, ALIGN, FOOTER_HEADER_LEN, HEADER_LEN, KEY_INDEX_STRIDE, MAGIC,
    MIN_FILE_LEN, NO_KEY, TRAILER_LEN, VERSION_MAJOR,
};
use crate::value::{Value, Version};

/// A row group: rows `first_row .. first_row + num_rows` of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowGroupMeta {
    pub first_row: u64,
    pub num_rows: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Fixed-width values, or utf8 offsets + bytes.
    Plain,
    /// utf8: u32 codes into a sorted dictionary.
    Dictionary,
    /// bool: one bit per value.
    BitPacked,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Plain => "plain",
            Encoding::Dictionary => "dictionary",
            Encoding::BitPacked => "bitpacked",
        }
    }
}

/// A zone-map bound. Int covers int64, date and timestamp; min/max exclude nulls and NaN.
#[derive(Clone, Debug, PartialEq)]
pub enum Stat {
    Bool(bool),
    Int(i64),
    Float(f64),
    Utf8(String),
}

/// Absolute byte range of one buffer in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferRange {
    pub offset: u64,
    pub len: u64,
}

impl BufferRange {
    pub fn range(&self) -> Range<usize> {
        self.offset as usize..(self.offset + self.len) as usize
    }
}

/// Where a chunk's buffers are (SPEC.md: Chunk buffers). Raw column reads serve these ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkBuffers {
    /// Validity bitmap, present iff the chunk has nulls.
    pub validity: Option<BufferRange>,
    /// Fixed-width values, bit-packed bools, utf8 plain offsets (u64) or dictionary codes (u32).
    pub values: BufferRange,
    /// utf8 plain bytes or dictionary offsets (u64).
    pub data: Option<BufferRange>,
    /// Dictionary bytes.
    pub dictionary: Option<BufferRange>,
}

/// One column chunk's metadata, from the footer.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkMeta {
    pub encoding: Encoding,
    pub num_rows: u64,
    pub null_count: u64,
    pub min: Option<Stat>,
    pub max: Option<Stat>,
    /// The chunk's region: `offset .. offset + len`, covered by `checksum` (xxh3-64).
    pub offset: u64,
    pub len: u64,
    pub checksum: u64,
    pub dictionary_len: u32,
    pub buffers: ChunkBuffers,
}

#[derive(Clone, Debug)]
pub(crate) struct KeyIndex {
    pub offset: u64,
    pub len: u64,
    pub checksum: u64,
    pub entries: u64,
    /// For utf8 keys: where the string bytes start (absolute).
    pub bytes_offset: u64,
    /// Cumulative index entries before each row group (len = row groups + 1).
    pub entries_before: Vec<u64>,
}

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

fn read<'a, T: FromBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
    bytes: &'a [u8],
    offset: usize,
    structure: &'static str,
) -> Result<&'a T> {
    bytes
        .get(offset..)
        .and_then(|b| T::ref_from_prefix(b).ok())
        .map(|(t, _)| t)
        .ok_or_else(|| {
            FormatError::corrupt(structure, offset as u64, "extends past the end of the file")
        })
}

impl<B: AsRef<[u8]>> QuarryFile<B> {
    /// Opens a file: checks magic at both ends, version, footer hash, and that every offset and
    /// length is in bounds, aligned, monotonic and consistent with its type and encoding. The
    /// cost is that of the footer, not of the file. Never panics.
    ///
    /// # Errors
    /// A [`FormatError`] naming the structure, the byte offset, and what was expected and found.
    pub fn open(source: B) -> Result<Self> {
        let bytes = source.as_ref();
        let len = bytes.len();
        if len < MIN_FILE_LEN {
            return Err(FormatError::TooSmall {
                len: len as u64,
                min: MIN_FILE_LEN as u64,
            });
        }
        if (bytes.as_ptr() as usize) % 8 != 0 {
            return Err(FormatError::Misaligned);
        }
        // SPEC.md: Header.
        let header: &Header = read(bytes, 0, "header")?;
        if header.magic != MAGIC {
            return Err(FormatError::BadMagic {
                structure: "header",
                offset: 0,
                expected: MAGIC,
                found: header.magic,
            });
        }
        if header.major.get() != VERSION_MAJOR {
            return Err(FormatError::UnsupportedVersion {
                structure: "header",
                major: header.major.get(),
                minor: header.minor.get(),
                supported: VERSION_MAJOR,
            });
        }
        if header.reserved.iter().any(|b| *b != 0) {
            return Err(FormatError::corrupt(
                "header",
                12,
                "reserved bytes are not zero",
            ));
        }
        // SPEC.md: Trailer.
        let trailer_at = len - TRAILER_LEN;
        let trailer: &Trailer = read(bytes, trailer_at, "trailer")?;
        if trailer.magic != MAGIC {
            return Err(FormatError::BadMagic {
                structure: "trailer",
                offset: (len - 8) as u64,
                expected: MAGIC,
                found: trailer.magic,
            });
        }
        if trailer.major.get() != header.major.get() || trailer.minor.get() != header.minor.get() {
            return Err(FormatError::corrupt(
                "trailer",
                (trailer_at + 32) as u64,
                format!(
                    "version {}.{} differs from the header's {}.{}",
                    trailer.major.get(),
                    trailer.minor.get(),
                    header.major.get(),
                    header.minor.get()
                ),
            ));
        }
        if trailer.reserved.iter().any(|b| *b != 0) {
            return Err(FormatError::corrupt(
                "trailer",
                (trailer_at + 36) as u64,
                "reserved bytes are not zero",
            ));
        }
        let footer_offset = trailer.footer_offset.get();
        let footer_len = trailer.footer_len.get();
        if footer_offset % ALIGN != 0
            || footer_offset < HEADER_LEN as u64
            || footer_offset.checked_add(footer_len) != Some(trailer_at as u64)
            || footer_len < FOOTER_HEADER_LEN as u64
        {
            return Err(FormatError::corrupt(
                "trailer",
                trailer_at as u64,
                format!(
                    "footer at {footer_offset} of {footer_len} bytes must be 64-aligned, start after the header and end at the trailer ({trailer_at})"
                ),
            ));
        }
        let footer = &bytes[footer_offset as usize..trailer_at];
        let hash = xxh3_128(footer).to_le_bytes();
        if hash != trailer.footer_hash {
            return Err(FormatError::Checksum {
                structure: "footer".into(),
                offset: footer_offset,
                end: trailer_at as u64,
                expected: u64::from_le_bytes(trailer.footer_hash[..8].try_into().unwrap_or([0; 8])),
                found: u64::from_le_bytes(hash[..8].try_into().unwrap_or([0; 8])),
            });
        }
        Self::parse_footer(source, footer_offset, Version(hash))
    }

    fn parse_footer(source: B, footer_offset: u64, version: Version) -> Result<Self> {
        let bytes = source.as_ref();
        let footer = &bytes[footer_offset as usize..bytes.len() - TRAILER_LEN];
        let at = |rel: usize| footer_offset + rel as u64;
        let fh: &FooterHeader = read(footer, 0, "footer header")?;
        let num_columns = fh.num_columns.get() as usize;
        let num_groups = fh.num_row_groups.get() as usize;
        let expected_len = (|| {
            let chunks = num_columns.checked_mul(num_groups)?;
            FOOTER_HEADER_LEN
                .checked_add(num_columns.checked_mul(spec::COLUMN_META_LEN)?)?
                .checked_add(num_groups.checked_mul(spec::ROW_GROUP_META_LEN)?)?
                .checked_add(chunks.checked_mul(spec::CHUNK_META_LEN)?)?
                .checked_add(fh.strings_len.get() as usize)
        })();
        if expected_len != Some(footer.len()) {
            return Err(FormatError::corrupt(
                "footer header",
                footer_offset,
                format!(
                    "{num_columns} columns, {num_groups} row groups and {} string bytes do not add up to the footer's {} bytes",
                    fh.strings_len.get(),
                    footer.len()
                ),
            ));
        }
        let mut rel = FOOTER_HEADER_LEN;
        let columns = <[ColumnMetaRaw]>::ref_from_prefix_with_elems(&footer[rel..], num_columns)
            .map_err(|_| FormatError::corrupt("column table", at(rel), "out of bounds"))?
            .0;
        rel += num_columns * spec::COLUMN_META_LEN;
        let groups_raw =
            <[RowGroupMetaRaw]>::ref_from_prefix_with_elems(&footer[rel..], num_groups)
                .map_err(|_| FormatError::corrupt("row group table", at(rel), "out of bounds"))?
                .0;
        rel += num_groups * spec::ROW_GROUP_META_LEN;
        let chunks_at = rel;
        let chunks_raw =
            <[ChunkMetaRaw]>::ref_from_prefix_with_elems(&footer[rel..], num_columns * num_groups)
                .map_err(|_| FormatError::corrupt("chunk table", at(rel), "out of bounds"))?
                .0;
        rel += num_columns * num_groups * spec::CHUNK_META_LEN;
        let strings_at = rel;
        let strings = &footer[rel..];
        let string = |off: u64, len: u64, what: &'static str| -> Result<&str> {
            let r = off as usize..(off as usize).saturating_add(len as usize);
            let b = strings.get(r).ok_or_else(|| {
                FormatError::corrupt(
                    what,
                    at(strings_at),
                    format!("string {off}+{len} is outside the string pool"),
                )
            })?;
            std::str::from_utf8(b).map_err(|_| {
                FormatError::corrupt(what, at(strings_at) + off, "string is not valid UTF-8")
            })
        };
        let created_by = string(0, u64::from(fh.created_by_len.get()), "created_by")?.to_owned();

        // SPEC.md: ColumnMeta.
        let mut fields = Vec::with_capacity(num_columns);
        for (i, c) in columns.iter().enumerate() {
            let where_ = at(FOOTER_HEADER_LEN + i * spec::COLUMN_META_LEN);
            let name = string(
                u64::from(c.name_offset.get()),
                u64::from(c.name_len.get()),
                "column name",
            )?;
            let data_type = DataType::from_tag(c.data_type).ok_or_else(|| {
                FormatError::corrupt(
                    "column meta",
                    where_ + 8,
                    format!("unknown type tag {}", c.data_type),
                )
            })?;
            if c.nullable > 1 || c.reserved.iter().any(|b| *b != 0) {
                return Err(FormatError::corrupt(
                    "column meta",
                    where_ + 9,
                    "nullable flag not 0/1 or reserved bytes not zero",
                ));
            }
            fields.push(Field {
                name: name.to_owned(),
                data_type,
                nullable: c.nullable == 1,
            });
        }
        let key = match fh.key_column.get() {
            NO_KEY => None,
            k => Some(k as usize),
        };
        let schema = Schema::new(fields, key).map_err(|e| {
            FormatError::corrupt("footer header", footer_offset + 16, format!("schema: {e}"))
        })?;

        // SPEC.md: RowGroupMeta.
        let mut row_groups = Vec::with_capacity(num_groups);
        let mut next_row = 0u64;
        for (g, rg) in groups_raw.iter().enumerate() {
            let (first, n) = (rg.first_row.get(), rg.num_rows.get());
            if first != next_row || n == 0 || n > u64::from(u32::MAX) {
                return Err(FormatError::corrupt(
                    "row group meta",
                    at(FOOTER_HEADER_LEN + num_columns * spec::COLUMN_META_LEN + g * spec::ROW_GROUP_META_LEN),
                    format!("row group {g} starts at row {first} with {n} rows; expected to start at {next_row} with 1..=2^32-1 rows"),
                ));
            }
            next_row += n;
            row_groups.push(RowGroupMeta {
                first_row: first,
                num_rows: n,
            });
        }
        if next_row != fh.num_rows.get() {
            return Err(FormatError::corrupt(
                "footer header",
                footer_offset,
                format!(
                    "row groups hold {next_row} rows, the header says {}",
                    fh.num_rows.get()
                ),
            ));
        }

        // Where the body ends: the key index if any, else the footer.
        let ki_offset = fh.key_index_offset.get();
        let ki_entries = fh.key_index_entries.get();
        let body_end = if ki_entries > 0 {
            ki_offset
        } else {
            footer_offset
        };

        // SPEC.md: ChunkMeta, Chunk buffers.
        let mut chunks = Vec::with_capacity(chunks_raw.len());
        let mut prev_end = HEADER_LEN as u64;
        for (i, raw) in chunks_raw.iter().enumerate() {
            let (g, c) = (i / num_columns.max(1), i % num_columns.max(1));
            let field = &schema.fields()[c];
            let where_ = at(chunks_at + i * spec::CHUNK_META_LEN);
            let meta = parse_chunk(
                raw,
                field,
                row_groups[g].num_rows,
                prev_end,
                body_end,
                strings,
            )
            .map_err(|detail| {
                FormatError::corrupt(
                    "chunk meta",
                    where_,
                    format!("column {:?} row group {g}: {detail}", field.name),
                )
            })?;
            prev_end = meta.offset + meta.len;
            chunks.push(meta);
        }

        // SPEC.md: Key index.
        let key_index =
            parse_key_index(fh, &schema, &row_groups, prev_end, footer_offset, bytes)
                .map_err(|detail| FormatError::corrupt("key index", footer_offset + 16, detail))?;

        Ok(QuarryFile {
            num_rows: fh.num_rows.get(),
            source,
            schema,
            row_groups,
            chunks,
            version,
            created_by,
            key_index,
            key_words: std::sync::OnceLock::new(),
            id: NEXT_FILE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            verified_at: std::sync::OnceLock::new(),
            footer_offset,
        })
    }

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

fn parse_chunk(
    raw: &ChunkMetaRaw,
    field: &Field,
    n: u64,
    prev_end: u64,
    body_end: u64,
    strings: &[u8],
) -> Result<ChunkMeta, String> {
    let offset = raw.offset.get();
    let len = raw.len.get();
    let end = offset.checked_add(len).ok_or("offset + length overflows")?;
    if offset % ALIGN != 0 || offset < prev_end || end > body_end {
        return Err(format!(
            "region {offset}..{end} must be 64-aligned, after the previous chunk (ends {prev_end}) and before {body_end}"
        ));
    }
    let null_count = raw.null_count.get();
    if null_count > n || (!field.nullable && null_count > 0) {
        return Err(format!(
            "{null_count} nulls in {n} rows of a {} column",
            if field.nullable {
                "nullable"
            } else {
                "non-nullable"
            }
        ));
    }
    if raw.reserved != [0; 2] || raw.reserved2.get() != 0 || raw.has_stats > 1 {
        return Err("reserved bytes not zero or stats flag not 0/1".into());
    }
    let encoding = match (field.data_type, raw.encoding) {
        (DataType::Bool, encoding_tag::BIT_PACKED) => Encoding::BitPacked,
        (DataType::Utf8, encoding_tag::DICTIONARY) => Encoding::Dictionary,
        (DataType::Bool, _) | (DataType::Utf8, encoding_tag::BIT_PACKED) => {
            return Err(format!(
                "encoding tag {} is not valid for {}",
                raw.encoding, field.data_type
            ))
        }
        (_, encoding_tag::PLAIN) => Encoding::Plain,
        (t, e) => return Err(format!("encoding tag {e} is not valid for {t}")),
    };
    let dictionary_len = raw.dictionary_len.get();
    if (encoding == Encoding::Dictionary) != (dictionary_len > 0) {
        return Err(format!(
            "dictionary length {dictionary_len} does not fit encoding {}",
            encoding.name()
        ));
    }
    // Expected buffer lengths per slot; None = any length (string bytes).
    let bitmap_len = n.div_ceil(8);
    let d = u64::from(dictionary_len);
    let expect: [Option<u64>; 4] = match (field.data_type, encoding) {
        (DataType::Bool, _) => [Some(bitmap_len), Some(bitmap_len), Some(0), Some(0)],
        (DataType::Utf8, Encoding::Plain) => [Some(bitmap_len), Some(8 * (n + 1)), None, Some(0)],
        (DataType::Utf8, _) => [Some(bitmap_len), Some(4 * n), Some(8 * (d + 1)), None],
        (t, _) => [
            Some(bitmap_len),
            Some(t.fixed_width().unwrap_or(8) as u64 * n),
            Some(0),
            Some(0),
        ],
    };
    let mut ranges = [None; 4];
    let mut buf_end = 0u64;
    for (slot, (b, want)) in raw.buffers.iter().zip(expect).enumerate() {
        let (boff, blen) = (b.offset.get(), b.len.get());
        let want = if slot == 0 && null_count == 0 {
            Some(0)
        } else {
            want
        };
        if want.is_some_and(|w| w != blen) {
            return Err(format!(
                "buffer {slot} is {blen} bytes, expected {}",
                want.unwrap_or(0)
            ));
        }
        if blen == 0 {
            if boff != 0 {
                return Err(format!("empty buffer {slot} has offset {boff}, expected 0"));
            }
            continue;
        }
        if boff % ALIGN != 0 || boff < buf_end || boff.checked_add(blen).is_none_or(|e| e > len) {
            return Err(format!("buffer {slot} at {boff}+{blen} must be 64-aligned, ordered and inside the chunk's {len} bytes"));
        }
        buf_end = boff + blen;
        ranges[slot] = Some(BufferRange {
            offset: offset + boff,
            len: blen,
        });
    }
    if buf_end != len {
        return Err(format!("buffers end at {buf_end}, the chunk at {len}"));
    }
    let values = ranges[1].unwrap_or(BufferRange {
        offset: offset + len,
        len: 0,
    });
    let (min, max) = if raw.has_stats == 1 {
        let stat = |bits: u64| -> Result<Stat, String> {
            Ok(match field.data_type {
                DataType::Bool => Stat::Bool(bits != 0),
                DataType::Float64 => Stat::Float(f64::from_bits(bits)),
                DataType::Utf8 => {
                    let (o, l) = ((bits & 0xffff_ffff) as usize, (bits >> 32) as usize);
                    let b = strings
                        .get(o..o.saturating_add(l))
                        .ok_or("string statistic outside the string pool")?;
                    Stat::Utf8(
                        std::str::from_utf8(b)
                            .map_err(|_| "string statistic is not UTF-8")?
                            .to_owned(),
                    )
                }
                _ => Stat::Int(bits as i64),
            })
        };
        (Some(stat(raw.min.get())?), Some(stat(raw.max.get())?))
    } else {
        if raw.min.get() != 0 || raw.max.get() != 0 {
            return Err("statistics are set without the stats flag".into());
        }
        (None, None)
    };
    Ok(ChunkMeta {
        encoding,
        num_rows: n,
        null_count,
        min,
        max,
        offset,
        len,
        checksum: raw.checksum.get(),
        dictionary_len,
        buffers: ChunkBuffers {
            validity: ranges[0],
            values,
            data: ranges[2],
            dictionary: ranges[3],
        },
    })
}

fn parse_key_index(
    fh: &FooterHeader,
    schema: &Schema,
    row_groups: &[RowGroupMeta],
    body_end: u64,
    footer_offset: u64,
    bytes: &[u8],
) -> Result<Option<KeyIndex>, String> {
    let (offset, len, entries) = (
        fh.key_index_offset.get(),
        fh.key_index_len.get(),
        fh.key_index_entries.get(),
    );
    if fh.key_index_stride.get() != KEY_INDEX_STRIDE {
        return Err(format!(
            "stride {} is not {KEY_INDEX_STRIDE}",
            fh.key_index_stride.get()
        ));
    }
    let Some(key) = schema.key_field() else {
        if offset != 0 || len != 0 || entries != 0 || fh.key_index_checksum.get() != 0 {
            return Err("a file without a key has a key index".into());
        }
        return Ok(None);
    };
    let stride = u64::from(KEY_INDEX_STRIDE);
    let mut entries_before = Vec::with_capacity(row_groups.len() + 1);
    let mut total = 0u64;
    for rg in row_groups {
        entries_before.push(total);
        total += rg.num_rows.div_ceil(stride);
    }
    entries_before.push(total);
    if entries != total {
        return Err(format!(
            "{entries} entries, expected {total} for the row groups"
        ));
    }
    if entries == 0 {
        if offset != 0 || len != 0 || fh.key_index_checksum.get() != 0 {
            return Err("an empty key index has an offset, length or checksum".into());
        }
        return Ok(Some(KeyIndex {
            offset,
            len,
            checksum: 0,
            entries,
            bytes_offset: 0,
            entries_before,
        }));
    }
    let end = offset.checked_add(len).ok_or("offset + length overflows")?;
    if offset % ALIGN != 0 || offset < body_end || end > footer_offset {
        return Err(format!("region {offset}..{end} must be 64-aligned, after the last chunk ({body_end}) and before the footer ({footer_offset})"));
    }
    let mut bytes_offset = end;
    match key.data_type {
        DataType::Int64 => {
            if len != 8 * entries {
                return Err(format!("{len} bytes for {entries} int64 keys"));
            }
        }
        _ => {
            let offsets_len = 8 * (entries + 1);
            if len < offsets_len {
                return Err(format!(
                    "{len} bytes cannot hold {} string offsets",
                    entries + 1
                ));
            }
            let last = bytes
                .get((offset + offsets_len - 8) as usize..(offset + offsets_len) as usize)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
                .ok_or("offsets out of bounds")?;
            let start = if last == 0 {
                offset + offsets_len
            } else {
                spec::align_up(offset + offsets_len)
            };
            if start.checked_add(last) != Some(end) {
                return Err(format!("string bytes ({last}) do not end the index"));
            }
            bytes_offset = start;
        }
    }
    Ok(Some(KeyIndex {
        offset,
        len,
        checksum: fh.key_index_checksum.get(),
        entries,
        bytes_offset,
        entries_before,
    }))
}
