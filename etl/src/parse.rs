//! Workers' parse step: one chunk of CSV or JSON Lines bytes to a typed [`Batch`].
//! Bad rows are left out of the batch and reported with their line offset in the chunk; the
//! collector adds file names and absolute line numbers, in input order.

use std::collections::HashMap;

use quarry_format::{DataType, Schema};

use crate::batch::{Batch, Origin};
use crate::columns::ColBuf;
use crate::infer::Layout;
use crate::values;

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
}

/// A chunk of one input, cut at record boundaries by the reader thread.
#[derive(Debug)]
pub struct Chunk {
    pub seq: u64,
    pub file: u32,
    pub bytes: Vec<u8>,
    /// Line number of the chunk's first byte when it is the first chunk of its input.
    pub first_line: Option<u64>,
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
    /// An error that stops the build, reported when the collector reaches this sequence
    /// number (so the first one in input order wins at any thread count).
    pub fatal: Option<anyhow::Error>,
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
             --schema-out FILE, fix the type, and pass --schema FILE; or --on-bad-row skip)"
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

    pub fn parse(&self, chunk: Chunk) -> Parsed {
        let input_bytes = chunk.bytes.len() as u64;
        let (bufs, line_offsets, bad, lines) = match &self.layouts[chunk.file as usize] {
            Layout::Csv { map } => {
                self.parse_csv(&chunk.bytes, map, self.delimiters[chunk.file as usize])
            }
            Layout::Jsonl => self.parse_jsonl(&chunk.bytes),
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
            fatal: None,
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
                    return Err(self.value_error(col, field, "is not valid UTF-8; expected"));
                };
                if f.data_type == DataType::Utf8 {
                    buf.push_str(s);
                    true
                } else {
                    values::parse_float(s).map(|v| buf.push_f64(v)).is_some()
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
        delimiter: u8,
    ) -> (Vec<ColBuf>, Vec<u64>, Vec<BadRow>, u64) {
        let mut bufs = self.new_bufs(bytes.len() / 64);
        let mut line_offsets = Vec::new();
        let mut bad = Vec::new();
        // csv_core straight over the chunk: no intermediate buffer copy. Same dialect as the
        // csv crate's defaults (which inference and the splitter use): `"` quotes, `""`
        // escapes, \r, \n or \r\n ends a record, blank lines skipped.
        let mut rdr = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
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
            let result = if fields.len() != map.len() {
                Err(format!(
                    "expected {} fields, found {}",
                    map.len(),
                    fields.len()
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

    fn push_json(
        &self,
        buf: &mut ColBuf,
        col: usize,
        v: Option<&serde_json::Value>,
    ) -> Result<(), String> {
        use serde_json::Value as J;
        let f = &self.schema.fields()[col];
        let v = match v {
            None | Some(J::Null) => {
                if !f.nullable {
                    return Err(self.null_error(col));
                }
                buf.push_null();
                return Ok(());
            }
            Some(v) => v,
        };
        let ok = match (f.data_type, v) {
            (_, J::Array(_) | J::Object(_)) => {
                return Err(format!(
                    "column {:?}: nested values are not supported (flatten them, or store them as JSON text in a string)",
                    f.name
                ))
            }
            (DataType::Utf8, J::String(s)) => {
                buf.push_str(s);
                true
            }
            (DataType::Utf8, other) => {
                buf.push_str(&other.to_string());
                true
            }
            (DataType::Int64, J::Number(n)) => n.as_i64().map(|x| buf.push_i64(x)).is_some(),
            (DataType::Float64, J::Number(n)) => n.as_f64().map(|x| buf.push_f64(x)).is_some(),
            (DataType::Bool, J::Bool(b)) => {
                buf.push_bool(*b);
                true
            }
            (DataType::Date, J::String(s)) => values::parse_date(s).map(|x| buf.push_date(x)).is_some(),
            (DataType::Timestamp, J::String(s)) => {
                values::parse_timestamp(s).map(|x| buf.push_i64(x)).is_some()
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            let text = match v {
                J::String(s) => s.clone(),
                other => other.to_string(),
            };
            Err(self.value_error(col, text.as_bytes(), "is not a valid"))
        }
    }

    fn json_row(
        &self,
        line: &[u8],
        bufs: &mut [ColBuf],
        slots: &mut Vec<Option<serde_json::Value>>,
    ) -> Result<(), String> {
        let obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
        slots.clear();
        slots.resize(bufs.len(), None);
        for (k, v) in obj {
            match self.json_index.get(&k) {
                Some(&i) => slots[i] = Some(v),
                None if self.ignore_extra_keys => {}
                None => {
                    return Err(format!(
                        "key {k:?} is not a column of the schema (pass --ignore-extra-keys to drop such keys)"
                    ))
                }
            }
        }
        for (i, slot) in slots.iter().enumerate() {
            self.push_json(&mut bufs[i], i, slot.as_ref())?;
        }
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn parse_jsonl(&self, bytes: &[u8]) -> (Vec<ColBuf>, Vec<u64>, Vec<BadRow>, u64) {
        let mut bufs = self.new_bufs(bytes.len() / 128);
        let mut line_offsets = Vec::new();
        let mut bad = Vec::new();
        let mut slots = Vec::new();
        let mut rows = 0usize;
        for (offset, line) in bytes.split(|b| *b == b'\n').enumerate() {
            let offset = offset as u64;
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue; // blank lines are skipped
            }
            match self.json_row(line, &mut bufs, &mut slots) {
                Ok(()) => {
                    rows += 1;
                    if self.keep_lines {
                        line_offsets.push(offset);
                    }
                }
                Err(message) => {
                    bufs.iter_mut().for_each(|b| b.truncate(rows));
                    bad.push(BadRow {
                        line_offset: offset,
                        message,
                    });
                    if self.fail_fast {
                        break;
                    }
                }
            }
        }
        let lines = memchr::memchr_iter(b'\n', bytes).count() as u64;
        (bufs, line_offsets, bad, lines)
    }
}
