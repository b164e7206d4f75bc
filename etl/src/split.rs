//! Splitting an input stream into chunks that end at record boundaries, so that workers can
//! parse chunks independently.
//!
//! CSV: a newline ends a record only outside a quoted field. The reader thread finds the last
//! record boundary of each buffer by running the quoting state machine of `csv_core` (quotes
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

/// Where the quoting state machine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

/// Position just past the last `\n` that ends a record, scanning `buf` from a record start.
///
/// Outside quoted fields only quotes matter: the scan jumps from quote to quote with `memchr`,
/// and every `\n` between two quotes (outside a quoted field) ends a record.
pub fn last_csv_boundary(buf: &[u8], delimiter: u8) -> Option<usize> {
    let mut state = State::FieldStart;
    let mut last = None;
    let mut i = 0;
    let field_start = |c: u8| c == delimiter || c == b'\n' || c == b'\r';
    while i < buf.len() {
        match state {
            State::FieldStart | State::Unquoted => {
                let Some(j) = memchr(b'"', &buf[i..]) else {
                    return memrchr(b'\n', &buf[i..]).map(|k| i + k + 1).or(last);
                };
                let q = i + j;
                if let Some(k) = memrchr(b'\n', &buf[i..q]) {
                    last = Some(i + k + 1);
                }
                // The quote opens a quoted field only at the start of a field.
                let opens = if q == i {
                    state == State::FieldStart
                } else {
                    field_start(buf[q - 1])
                };
                state = if opens {
                    State::Quoted
                } else {
                    State::Unquoted
                };
                i = q + 1;
            }
            State::Quoted => match memchr(b'"', &buf[i..]) {
                None => break,
                Some(j) => {
                    i += j + 1;
                    state = State::QuoteInQuoted;
                }
            },
            State::QuoteInQuoted => {
                let c = buf[i];
                i += 1;
                state = match c {
                    b'"' => State::Quoted,
                    b'\n' => {
                        last = Some(i);
                        State::FieldStart
                    }
                    c if c == delimiter || c == b'\r' => State::FieldStart,
                    _ => State::Unquoted,
                };
            }
        }
    }
    last
}

/// Position just past the last `\n`.
pub fn last_line_boundary(buf: &[u8]) -> Option<usize> {
    memrchr(b'\n', buf).map(|i| i + 1)
}

/// Cuts a byte stream into chunks of about `target` bytes that end at record boundaries.
pub struct Splitter<'a> {
    body: &'a mut dyn Read,
    csv_delimiter: Option<u8>,
    target: usize,
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

impl<'a> Splitter<'a> {
    /// `csv_delimiter`: `Some` for CSV (quote-aware), `None` for line-based formats.
    /// `carry` holds bytes already read from `body` that come first.
    pub fn new(
        body: &'a mut dyn Read,
        csv_delimiter: Option<u8>,
        target: usize,
        carry: Vec<u8>,
    ) -> Self {
        Splitter {
            body,
            csv_delimiter,
            target: target.max(1),
            carry,
            eof: false,
        }
    }

    fn boundary(&self, buf: &[u8]) -> Option<usize> {
        match self.csv_delimiter {
            Some(d) => last_csv_boundary(buf, d),
            None => last_line_boundary(buf),
        }
    }

    /// The next chunk, or `None` at the end. The last chunk may lack a final newline.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
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
                return Ok(if buf.is_empty() { None } else { Some(buf) });
            }
            match self.boundary(&buf) {
                Some(b) if b > 0 => {
                    self.carry = buf[b..].to_vec();
                    self.carry.reserve(self.target);
                    buf.truncate(b);
                    return Ok(Some(buf));
                }
                // One record larger than the buffer: read more.
                _ => want = buf.len() * 2,
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
            let got = last_csv_boundary(&data[..cut], b',');
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

    #[test]
    fn boundaries_match_csv_crate_on_random_inputs() {
        let alphabet = b"ab,\"\n\n\"";
        let mut x: u64 = 1;
        for _ in 0..150 {
            let mut data = Vec::new();
            for _ in 0..40 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                data.push(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            let ends = csv_record_ends(&data);
            let whole = records(&data);
            for cut in 0..=data.len() {
                let got = last_csv_boundary(&data[..cut], b',');
                let text = String::from_utf8_lossy(&data);
                // Never later than we may look, at least the last newline-ended record end.
                let floor = ends
                    .iter()
                    .copied()
                    .filter(|&e| e <= cut && e > 0 && e < data.len() && data[e - 1] == b'\n')
                    .max();
                assert!(got >= floor, "{text:?} cut {cut}: {got:?} < {floor:?}");
                if let Some(e) = got {
                    assert!(e <= cut && data[e - 1] == b'\n', "{text:?} cut {cut}");
                    // Sound: parsing both halves separately gives the same records.
                    let mut split = records(&data[..e]);
                    split.extend(records(&data[e..]));
                    assert_eq!(split, whole, "{text:?} split at {e}");
                }
            }
        }
    }

    fn records(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(data);
        rdr.byte_records()
            .map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect())
            .collect()
    }

    #[test]
    fn splitter_reassembles_input() {
        let mut data = Vec::new();
        for i in 0..500 {
            data.extend_from_slice(format!("{i},\"multi\nline {i}\",\"q\"\"x\"\r\n").as_bytes());
        }
        let mut src: &[u8] = &data;
        let mut s = Splitter::new(&mut src, Some(b','), 100, Vec::new());
        let mut all = Vec::new();
        let mut records = 0;
        while let Some(c) = s.next_chunk().unwrap() {
            records += csv_record_ends(&c).len();
            all.extend_from_slice(&c);
        }
        assert_eq!(all, data);
        assert_eq!(records, 500);
    }
}
