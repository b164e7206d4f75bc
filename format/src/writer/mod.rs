//! Streaming writer: header, then one row group at a time, then key index, footer and trailer.
//! Memory is bounded by one row group plus the footer's metadata. Output is deterministic: the
//! same schema, rows and options give a byte-identical file. Where the bytes go is the caller's
//! business (publishing is the ETL's job).

mod column_data;
mod encode;

use std::io::Write;

use xxhash_rust::xxh3::{xxh3_128, xxh3_64};
use zerocopy::IntoBytes;

pub use column_data::{ColumnBuilder, ColumnData};
pub use encode::{encode_row_group, EncodedRowGroup};
use encode::{KeyOwned, StatOwned};

use crate::error::{FormatError, Result};
use crate::layout::{ChunkMetaRaw, ColumnMetaRaw, FooterHeader, Header, RowGroupMetaRaw, Trailer};
use crate::schema::Schema;
use crate::spec::{self, KEY_INDEX_STRIDE, MAGIC, NO_KEY, VERSION_MAJOR, VERSION_MINOR};
use crate::value::Version;

/// Whether utf8 chunks may be dictionary-encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DictionaryPolicy {
    /// Per chunk: a sorted dictionary when at most half the rows are distinct and it is smaller.
    #[default]
    Auto,
    Never,
}

#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Maximum rows per row group (every group but the last should be full).
    pub row_group_rows: usize,
    /// Stored in the footer; part of the content, so keep it free of timestamps.
    pub created_by: String,
    pub dictionary: DictionaryPolicy,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            row_group_rows: spec::DEFAULT_ROW_GROUP_ROWS,
            created_by: concat!("quarry-format ", env!("CARGO_PKG_VERSION")).to_owned(),
            dictionary: DictionaryPolicy::Auto,
        }
    }
}

/// What [`FileWriter::finish`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteSummary {
    pub rows: u64,
    pub row_groups: usize,
    pub bytes: u64,
    pub version: Version,
}

/// Writes one Quarry file to `out`. See the crate docs for an example.
#[derive(Debug)]
pub struct FileWriter<W: Write> {
    out: W,
    schema: Schema,
    options: WriteOptions,
    pos: u64,
    rows: u64,
    row_groups: Vec<RowGroupMetaRaw>,
    chunks: Vec<ChunkMetaRaw>,
    /// String statistics per chunk (min, max), patched into `chunks` by `finish`.
    string_stats: Vec<Option<(String, String)>>,
    last_key: Option<(u64, KeyOwned)>,
    /// The first key of every key-index block, in file order.
    index: Vec<KeyOwned>,
}

