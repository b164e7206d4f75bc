//! Resumable encoding of a page as JSON, NDJSON or CSV, in pieces of about `max_bytes`.
//!
//! JSON: `{"rows":[{...},...],"next":"<cursor>"|null[,"total":N]}`, or as the PostgREST face
//! wants it ([`JsonShape`]): a bare array `[{...},...]`, or one object. NDJSON: one object a line
//! (the cursor goes in the Link header only). CSV: a header line, then one line per row
//! (CRLF-free: `\n` line ends), nulls as empty fields.

use bytes::Bytes;
use quarry_format::{ColumnChunk, QuarryFile, Value};

use crate::arrow_out::ArrowStream;
use crate::negotiate::OutputFormat;
use crate::output::{write_csv_str, write_csv_value, write_json_str, write_json_value};
use crate::query::{Projection, RowsQuery};
use crate::scan::Page;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header,
    Rows,
    Footer,
    Done,
}

/// How a JSON page is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JsonShape {
    /// `{"rows":[...],"next":...,"total":...}` (`/v1`).
    #[default]
    Envelope,
    /// `[...]` (PostgREST).
    Array,
    /// The page's rows written one after the other without separators: one object for a page
    /// of exactly one row (PostgREST's `application/vnd.pgrst.object+json`; the caller checks
    /// the count).
    Object,
}

/// Heap bytes of a page: its row numbers, or its groups' values and their strings.
fn page_bytes(page: &Page) -> usize {
    use std::mem::size_of;
    let mut bytes = page.rows.capacity() * size_of::<u64>()
        + page.next_cursor.as_ref().map_or(0, String::capacity);
    if let Some(groups) = &page.groups {
        for i in 0..groups.len() {
            if let Some(row) = groups.row(i) {
                bytes += size_of::<Vec<crate::output::OwnedValue>>()
                    + std::mem::size_of_val(row)
                    + row
                        .iter()
                        .map(|v| match v.as_value() {
                            Value::Utf8(s) => s.len(),
                            _ => 0,
                        })
                        .sum::<usize>();
            }
        }
    }
    bytes
}

/// Streams one page.
#[derive(Debug)]
pub struct Encoder {
    page: Page,
    format: OutputFormat,
    shape: JsonShape,
    /// Output column indexes into the dataset (row queries).
    columns: Vec<usize>,
    /// Pre-escaped `"name":` per output column (JSON) or the CSV header line.
    json_names: Vec<Vec<u8>>,
    csv_header: Vec<u8>,
    phase: Phase,
    next_row: usize,
    /// Arrow output: names and types, then the IPC writer once the header is out.
    names: Vec<String>,
    types: Vec<quarry_format::DataType>,
    arrow: Option<ArrowStream>,
    /// Encoded bytes per row of the last Arrow batch: sizes the next one, so long strings
    /// make batches of fewer rows (a batch is built whole in memory).
    arrow_row_bytes: usize,
    /// Heap bytes of the page and of the names above ([`memory_bytes`](Self::memory_bytes)).
    held_bytes: usize,
}

