//! Splitting an input stream into chunks that end at record boundaries, so that workers can
//! parse chunks independently.
//!
//! CSV: a newline ends a record only outside a quoted field. The reader thread finds the last
//! record boundary of each buffer by running csv_core's quoting rules, written out here (quotes
//! open a field only at its start; `""` inside quotes is an escaped quote; `\r` also ends a
//! field) sequentially from the chunk's start, which is a record start by construction. Buffers
//! without any `"` (the common case) take a fast path: the last `\n` is the boundary. Both
//! paths jump between interesting bytes with `memchr`, so the scan costs a small fraction of
//! the parse. Records ended by a lone `\r` (old Mac files) are not split points; such a
//! file is parsed correctly but in larger chunks.
//!
//! JSON Lines: a JSON string cannot hold a raw newline, so every `\n` is a boundary.

use std::io::Read;

use memchr::{memchr, memrchr};

/// How CSV bytes are quoted, and how long a quoted field may grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    /// `None`: no quoting, a quote is an ordinary byte (TSV's default).
    pub quote: Option<u8>,
    /// A quoted field with more bytes than this between its quotes is a bad row.
    pub max_field: usize,
}

impl Dialect {
    pub fn csv(delimiter: u8) -> Dialect {
        Dialect {
            delimiter,
            quote: Some(b'"'),
            max_field: DEFAULT_MAX_FIELD,
        }
    }
}

/// Default `--max-field-bytes`.
pub const DEFAULT_MAX_FIELD: usize = 16 << 20;

/// Why a record's quoting is wrong. `quote` is the offset of the opening quote in the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuoteFault {
    /// The quoted field is not closed before the end of the input, or not within
    /// `max_field` bytes (the splitter stops looking there).
    Unclosed { quote: usize },
    /// The closing quote is followed by a byte other than a quote, delimiter or line end.
    JunkAfterClose { quote: usize, at: usize },
    /// More than `max_field` bytes between the quotes of a closed field.
    TooLong { quote: usize },
}

/// Checks the quoting of one record: `rec` starts at the record's first byte and may run past
/// its end (only the record is looked at). Quotes open a field only at its start; inside, `QQ`
/// is an escaped quote; a closing quote must be followed by the delimiter, a line end or the
/// end of the input. A quote inside an unquoted field is an ordinary byte.
///
/// The splitter ([`last_csv_boundary`]) applies the same rules, so a chunk boundary never
/// depends on where chunks were cut: both resynchronise after a fault at the line after the
/// record's start.
pub fn check_quotes(rec: &[u8], d: &Dialect) -> Result<(), QuoteFault> {
    let Some(q) = d.quote else { return Ok(()) };
    let mut i = 0;
    loop {
        // At a field start.
        if rec.get(i) == Some(&q) {
            let open = i;
            let mut j = i + 1;
            loop {
                let Some(k) = memchr(q, &rec[j.min(rec.len())..]).map(|k| j + k) else {
                    return Err(QuoteFault::Unclosed { quote: open });
                };
                if rec.get(k + 1) == Some(&q) {
                    j = k + 2;
                    continue;
                }
                if k - open - 1 > d.max_field {
                    return Err(QuoteFault::TooLong { quote: open });
                }
                match rec.get(k + 1) {
                    None | Some(b'\n' | b'\r') => return Ok(()),
                    Some(&c) if c == d.delimiter => {
                        i = k + 2;
                        break;
                    }
                    Some(_) => {
                        return Err(QuoteFault::JunkAfterClose {
                            quote: open,
                            at: k + 1,
                        })
                    }
                }
            }
        } else {
            let rest = &rec[i.min(rec.len())..];
            match memchr::memchr3(d.delimiter, b'\n', b'\r', rest) {
                Some(k) if rest[k] == d.delimiter => i += k + 1,
                _ => return Ok(()),
            }
        }
    }
}

/// Where the next record starts after a record at `start` whose quoting is wrong: the byte
/// after the first line end (`\n` or `\r`, as for csv_core) from the record's first byte (the
/// bad row is that one line).
pub fn resync_point(buf: &[u8], start: usize) -> Option<usize> {
    let mut s = start;
    while s < buf.len() && matches!(buf[s], b'\n' | b'\r') {
        s += 1;
    }
    memchr::memchr2(b'\n', b'\r', &buf[s.min(buf.len())..]).map(|k| s + k + 1)
}

/// Where the quoting state machine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

