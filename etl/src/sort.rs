//! Keyed builds: rows sorted by (key, input order), duplicates resolved, within a memory
//! budget.
//!
//! Batches accumulate into an in-memory run. When the run outgrows the budget it is sorted
//! (a parallel sort of row references on `--threads` rayon threads) and spilled to a file as
//! sorted blocks. At the end, the spilled runs and the last in-memory run are merged k-way
//! (a binary heap over run heads; ties go to the earlier run, which holds earlier input).
//! Input order breaks ties everywhere, so "first"/"last" are well defined and the output does
//! not depend on whether or where runs were spilled.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use quarry_format::{ColumnData, DataType, Schema};
use rayon::prelude::*;

use crate::batch::{Batch, KeyVal};
use crate::cli::OnDuplicateKey;
use crate::columns::{gather, str_at};
use crate::error::bad_input;
use crate::plan::Planner;
use crate::publish::ScratchDir;
use crate::spill::{SpillReader, SpillWriter};

/// Most rows per spilled block (fewer when the budget is small).
const MAX_BLOCK_ROWS: usize = 16_384;
/// Most runs merged at once; more are first merged in groups (multi-pass merge), so that the
/// merge holds at most MERGE_FAN_IN blocks.
const MERGE_FAN_IN: usize = 64;
/// Bytes of the sort entry (16) and order entry (8) of one row, counted against the budget.
const REF_BYTES: usize = 24;

#[derive(Debug, Default, Clone, Copy)]
pub struct SortStats {
    pub spilled_runs: usize,
    pub spilled_bytes: u64,
    pub duplicates_dropped: u64,
}

#[derive(Debug)]
pub struct Sorter<'a> {
    schema: &'a Schema,
    key: usize,
    budget: usize,
    run: Vec<Arc<Batch>>,
    run_bytes: usize,
    scratch: &'a ScratchDir,
    spills: Vec<PathBuf>,
    pool: rayon::ThreadPool,
    block_rows: usize,
    pub stats: SortStats,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum OwnedKey {
    Int(i64),
    Str(Vec<u8>),
}

impl From<KeyVal<'_>> for OwnedKey {
    fn from(k: KeyVal<'_>) -> Self {
        match k {
            KeyVal::Int(i) => OwnedKey::Int(i),
            KeyVal::Str(s) => OwnedKey::Str(s.to_vec()),
        }
    }
}

fn prefix8(s: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = s.len().min(8);
    a[..n].copy_from_slice(&s[..n]);
    u64::from_be_bytes(a)
}

