//! The fixed-size structures of the file, byte for byte as SPEC.md draws them. Every field is a
//! little-endian zerocopy type with alignment 1, so a structure can be read from any offset.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::spec;

/// SPEC.md: Header (64 bytes at offset 0).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Header {
    pub magic: [u8; 8],
    pub major: U16,
    pub minor: U16,
    pub reserved: [u8; 52],
}

/// SPEC.md: Trailer (64 bytes at the end of the file).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Trailer {
    pub footer_offset: U64,
    pub footer_len: U64,
    pub footer_hash: [u8; 16],
    pub major: U16,
    pub minor: U16,
    pub reserved: [u8; 20],
    pub magic: [u8; 8],
}

/// SPEC.md: Footer header (first 64 bytes of the footer).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct FooterHeader {
    pub num_rows: U64,
    pub num_columns: U32,
    pub num_row_groups: U32,
    pub key_column: U32,
    pub key_index_stride: U32,
    pub key_index_entries: U64,
    pub key_index_offset: U64,
    pub key_index_len: U64,
    pub key_index_checksum: U64,
    pub strings_len: U32,
    pub created_by_len: U32,
}

/// SPEC.md: ColumnMeta (16 bytes per column).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct ColumnMetaRaw {
    pub name_offset: U32,
    pub name_len: U32,
    pub data_type: u8,
    pub nullable: u8,
    pub reserved: [u8; 6],
}

/// SPEC.md: RowGroupMeta (16 bytes per row group).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct RowGroupMetaRaw {
    pub first_row: U64,
    pub num_rows: U64,
}

/// SPEC.md: Chunk buffers. Offset relative to the chunk's start.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct BufferRaw {
    pub offset: U64,
    pub len: U64,
}

/// SPEC.md: ChunkMeta (128 bytes per column chunk, row-group-major).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct ChunkMetaRaw {
    pub offset: U64,
    pub len: U64,
    pub checksum: U64,
    pub null_count: U64,
    pub encoding: u8,
    pub has_stats: u8,
    pub reserved: [u8; 2],
    pub dictionary_len: U32,
    pub min: U64,
    pub max: U64,
    pub reserved2: U64,
    pub buffers: [BufferRaw; spec::CHUNK_BUFFERS],
}

const _: () = {
    assert!(size_of::<Header>() == spec::HEADER_LEN);
    assert!(size_of::<Trailer>() == spec::TRAILER_LEN);
    assert!(size_of::<FooterHeader>() == spec::FOOTER_HEADER_LEN);
    assert!(size_of::<ColumnMetaRaw>() == spec::COLUMN_META_LEN);
    assert!(size_of::<RowGroupMetaRaw>() == spec::ROW_GROUP_META_LEN);
    assert!(size_of::<ChunkMetaRaw>() == spec::CHUNK_META_LEN);
};
