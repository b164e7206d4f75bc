//! Workers' parse step: one chunk of CSV or JSON Lines bytes to a typed [`Batch`].
//! Bad rows are left out of the batch and reported with their line offset in the chunk; the
//! collector adds file names and absolute line numbers, in input order.
//!
//! The JSON Lines side (object entries, error texts, the row parser) is in `jsonl.rs`; this
//! module holds the shared context, the CSV parser and the error messages.

mod jsonl;

use std::collections::HashMap;

use quarry_format::{DataType, Schema};

use crate::batch::{Batch, Origin};
use crate::columns::ColBuf;
use crate::infer::Layout;
use crate::values;

pub use jsonl::{json_error, json_keys_error, JsonEntries};

/// Everything a worker needs to parse any chunk; shared read-only by all workers.
#[derive(Debug)]
pub struct ParseCtx {
    pub schema: Schema,
    pub layouts: Vec<Layout>,
    /// Keep per-row line numbers (needed to name duplicate keys).
    pub keep_lines: bool,
    /// Stop at the first bad row of a chunk (the build fails on it anyway).
    pub fail_fast: bool,
    pub ignore_extra_keys: bool,
    /// The schema was inferred: bad-row messages suggest --schema-out / --schema.
    pub inferred: bool,
    pub json_index: HashMap<String, usize>,
    pub delimiters: Vec<u8>,
    /// Each input's quote character (`None`: no quoting).
    pub quotes: Vec<Option<u8>>,
    /// `--max-field-bytes`.
    pub max_field_bytes: usize,
}

/// A chunk of one input, cut at record boundaries by the reader thread.
#[derive(Debug)]
pub struct Chunk {
    pub seq: u64,
    pub file: u32,
    pub bytes: Vec<u8>,
    /// Line number of the chunk's first byte when it is the first chunk of its input.
    pub first_line: Option<u64>,
    /// Byte offset of the chunk's first byte in its (decoded) input.
    pub offset: u64,
    /// The splitter gave up at byte `.0` of `bytes` (a record start precedes it): message `.1`.
    pub fatal: Option<(usize, String)>,
    /// Some record may have wrong quoting: check each record's (the splitter saw a fault, or
    /// this is the end of the input).
    pub quote_faults: bool,
}

/// A bad row: its line offset within the chunk and what is wrong (without file:line).
#[derive(Debug, Clone)]
pub struct BadRow {
    pub line_offset: u64,
    pub message: String,
}

/// The parse result of one chunk.
#[derive(Debug)]
pub struct Parsed {
    pub seq: u64,
    pub file: u32,
    pub first_line: Option<u64>,
    /// Lines the chunk spans (newlines in it).
    pub lines: u64,
    pub input_bytes: u64,
    pub batch: Batch,
    pub bad: Vec<BadRow>,
    /// The chunk ends with a line that has no `\n` (only the last chunk of an input can).
    pub tail_line: bool,
    /// The input cannot be read on from here: fails the build whatever `--on-bad-row` says.
    pub fatal: Option<BadRow>,
    /// A columnar input's decoding error: stops the build, reported when the collector reaches
    /// this sequence number (so the first one in input order wins at any thread count).
    pub failed: Option<anyhow::Error>,
}

/// Newlines in `bytes[..pos]` for non-decreasing `pos`, each byte scanned once.
#[derive(Debug, Default)]
struct LineCounter {
    pos: usize,
    lines: u64,
}

impl LineCounter {
    fn at(&mut self, bytes: &[u8], pos: usize) -> u64 {
        let new = bytes.get(self.pos..pos).unwrap_or_default();
        self.lines += memchr::memchr_iter(b'\n', new).count() as u64;
        self.pos = self.pos.max(pos);
        self.lines
    }
}

const MAX_VALUE_CHARS: usize = 80;

/// 1-based byte column of `pos` in its line.
fn column(bytes: &[u8], pos: usize) -> usize {
    pos - memchr::memrchr(b'\n', &bytes[..pos]).map_or(0, |i| i + 1) + 1
}

/// The first field (index, length) longer than `max`, from csv_core's field ends.
fn long_field(ends: &[usize], max: usize) -> Option<(usize, usize)> {
    let mut start = 0;
    for (i, &end) in ends.iter().enumerate() {
        if end - start > max {
            return Some((i, end - start));
        }
        start = end;
    }
    None
}