impl<'a> Sorter<'a> {
    pub fn new(
        schema: &'a Schema,
        key: usize,
        budget: usize,
        threads: usize,
        scratch: &'a ScratchDir,
    ) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("quarry-sort-{i}"))
            .build()
            .context("starting the sort thread pool")?;
        Ok(Sorter {
            schema,
            key,
            budget,
            run: vec![],
            run_bytes: 0,
            scratch,
            spills: vec![],
            block_rows: MAX_BLOCK_ROWS,
            pool,
            stats: SortStats::default(),
        })
    }

    pub fn push(&mut self, batch: Batch) -> Result<()> {
        if batch.rows == 0 {
            return Ok(());
        }
        self.run_bytes += batch.heap_bytes() + batch.rows * REF_BYTES;
        self.run.push(Arc::new(batch));
        if self.run_bytes > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// The in-memory run's rows as (batch, row), sorted by (key, batch, row).
    fn sorted_refs(&self) -> Vec<(u32, u32)> {
        let run = &self.run;
        let key = self.key;
        match self.schema.fields()[key].data_type {
            DataType::Int64 => {
                let mut v: Vec<(i64, u32, u32)> = Vec::new();
                for (bi, b) in run.iter().enumerate() {
                    if let ColumnData::Int64 { values, .. } = &b.columns[key] {
                        v.extend(
                            values
                                .iter()
                                .enumerate()
                                .map(|(r, k)| (*k, bi as u32, r as u32)),
                        );
                    }
                }
                self.pool.install(|| v.par_sort_unstable());
                v.into_iter().map(|(_, b, r)| (b, r)).collect()
            }
            _ => {
                let s = |b: u32, r: u32| {
                    str_at(&run[b as usize].columns[key], r as usize).unwrap_or_default()
                };
                let mut v: Vec<(u64, u32, u32)> = Vec::new();
                for (bi, b) in run.iter().enumerate() {
                    v.extend(
                        (0..b.rows).map(|r| (prefix8(s(bi as u32, r as u32)), bi as u32, r as u32)),
                    );
                }
                self.pool.install(|| {
                    v.par_sort_unstable_by(|x, y| {
                        x.0.cmp(&y.0)
                            .then_with(|| s(x.1, x.2).cmp(s(y.1, y.2)))
                            .then_with(|| (x.1, x.2).cmp(&(y.1, y.2)))
                    })
                });
                v.into_iter().map(|(_, b, r)| (b, r)).collect()
            }
        }
    }

    fn spill(&mut self) -> Result<()> {
        let rows: usize = self.run.iter().map(|b| b.rows).sum();
        // Blocks small enough that MERGE_FAN_IN runs' current blocks fit in the budget.
        let row_bytes = (self.run_bytes / rows.max(1)).max(1);
        self.block_rows = (self.budget / MERGE_FAN_IN / row_bytes).clamp(64, MAX_BLOCK_ROWS);
        let order = self.sorted_refs();
        let path = self
            .scratch
            .file(&format!("run-{:06}", self.stats.spilled_runs))?;
        let mut w = BlockWriter::new(self.schema, &path, self.block_rows)?;
        for (b, r) in order {
            w.push(&self.run[b as usize], r as usize)?;
        }
        w.finish()?;
        self.stats.spilled_bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        self.stats.spilled_runs += 1;
        self.spills.push(path);
        self.run.clear();
        self.run_bytes = 0;
        tracing::debug!(runs = self.stats.spilled_runs, "spilled a sorted run");
        Ok(())
    }

    fn open_spills(&self, paths: &[PathBuf]) -> Result<Vec<Source>> {
        let mut sources = Vec::with_capacity(paths.len());
        for p in paths {
            let mut s = Source::Disk {
                reader: SpillReader::open(p)?,
                block: None,
                row: 0,
                path: p.clone(),
            };
            s.advance(self.schema)?;
            sources.push(s);
        }
        Ok(sources)
    }

    /// While there are more than MERGE_FAN_IN runs, merges the first MERGE_FAN_IN (the earliest
    /// input) into one run in their place, keeping every row (duplicates are resolved only in
    /// the final merge).
    fn reduce_runs(&mut self) -> Result<()> {
        let mut pass = 0;
        while self.spills.len() > MERGE_FAN_IN {
            let group: Vec<PathBuf> = self.spills.drain(..MERGE_FAN_IN).collect();
            let path = self.scratch.file(&format!("merged-{pass:06}"))?;
            pass += 1;
            let mut sources = self.open_spills(&group)?;
            let mut w = BlockWriter::new(self.schema, &path, self.block_rows)?;
            merge(&mut sources, self.schema, self.key, &mut |b, r| {
                w.push(&b, r)
            })?;
            w.finish()?;
            drop(sources);
            for p in &group {
                let _ = std::fs::remove_file(p);
            }
            self.spills.insert(0, path);
        }
        Ok(())
    }

    /// Merges everything into `planner` in key order, applying the duplicate policy.
    pub fn finish(
        mut self,
        planner: &mut Planner,
        policy: OnDuplicateKey,
        names: &[String],
    ) -> Result<SortStats> {
        if !self.spills.is_empty() && !self.run.is_empty() {
            // Merging a spilled run with a large in-memory one would hold both: spill it too.
            self.spill()?;
        }
        self.reduce_runs()?;
        let mut sources = self.open_spills(&self.spills)?;
        if !self.run.is_empty() {
            let order = self.sorted_refs();
            sources.push(Source::Mem {
                batches: std::mem::take(&mut self.run),
                order,
                pos: 0,
            });
        }
        let mut merge = Merge {
            key: self.key,
            policy,
            names,
            schema: self.schema,
            pending: None,
            dropped: 0,
        };
        self::merge(&mut sources, self.schema, self.key, &mut |b, r| {
            merge.emit(b, r, planner)
        })?;
        if let Some((b, r)) = merge.pending.take() {
            planner.push_range(&b, r..r + 1)?;
        }
        self.stats.duplicates_dropped = merge.dropped;
        for p in &self.spills {
            let _ = std::fs::remove_file(p);
        }
        Ok(self.stats)
    }
}

/// K-way merge of sorted sources in (key, source index) order; `emit` gets every row.
fn merge(
    sources: &mut [Source],
    schema: &Schema,
    key: usize,
    emit: &mut dyn FnMut(Arc<Batch>, usize) -> Result<()>,
) -> Result<()> {
    if let [s] = sources {
        while let Some((b, r)) = s.head() {
            emit(b, r)?;
            s.advance(schema)?;
        }
        return Ok(());
    }
    let mut heap = BinaryHeap::new();
    for (i, s) in sources.iter().enumerate() {
        if let Some((b, r)) = s.head() {
            heap.push(Reverse((OwnedKey::from(b.key(key, r)), i)));
        }
    }
    while let Some(Reverse((_, i))) = heap.pop() {
        let s = &mut sources[i];
        let Some((b, r)) = s.head() else { continue };
        emit(b, r)?;
        s.advance(schema)?;
        if let Some((b, r)) = s.head() {
            heap.push(Reverse((OwnedKey::from(b.key(key, r)), i)));
        }
    }
    Ok(())
}

