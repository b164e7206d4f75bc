//! Full verification: every chunk's checksum and structure, the key index, and the zero padding
//! between structures (SPEC.md: Checksums and verification). Runs in slices so a one-thread
//! server can keep answering between them.

use xxhash_rust::xxh3::xxh3_64;

use crate::column::ColumnChunk;
use crate::error::{FormatError, Result};
use crate::reader::QuarryFile;
use crate::spec::HEADER_LEN;

/// Progress of a sliced verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// More to do; `done` of `total` bytes checked so far.
    More {
        done: u64,
        total: u64,
    },
    Done,
}

/// Verifies a file a slice at a time: `step` until it returns `Step::Done`.
#[derive(Clone, Debug)]
pub struct Verifier {
    /// The file this verifier was made for ([`QuarryFile::id`]); steps over another file still
    /// check it, but do not mark either file's strings as checked.
    file_id: u64,
    other_file: bool,
    next_chunk: usize,
    done_bytes: u64,
    finished: bool,
}

impl<B: AsRef<[u8]>> QuarryFile<B> {
    /// Checks every byte: chunk checksums and structure, key index, zero padding.
    ///
    /// # Errors
    /// The first problem found, naming the column, row group and byte range.
    pub fn verify(&self) -> Result<()> {
        let mut v = self.verifier();
        while v.step(self, u64::MAX)? != Step::Done {}
        Ok(())
    }

    /// Column chunks in the file (row groups x columns): the units of [`verify_chunks`].
    ///
    /// [`verify_chunks`]: QuarryFile::verify_chunks
    pub fn chunk_count(&self) -> usize {
        self.chunk_metas().len()
    }

    /// Checks the chunks `range` of `0..chunk_count()` (row-group-major order): checksums and
    /// structure. The ranges are independent, so threads may check disjoint ones at once;
    /// every chunk plus [`verify_layout`] is exactly [`verify`].
    ///
    /// The part of `range` past `chunk_count()` is empty: there is nothing there to check.
    ///
    /// # Errors
    /// As [`verify`].
    ///
    /// [`verify`]: QuarryFile::verify
    /// [`verify_layout`]: QuarryFile::verify_layout
    pub fn verify_chunks(&self, range: std::ops::Range<usize>) -> Result<()> {
        let end = range.end.min(self.chunk_count());
        let columns = self.schema().len().max(1);
        (range.start.min(end)..end).try_for_each(|i| verify_chunk(self, i / columns, i % columns))
    }

    /// The checks that are not per chunk: the key index and the zero padding between
    /// structures.
    ///
    /// # Errors
    /// As [`QuarryFile::verify`].
    pub fn verify_layout(&self) -> Result<()> {
        verify_key_index(self)?;
        verify_padding(self)
    }

    /// A sliced verifier for this file.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            file_id: self.id,
            other_file: false,
            next_chunk: 0,
            done_bytes: 0,
            finished: false,
        }
    }
}

impl Verifier {
    /// Checks chunks until about `max_bytes` have been hashed (at least one chunk), then the key
    /// index and padding once all chunks are done.
    ///
    /// # Errors
    /// As [`QuarryFile::verify`].
    pub fn step<B: AsRef<[u8]>>(&mut self, file: &QuarryFile<B>, max_bytes: u64) -> Result<Step> {
        if self.finished {
            return Ok(Step::Done);
        }
        self.other_file |= file.id != self.file_id;
        let metas = file.chunk_metas();
        let total = metas.iter().map(|m| m.len).sum::<u64>();
        let mut budget = 0u64;
        let columns = file.schema().len().max(1);
        while self.next_chunk < metas.len() && budget < max_bytes {
            let i = self.next_chunk;
            verify_chunk(file, i / columns, i % columns)?;
            budget += metas[i].len;
            self.done_bytes += metas[i].len;
            self.next_chunk += 1;
        }
        if self.next_chunk < metas.len() {
            return Ok(Step::More {
                done: self.done_bytes,
                total,
            });
        }
        file.verify_layout()?;
        self.finished = true;
        if !self.other_file {
            file.mark_fully_verified();
        }
        Ok(Step::Done)
    }
}

fn chunk_name<B: AsRef<[u8]>>(file: &QuarryFile<B>, g: usize, c: usize) -> String {
    format!("column {:?} row group {g}", file.schema().fields()[c].name)
}

