//! Checks every length an Arrow IPC file or stream declares before arrow-ipc reads it.
//!
//! arrow-ipc allocates what the bytes declare before it can find out they lie: a block's or a
//! message's body length (zeroed buffer of that size) and a compressed buffer's 8-byte
//! uncompressed-length prefix (`Vec::with_capacity`). A corrupted length far above the memory
//! there is makes the allocation fail, which aborts the process instead of returning an error.
//! So the file is walked here first, with the flatbuffer reader arrow-ipc itself uses, reading
//! only metadata and the 8-byte prefixes:
//! - every message, block and buffer lies inside the file (and its body);
//! - every compressed buffer's declared length is at most what its codec can expand its bytes
//!   to (LZ4 frames less than 255x; a zstd block of 4 bytes at most 128 KiB, so under 32768x)
//!   and at most the memory there is (MemAvailable or the cgroup limit);
//!
//! and a file that fails is refused naming file, batch and column.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result};
use arrow_ipc::{Block, CompressionType, Message, MessageHeader};
use arrow_schema::DataType as A;

use crate::error::bad_input;

/// Upper bounds of the expansion ratio of each IPC codec (see the module header).
const LZ4_MAX_RATIO: u64 = 255;
const ZSTD_MAX_RATIO: u64 = 32_768;

/// The file being checked.
struct Walk<'a> {
    file: File,
    size: u64,
    display: &'a str,
    /// The largest buffer that may be allocated.
    cap: u64,
    /// Root column names of the schema and how many buffers each has in a record batch
    /// (`None` when a type's buffer count is not known here: buffers are then named by index).
    roots: Vec<(String, Option<usize>)>,
    /// Dictionary id -> the root column it belongs to.
    dict_roots: Vec<(i64, String)>,
}

/// Checks `path` (an IPC file when `file_format`, else a stream).
pub(super) fn check(path: &Path, display: &str, file_format: bool) -> Result<()> {
    let file = File::open(path).with_context(|| format!("opening {display}"))?;
    let size = file
        .metadata()
        .with_context(|| format!("reading {display}"))?
        .len();
    let mut w = Walk {
        file,
        size,
        display,
        cap: crate::memory::default_limit().saturating_mul(4),
        roots: Vec::new(),
        dict_roots: Vec::new(),
    };
    if file_format {
        w.file_blocks()
    } else {
        w.stream()
    }
}