/// Position just past the last `\n` that ends a record, scanning `buf` from a record start,
/// with more input possibly to come.
///
/// Outside quoted fields only quotes matter: the scan jumps from quote to quote with `memchr`,
/// and every `\n` between two quotes (outside a quoted field) ends a record. A record whose
/// quoting is wrong ([`check_quotes`]) ends at the line after its start ([`resync_point`]);
/// that point is not returned as a boundary itself, so the parser sees the same fault.
pub fn last_csv_boundary(buf: &[u8], d: &Dialect) -> Option<usize> {
    scan_csv(buf, d).0
}

/// [`last_csv_boundary`], and whether a record before it has wrong quoting (the parser checks
/// each record's quoting only in chunks where the splitter found a fault).
pub fn scan_csv(buf: &[u8], d: &Dialect) -> (Option<usize>, bool) {
    let Some(q) = d.quote else {
        return (last_line_boundary(buf), false);
    };
    // A fault seen so far, and as of the last boundary.
    let (mut fault, mut fault_before_last) = (false, false);
    let delimiter = d.delimiter;
    let mut state = State::FieldStart;
    let mut last = None;
    let mut rec_start = 0;
    let mut open = 0;
    let mut i = 0;
    let field_start = |c: u8| c == delimiter || c == b'\n' || c == b'\r';
    while i < buf.len() {
        match state {
            State::FieldStart | State::Unquoted => {
                let Some(j) = memchr(q, &buf[i..]) else {
                    return match memrchr(b'\n', &buf[i..]) {
                        Some(k) => (Some(i + k + 1), fault),
                        None => (last, fault_before_last),
                    };
                };
                let qp = i + j;
                // One backward scan finds the record start (after the last line end) and, in
                // all but old-Mac (`\r` only) files, the last `\n` too.
                if let Some(k) = memchr::memrchr2(b'\n', b'\r', &buf[i..qp]) {
                    rec_start = i + k + 1;
                    let nl = if buf[i + k] == b'\n' {
                        Some(k)
                    } else {
                        memrchr(b'\n', &buf[i..i + k])
                    };
                    if let Some(k) = nl {
                        last = Some(i + k + 1);
                        fault_before_last = fault;
                    }
                }
                // The quote opens a quoted field only at the start of a field.
                let opens = if qp == i {
                    state == State::FieldStart
                } else {
                    field_start(buf[qp - 1])
                };
                if opens {
                    state = State::Quoted;
                    open = qp;
                } else {
                    state = State::Unquoted;
                }
                i = qp + 1;
            }
            State::Quoted => match memchr(q, &buf[i..]) {
                None => {
                    if buf.len() - open - 1 > d.max_field {
                        // Too long to ever be valid: the record's first line is the bad row.
                        fault = true;
                        match resync_point(buf, rec_start) {
                            Some(r) => {
                                (i, rec_start, state) = (r, r, State::FieldStart);
                                continue;
                            }
                            None => break,
                        }
                    }
                    break;
                }
                Some(j) => {
                    i += j + 1;
                    state = State::QuoteInQuoted;
                }
            },
            State::QuoteInQuoted => {
                let c = buf[i];
                if c == q {
                    i += 1;
                    state = State::Quoted;
                    continue;
                }
                let closes = c == b'\n' || c == b'\r' || c == delimiter;
                if !closes || i - 1 - open - 1 > d.max_field {
                    fault = true;
                    match resync_point(buf, rec_start) {
                        Some(r) => {
                            (i, rec_start, state) = (r, r, State::FieldStart);
                            continue;
                        }
                        None => break,
                    }
                }
                i += 1;
                state = State::FieldStart;
                if c == b'\n' {
                    last = Some(i);
                    fault_before_last = fault;
                    rec_start = i;
                } else if c == b'\r' {
                    rec_start = i;
                }
            }
        }
    }
    (last, fault_before_last)
}

/// Position just past the last `\n`.
pub fn last_line_boundary(buf: &[u8]) -> Option<usize> {
    memrchr(b'\n', buf).map(|i| i + 1)
}

/// What the splitter hands on.
#[derive(Debug)]
pub enum Piece {
    /// Whole records; `faults`: some record may have wrong quoting (the parser then checks
    /// each record; false only when the splitter's scan saw none).
    Chunk { bytes: Vec<u8>, faults: bool },
    /// The stream cannot be cut into records within the limits: `bytes` (from a record start)
    /// hold the offending data, which starts at `at`; the collector turns this into an error
    /// naming the line and column.
    Fatal {
        bytes: Vec<u8>,
        at: usize,
        message: String,
    },
}

/// Cuts a byte stream into chunks of about `target` bytes that end at record boundaries.
pub struct Splitter<'a> {
    body: &'a mut dyn Read,
    csv: Option<Dialect>,
    target: usize,
    /// Longest field (CSV) or line (JSON Lines) without a record end.
    max_field: usize,
    /// Longest record without a record end.
    max_record: usize,
    carry: Vec<u8>,
    eof: bool,
}

