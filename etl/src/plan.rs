//! Row-group plans: which rows of which batches form row group `seq`. The collector (or the
//! merge) makes plans in output order; encode workers gather and encode them in parallel; the
//! writer thread writes the encoded groups in `seq` order.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use quarry_format::{
    encode_row_group, ColumnData, EncodedRowGroup, FileWriter, Schema, WriteOptions, WriteSummary,
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
    /// Bytes charged to the [`InFlight`] budget until the writer has written the group.
    pub charge: usize,
}

/// Column data bytes of rows `range` of a batch: value widths, string bytes, offsets and
/// validity. Depends only on the rows, never on buffer capacities, so row-group cuts made from
/// it are deterministic.
pub fn range_bytes(batch: &Batch, range: Range<usize>) -> usize {
    let rows = range.len();
    batch
        .columns
        .iter()
        .map(|c| match c {
            ColumnData::Bool { .. } => 2 * rows,
            ColumnData::Date { .. } => 5 * rows,
            ColumnData::Int64 { .. }
            | ColumnData::Float64 { .. }
            | ColumnData::Timestamp { .. } => 9 * rows,
            ColumnData::Utf8 { offsets, .. } => {
                let b = offsets.get(range.end).zip(offsets.get(range.start));
                b.map_or(0, |(e, s)| e.saturating_sub(*s) as usize) + 9 * rows
            }
        })
        .sum()
}

/// Bytes of row groups between the planner and the written file (planned, gathered, encoded):
/// the planner waits while a new group would exceed the budget; the writer gives a group's
/// charge back once it is written. Closed when the writer stops, so nobody waits forever.
#[derive(Debug)]
pub struct InFlight {
    state: Mutex<(usize, bool)>,
    freed: Condvar,
    budget: usize,
}

impl InFlight {
    pub fn new(budget: usize) -> Arc<InFlight> {
        Arc::new(InFlight {
            state: Mutex::new((0, false)),
            freed: Condvar::new(),
            budget,
        })
    }

    /// Waits until `charge` fits (a group alone always fits); `Err(Stopped)` once closed.
    fn acquire(&self, charge: usize) -> Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if st.1 {
                return Err(anyhow::Error::new(Stopped));
            }
            if st.0 == 0 || st.0 + charge <= self.budget {
                st.0 += charge;
                return Ok(());
            }
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn release(&self, charge: usize) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 = st.0.saturating_sub(charge);
        self.freed.notify_all();
    }

    /// No more releases will come: wake and fail every waiter.
    pub fn close(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.1 = true;
        self.freed.notify_all();
    }
}

/// Closes an [`InFlight`] when dropped (the writer thread's exit, however it exits).
#[derive(Debug)]
pub struct CloseOnDrop(pub Arc<InFlight>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Cuts the ordered row stream into plans of `row_group_rows` rows, or fewer when their
/// column data ([`range_bytes`]) would pass `max_group_bytes` (at least one row; the last plan
/// may be shorter). Row group boundaries depend only on the row stream and the options, never
/// on chunking or threads, so the output is deterministic.
#[derive(Debug)]
pub struct Planner {
    row_group_rows: usize,
    max_group_bytes: usize,
    cur: Vec<(Arc<Batch>, Range<usize>)>,
    cur_rows: usize,
    cur_bytes: usize,
    seq: u64,
    tx: Sender<Plan>,
    in_flight: Arc<InFlight>,
    pub total_rows: u64,
}

/// What a planned group is charged while in flight: its rows in the batches, the gathered
/// copy and the encoded group.
const CHARGE_FACTOR: usize = 3;

impl Planner {
    pub fn new(
        row_group_rows: usize,
        max_group_bytes: usize,
        tx: Sender<Plan>,
        in_flight: Arc<InFlight>,
    ) -> Planner {
        Planner {
            row_group_rows,
            max_group_bytes: max_group_bytes.max(1),
            cur: Vec::new(),
            cur_rows: 0,
            cur_bytes: 0,
            seq: 0,
            tx,
            in_flight,
            total_rows: 0,
        }
    }

    fn flush(&mut self) -> Result<()> {
        if self.cur_rows == 0 {
            return Ok(());
        }
        let charge = self.cur_bytes * CHARGE_FACTOR;
        self.in_flight.acquire(charge)?;
        let plan = Plan {
            seq: self.seq,
            segments: std::mem::take(&mut self.cur),
            rows: self.cur_rows,
            charge,
        };
        self.seq += 1;
        self.cur_rows = 0;
        self.cur_bytes = 0;
        self.tx.send(plan).map_err(|_| anyhow::Error::new(Stopped))
    }

    /// Appends rows `range` of `batch`.
    pub fn push_range(&mut self, batch: &Arc<Batch>, mut range: Range<usize>) -> Result<()> {
        while !range.is_empty() {
            let mut take = range.len().min(self.row_group_rows - self.cur_rows);
            let room = self.max_group_bytes.saturating_sub(self.cur_bytes);
            if range_bytes(batch, range.start..range.start + take) > room {
                // The most rows that fit (bytes grow with rows), at least one per group.
                let (mut lo, mut hi) = (0, take);
                while lo < hi {
                    let mid = (lo + hi).div_ceil(2);
                    if range_bytes(batch, range.start..range.start + mid) <= room {
                        lo = mid;
                    } else {
                        hi = mid - 1;
                    }
                }
                take = if lo == 0 && self.cur_rows == 0 { 1 } else { lo };
                if take == 0 {
                    self.flush()?;
                    continue;
                }
            }
            let part = range.start..range.start + take;
            self.cur_bytes += range_bytes(batch, part.clone());
            match self.cur.last_mut() {
                Some((b, r)) if Arc::ptr_eq(b, batch) && r.end == part.start => r.end = part.end,
                _ => self.cur.push((Arc::clone(batch), part)),
            }
            self.cur_rows += take;
            self.total_rows += take as u64;
            range.start += take;
            if self.cur_rows == self.row_group_rows || self.cur_bytes >= self.max_group_bytes {
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
    tx: Sender<(u64, EncodedRowGroup, usize)>,
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
        if tx.send((plan.seq, encoded, plan.charge)).is_err() {
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
    rx: Receiver<(u64, EncodedRowGroup, usize)>,
    in_flight: Arc<InFlight>,
) -> Result<(W, WriteSummary)> {
    let _close = CloseOnDrop(Arc::clone(&in_flight));
    let mut writer = FileWriter::new(BufWriter::with_capacity(1 << 20, out), schema, options)
        .context("writing the file header")?;
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    for (seq, group, charge) in rx {
        pending.insert(seq, (group, charge));
        while let Some((group, charge)) = pending.remove(&next) {
            writer
                .write_encoded(group)
                .with_context(|| format!("writing row group {next}"))?;
            in_flight.release(charge);
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