impl Walk<'_> {
    fn bad(&self, what: impl std::fmt::Display) -> anyhow::Error {
        bad_input(format!(
            "{}: not a readable Arrow IPC file or stream: {what}",
            self.display
        ))
    }

    fn read_at(&mut self, at: u64, len: u64) -> Result<Vec<u8>> {
        if at.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(self.bad(format!(
                "{len} bytes at offset {at} lie past the end of the file ({} bytes)",
                self.size
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.read_exact(&mut buf))
            .with_context(|| format!("reading {}", self.display))?;
        Ok(buf)
    }

    fn schema(&mut self, s: arrow_ipc::Schema<'_>) {
        let schema = arrow_ipc::convert::fb_to_schema(s);
        self.roots = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), buffer_count(f.data_type())))
            .collect();
        self.dict_roots.clear();
        if let Some(fields) = s.fields() {
            for f in fields.iter() {
                let name = f.name().unwrap_or("").to_string();
                dict_ids(f, &mut |id| self.dict_roots.push((id, name.clone())));
            }
        }
    }

    /// The footer's blocks, dictionaries first.
    fn file_blocks(&mut self) -> Result<()> {
        if self.size < 18 {
            return Err(self.bad("too short for an Arrow IPC file"));
        }
        let tail = self.read_at(self.size - 10, 10)?;
        let footer_len = i32::from_le_bytes(tail[..4].try_into().expect("4 bytes"));
        let footer_len = u64::try_from(footer_len).unwrap_or(u64::MAX);
        if footer_len > self.size - 18 {
            return Err(self.bad(format!("the footer length {footer_len} exceeds the file")));
        }
        let footer_buf = self.read_at(self.size - 10 - footer_len, footer_len)?;
        let footer = arrow_ipc::root_as_footer(&footer_buf)
            .map_err(|e| self.bad(format!("unreadable footer: {e}")))?;
        let Some(schema) = footer.schema() else {
            return Err(self.bad("the footer has no schema"));
        };
        self.schema(schema);
        let blocks: Vec<Block> = footer
            .dictionaries()
            .into_iter()
            .flatten()
            .chain(footer.recordBatches().into_iter().flatten())
            .copied()
            .collect();
        for b in &blocks {
            let (Ok(offset), Ok(meta_len), Ok(body_len)) = (
                u64::try_from(b.offset()),
                u64::try_from(b.metaDataLength()),
                u64::try_from(b.bodyLength()),
            ) else {
                return Err(self.bad("a footer block has a negative offset or length"));
            };
            if meta_len < 8 {
                return Err(self.bad(format!("a block's metadata length {meta_len} is too short")));
            }
            let end = offset.saturating_add(meta_len).saturating_add(body_len);
            if end > self.size {
                return Err(self.bad(format!(
                    "a block at offset {offset} declares {} bytes, past the end of the file \
                     ({} bytes)",
                    meta_len.saturating_add(body_len),
                    self.size
                )));
            }
            let meta = self.read_at(offset, meta_len)?;
            let skip = if meta[..4] == [0xff; 4] { 8 } else { 4 };
            if arrow_ipc::root_as_message(&meta[skip..]).is_ok() {
                self.message(&meta[skip..], offset + meta_len, body_len)?;
            } else {
                // arrow-ipc parses the message from the metadata and body together, and
                // flatbuffer offsets may reach into the body: check what it will see.
                let whole = self.read_at(offset, meta_len + body_len)?;
                self.message(&whole[skip..], offset + meta_len, body_len)?;
            }
        }
        Ok(())
    }

    /// Stream messages in order, from the start of the file.
    fn stream(&mut self) -> Result<()> {
        let mut pos = 0u64;
        while pos + 4 <= self.size {
            let mut head = self.read_at(pos, 4)?;
            pos += 4;
            if head == [0xff; 4] {
                if pos + 4 > self.size {
                    break;
                }
                head = self.read_at(pos, 4)?;
                pos += 4;
            }
            let meta_len = i32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
            if meta_len == 0 {
                break;
            }
            let Ok(meta_len) = u64::try_from(meta_len) else {
                return Err(self.bad(format!("a negative message length {meta_len}")));
            };
            let meta = self.read_at(pos, meta_len)?;
            pos += meta_len;
            let body_len = self.message(&meta, pos, u64::MAX)?;
            pos = pos.saturating_add(body_len);
            if pos > self.size {
                return Err(self.bad(format!(
                    "a message body of {body_len} bytes runs past the end of the file ({} bytes)",
                    self.size
                )));
            }
        }
        Ok(())
    }

    /// Checks one message whose body starts at `body_at`; `block_body` is the body length its
    /// file block declares (`u64::MAX` in a stream). Returns the body length.
    fn message(&mut self, meta: &[u8], body_at: u64, block_body: u64) -> Result<u64> {
        // Unreadable metadata is left to arrow-ipc, which reports it without allocating.
        let Ok(m) = arrow_ipc::root_as_message(meta) else {
            return Ok(0);
        };
        let body_len = u64::try_from(m.bodyLength()).unwrap_or(u64::MAX);
        let body_len = if block_body == u64::MAX {
            body_len
        } else {
            body_len.min(block_body)
        };
        if body_at.saturating_add(body_len) > self.size {
            return Err(self.bad(format!(
                "a message declares a body of {} bytes, past the end of the file ({} bytes)",
                m.bodyLength(),
                self.size
            )));
        }
        self.header(&m, body_at, body_len)?;
        Ok(body_len)
    }

    fn header(&mut self, m: &Message<'_>, body_at: u64, body_len: u64) -> Result<()> {
        let (batch, place, column) = match m.header_type() {
            MessageHeader::Schema => {
                if let Some(s) = m.header_as_schema() {
                    self.schema(s);
                }
                return Ok(());
            }
            MessageHeader::RecordBatch => (m.header_as_record_batch(), "a record batch", None),
            MessageHeader::DictionaryBatch => {
                let Some(d) = m.header_as_dictionary_batch() else {
                    return Ok(());
                };
                let name = self
                    .dict_roots
                    .iter()
                    .find(|(id, _)| *id == d.id())
                    .map(|(_, n)| n.clone());
                (d.data(), "a dictionary batch", Some(name))
            }
            _ => return Ok(()),
        };
        let Some(batch) = batch else { return Ok(()) };
        let Some(buffers) = batch.buffers() else {
            return Ok(());
        };
        let ratio = match batch.compression().map(|c| c.codec()) {
            None => None,
            Some(CompressionType::LZ4_FRAME) => Some(LZ4_MAX_RATIO),
            Some(CompressionType::ZSTD) => Some(ZSTD_MAX_RATIO),
            Some(_) => None,
        };
        // Which root column buffer k belongs to, when the counts add up.
        let owners: Option<Vec<&str>> = {
            let counts: Option<Vec<(&str, usize)>> = self
                .roots
                .iter()
                .map(|(n, c)| c.map(|c| (n.as_str(), c)))
                .collect();
            counts
                .map(|c| {
                    c.into_iter()
                        .flat_map(|(n, k)| std::iter::repeat_n(n, k))
                        .collect::<Vec<_>>()
                })
                .filter(|o| o.len() == buffers.len())
        };
        let rows = batch.length();
        let mut prefixes = Vec::new();
        for (k, b) in buffers.iter().enumerate() {
            let where_ = || {
                let col = match (&column, &owners) {
                    (Some(Some(n)), _) => format!("column {n:?}"),
                    (None, Some(o)) => format!("column {:?}", o[k]),
                    _ => format!("buffer {k}"),
                };
                format!("{place} of {rows} rows, {col}")
            };
            let (Ok(off), Ok(len)) = (u64::try_from(b.offset()), u64::try_from(b.length())) else {
                return Err(self.bad(format!("{}: a negative buffer offset or length", where_())));
            };
            if off.saturating_add(len) > body_len {
                return Err(self.bad(format!(
                    "{}: a buffer of {len} bytes at {off} lies outside its message body \
                     ({body_len} bytes)",
                    where_()
                )));
            }
            if ratio.is_some() && len > 0 {
                if len < 8 {
                    return Err(self.bad(format!(
                        "{}: a compressed buffer of {len} bytes has no 8-byte length prefix",
                        where_()
                    )));
                }
                prefixes.push((k, body_at + off, len, where_()));
            }
        }
        let Some(ratio) = ratio else { return Ok(()) };
        for (_, at, len, place) in prefixes {
            let p = self.read_at(at, 8)?;
            let declared = i64::from_le_bytes(p[..8].try_into().expect("8 bytes"));
            if declared == -1 || declared == 0 {
                continue; // stored uncompressed, or empty
            }
            let bound = (len - 8).saturating_mul(ratio).min(self.cap);
            let ok = u64::try_from(declared).is_ok_and(|d| d <= bound);
            if !ok {
                return Err(self.bad(format!(
                    "{place}: a compressed buffer of {len} bytes declares {declared} bytes \
                     uncompressed (at most {bound} possible): the file is corrupt"
                )));
            }
        }
        Ok(())
    }
}