impl std::fmt::Debug for Splitter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Splitter")
            .field("target", &self.target)
            .field("eof", &self.eof)
            .finish()
    }
}

/// Start and length of the longest run of bytes without a delimiter or line end.
fn longest_field(buf: &[u8], delimiter: u8) -> (usize, usize) {
    let (mut best, mut start) = ((0, 0), 0);
    for end in memchr::memchr3_iter(delimiter, b'\n', b'\r', buf).chain([buf.len()]) {
        if end - start > best.1 {
            best = (start, end - start);
        }
        start = end + 1;
    }
    best
}

impl<'a> Splitter<'a> {
    /// `csv`: `Some` for CSV (quote-aware), `None` for line-based formats.
    /// `carry` holds bytes already read from `body` that come first. A record that grows past
    /// `max_record` bytes (or a field or JSON line past `max_field`) without ending is fatal.
    pub fn new(
        body: &'a mut dyn Read,
        csv: Option<Dialect>,
        target: usize,
        max_record: usize,
        carry: Vec<u8>,
    ) -> Self {
        let max_field = csv.map_or(DEFAULT_MAX_FIELD, |d| d.max_field);
        Splitter {
            body,
            csv,
            target: target.max(1),
            max_field,
            max_record: max_record.max(max_field),
            carry,
            eof: false,
        }
    }

    /// For JSON Lines: `max_field` bounds a line.
    pub fn with_max_line(mut self, max_line: usize) -> Self {
        if self.csv.is_none() {
            self.max_field = max_line;
        }
        self
    }

    fn scan(&self, buf: &[u8]) -> (Option<usize>, bool) {
        match &self.csv {
            Some(d) => scan_csv(buf, d),
            None => (last_line_boundary(buf), false),
        }
    }

    /// The pending bytes (one unfinished record) are past a limit: the error to report.
    fn too_long(&self, buf: &mut Vec<u8>) -> Option<Piece> {
        if buf.len() <= self.max_field {
            return None;
        }
        let (at, message) = match &self.csv {
            None => (
                0,
                format!(
                    "a line longer than --max-field-bytes ({} bytes) without a line end",
                    self.max_field
                ),
            ),
            Some(d) => {
                let (start, len) = longest_field(buf, d.delimiter);
                if len > self.max_field {
                    (
                        start,
                        format!(
                            "a field longer than --max-field-bytes ({} bytes) without a \
                             delimiter or line end",
                            self.max_field
                        ),
                    )
                } else if buf.len() > self.max_record {
                    (
                        0,
                        format!(
                            "a record longer than {} bytes (what --memory-limit allows for one \
                             record) without a line end",
                            self.max_record
                        ),
                    )
                } else {
                    return None;
                }
            }
        };
        buf.truncate(at + 1);
        Some(Piece::Fatal {
            bytes: std::mem::take(buf),
            at,
            message,
        })
    }