/// Where `pos` is, relative to the record starting at `start`: `column C` on the record's first
/// line, else `N lines below, column C`.
fn place(bytes: &[u8], start: usize, pos: usize) -> String {
    match memchr::memchr_iter(b'\n', &bytes[start..pos]).count() {
        0 => format!("column {}", column(bytes, pos)),
        1 => format!("the next line, column {}", column(bytes, pos)),
        n => format!("{n} lines below, column {}", column(bytes, pos)),
    }
}

fn quote_message(
    bytes: &[u8],
    start: usize,
    fault: crate::split::QuoteFault,
    d: &crate::split::Dialect,
    chunk_offset: u64,
) -> String {
    use crate::split::QuoteFault as F;
    let (quote, what) = match fault {
        F::Unclosed { quote } => (
            quote,
            format!(
                "is never closed (not within --max-field-bytes, {} bytes, nor before the end \
                 of the input)",
                d.max_field
            ),
        ),
        F::JunkAfterClose { quote, at } => {
            let at = start + at;
            (
                quote,
                format!(
                    "is closed by the quote at {} (byte offset {}), which is followed by {} \
                     instead of a delimiter or line end",
                    place(bytes, start, at - 1),
                    chunk_offset + at as u64 - 1,
                    show(&bytes[at..at + 1]),
                ),
            )
        }
        F::TooLong { quote } => (
            quote,
            format!(
                "opens a field longer than --max-field-bytes ({} bytes)",
                d.max_field
            ),
        ),
    };
    let pos = start + quote;
    format!(
        "the quote at {} (byte offset {}) {what}; the bad row is this one line, parsing \
         resumes on the next (pass --quote none if quotes are ordinary characters here)",
        place(bytes, start, pos),
        chunk_offset + pos as u64,
    )
}

fn show(value: &[u8]) -> String {
    let s = String::from_utf8_lossy(value);
    if s.chars().count() > MAX_VALUE_CHARS {
        let cut: String = s.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut:?}...")
    } else {
        format!("{s:?}")
    }
}

