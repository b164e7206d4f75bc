//! What `open` learns from the footer: row groups, chunk metadata, buffer ranges, zone-map
//! bounds and the key index's place (SPEC.md: Footer).

use std::ops::Range;

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