/// Writes rows (given one by one, in order) to a spill file in blocks.
struct BlockWriter<'s> {
    schema: &'s Schema,
    out: SpillWriter,
    path: PathBuf,
    block_rows: usize,
    segs: Vec<(Arc<Batch>, Range<usize>)>,
    files: Vec<u32>,
    lines: Vec<u64>,
}

impl<'s> BlockWriter<'s> {
    fn new(schema: &'s Schema, path: &std::path::Path, block_rows: usize) -> Result<Self> {
        Ok(BlockWriter {
            schema,
            out: SpillWriter::create(path)?,
            path: path.to_path_buf(),
            block_rows,
            segs: Vec::new(),
            files: Vec::new(),
            lines: Vec::new(),
        })
    }

    fn push(&mut self, b: &Arc<Batch>, r: usize) -> Result<()> {
        match self.segs.last_mut() {
            Some((lb, range)) if Arc::ptr_eq(lb, b) && range.end == r => range.end += 1,
            _ => self.segs.push((Arc::clone(b), r..r + 1)),
        }
        let (f, l) = b.location(r);
        self.files.push(f);
        self.lines.push(l);
        if self.files.len() >= self.block_rows {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        let columns: Vec<ColumnData> = self
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(c, f)| {
                let parts: Vec<_> = self
                    .segs
                    .iter()
                    .map(|(b, r)| (&b.columns[c], r.clone()))
                    .collect();
                gather(f.data_type, &parts)
            })
            .collect();
        self.out
            .write_block(&columns, &self.files, &self.lines)
            .with_context(|| format!("writing spill file {}", self.path.display()))?;
        self.segs.clear();
        self.files.clear();
        self.lines.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.out.finish()
    }
}

enum Source {
    Mem {
        batches: Vec<Arc<Batch>>,
        order: Vec<(u32, u32)>,
        pos: usize,
    },
    Disk {
        reader: SpillReader,
        block: Option<Arc<Batch>>,
        row: usize,
        path: PathBuf,
    },
}

impl Source {
    fn head(&self) -> Option<(Arc<Batch>, usize)> {
        match self {
            Source::Mem {
                batches,
                order,
                pos,
            } => order
                .get(*pos)
                .map(|&(b, r)| (Arc::clone(&batches[b as usize]), r as usize)),
            Source::Disk { block, row, .. } => block.as_ref().map(|b| (Arc::clone(b), *row)),
        }
    }

    fn advance(&mut self, schema: &Schema) -> Result<()> {
        match self {
            Source::Mem { pos, .. } => *pos += 1,
            Source::Disk {
                reader,
                block,
                row,
                path,
            } => {
                *row += 1;
                if block.as_ref().is_none_or(|b| *row >= b.rows) {
                    *row = 0;
                    *block = reader
                        .next_block(schema)
                        .with_context(|| format!("reading spill file {}", path.display()))?
                        .map(Arc::new);
                }
            }
        }
        Ok(())
    }
}

struct Merge<'a> {
    key: usize,
    policy: OnDuplicateKey,
    names: &'a [String],
    schema: &'a Schema,
    pending: Option<(Arc<Batch>, usize)>,
    dropped: u64,
}

impl Merge<'_> {
    fn emit(&mut self, b: Arc<Batch>, r: usize, planner: &mut Planner) -> Result<()> {
        let Some((pb, pr)) = self.pending.take() else {
            self.pending = Some((b, r));
            return Ok(());
        };
        if pb.key(self.key, pr) != b.key(self.key, r) {
            planner.push_range(&pb, pr..pr + 1)?;
            self.pending = Some((b, r));
            return Ok(());
        }
        match self.policy {
            OnDuplicateKey::Error => {
                let (f1, l1) = pb.location(pr);
                let (f2, l2) = b.location(r);
                let name = |f: u32| self.names.get(f as usize).map_or("?", |s| s.as_str());
                Err(bad_input(format!(
                    "duplicate key {} in key column {:?}: {}:{} and {}:{} (pass --on-duplicate-key first|last to keep one)",
                    pb.key(self.key, pr),
                    self.schema.fields()[self.key].name,
                    name(f1),
                    l1,
                    name(f2),
                    l2
                )))
            }
            OnDuplicateKey::First => {
                self.dropped += 1;
                self.pending = Some((pb, pr));
                Ok(())
            }
            OnDuplicateKey::Last => {
                self.dropped += 1;
                self.pending = Some((b, r));
                Ok(())
            }
        }
    }
}
