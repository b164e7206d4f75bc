//! Constants of the on-disk format (SPEC.md: Conventions). Pinned by the
//! `never_change_these_constants` test: a change here is a new format version.

/// First 8 bytes of every Quarry file, and last 8 bytes (SPEC.md: Header, Trailer).
/// PNG-style: a high byte catches 7-bit transfers, CR LF and ^Z catch text-mode mangling.
pub const MAGIC: [u8; 8] = *b"\x89QRY\r\n\x1a\n";
/// Major version: a reader refuses any other.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version: additions a v1 reader may ignore. This writer writes 0.
pub const VERSION_MINOR: u16 = 0;
/// Every column chunk, buffer, key index and the footer start at a multiple of this.
pub const ALIGN: u64 = 64;
pub const HEADER_LEN: usize = 64;
pub const TRAILER_LEN: usize = 64;
pub const FOOTER_HEADER_LEN: usize = 64;
pub const COLUMN_META_LEN: usize = 16;
pub const ROW_GROUP_META_LEN: usize = 16;
pub const CHUNK_META_LEN: usize = 128;
/// Buffers per chunk in `ChunkMeta` (SPEC.md: Chunk buffers).
pub const CHUNK_BUFFERS: usize = 4;
/// The smallest possible file: header, empty footer header, trailer.
pub const MIN_FILE_LEN: usize = HEADER_LEN + FOOTER_HEADER_LEN + TRAILER_LEN;
/// Rows per block of the sparse key index: one index entry per block.
pub const KEY_INDEX_STRIDE: u32 = 64;
/// Default rows per row group.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 65_536;
/// String min/max statistics longer than this are not stored.
pub const MAX_STRING_STAT_LEN: usize = 64;
/// `FooterHeader::key_column` when the file has no key.
pub const NO_KEY: u32 = u32::MAX;

/// Type tags in `ColumnMeta::data_type`.
pub mod type_tag {
    pub const BOOL: u8 = 1;
    pub const INT64: u8 = 2;
    pub const FLOAT64: u8 = 3;
    pub const UTF8: u8 = 4;
    pub const DATE: u8 = 5;
    pub const TIMESTAMP: u8 = 6;
}

/// Encoding tags in `ChunkMeta::encoding`.
pub mod encoding_tag {
    pub const PLAIN: u8 = 1;
    pub const BIT_PACKED: u8 = 2;
    pub const DICTIONARY: u8 = 3;
}

/// Rounds `n` up to the next multiple of [`ALIGN`].
pub const fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}
