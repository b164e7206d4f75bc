//! The one error type of the crate: what went wrong, where (structure and byte offset), and
//! what was expected and found.

use std::io;

pub type Result<T, E = FormatError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error(
        "file is {len} bytes; a Quarry file has at least {min} (truncated, or not a Quarry file)"
    )]
    TooSmall { len: u64, min: u64 },

    #[error("bad magic in {structure} at byte {offset}: expected {expected:02x?}, found {found:02x?} (not a Quarry file, or truncated)")]
    BadMagic {
        structure: &'static str,
        offset: u64,
        expected: [u8; 8],
        found: [u8; 8],
    },

    #[error("unsupported format version {major}.{minor} in {structure}: this reader reads {supported}.x (written by a newer quarry-etl?)")]
    UnsupportedVersion {
        structure: &'static str,
        major: u16,
        minor: u16,
        supported: u16,
    },

    #[error("corrupt {structure} at byte {offset}: {detail}")]
    Corrupt {
        structure: &'static str,
        offset: u64,
        detail: String,
    },

    #[error("checksum mismatch in {structure} (bytes {offset}..{end}): stored {expected:016x}, computed {found:016x}; the file is corrupt")]
    Checksum {
        structure: String,
        offset: u64,
        end: u64,
        expected: u64,
        found: u64,
    },

    #[error("the file's bytes start at an address that is not 8-byte aligned; copy them into an AlignedBuf or map the file")]
    Misaligned,

    #[error("invalid schema: {0}")]
    Schema(String),

    #[error("invalid writer input: {0}")]
    Input(String),

    #[error("key order: row {row} has key {key}, which is not greater than key {prev_key} of row {prev_row}; keys must be unique and sorted ascending")]
    KeyOrder {
        row: u64,
        key: String,
        prev_row: u64,
        prev_key: String,
    },

    #[error("I/O error {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl FormatError {
    pub(crate) fn corrupt(structure: &'static str, offset: u64, detail: impl Into<String>) -> Self {
        FormatError::Corrupt {
            structure,
            offset,
            detail: detail.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        FormatError::Io {
            context: context.into(),
            source,
        }
    }
}