impl Encoder {
    pub fn new(query: &RowsQuery, page: Page, format: OutputFormat) -> Encoder {
        let names = query.output_columns();
        let json_names: Vec<Vec<u8>> = names
            .iter()
            .map(|n| {
                let mut v = Vec::with_capacity(n.len() + 3);
                write_json_str(&mut v, n);
                v.push(b':');
                v
            })
            .collect();
        let mut csv_header = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                csv_header.push(b',');
            }
            write_csv_str(&mut csv_header, n);
        }
        csv_header.push(b'\n');
        let columns = match &query.projection {
            Projection::Columns(c) => c.clone(),
            Projection::Aggregate { .. } => Vec::new(),
        };
        let held_bytes = page_bytes(&page)
            + json_names
                .iter()
                .map(|n: &Vec<u8>| n.capacity())
                .sum::<usize>()
            + csv_header.capacity()
            + names.iter().map(String::capacity).sum::<usize>()
            + columns.capacity() * std::mem::size_of::<usize>();
        Encoder {
            page,
            format,
            shape: JsonShape::Envelope,
            columns,
            json_names,
            csv_header,
            phase: Phase::Header,
            next_row: 0,
            types: query.output_types(),
            names,
            arrow: None,
            arrow_row_bytes: 0,
            held_bytes,
        }
    }

    /// Heap bytes the encoder holds for the whole body: the page (row numbers, or every group's
    /// owned values and strings) and the output names. The frames it returns are the caller's.
    pub fn memory_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Wraps JSON output as `shape` instead of the `/v1` envelope.
    pub fn with_json_shape(mut self, shape: JsonShape) -> Encoder {
        self.shape = shape;
        self
    }

    /// Rows (or groups) on the page.
    pub fn len(&self) -> usize {
        self.num_rows()
    }

    /// True when the page has no rows.
    pub fn is_empty(&self) -> bool {
        self.num_rows() == 0
    }

    /// The `next` cursor, known before the body (for a `Link: rel="next"` header).
    pub fn next_cursor(&self) -> Option<&str> {
        self.page.next_cursor.as_deref()
    }

    /// The exact total when `Prefer: count=exact` was given.
    pub fn total(&self) -> Option<u64> {
        self.page.total
    }

    /// Rows examined by the scan that produced the page.
    pub fn rows_examined(&self) -> u64 {
        self.page.rows_examined
    }

    fn num_rows(&self) -> usize {
        match &self.page.groups {
            Some(g) => g.len(),
            None => self.page.rows.len(),
        }
    }

    fn write_row(&self, out: &mut Vec<u8>, values: &mut dyn Iterator<Item = Value<'_>>) {
        match self.format {
            OutputFormat::Json | OutputFormat::Ndjson => {
                out.push(b'{');
                for (i, v) in values.enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&self.json_names[i]);
                    write_json_value(out, v);
                }
                out.push(b'}');
            }
            OutputFormat::Csv | OutputFormat::ArrowStream => {
                for (i, v) in values.enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_csv_value(out, v);
                }
                out.push(b'\n');
            }
        }
    }

    /// String bytes of output row `i` (0 for other types): an Arrow batch's size estimate.
    fn row_string_bytes<B: AsRef<[u8]>>(&self, file: &QuarryFile<B>, i: usize) -> usize {
        let len = |v: Value<'_>| match v {
            Value::Utf8(s) => s.len(),
            _ => 0,
        };
        if let Some(groups) = &self.page.groups {
            return groups
                .row(i)
                .map_or(0, |row| row.iter().map(|v| len(v.as_value())).sum());
        }
        let Some(&row) = self.page.rows.get(i) else {
            return 0;
        };
        let (rg, off) = file.locate(row);
        self.columns
            .iter()
            .map(|&c| len(file.value_at(rg, c, off)))
            .sum()
    }

    fn step_arrow<B: AsRef<[u8]>>(
        &mut self,
        file: &QuarryFile<B>,
        max_bytes: usize,
    ) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        if self.phase == Phase::Header {
            let stream = ArrowStream::new(
                &self.names,
                &self.types,
                self.page.next_cursor.as_deref(),
                self.page.total,
            );
            let Some(mut stream) = stream else {
                self.phase = Phase::Done;
                return None;
            };
            out = stream.take();
            self.arrow = Some(stream);
            self.phase = Phase::Rows;
        }
        let n = self.num_rows();
        if self.phase == Phase::Rows && out.len() < max_bytes {
            if self.next_row < n {
                // About `max_bytes` of values per batch: 8 bytes a cell, or what the first row
                // (its strings' bytes) or the last batch measured, whichever is more.
                let first_row_bytes = self.row_string_bytes(file, self.next_row);
                let per_row = (8 * self.types.len().max(1) + 8)
                    .saturating_add(first_row_bytes)
                    .max(self.arrow_row_bytes);
                let k = (max_bytes / per_row)
                    .clamp(1, 65_536)
                    .min(n - self.next_row);
                let first = self.next_row;
                let (page, columns) = (&self.page, &self.columns);
                let stream = self.arrow.as_mut()?;
                let mut cached: Option<(usize, Vec<ColumnChunk<'_>>)> = None;
                let ok = stream.write_batch(k, |i, push| {
                    if let Some(groups) = &page.groups {
                        if let Some(row) = groups.row(first + i) {
                            for (c, v) in row.iter().enumerate() {
                                push(c, v.as_value());
                            }
                        }
                    } else if let Some(&row) = page.rows.get(first + i) {
                        let (rg, off) = file.locate(row);
                        if cached.as_ref().is_none_or(|(c, _)| *c != rg) {
                            cached =
                                Some((rg, columns.iter().map(|&c| file.chunk(rg, c)).collect()));
                        }
                        if let Some((_, chunks)) = &cached {
                            for (c, chunk) in chunks.iter().enumerate() {
                                push(c, chunk.get(off));
                            }
                        }
                    }
                });
                if !ok {
                    self.phase = Phase::Done;
                    return None;
                }
                self.next_row += k;
                let batch = stream.take();
                self.arrow_row_bytes = batch.len() / k.max(1);
                out.extend_from_slice(&batch);
            }
            if self.next_row >= n {
                self.phase = Phase::Footer;
            }
        }
        if self.phase == Phase::Footer && out.len() < max_bytes.max(1) {
            let stream = self.arrow.as_mut()?;
            if !stream.finish() {
                self.phase = Phase::Done;
                return None;
            }
            out.extend_from_slice(&stream.take());
            self.phase = Phase::Done;
        }
        if out.is_empty() && self.phase == Phase::Done {
            return None;
        }
        Some(out)
    }

    /// The next piece of the body (at least one row when rows remain, stopping once
    /// `max_bytes` is reached), or `None` when the body is complete.
    pub fn step<B: AsRef<[u8]>>(
        &mut self,
        query: &RowsQuery,
        file: &QuarryFile<B>,
        max_bytes: usize,
    ) -> Option<Bytes> {
        self.step_buf(query, file, max_bytes).map(Bytes::from)
    }

    /// [`step`](Self::step) as the buffer itself, whose capacity is the memory the piece holds
    /// until it is written (for a caller that charges it).
    pub fn step_buf<B: AsRef<[u8]>>(
        &mut self,
        query: &RowsQuery,
        file: &QuarryFile<B>,
        max_bytes: usize,
    ) -> Option<Vec<u8>> {
        // Rows are row numbers of the file the scan ran on: another file (a caller bug, e.g.
        // after a data swap) would mean wrong rows or out-of-range lookups, so end instead.
        if self.phase == Phase::Done || file.version() != query.version {
            self.phase = Phase::Done;
            return None;
        }
        if self.format == OutputFormat::ArrowStream {
            return self.step_arrow(file, max_bytes);
        }
        let mut out = Vec::with_capacity(max_bytes.clamp(64, 1 << 20));
        if self.phase == Phase::Header {
            match self.format {
                OutputFormat::Json => match self.shape {
                    JsonShape::Envelope => out.extend_from_slice(b"{\"rows\":["),
                    JsonShape::Array => out.push(b'['),
                    JsonShape::Object => {}
                },
                OutputFormat::Ndjson => {}
                OutputFormat::Csv | OutputFormat::ArrowStream => {
                    out.extend_from_slice(&self.csv_header)
                }
            }
            self.phase = Phase::Rows;
        }
        if self.phase == Phase::Rows {
            let n = self.num_rows();
            // Chunks of the current row group, reused while consecutive rows share it.
            let mut cached: Option<(usize, Vec<ColumnChunk<'_>>)> = None;
            while self.next_row < n && out.len() < max_bytes {
                let i = self.next_row;
                if self.format == OutputFormat::Json && i > 0 && self.shape != JsonShape::Object {
                    out.push(b',');
                }
                if let Some(groups) = &self.page.groups {
                    if let Some(row) = groups.row(i) {
                        self.write_row(&mut out, &mut row.iter().map(|v| v.as_value()));
                    }
                } else {
                    let row = self.page.rows[i];
                    let (rg, off) = file.locate(row);
                    if cached.as_ref().is_none_or(|(c, _)| *c != rg) {
                        cached = Some((
                            rg,
                            self.columns.iter().map(|&c| file.chunk(rg, c)).collect(),
                        ));
                    }
                    if let Some((_, chunks)) = &cached {
                        self.write_row(&mut out, &mut chunks.iter().map(|c| c.get(off)));
                    }
                }
                if self.format == OutputFormat::Ndjson {
                    out.push(b'\n');
                }
                self.next_row += 1;
            }
            if self.next_row >= n {
                self.phase = Phase::Footer;
            }
        }
        if self.phase == Phase::Footer && out.len() < max_bytes.max(1) {
            if self.format == OutputFormat::Json && self.shape == JsonShape::Array {
                out.push(b']');
            } else if self.format == OutputFormat::Json && self.shape == JsonShape::Envelope {
                out.extend_from_slice(b"],\"next\":");
                match &self.page.next_cursor {
                    Some(c) => write_json_str(&mut out, c),
                    None => out.extend_from_slice(b"null"),
                }
                if let Some(t) = self.page.total {
                    out.extend_from_slice(b",\"total\":");
                    out.extend_from_slice(itoa::Buffer::new().format(t).as_bytes());
                }
                out.extend_from_slice(b"}");
            }
            self.phase = Phase::Done;
        }
        if out.is_empty() && self.phase == Phase::Done {
            return None;
        }
        Some(out)
    }
}
