//! The resumable scan: visits candidate row ranges slice by slice, prunes row groups with zone
//! maps, evaluates filters vectorised, and feeds matches to one of three sinks: the first
//! `limit + 1` rows in row order, a bounded top-k heap for `order=`, or the aggregator.
//!
//! Invariants:
//! - `step` never examines more than `budget_rows` rows (at least one slice makes progress),
//!   and never more than `Limits::max_scan_rows` in total (then 422, unless a full page of
//!   rows in row order is already in hand, in which case the page ends there with a cursor).
//! - Pages in row order hold rows strictly after the cursor row; with `order=`, rows strictly
//!   after the cursor's (values, row) in the output order; ties are broken by row number, so
//!   following `next` visits every matching row exactly once.
//! - `offset=` skips that many matches of the output order: the sinks collect
//!   `offset + limit + 1` and the page drops the first `offset`.
//!
//! This module holds the scan's state and its public face; `step.rs` the loop over row groups
//! and slices, `order.rs` the sort keys and top-k heap entries, `page.rs` how a finished sink
//! becomes a page.

mod order;
mod page;
mod step;
#[cfg(test)]
mod tests;

use std::collections::BinaryHeap;
use std::ops::Range;
use std::sync::Arc;

use quarry_format::{DataType, QuarryFile};

use crate::aggregate::Aggregator;
use crate::cursor::Cursor;
use crate::error::QueryError;
use crate::eval::Compiled;
use crate::logic::CompiledCond;
use crate::output::OwnedValue;
use crate::plan::{candidate_ranges, clip};
use crate::query::{OrderBy, OrderTarget, Projection, RowsQuery};

use order::{cmp_multi, cmp_ordered, str_bytes, Entry, Key};

/// Rows per evaluated slice: keeps the mask in L1/L2 and bounds over-reading for small limits.
const SLICE_ROWS: u64 = 8192;
/// Word operations of filter work (string bytes tested x cost per byte) charged as one row of
/// the step's budget: a row of fixed-width filters costs about as much as this many.
const WORK_PER_ROW: u64 = 64;
/// Most filter work one slice may do: what `SLICE_ROWS` rows of fixed-width filters cost.
/// Slices over long strings (or wide LIKE patterns) get fewer rows, so a step's time follows
/// its budget whatever the data.
const MAX_SLICE_WORK: u64 = SLICE_ROWS * WORK_PER_ROW;
/// Budget charged for skipping a row group by its zone map.
const PRUNE_COST: u64 = 64;

/// Aggregate result rows (group keys then aggregates), in output order.
#[derive(Debug, Clone, Default)]
pub struct GroupRows {
    pub(crate) rows: Vec<Vec<OwnedValue>>,
}

impl GroupRows {
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// Row `i`'s values: group columns first, then aggregates, as in `output_columns()`.
    pub fn row(&self, i: usize) -> Option<&[OwnedValue]> {
        self.rows.get(i).map(Vec::as_slice)
    }
}

/// A finished page: row numbers to encode (row queries) or group rows (aggregates).
#[derive(Debug, Clone)]
pub struct Page {
    pub rows: Vec<u64>,
    pub next_cursor: Option<String>,
    pub total: Option<u64>,
    pub rows_examined: u64,
    /// Some for aggregate queries (then `rows` is empty).
    pub groups: Option<GroupRows>,
}