/// Dictionary ids used by field `f` and its children.
fn dict_ids(f: arrow_ipc::Field<'_>, out: &mut impl FnMut(i64)) {
    if let Some(d) = f.dictionary() {
        out(d.id());
    }
    if let Some(children) = f.children() {
        for c in children.iter() {
            dict_ids(c, out);
        }
    }
}

/// Buffers a column of type `t` has in an IPC record batch (its children's included), per the
/// Arrow columnar format; `None` for types whose count depends on the batch (views).
fn buffer_count(t: &A) -> Option<usize> {
    let children = |fs: &arrow_schema::Fields| -> Option<usize> {
        fs.iter().map(|f| buffer_count(f.data_type())).sum()
    };
    Some(match t {
        A::Null => 0,
        A::Utf8 | A::LargeUtf8 | A::Binary | A::LargeBinary => 3,
        A::Utf8View | A::BinaryView => return None,
        A::List(f) | A::LargeList(f) | A::Map(f, _) => 2 + buffer_count(f.data_type())?,
        A::ListView(f) | A::LargeListView(f) => 3 + buffer_count(f.data_type())?,
        A::FixedSizeList(f, _) => 1 + buffer_count(f.data_type())?,
        A::Struct(fs) => 1 + children(fs)?,
        A::Union(fs, mode) => {
            let own = match mode {
                arrow_schema::UnionMode::Sparse => 1,
                arrow_schema::UnionMode::Dense => 2,
            };
            own + fs
                .iter()
                .map(|(_, f)| buffer_count(f.data_type()))
                .sum::<Option<usize>>()?
        }
        A::RunEndEncoded(r, v) => buffer_count(r.data_type())? + buffer_count(v.data_type())?,
        // Dictionary indices, fixed-width values, booleans: validity and values.
        _ => 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{Field, Fields};
    use std::sync::Arc;

    #[test]
    fn buffer_counts_follow_the_columnar_format() {
        assert_eq!(buffer_count(&A::Int64), Some(2));
        assert_eq!(buffer_count(&A::Utf8), Some(3));
        let item = Arc::new(Field::new("item", A::Utf8, true));
        assert_eq!(buffer_count(&A::List(item)), Some(5));
        let s = A::Struct(Fields::from(vec![
            Field::new("a", A::Int32, true),
            Field::new("b", A::Boolean, true),
        ]));
        assert_eq!(buffer_count(&s), Some(5));
        assert_eq!(buffer_count(&A::Utf8View), None);
    }
}