fn verify_chunk<B: AsRef<[u8]>>(file: &QuarryFile<B>, g: usize, c: usize) -> Result<()> {
    let meta = file.chunk_meta(g, c);
    let region = &file.bytes()[meta.offset as usize..(meta.offset + meta.len) as usize];
    let found = xxh3_64(region);
    if found != meta.checksum {
        return Err(FormatError::Checksum {
            structure: chunk_name(file, g, c),
            offset: meta.offset,
            end: meta.offset + meta.len,
            expected: meta.checksum,
            found,
        });
    }
    let bad = |detail: String| {
        FormatError::corrupt(
            "column chunk",
            meta.offset,
            format!("{}: {detail}", chunk_name(file, g, c)),
        )
    };
    let chunk = file.chunk(g, c);
    let n = meta.num_rows as usize;
    let validity = match chunk {
        ColumnChunk::Bool(b) => b.validity(),
        ColumnChunk::Int64(p) | ColumnChunk::Timestamp(p) => p.validity(),
        ColumnChunk::Float64(p) => p.validity(),
        ColumnChunk::Date(p) => p.validity(),
        ColumnChunk::Utf8(s) => s.validity(),
    };
    if let Some(v) = validity {
        check_tail_bits(v.bytes(), n).map_err(|d| bad(format!("validity {d}")))?;
        let nulls = n - v.count_ones();
        if nulls as u64 != meta.null_count {
            return Err(bad(format!(
                "{nulls} nulls in the bitmap, {} in the footer",
                meta.null_count
            )));
        }
    }
    match chunk {
        ColumnChunk::Bool(b) => {
            check_tail_bits(b.values().bytes(), n).map_err(|d| bad(format!("values {d}")))?
        }
        ColumnChunk::Utf8(s) => match s.codes() {
            None => check_strings(s.plain_offsets().unwrap_or(&[]), s.plain_bytes(), n, false)
                .map_err(&bad)?,
            Some(codes) => {
                let dict_len = s.dictionary_len();
                if let Some(i) = codes.iter().position(|&code| code as usize >= dict_len) {
                    return Err(bad(format!(
                        "row {i} has code {} past the dictionary's {dict_len} entries",
                        codes[i]
                    )));
                }
                let dict = meta
                    .buffers
                    .dictionary
                    .map_or(&[][..], |r| &file.bytes()[r.range()]);
                let offsets_range = meta.buffers.data.map(|r| r.range()).unwrap_or(0..0);
                let offsets: &[u64] =
                    zerocopy::FromBytes::ref_from_bytes(&file.bytes()[offsets_range])
                        .unwrap_or(&[]);
                check_strings(offsets, dict, dict_len, true)
                    .map_err(|d| bad(format!("dictionary: {d}")))?;
            }
        },
        _ => {}
    }
    Ok(())
}

/// Bits past `n` in the last byte must be zero.
fn check_tail_bits(bytes: &[u8], n: usize) -> Result<(), String> {
    if n % 8 != 0 && bytes.last().is_some_and(|b| b >> (n % 8) != 0) {
        return Err(format!("bitmap has bits set past row {n}"));
    }
    Ok(())
}

/// Offsets start at 0, never decrease, end at the byte length, split no UTF-8 character; with
/// `sorted`, the strings are strictly increasing (a dictionary).
fn check_strings(offsets: &[u64], bytes: &[u8], n: usize, sorted: bool) -> Result<(), String> {
    if offsets.len() != n + 1 || offsets[0] != 0 || offsets[n] != bytes.len() as u64 {
        return Err(format!(
            "{} offsets for {n} strings of {} bytes",
            offsets.len(),
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
    for i in 0..n {
        let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
        if a > b || !text.is_char_boundary(a) || !text.is_char_boundary(b) {
            return Err(format!("string {i} has bad offsets {a}..{b}"));
        }
        if sorted && i > 0 && bytes[offsets[i - 1] as usize..a] >= bytes[a..b] {
            return Err(format!("entry {i} is not greater than entry {}", i - 1));
        }
    }
    Ok(())
}

fn verify_key_index<B: AsRef<[u8]>>(file: &QuarryFile<B>) -> Result<()> {
    let Some(index) = &file.key_index else {
        return Ok(());
    };
    if index.entries == 0 {
        return Ok(());
    }
    let region = &file.bytes()[index.offset as usize..(index.offset + index.len) as usize];
    let found = xxh3_64(region);
    if found != index.checksum {
        return Err(FormatError::Checksum {
            structure: "key index".into(),
            offset: index.offset,
            end: index.offset + index.len,
            expected: index.checksum,
            found,
        });
    }
    Ok(())
}

/// Every byte outside header, chunks, key index, footer and trailer is zero padding.
fn verify_padding<B: AsRef<[u8]>>(file: &QuarryFile<B>) -> Result<()> {
    let bytes = file.bytes();
    let mut regions: Vec<(u64, u64)> = file
        .chunk_metas()
        .iter()
        .map(|m| (m.offset, m.offset + m.len))
        .collect();
    if let Some(ki) = file.key_index.as_ref().filter(|k| k.entries > 0) {
        regions.push((ki.offset, ki.offset + ki.len));
    }
    // Gaps between buffers inside a chunk are covered by the chunk's checksum.
    let mut at = HEADER_LEN as u64;
    for (start, end) in regions {
        check_zero(bytes, at, start)?;
        at = end;
    }
    check_zero(bytes, at, file.footer_offset)
}

fn check_zero(bytes: &[u8], from: u64, to: u64) -> Result<()> {
    let gap = bytes.get(from as usize..to as usize).unwrap_or(&[]);
    match gap.iter().position(|b| *b != 0) {
        None => Ok(()),
        Some(i) => Err(FormatError::corrupt(
            "padding",
            from + i as u64,
            "padding byte is not zero",
        )),
    }
}