#[derive(Debug)]
enum Sink {
    /// Row order, or key order (`order=` on the key column: rows are sorted by key, so the
    /// page is the first rows visited, backwards for desc): rows collected so far (at most
    /// limit + 1). `key_order` is Some in the second case (it shapes the cursor).
    Rows {
        rows: Vec<u64>,
        key_order: Option<OrderBy>,
    },
    /// order=col,...: the best `offset + limit + 1` rows, worst on top.
    TopK {
        columns: Vec<usize>,
        dirs: Arc<[(bool, bool)]>,
        heap: BinaryHeap<Entry>,
        after: Option<(Vec<Key<'static>>, u64)>,
    },
    Aggregate(Box<Aggregator>),
}

/// A resumable scan of one query over one file version.
#[derive(Debug)]
pub struct Scan {
    filters: Vec<(usize, Compiled)>,
    /// `or=`/`and=` trees, ANDed after the plain filters.
    trees: Vec<CompiledCond>,
    ranges: Vec<Range<u64>>,
    range_idx: usize,
    /// Forward: the next row to examine. Backward: one past it (slices end here).
    pos: u64,
    /// Visit ranges and rows from the end (key order, descending).
    reverse: bool,
    /// Rows outside this are counted (for `total`) but not collected (cursor in row/key order).
    collect: Range<u64>,
    rows_examined: u64,
    max_scan_rows: u64,
    total: u64,
    count_exact: bool,
    limit: usize,
    /// `offset=`: matches of the output order dropped before the page.
    skip: usize,
    sink: Sink,
    done: bool,
    /// Set when the row budget ran out after a full page was in hand (row order).
    truncated: bool,
    error: Option<QueryError>,
    result: Option<Page>,
    // Zone-map verdicts for the current row group.
    zone_rg: Option<usize>,
    zone_skip: bool,
    active: Vec<bool>,
    mask: Vec<bool>,
    sel: Vec<u32>,
    /// Per filter: the current row group's dictionary verdicts (`eval::and_filter`).
    dict_verdicts: Vec<Option<Vec<bool>>>,
    /// Utf8 columns the sink reads per selected row (a top-k order column, string group keys
    /// and min/max): their bytes count as slice work.
    sink_strings: Vec<usize>,
    /// Heap bytes of the top-k heap's owned string keys (kept as entries come and go).
    topk_strings: usize,
    /// Most bytes this scan may hold (`set_memory_limit`); past it, 422 `too_much_memory`.
    memory_limit: usize,
}

impl Scan {
    /// Caps the heap memory this scan may hold ([`memory_bytes`](Self::memory_bytes)); a step
    /// that ends above it fails with 422 `too_much_memory`. Unlimited by default.
    pub fn set_memory_limit(&mut self, bytes: usize) {
        self.memory_limit = bytes;
    }