    /// The next piece, or `None` at the end. The last chunk may lack a final newline.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Piece>> {
        let mut buf = std::mem::take(&mut self.carry);
        let mut want = self.target;
        loop {
            if !self.eof && buf.len() < want {
                buf.reserve(want - buf.len());
                let n = crate::input::read_up_to(self.body, &mut buf, want)?;
                if n == 0 || buf.len() < want {
                    self.eof = true;
                }
            }
            if self.eof {
                if buf.is_empty() {
                    return Ok(None);
                }
                let (last, faults) = self.scan(&buf);
                // The rest is parsed whole, unless it is one record (no boundary) past the
                // limits. (It is at most twice a size that passed the limits.)
                if last.is_none() {
                    if let Some(f) = self.too_long(&mut buf) {
                        return Ok(Some(f));
                    }
                }
                // Past the last boundary, the last record may hold a quote that is never
                // closed: check every record if it holds a quote at all.
                let tail = &buf[last.unwrap_or(0)..];
                let quoted_tail = self
                    .csv
                    .and_then(|d| d.quote)
                    .is_some_and(|q| memchr(q, tail).is_some());
                return Ok(Some(Piece::Chunk {
                    bytes: buf,
                    faults: faults || quoted_tail,
                }));
            }
            match self.scan(&buf) {
                (Some(b), faults) if b > 0 => {
                    self.carry = buf[b..].to_vec();
                    self.carry.reserve(self.target);
                    buf.truncate(b);
                    return Ok(Some(Piece::Chunk { bytes: buf, faults }));
                }
                // One record larger than the buffer: read more, up to the limits.
                _ => {
                    if let Some(f) = self.too_long(&mut buf) {
                        self.eof = true;
                        return Ok(Some(f));
                    }
                    want = buf.len() * 2;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: csv crate record ends (byte offset after each record's terminator).
    fn csv_record_ends(data: &[u8]) -> Vec<usize> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(data);
        let mut rec = csv::ByteRecord::new();
        let mut ends = vec![];
        while rdr.read_byte_record(&mut rec).unwrap() {
            ends.push(rdr.position().byte() as usize);
        }
        ends
    }

    #[test]
    fn boundaries_respect_quotes() {
        let data: &[u8] = b"a,\"x\ny\",1\n\"q\"\"\n\",2\nb\"c,\"d\n3\n\"\n\",4";
        for cut in 0..=data.len() {
            let got = last_csv_boundary(&data[..cut], &Dialect::csv(b','));
            let ends = csv_record_ends(data);
            // The last record end at or before `cut` that ends with a newline.
            let want = ends
                .iter()
                .copied()
                .filter(|&e| e <= cut && e > 0 && data[e - 1] == b'\n')
                .max();
            assert_eq!(got, want, "cut {cut}");
        }
    }

    /// Reference for the quoting rules: records in order, `None` for a line skipped because
    /// its quoting is wrong (check_quotes, then resync_point), else the csv crate's fields.
    fn records_strict(data: &[u8], d: &Dialect) -> Vec<Option<Vec<Vec<u8>>>> {
        let mut out = vec![];
        let mut p = 0;
        loop {
            while p < data.len() && matches!(data[p], b'\n' | b'\r') {
                p += 1;
            }
            if p >= data.len() {
                return out;
            }
            if check_quotes(&data[p..], d).is_err() {
                out.push(None);
                match resync_point(data, p) {
                    Some(r) => p = r,
                    None => return out,
                }
                continue;
            }
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(&data[p..]);
            let mut rec = csv::ByteRecord::new();
            assert!(rdr.read_byte_record(&mut rec).unwrap());
            out.push(Some(rec.iter().map(<[u8]>::to_vec).collect()));
            p += rdr.position().byte() as usize;
        }
    }

    #[test]
    fn boundaries_are_sound_on_random_inputs() {
        let mut x: u64 = 1;
        for round in 0..160 {
            // Every third round also has lone `\r` line ends (csv_core ends records there).
            let alphabet: &[u8] = if round % 3 == 2 {
                b"ab,\"\n\r\""
            } else {
                b"ab,\"\n\n\""
            };
            let d = Dialect {
                max_field: if round % 2 == 0 { 1 << 20 } else { 4 },
                ..Dialect::csv(b',')
            };
            let mut data = Vec::new();
            for _ in 0..40 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                data.push(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            let whole = records_strict(&data, &d);
            let well_quoted = whole.iter().all(Option::is_some);
            let ends = csv_record_ends(&data);
            for cut in 0..=data.len() {
                let got = last_csv_boundary(&data[..cut], &d);
                let text = String::from_utf8_lossy(&data);
                if well_quoted && d.max_field > 40 {
                    // Never later than we may look, at least the last newline-ended record end.
                    let floor = ends
                        .iter()
                        .copied()
                        .filter(|&e| e <= cut && e > 0 && e < data.len() && data[e - 1] == b'\n')
                        .max();
                    assert!(got >= floor, "{text:?} cut {cut}: {got:?} < {floor:?}");
                }
                if let Some(e) = got {
                    assert!(e <= cut && data[e - 1] == b'\n', "{text:?} cut {cut}");
                    // No fault reported: the records before the boundary have none.
                    if !scan_csv(&data[..cut], &d).1 {
                        let first = records_strict(&data[..e], &d);
                        assert!(first.iter().all(Option::is_some), "{text:?} cut {cut}");
                    }
                    // Sound: parsing both halves separately gives the same records.
                    let mut split = records_strict(&data[..e], &d);
                    split.extend(records_strict(&data[e..], &d));
                    assert_eq!(split, whole, "{text:?} split at {e}");
                }
            }
        }
    }

    #[test]
    fn splitter_reassembles_input() {
        let mut data = Vec::new();
        for i in 0..500 {
            data.extend_from_slice(format!("{i},\"multi\nline {i}\",\"q\"\"x\"\r\n").as_bytes());
        }
        let mut src: &[u8] = &data;
        let mut s = Splitter::new(&mut src, Some(Dialect::csv(b',')), 100, 1 << 20, Vec::new());
        let mut all = Vec::new();
        let mut records = 0;
        while let Some(Piece::Chunk { bytes: c, .. }) = s.next_chunk().unwrap() {
            records += csv_record_ends(&c).len();
            all.extend_from_slice(&c);
        }
        assert_eq!(all, data);
        assert_eq!(records, 500);
    }
}
