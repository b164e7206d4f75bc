//! `quarry-format`: Quarry's columnar file format, version 1.
//!
//! A Quarry file is written once (by [`FileWriter`]) and then read in place, straight from a
//! read-only memory map ([`MappedFile`]), without copying or decoding fixed-width values.
//! The byte layout is specified in `SPEC.md` next to this crate's `Cargo.toml`; code comments
//! point at its sections (`SPEC.md: Footer`) instead of repeating them.
//!
//! Reading follows "validate once, then trust": [`QuarryFile::open`] checks everything that costs
//! no more than the footer (magic, version, footer hash, every offset and length in bounds,
//! aligned and monotonic), and [`QuarryFile::verify`] (or the sliced [`Verifier`]) checks every
//! chunk's checksum and structure. No input, however corrupt, makes either panic; an opened but
//! unverified file with corrupt bodies yields wrong values at worst, never a panic or UB.
//!
//! ```
//! use quarry_format::*;
//! let schema = Schema::new(vec![
//!     Field { name: "id".into(), data_type: DataType::Int64, nullable: false },
//!     Field { name: "city".into(), data_type: DataType::Utf8, nullable: true },
//! ], Some(0))?;
//! let mut w = FileWriter::new(Vec::new(), schema, WriteOptions::default())?;
//! w.write_row_group(vec![
//!     ColumnData::Int64 { values: vec![1, 2], validity: None },
//!     ColumnData::Utf8 { offsets: vec![0, 4, 4], bytes: b"Oslo".to_vec(), validity: Some(vec![true, false]) },
//! ])?;
//! let (bytes, _summary) = w.finish()?;
//! let file = QuarryFile::open(AlignedBuf::from_slice(&bytes))?;
//! file.verify()?;
//! let row = file.find_key(KeyRef::Int64(1)).unwrap();
//! assert_eq!(file.value(row, 1), Value::Utf8("Oslo"));
//! assert_eq!(file.value(1, 1), Value::Null);
//! # Ok::<(), FormatError>(())
//! ```

#[cfg(not(target_endian = "little"))]
compile_error!(
    "quarry-format hands out &[i64] views of little-endian bytes: little-endian hosts only"
);

mod column;
mod error;
mod key;
mod layout;
mod reader;
mod rehash;
mod schema;
mod source;
pub mod spec;
pub mod text;
mod value;
mod verify;
mod writer;

pub use column::{Bitmap, BoolChunk, ColumnChunk, PrimitiveChunk, StringChunk};
pub use error::{FormatError, Result};
pub use reader::{BufferRange, ChunkBuffers, ChunkMeta, Encoding, QuarryFile, RowGroupMeta, Stat};
pub use rehash::rehash_footer;
pub use schema::{DataType, Field, Schema};
pub use source::{read_file, AlignedBuf, MappedFile};
pub use value::{KeyRef, Value, Version};
pub use verify::{Step, Verifier};
pub use writer::{
    encode_row_group, ColumnBuilder, ColumnData, DictionaryPolicy, EncodedRowGroup, FileWriter,
    WriteOptions, WriteSummary,
};