    /// Heap bytes the scan holds now and that grow with the data: collected row numbers, the
    /// top-k heap with its string keys, the aggregator's groups and states, and the slice
    /// buffers. Checked after every slice, so it can exceed the limit by what one slice adds.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let sink = match &self.sink {
            Sink::Rows { rows, .. } => rows.capacity() * size_of::<u64>(),
            Sink::TopK { heap, .. } => heap.capacity() * size_of::<Entry>() + self.topk_strings,
            Sink::Aggregate(agg) => agg.memory_bytes(),
        };
        sink + self.mask.capacity() + self.sel.capacity() * size_of::<u32>()
    }

    /// Plans the scan: key-index ranges, cursor position, the sink.
    pub fn new<B: AsRef<[u8]>>(query: &RowsQuery, file: &QuarryFile<B>) -> Scan {
        let filters: Vec<(usize, Compiled)> = query
            .filters
            .iter()
            .map(|f| (f.column, Compiled::new(&f.pred, query.fields[f.column].1)))
            .collect();
        let trees = query
            .trees
            .iter()
            .map(|t| CompiledCond::new(t, &query.fields))
            .collect();
        let same_file = file.version() == query.version;
        let mut ranges = if same_file {
            candidate_ranges(&query.filters, file)
        } else {
            Vec::new()
        };
        let mut collect = 0..u64::MAX;
        let mut reverse = false;
        let mut error = None;
        let n = file.num_rows();
        let bad_position = |r: u64| {
            QueryError::bad(
                "bad_cursor",
                "cursor",
                format!("malformed cursor: row {r} is past the end of the dataset ({n} rows)"),
            )
        };
        let sink = match &query.projection {
            Projection::Aggregate { group_by, aggs } => {
                let agg = Aggregator::new(group_by, aggs, &query.fields, file);
                Sink::Aggregate(Box::new(agg))
            }
            Projection::Columns(_) => match query.order.first().copied() {
                // The key column is non-null and strictly increasing by row: key order is row
                // order (or its reverse), and the page is the first `limit` rows visited.
                // Sort keys after a unique one never matter.
                Some(order)
                    if file.schema().key().is_some()
                        && order.target
                            == OrderTarget::Column(file.schema().key().unwrap_or(0)) =>
                {
                    reverse = order.desc;
                    match query.cursor {
                        Some(Cursor::Ordered(r)) if r >= n => error = Some(bad_position(r)),
                        Some(Cursor::Ordered(r)) => {
                            collect = if reverse {
                                0..r
                            } else {
                                r.saturating_add(1)..u64::MAX
                            };
                            if !query.count_exact {
                                clip(&mut ranges, &collect);
                            }
                        }
                        _ => {}
                    }
                    Sink::Rows {
                        rows: Vec::new(),
                        key_order: Some(order),
                    }
                }
                Some(_) => {
                    let columns: Vec<usize> = query
                        .order
                        .iter()
                        .map(|o| match o.target {
                            OrderTarget::Column(c) => c,
                            OrderTarget::Aggregate(_) => 0, // rejected by the parser
                        })
                        .collect();
                    let dirs: Arc<[(bool, bool)]> = query
                        .order
                        .iter()
                        .map(|o| (o.desc, o.nulls_first))
                        .collect();
                    let after = match query.cursor {
                        Some(Cursor::Ordered(r)) if r < n && same_file => Some((
                            columns
                                .iter()
                                .map(|&c| Key::of(file.value(r, c)).into_owned())
                                .collect(),
                            r,
                        )),
                        Some(Cursor::Ordered(r)) => {
                            error = Some(bad_position(r));
                            None
                        }
                        _ => None,
                    };
                    Sink::TopK {
                        columns,
                        dirs,
                        heap: BinaryHeap::new(),
                        after,
                    }
                }
                None => {
                    if let Some(Cursor::Row(r)) = query.cursor {
                        if r >= n {
                            error = Some(bad_position(r));
                        }
                        collect = r.saturating_add(1)..u64::MAX;
                        if !query.count_exact {
                            clip(&mut ranges, &collect);
                        }
                    }
                    Sink::Rows {
                        rows: Vec::new(),
                        key_order: None,
                    }
                }
            },
        };
        // Nothing to collect and nothing to count: skip the scan entirely.
        let nothing_to_do =
            query.limit == 0 && !query.count_exact && !matches!(sink, Sink::Aggregate(_));
        if reverse {
            ranges.reverse();
        }
        let pos = if reverse {
            u64::MAX
        } else {
            ranges.first().map_or(0, |r| r.start)
        };
        let sink_strings = match &sink {
            Sink::TopK { columns, .. } => columns
                .iter()
                .copied()
                .filter(|&c| query.fields.get(c).map(|f| f.1) == Some(DataType::Utf8))
                .collect(),
            Sink::Aggregate(agg) => agg.string_columns(),
            _ => Vec::new(),
        };
        Scan {
            filters,
            sink_strings,
            trees,
            ranges,
            range_idx: 0,
            pos,
            reverse,
            collect,
            rows_examined: 0,
            max_scan_rows: query.max_scan_rows,
            total: 0,
            count_exact: query.count_exact,
            limit: query.limit,
            skip: query.offset,
            sink,
            done: nothing_to_do,
            truncated: false,
            error,
            result: None,
            zone_rg: None,
            zone_skip: false,
            active: Vec::new(),
            mask: Vec::new(),
            sel: Vec::new(),
            topk_strings: 0,
            memory_limit: usize::MAX,
            dict_verdicts: Vec::new(),
        }
    }

    pub fn rows_examined(&self) -> u64 {
        self.rows_examined
    }

    /// The finished page. Call after `step` returned `Ok(true)`; earlier it returns what the
    /// scan has so far as an empty page.
    pub fn finish(mut self) -> Page {
        self.result.take().unwrap_or(Page {
            rows: Vec::new(),
            next_cursor: None,
            total: None,
            rows_examined: self.rows_examined,
            groups: None,
        })
    }
}