impl<W: Write> FileWriter<W> {
    /// Writes the header.
    ///
    /// # Errors
    /// `row_group_rows` of 0 or above `u32::MAX`; I/O errors.
    pub fn new(out: W, schema: Schema, options: WriteOptions) -> Result<Self> {
        if options.row_group_rows == 0 || u32::try_from(options.row_group_rows).is_err() {
            return Err(FormatError::Input(format!(
                "row_group_rows must be in 1..={}, got {}",
                u32::MAX,
                options.row_group_rows
            )));
        }
        if u32::try_from(options.created_by.len()).is_err() {
            return Err(FormatError::Input("created_by is too long".into()));
        }
        let mut w = FileWriter {
            out,
            schema,
            options,
            pos: 0,
            rows: 0,
            row_groups: Vec::new(),
            chunks: Vec::new(),
            string_stats: Vec::new(),
            last_key: None,
            index: Vec::new(),
        };
        let header = Header {
            magic: MAGIC,
            major: VERSION_MAJOR.into(),
            minor: VERSION_MINOR.into(),
            reserved: [0; 52],
        };
        w.write_all(header.as_bytes())?;
        Ok(w)
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn options(&self) -> &WriteOptions {
        &self.options
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Encodes and writes one row group.
    ///
    /// # Errors
    /// As [`encode_row_group`] and [`write_encoded`](Self::write_encoded).
    pub fn write_row_group(&mut self, columns: Vec<ColumnData>) -> Result<()> {
        let group = encode_row_group(&self.schema, columns, &self.options)?;
        self.write_encoded(group)
    }

    /// Writes a row group encoded (on any thread) with this writer's schema and options.
    ///
    /// # Errors
    /// `FormatError::KeyOrder` when its first key is not greater than the previous group's last
    /// (row numbers are global); `FormatError::Input` when it does not fit the schema; I/O errors.
    pub fn write_encoded(&mut self, group: EncodedRowGroup) -> Result<()> {
        if group.chunks.len() != self.schema.len() || group.num_rows > self.options.row_group_rows {
            return Err(FormatError::Input(
                "row group was encoded for another schema or options".into(),
            ));
        }
        let first_row = self.rows;
        if let (Some((prev_row, prev_key)), Some((first, _))) = (&self.last_key, &group.key_range) {
            if first <= prev_key {
                return Err(FormatError::KeyOrder {
                    row: first_row,
                    key: first.to_string(),
                    prev_row: *prev_row,
                    prev_key: prev_key.to_string(),
                });
            }
        }
        if let Some((_, last)) = group.key_range {
            self.last_key = Some((first_row + group.num_rows as u64 - 1, last));
        }
        self.index.extend(group.index_keys);
        for chunk in group.chunks {
            self.pad_to_alignment()?;
            let mut meta = chunk.meta;
            meta.offset = self.pos.into();
            self.write_all(&chunk.bytes)?;
            self.chunks.push(meta);
            self.string_stats.push(match (chunk.min, chunk.max) {
                (Some(StatOwned::Utf8(lo)), Some(StatOwned::Utf8(hi))) => Some((lo, hi)),
                _ => None,
            });
        }
        self.row_groups.push(RowGroupMetaRaw {
            first_row: first_row.into(),
            num_rows: (group.num_rows as u64).into(),
        });
        self.rows += group.num_rows as u64;
        Ok(())
    }

    /// Writes the key index, footer and trailer, flushes, and returns the sink.
    ///
    /// # Errors
    /// I/O errors; a footer over 4 GiB of strings.
    pub fn finish(mut self) -> Result<(W, WriteSummary)> {
        // SPEC.md: Key index.
        let (mut ki_offset, mut ki_len, mut ki_checksum) = (0u64, 0u64, 0u64);
        if !self.index.is_empty() {
            self.pad_to_alignment()?;
            let region = key_index_bytes(&self.index);
            ki_offset = self.pos;
            ki_len = region.len() as u64;
            ki_checksum = xxh3_64(&region);
            self.write_all(&region)?;
        }
        // SPEC.md: Footer.
        self.pad_to_alignment()?;
        let footer_offset = self.pos;
        let mut strings = Vec::new();
        let mut add_string = |s: &str| -> Result<(u32, u32)> {
            let off = u32::try_from(strings.len())
                .ok()
                .filter(|o| o.checked_add(s.len() as u32).is_some())
                .ok_or_else(|| FormatError::Input("footer strings exceed 4 GiB".into()))?;
            strings.extend_from_slice(s.as_bytes());
            Ok((off, s.len() as u32))
        };
        add_string(&self.options.created_by)?;
        let mut columns = Vec::with_capacity(self.schema.len());
        for f in self.schema.fields() {
            let (off, len) = add_string(&f.name)?;
            columns.push(ColumnMetaRaw {
                name_offset: off.into(),
                name_len: len.into(),
                data_type: f.data_type.tag(),
                nullable: u8::from(f.nullable),
                reserved: [0; 6],
            });
        }
        for (meta, stats) in self.chunks.iter_mut().zip(&self.string_stats) {
            if let Some((lo, hi)) = stats {
                let pack = |(off, len): (u32, u32)| u64::from(off) | (u64::from(len) << 32);
                meta.min = pack(add_string(lo)?).into();
                meta.max = pack(add_string(hi)?).into();
            }
        }
        let header = FooterHeader {
            num_rows: self.rows.into(),
            num_columns: (self.schema.len() as u32).into(),
            num_row_groups: u32::try_from(self.row_groups.len())
                .map_err(|_| FormatError::Input("more than 2^32 row groups".into()))?
                .into(),
            key_column: self.schema.key().map_or(NO_KEY, |k| k as u32).into(),
            key_index_stride: KEY_INDEX_STRIDE.into(),
            key_index_entries: (self.index.len() as u64).into(),
            key_index_offset: ki_offset.into(),
            key_index_len: ki_len.into(),
            key_index_checksum: ki_checksum.into(),
            strings_len: (strings.len() as u32).into(),
            created_by_len: (self.options.created_by.len() as u32).into(),
        };
        let mut footer = Vec::new();
        footer.extend_from_slice(header.as_bytes());
        footer.extend_from_slice(columns.as_bytes());
        footer.extend_from_slice(self.row_groups.as_bytes());
        footer.extend_from_slice(self.chunks.as_bytes());
        footer.extend_from_slice(&strings);
        let hash = xxh3_128(&footer).to_le_bytes();
        self.write_all(&footer)?;
        let trailer = Trailer {
            footer_offset: footer_offset.into(),
            footer_len: (footer.len() as u64).into(),
            footer_hash: hash,
            major: VERSION_MAJOR.into(),
            minor: VERSION_MINOR.into(),
            reserved: [0; 20],
            magic: MAGIC,
        };
        self.write_all(trailer.as_bytes())?;
        self.out
            .flush()
            .map_err(|e| FormatError::io("flushing the file", e))?;
        let summary = WriteSummary {
            rows: self.rows,
            row_groups: self.row_groups.len(),
            bytes: self.pos,
            version: Version(hash),
        };
        Ok((self.out, summary))
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| FormatError::io(format!("writing at byte {}", self.pos), e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn pad_to_alignment(&mut self) -> Result<()> {
        const ZEROS: [u8; spec::ALIGN as usize] = [0; spec::ALIGN as usize];
        let pad = (spec::align_up(self.pos) - self.pos) as usize;
        self.write_all(&ZEROS[..pad])
    }
}

/// SPEC.md: Key index. The first key of every block: int64 keys, or string offsets + bytes.
fn key_index_bytes(index: &[KeyOwned]) -> Vec<u8> {
    let mut region = Vec::new();
    match index.first() {
        Some(KeyOwned::Int64(_)) => {
            let keys: Vec<i64> = index
                .iter()
                .map(|k| match k {
                    KeyOwned::Int64(v) => *v,
                    KeyOwned::Utf8(_) => 0,
                })
                .collect();
            region.extend_from_slice(keys.as_bytes());
        }
        Some(KeyOwned::Utf8(_)) => {
            let mut offsets = vec![0u64];
            let mut bytes = Vec::new();
            for k in index {
                if let KeyOwned::Utf8(s) = k {
                    bytes.extend_from_slice(s.as_bytes());
                }
                offsets.push(bytes.len() as u64);
            }
            region.extend_from_slice(offsets.as_bytes());
            if !bytes.is_empty() {
                region.resize(spec::align_up(region.len() as u64) as usize, 0);
                region.extend_from_slice(&bytes);
            }
        }
        None => {}
    }
    region
}
