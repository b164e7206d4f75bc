//! Spilled sorted runs: blocks of rows in a private little-endian layout, written and read
//! back by the same process (never published, removed at the end of the build).
//!
//! Block: u64 rows, then per schema column: u8 has_validity, [rows x u8 validity], values
//! (bool: rows x u8; int64/timestamp/float64: rows x 8; date: rows x 4; utf8: (rows+1) x u64
//! offsets then the bytes), then rows x u32 input index, rows x u64 line.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use quarry_format::{ColumnData, DataType, Schema};

use crate::batch::{Batch, Origin};

#[derive(Debug)]
pub struct SpillWriter {
    out: BufWriter<File>,
}

fn put_validity(w: &mut impl Write, v: &Option<Vec<bool>>) -> io::Result<()> {
    match v {
        None => w.write_all(&[0]),
        Some(v) => {
            w.write_all(&[1])?;
            let bytes: Vec<u8> = v.iter().map(|b| u8::from(*b)).collect();
            w.write_all(&bytes)
        }
    }
}

macro_rules! put_values {
    ($w:expr, $values:expr) => {{
        let mut buf = Vec::with_capacity($values.len() * 8);
        for v in $values {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        $w.write_all(&buf)
    }};
}

impl SpillWriter {
    pub fn create(path: &Path) -> Result<SpillWriter> {
        let f = File::create(path)
            .with_context(|| format!("creating spill file {}", path.display()))?;
        Ok(SpillWriter {
            out: BufWriter::with_capacity(1 << 20, f),
        })
    }

    /// Writes `columns` (all of `rows` rows) with each row's input index and line.
    pub fn write_block(
        &mut self,
        columns: &[ColumnData],
        files: &[u32],
        lines: &[u64],
    ) -> io::Result<()> {
        let w = &mut self.out;
        w.write_all(&(files.len() as u64).to_le_bytes())?;
        for c in columns {
            match c {
                ColumnData::Bool { values, validity } => {
                    put_validity(w, validity)?;
                    let bytes: Vec<u8> = values.iter().map(|b| u8::from(*b)).collect();
                    w.write_all(&bytes)?;
                }
                ColumnData::Int64 { values, validity }
                | ColumnData::Timestamp { values, validity } => {
                    put_validity(w, validity)?;
                    put_values!(w, values)?;
                }
                ColumnData::Float64 { values, validity } => {
                    put_validity(w, validity)?;
                    put_values!(w, values.iter().map(|f| f.to_bits()))?;
                }
                ColumnData::Date { values, validity } => {
                    put_validity(w, validity)?;
                    put_values!(w, values)?;
                }
                ColumnData::Utf8 {
                    offsets,
                    bytes,
                    validity,
                } => {
                    put_validity(w, validity)?;
                    put_values!(w, offsets)?;
                    w.write_all(bytes)?;
                }
            }
        }
        put_values!(w, files)?;
        put_values!(w, lines)
    }

    pub fn finish(self) -> Result<()> {
        let f = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .context("flushing a spill file")?;
        drop(f);
        Ok(())
    }
}

#[derive(Debug)]
pub struct SpillReader {
    input: BufReader<File>,
}

fn take(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    r.read_exact(&mut v)?;
    Ok(v)
}

fn get_validity(r: &mut impl Read, rows: usize) -> io::Result<Option<Vec<bool>>> {
    let flag = take(r, 1)?;
    if flag[0] == 0 {
        return Ok(None);
    }
    Ok(Some(take(r, rows)?.into_iter().map(|b| b != 0).collect()))
}

macro_rules! get_values {
    ($r:expr, $n:expr, $t:ty) => {{
        const W: usize = std::mem::size_of::<$t>();
        let raw = take($r, $n * W)?;
        raw.chunks_exact(W)
            .map(|c| {
                let mut a = [0u8; W];
                a.copy_from_slice(c);
                <$t>::from_le_bytes(a)
            })
            .collect::<Vec<$t>>()
    }};
}

impl SpillReader {
    pub fn open(path: &Path) -> Result<SpillReader> {
        let f =
            File::open(path).with_context(|| format!("opening spill file {}", path.display()))?;
        Ok(SpillReader {
            input: BufReader::with_capacity(1 << 20, f),
        })
    }

    /// The next block, or `None` at the end of the run.
    pub fn next_block(&mut self, schema: &Schema) -> io::Result<Option<Batch>> {
        let mut head = [0u8; 8];
        match self.input.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let rows = u64::from_le_bytes(head) as usize;
        let r = &mut self.input;
        let mut columns = Vec::with_capacity(schema.len());
        for f in schema.fields() {
            let validity = get_validity(r, rows)?;
            columns.push(match f.data_type {
                DataType::Bool => ColumnData::Bool {
                    values: take(r, rows)?.into_iter().map(|b| b != 0).collect(),
                    validity,
                },
                DataType::Int64 => ColumnData::Int64 {
                    values: get_values!(r, rows, i64),
                    validity,
                },
                DataType::Timestamp => ColumnData::Timestamp {
                    values: get_values!(r, rows, i64),
                    validity,
                },
                DataType::Float64 => ColumnData::Float64 {
                    values: get_values!(r, rows, u64)
                        .into_iter()
                        .map(f64::from_bits)
                        .collect(),
                    validity,
                },
                DataType::Date => ColumnData::Date {
                    values: get_values!(r, rows, i32),
                    validity,
                },
                DataType::Utf8 => {
                    let offsets = get_values!(r, rows + 1, u64);
                    let len = offsets.last().copied().unwrap_or(0) as usize;
                    ColumnData::Utf8 {
                        offsets,
                        bytes: take(r, len)?,
                        validity,
                    }
                }
            });
        }
        let files = get_values!(r, rows, u32);
        let lines = get_values!(r, rows, u64);
        Ok(Some(Batch {
            columns,
            rows,
            origin: Origin::Rows { files, lines },
        }))
    }
}
