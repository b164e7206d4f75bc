//! `Scan::step`: prune row groups by zone map, evaluate filters slice by slice within the budget,
//! and feed the matches to the sink.

use std::cmp::Ordering;

use quarry_format::QuarryFile;

use crate::error::{ErrorKind, QueryError};
use crate::eval::{and_filter, filter_work, plain_string_bytes, zone, Compiled, Zone};
use crate::query::RowsQuery;

use super::*;

impl Scan {
    /// Can the scan stop now with what it has (row order, page full, no count)?
    fn page_full(&self) -> bool {
        match &self.sink {
            Sink::Rows { rows, .. } => {
                !self.count_exact && rows.len() > self.limit.saturating_add(self.skip)
            }
            _ => false,
        }
    }

    /// Examines up to `budget_rows` more rows. Returns `Ok(true)` when the scan is complete
    /// (then call [`finish`](Self::finish)).
    ///
    /// # Errors
    /// 422 `too_much_work` past `max_scan_rows`; 400 for a cursor that points past the data;
    /// 422 `sum_overflow` when an int64 sum leaves the int64 range.
    pub fn step<B: AsRef<[u8]>>(
        &mut self,
        query: &RowsQuery,
        file: &QuarryFile<B>,
        budget_rows: u64,
    ) -> Result<bool, QueryError> {
        if file.version() != query.version {
            // A caller bug (the query was parsed for another version of the data): refuse
            // rather than read row numbers planned on another file.
            self.done = true;
            return Err(QueryError::new(
                ErrorKind::Conflict,
                "version_changed",
                format!(
                    "the query was planned for dataset version {} but is run on version {}; \
                     retry the request",
                    query.version,
                    file.version()
                ),
            ));
        }
        if let Some(e) = self.error.take() {
            self.done = true;
            return Err(e);
        }
        if self.result.is_some() {
            return Ok(true);
        }
        let mut budget = budget_rows.max(1);
        let groups = file.row_groups();
        while !self.done && budget > 0 {
            let Some(range) = self.ranges.get(self.range_idx).cloned() else {
                self.done = true;
                break;
            }; // Clamp into the range; move on when it is used up.
            let row = if self.reverse {
                self.pos = self.pos.min(range.end);
                if self.pos <= range.start {
                    self.range_idx += 1;
                    continue;
                }
                self.pos - 1
            } else {
                self.pos = self.pos.max(range.start);
                if self.pos >= range.end {
                    self.range_idx += 1;
                    continue;
                }
                self.pos
            };
            let (rg, _) = file.locate(row);
            let Some(meta) = groups.get(rg) else {
                self.done = true;
                break;
            };
            let rg_end = meta.first_row + meta.num_rows;
            if self.zone_rg != Some(rg) {
                self.enter_row_group(file, rg, meta.num_rows);
            }
            if self.zone_skip {
                self.pos = if self.reverse {
                    range.start.max(meta.first_row)
                } else {
                    range.end.min(rg_end)
                };
                budget = budget.saturating_sub(PRUNE_COST);
                continue;
            }
            let allowance = self.max_scan_rows.saturating_sub(self.rows_examined);
            if allowance == 0 {
                if matches!(&self.sink, Sink::Rows { rows, .. } if !self.count_exact && rows.len() >= self.limit.saturating_add(self.skip))
                {
                    self.truncated = true;
                    self.done = true;
                    break;
                }
                self.done = true;
                return Err(QueryError::new(
                    ErrorKind::TooMuchWork,
                    "too_much_work",
                    format!(
                        "this query would examine more than {} rows (the server's \
                         --max-scan-rows); add filters on the key column, narrow the ranges, \
                         or lower the limit",
                        self.max_scan_rows
                    ),
                ));
            }
            let step = SLICE_ROWS.min(budget).min(allowance);
            let (mut start, mut end) = if self.reverse {
                (
                    range
                        .start
                        .max(meta.first_row)
                        .max(self.pos.saturating_sub(step)),
                    self.pos,
                )
            } else {
                (
                    self.pos,
                    range.end.min(rg_end).min(self.pos.saturating_add(step)),
                )
            };
            // Bound the slice by work, not rows: shrink it (keeping its first row in scan
            // order) until its string filters fit MAX_SLICE_WORK, one row at least.
            let mut work = self.slice_work(file, rg, meta.first_row, start, end);
            while work > MAX_SLICE_WORK && end - start > 1 {
                let len = end - start;
                let keep = (u128::from(len) * u128::from(MAX_SLICE_WORK) / u128::from(work))
                    .clamp(1, u128::from(len / 2).max(1)) as u64;
                if self.reverse {
                    start = end - keep;
                } else {
                    end = start + keep;
                }
                work = self.slice_work(file, rg, meta.first_row, start, end);
            }
            self.eval_slice(file, rg, meta.first_row, start, end);
            let len = end - start;
            self.rows_examined += len;
            budget = budget.saturating_sub(len.max(work / WORK_PER_ROW));
            self.feed(file, rg, meta.first_row);
            let held = self.memory_bytes();
            if held > self.memory_limit {
                self.done = true;
                return Err(QueryError::new(
                    ErrorKind::TooMuchWork,
                    "too_much_memory",
                    format!(
                        "this query would hold more than {} bytes ({held} so far: groups, \
                         top-k rows or collected rows; the server's --max-request-memory); \
                         group by fewer or coarser columns, add filters, or lower the limit",
                        self.memory_limit
                    ),
                ));
            }
            if matches!(&self.sink, Sink::Aggregate(a) if a.too_many_groups()) {
                self.done = true;
                return Err(QueryError::new(
                    ErrorKind::TooMuchWork,
                    "too_many_groups",
                    format!(
                        "this aggregation would build more than {} groups; group by fewer or \
                         coarser columns, or add filters",
                        crate::aggregate::MAX_GROUPS
                    ),
                ));
            }
            self.pos = if self.reverse { start } else { end };
            if self.page_full() {
                self.done = true;
            }
        }
        if !self.done {
            return Ok(false);
        }
        self.result = Some(self.make_page(query)?);
        Ok(true)
    }

