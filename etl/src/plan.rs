//! Row-group plans: which rows of which batches form row group `seq`. The collector (or the
//! merge) makes plans in output order; encode workers gather and encode them in parallel; the
//! writer thread writes the encoded groups in `seq` order.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::sync::Arc;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use quarry_format::{
    encode_row_group, EncodedRowGroup, FileWriter, Schema, WriteOptions, WriteSummary,
};

use crate::batch::Batch;
use crate::columns::gather;

/// A downstream stage has stopped (its own error is the one to report).
#[derive(Debug)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pipeline stopped")
    }
}
impl std::error::Error for Stopped {}

#[derive(Debug)]
pub struct Plan {
    pub seq: u64,
    pub segments: Vec<(Arc<Batch>, Range<usize>)>,
    pub rows: usize,
}

/// Cuts the ordered row stream into plans of exactly `row_group_rows` rows (the last may be
/// shorter). Row group boundaries depend only on the row stream, never on chunking or
/// threads, so the output is deterministic.
#[derive(Debug)]
pub struct Planner {
    row_group_rows: usize,
    cur: Vec<(Arc<Batch>, Range<usize>)>,
    cur_rows: usize,
    seq: u64,
    tx: Sender<Plan>,
    pub total_rows: u64,
}

impl Planner {
    pub fn new(row_group_rows: usize, tx: Sender<Plan>) -> Planner {
        Planner {
            row_group_rows,
            cur: Vec::new(),
            cur_rows: 0,
            seq: 0,
            tx,
            total_rows: 0,
        }
    }

    fn flush(&mut self) -> Result<()> {
        if self.cur_rows == 0 {
            return Ok(());
        }
        let plan = Plan {
            seq: self.seq,
            segments: std::mem::take(&mut self.cur),
            rows: self.cur_rows,
        };
        self.seq += 1;
        self.cur_rows = 0;
        self.tx.send(plan).map_err(|_| anyhow::Error::new(Stopped))
    }

    /// Appends rows `range` of `batch`.
    pub fn push_range(&mut self, batch: &Arc<Batch>, mut range: Range<usize>) -> Result<()> {
        while !range.is_empty() {
            let take = range.len().min(self.row_group_rows - self.cur_rows);
            let part = range.start..range.start + take;
            match self.cur.last_mut() {
                Some((b, r)) if Arc::ptr_eq(b, batch) && r.end == part.start => r.end = part.end,
                _ => self.cur.push((Arc::clone(batch), part)),
            }
            self.cur_rows += take;
            self.total_rows += take as u64;
            range.start += take;
            if self.cur_rows == self.row_group_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        Ok(self.seq)
    }
}

/// Encode worker: gathers each plan's columns and encodes them (checksums included).
pub fn encode_loop(
    schema: &Schema,
    options: &WriteOptions,
    rx: Receiver<Plan>,
    tx: Sender<(u64, EncodedRowGroup)>,
) -> Result<()> {
    for plan in rx {
        let columns = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(c, f)| {
                let parts: Vec<_> = plan
                    .segments
                    .iter()
                    .map(|(b, r)| (&b.columns[c], r.clone()))
                    .collect();
                gather(f.data_type, &parts)
            })
            .collect();
        drop(plan.segments);
        let encoded = encode_row_group(schema, columns, options)
            .with_context(|| format!("encoding row group {}", plan.seq))?;
        if tx.send((plan.seq, encoded)).is_err() {
            return Err(anyhow::Error::new(Stopped));
        }
    }
    Ok(())
}

/// Writer thread: writes encoded row groups in order, finishes the file and fsyncs it.
pub fn write_loop<W: Write>(
    out: W,
    schema: Schema,
    options: WriteOptions,
    rx: Receiver<(u64, EncodedRowGroup)>,
) -> Result<(W, WriteSummary)> {
    let mut writer = FileWriter::new(BufWriter::with_capacity(1 << 20, out), schema, options)
        .context("writing the file header")?;
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    for (seq, group) in rx {
        pending.insert(seq, group);
        while let Some(group) = pending.remove(&next) {
            writer
                .write_encoded(group)
                .with_context(|| format!("writing row group {next}"))?;
            next += 1;
        }
    }
    if !pending.is_empty() {
        return Err(anyhow::Error::new(Stopped));
    }
    let (buf, summary) = writer.finish().context("writing the file footer")?;
    let out = buf
        .into_inner()
        .map_err(|e| e.into_error())
        .context("flushing the output file")?;
    Ok((out, summary))
}