impl ParseCtx {
    fn hint(&self) -> &'static str {
        if self.inferred {
            " (the schema was inferred from the first records of each input: write it with \
             --schema-out FILE, fix the type, and pass --schema FILE)"
        } else {
            ""
        }
    }

    fn value_error(&self, col: usize, value: &[u8], what: &str) -> String {
        let f = &self.schema.fields()[col];
        format!(
            "column {:?}: value {} {what} {}{}",
            f.name,
            show(value),
            f.data_type,
            self.hint()
        )
    }

    fn null_error(&self, col: usize) -> String {
        let f = &self.schema.fields()[col];
        let what = if self.schema.key() == Some(col) {
            "the key column"
        } else {
            "a non-nullable column"
        };
        format!("column {:?}: empty value in {what}", f.name)
    }

    fn new_bufs(&self, rows: usize) -> Vec<ColBuf> {
        self.schema
            .fields()
            .iter()
            .map(|f| ColBuf::new(f.data_type, rows))
            .collect()
    }

    /// The splitter's dialect for input `file`.
    pub fn dialect(&self, file: usize) -> crate::split::Dialect {
        crate::split::Dialect {
            delimiter: self.delimiters[file],
            quote: self.quotes[file],
            max_field: self.max_field_bytes,
        }
    }

    pub fn parse(&self, chunk: Chunk) -> Parsed {
        let input_bytes = chunk.bytes.len() as u64;
        let tail_line = chunk.bytes.last().is_some_and(|&b| b != b'\n');
        let mut fatal = None;
        let (bufs, line_offsets, bad, lines) = if let Some((at, message)) = &chunk.fatal {
            let at = (*at).min(chunk.bytes.len());
            let line_offset = memchr::memchr_iter(b'\n', &chunk.bytes[..at]).count() as u64;
            fatal = Some(BadRow {
                line_offset,
                message: format!(
                    "{} (column {}, byte offset {})",
                    message,
                    column(&chunk.bytes, at),
                    chunk.offset + at as u64
                ),
            });
            (self.new_bufs(0), Vec::new(), Vec::new(), line_offset)
        } else {
            match &self.layouts[chunk.file as usize] {
                Layout::Csv { map } => self.parse_csv(
                    &chunk.bytes,
                    map,
                    self.dialect(chunk.file as usize),
                    chunk.offset,
                    chunk.quote_faults,
                ),
                Layout::Jsonl => self.parse_jsonl(&chunk.bytes),
            }
        };
        let rows = bufs.first().map_or(0, ColBuf::len);
        let batch = Batch {
            columns: bufs.into_iter().map(ColBuf::finish).collect(),
            rows,
            origin: Origin::Chunk {
                file: chunk.file,
                base_line: 0,
                line_offsets,
            },
        };
        Parsed {
            seq: chunk.seq,
            file: chunk.file,
            first_line: chunk.first_line,
            lines,
            input_bytes,
            batch,
            bad,
            tail_line,
            fatal,
            failed: None,
        }
    }

    /// Pushes one CSV text field into column `col`; `Err` is the bad-row message.
    /// `text`: the field as `&str` when already validated (else it is checked here); called
    /// only for the types that need text (utf8, float64).
    fn push_text<'a>(
        &self,
        buf: &mut ColBuf,
        col: usize,
        field: &[u8],
        text: impl FnOnce() -> Option<&'a str>,
    ) -> Result<(), String> {
        let f = &self.schema.fields()[col];
        if field.is_empty() {
            if !f.nullable {
                return Err(self.null_error(col));
            }
            buf.push_null();
            return Ok(());
        }
        // Only utf8 and float64 need a &str; the other parsers read bytes (non-ASCII bytes
        // fail them anyway).
        let ok = match f.data_type {
            DataType::Utf8 | DataType::Float64 => {
                let Some(s) = text().or_else(|| std::str::from_utf8(field).ok()) else {
                    // No type accepts other encodings: the input must be converted, whatever
                    // the schema says.
                    return Err(format!(
                        "column {:?}: value {} is not valid UTF-8 (inputs must be UTF-8: convert \
                         the file first, e.g. iconv -f LATIN1 -t UTF-8)",
                        f.name,
                        show(field)
                    ));
                };
                if f.data_type == DataType::Utf8 {
                    buf.push_str(s);
                    true
                } else {
                    match values::parse_float(s) {
                        Some(v) => {
                            buf.push_f64(v);
                            true
                        }
                        None if values::float_out_of_range(s) => {
                            return Err(self.value_error(col, field, "is out of the range of"))
                        }
                        None => false,
                    }
                }
            }
            DataType::Int64 => values::parse_int_bytes(field)
                .map(|v| buf.push_i64(v))
                .is_some(),
            DataType::Bool => values::parse_bool_bytes(field)
                .map(|v| buf.push_bool(v))
                .is_some(),
            DataType::Date => values::parse_date_bytes(field)
                .map(|v| buf.push_date(v))
                .is_some(),
            DataType::Timestamp => values::parse_timestamp_bytes(field)
                .map(|v| buf.push_i64(v))
                .is_some(),
        };
        if ok {
            Ok(())
        } else {
            Err(self.value_error(col, field, "is not a valid"))
        }
    }

    #[allow(clippy::type_complexity)]
    fn parse_csv(
        &self,
        bytes: &[u8],
        map: &[usize],
        dialect: crate::split::Dialect,
        chunk_offset: u64,
        quote_faults: bool,
    ) -> (Vec<ColBuf>, Vec<u64>, Vec<BadRow>, u64) {
        // A row holds at least a byte and a delimiter per column.
        let mut bufs = self.new_bufs(bytes.len() / 64.max(2 * map.len()));
        let mut line_offsets = Vec::new();
        let mut bad = Vec::new();
        // csv_core straight over the chunk: no intermediate buffer copy. Same dialect as the
        // csv crate's defaults (which inference and the splitter use): `"` quotes, `""`
        // escapes, \r, \n or \r\n ends a record, blank lines skipped.
        let mut builder = csv_core::ReaderBuilder::new();
        builder.delimiter(dialect.delimiter);
        match dialect.quote {
            Some(q) => builder.quote(q),
            None => builder.quoting(false),
        };
        let mut rdr = builder.build();
        // Records are checked only where the splitter, which applies the same rules, saw a
        // fault (or at the end of the input); chunks without a quote character never.
        let quote = dialect
            .quote
            .filter(|&q| quote_faults && memchr::memchr(q, bytes).is_some());
        let mut out = vec![0u8; 4096];
        let mut ends = vec![0usize; map.len() + 1];
        let (mut nout, mut nends) = (0usize, 0usize);
        let mut input = bytes;
        let mut rows = 0usize;
        // Line numbers from byte offsets (csv_core counts a CRLF's \n only when it reads the
        // next record). Counted lazily: only rows that need a line (every row when
        // `keep_lines`, else bad rows) advance `lines`, so a keyless build scans each byte for
        // newlines once, at the end, instead of once per record.
        let mut prev_end = 0usize;
        let mut lines = LineCounter::default();
        loop {
            let (res, nin, o, e) = rdr.read_record(input, &mut out[nout..], &mut ends[nends..]);
            input = &input[nin..];
            nout += o;
            nends += e;
            match res {
                csv_core::ReadRecordResult::InputEmpty => continue,
                csv_core::ReadRecordResult::OutputFull => {
                    out.resize(out.len() * 2, 0);
                    continue;
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    ends.resize(ends.len() * 2, 0);
                    continue;
                }
                csv_core::ReadRecordResult::End => break,
                csv_core::ReadRecordResult::Record => {}
            }
            let end = bytes.len() - input.len();
            let mut start = prev_end;
            while start < end && matches!(bytes[start], b'\n' | b'\r') {
                start += 1; // blank lines and the rest of a terminator before the record
            }
            prev_end = end;
            let record = &out[..nout];
            let fields = &ends[..nends];
            // Quoting is checked on the raw bytes of records that hold a quote; a record whose
            // quoting is wrong is one bad row (its first line) and parsing resumes on the next
            // line, exactly where the splitter resumes (split.rs), so no stray quote can merge
            // the lines after it into one record.
            let fault = match quote {
                Some(q) if memchr::memchr(q, &bytes[start..end]).is_some() => {
                    crate::split::check_quotes(&bytes[start..], &dialect).err()
                }
                _ => None,
            };
            if let Some(fault) = fault {
                nout = 0;
                nends = 0;
                bufs.iter_mut().for_each(|b| b.truncate(rows));
                bad.push(BadRow {
                    line_offset: lines.at(bytes, start),
                    message: quote_message(bytes, start, fault, &dialect, chunk_offset),
                });
                if self.fail_fast {
                    break;
                }
                let resume = crate::split::resync_point(bytes, start).unwrap_or(bytes.len());
                input = &bytes[resume..];
                prev_end = resume;
                rdr.reset();
                continue;
            }
            let result = if fields.len() != map.len() {
                Err(format!(
                    "expected {} fields, found {}",
                    map.len(),
                    fields.len()
                ))
            } else if let Some((i, len)) = (record.len() > dialect.max_field)
                .then(|| long_field(fields, dialect.max_field))
                .flatten()
            {
                Err(format!(
                    "field {} has {len} bytes, more than --max-field-bytes ({})",
                    i + 1,
                    dialect.max_field
                ))
            } else {
                // One UTF-8 check per record; fields are then sliced out of it (`get` also
                // checks that each field starts and ends on a char boundary).
                let all = std::str::from_utf8(record).ok();
                let mut start = 0;
                fields.iter().zip(map).try_for_each(|(&end, &col)| {
                    let range = start..end;
                    start = end;
                    let text = || all.and_then(|t| t.get(range.clone()));
                    self.push_text(&mut bufs[col], col, &record[range.clone()], text)
                })
            };
            nout = 0;
            nends = 0;
            match result {
                Ok(()) => {
                    rows += 1;
                    if self.keep_lines {
                        line_offsets.push(lines.at(bytes, start));
                    }
                }
                Err(message) => {
                    bufs.iter_mut().for_each(|b| b.truncate(rows));
                    bad.push(BadRow {
                        line_offset: lines.at(bytes, start),
                        message,
                    });
                    if self.fail_fast {
                        break;
                    }
                }
            }
        }
        let lines = lines.at(bytes, bytes.len());
        (bufs, line_offsets, bad, lines)
    }
}