    fn enter_row_group<B: AsRef<[u8]>>(&mut self, file: &QuarryFile<B>, rg: usize, rows: u64) {
        self.zone_rg = Some(rg);
        self.zone_skip = false;
        self.active.clear();
        self.dict_verdicts.clear();
        for (col, pred) in &self.filters {
            match zone(pred, file.chunk_meta(rg, *col), rows) {
                Zone::None => {
                    self.zone_skip = true;
                    self.active.push(false);
                }
                Zone::All => self.active.push(false),
                Zone::Some => self.active.push(true),
            }
        }
    }

    /// `eval::filter_work` of the active filters on rows `start..end` of row group `rg`.
    fn slice_work<B: AsRef<[u8]>>(
        &self,
        file: &QuarryFile<B>,
        rg: usize,
        first_row: u64,
        start: u64,
        end: u64,
    ) -> u64 {
        let off = (start - first_row) as usize;
        let len = (end - start) as usize;
        let filters = self
            .filters
            .iter()
            .zip(&self.active)
            .filter(|((_, pred), &active)| active && matches!(pred, Compiled::Str(_)))
            .map(|((col, pred), _)| filter_work(&file.chunk(rg, *col), pred, off, len));
        let sink = self
            .sink_strings
            .iter()
            .map(|&col| plain_string_bytes(&file.chunk(rg, col), off, len));
        let trees = self.trees.iter().map(|t| t.work(file, rg, off, len));
        filters
            .chain(trees)
            .chain(sink)
            .fold(0u64, u64::saturating_add)
    }

    /// Evaluates the active filters on rows `start..end` (global) of row group `rg`; leaves
    /// the matching offsets (within the row group) in `self.sel`.
    fn eval_slice<B: AsRef<[u8]>>(
        &mut self,
        file: &QuarryFile<B>,
        rg: usize,
        first_row: u64,
        start: u64,
        end: u64,
    ) {
        let off = (start - first_row) as usize;
        let len = (end - start) as usize;
        self.mask.clear();
        self.mask.resize(len, true);
        self.dict_verdicts.resize(self.filters.len(), None);
        for (((col, pred), &active), verdicts) in self
            .filters
            .iter()
            .zip(&self.active)
            .zip(self.dict_verdicts.iter_mut())
        {
            if active {
                and_filter(&file.chunk(rg, *col), pred, off, &mut self.mask, verdicts);
            }
        }
        for tree in &self.trees {
            tree.and_into(file, rg, off, &mut self.mask);
        }
        self.sel.clear();
        self.sel.extend(
            self.mask
                .iter()
                .enumerate()
                .filter(|(_, &m)| m)
                .map(|(i, _)| (off + i) as u32),
        );
    }

    fn feed<B: AsRef<[u8]>>(&mut self, file: &QuarryFile<B>, rg: usize, first_row: u64) {
        self.total += self.sel.len() as u64;
        match &mut self.sink {
            Sink::Rows { rows, .. } => {
                let keep = self.limit.saturating_add(self.skip);
                let mut take = |off: &u32| {
                    let row = first_row + u64::from(*off);
                    if rows.len() <= keep && self.collect.contains(&row) {
                        rows.push(row);
                    }
                };
                if self.reverse {
                    self.sel.iter().rev().for_each(&mut take);
                } else {
                    self.sel.iter().for_each(&mut take);
                }
            }
            Sink::TopK {
                columns,
                dirs,
                heap,
                after,
            } => {
                let cap = self.limit.saturating_add(self.skip).saturating_add(1);
                let chunks: Vec<_> = columns.iter().map(|&c| file.chunk(rg, c)).collect();
                let mut keys: Vec<Key<'_>> = Vec::with_capacity(columns.len());
                for &off in &self.sel {
                    let row = first_row + u64::from(off);
                    keys.clear();
                    keys.extend(chunks.iter().map(|c| Key::of(c.get(off as usize))));
                    if let Some((ak, ar)) = after {
                        if cmp_multi(&keys, row, ak, *ar, dirs) != Ordering::Greater {
                            continue;
                        }
                    }
                    if heap.len() >= cap {
                        match heap.peek() {
                            Some(top)
                                if cmp_multi(&keys, row, &top.keys, top.row, dirs)
                                    == Ordering::Less =>
                            {
                                if let Some(popped) = heap.pop() {
                                    self.topk_strings -= str_bytes(&popped.keys);
                                }
                            }
                            _ => continue,
                        }
                    }
                    self.topk_strings += str_bytes(&keys);
                    heap.push(Entry {
                        keys: keys.drain(..).map(Key::into_owned).collect(),
                        row,
                        dirs: dirs.clone(),
                    });
                }
            }
            Sink::Aggregate(agg) => agg.update(file, rg, &self.sel),
        }
    }
}
