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

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::sync::Arc;

use quarry_format::{DataType, QuarryFile, Value};

use crate::aggregate::Aggregator;
use crate::cursor::Cursor;
use crate::error::{ErrorKind, QueryError};
use crate::eval::{and_filter, cmp_f64, filter_work, plain_string_bytes, zone, Compiled, Zone};
use crate::logic::CompiledCond;
use crate::output::OwnedValue;
use crate::plan::{candidate_ranges, clip};
use crate::query::{OrderBy, OrderTarget, Projection, RowsQuery};

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

/// A sort key borrowed from the file or owned (kept in the heap across steps).
#[derive(Clone, Debug)]
enum Key<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
}

impl<'a> Key<'a> {
    fn of(v: Value<'a>) -> Key<'a> {
        match v {
            Value::Null => Key::Null,
            Value::Bool(b) => Key::Bool(b),
            Value::Int64(i) | Value::Timestamp(i) => Key::Int(i),
            Value::Date(d) => Key::Int(i64::from(d)),
            Value::Float64(f) => Key::Float(f),
            Value::Utf8(s) => Key::Str(Cow::Borrowed(s)),
        }
    }
    fn of_owned(v: &'a OwnedValue) -> Key<'a> {
        Key::of(v.as_value())
    }
    fn into_owned(self) -> Key<'static> {
        match self {
            Key::Null => Key::Null,
            Key::Bool(b) => Key::Bool(b),
            Key::Int(i) => Key::Int(i),
            Key::Float(f) => Key::Float(f),
            Key::Str(s) => Key::Str(Cow::Owned(s.into_owned())),
        }
    }
}

/// Compares two non-null keys of the same column.
fn cmp_values(a: &Key<'_>, b: &Key<'_>) -> Ordering {
    match (a, b) {
        (Key::Bool(x), Key::Bool(y)) => x.cmp(y),
        (Key::Int(x), Key::Int(y)) => x.cmp(y),
        (Key::Float(x), Key::Float(y)) => cmp_f64(*x, *y),
        (Key::Str(x), Key::Str(y)) => x.as_ref().cmp(y.as_ref()),
        _ => Ordering::Equal,
    }
}

/// Output order of (key, tiebreak) pairs under `order`; the tiebreak (row number or group
/// index) always ascends.
fn cmp_ordered(
    a: &Key<'_>,
    ta: u64,
    b: &Key<'_>,
    tb: u64,
    desc: bool,
    nulls_first: bool,
) -> Ordering {
    let o = match (matches!(a, Key::Null), matches!(b, Key::Null)) {
        (true, true) => Ordering::Equal,
        (true, false) => {
            if nulls_first {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (false, true) => {
            if nulls_first {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (false, false) => {
            let o = cmp_values(a, b);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    };
    o.then(ta.cmp(&tb))
}

/// Output order of (keys, row) pairs under `dirs` ((desc, nulls_first) per sort key); ties
/// are broken by row number, ascending.
fn cmp_multi(a: &[Key<'_>], ra: u64, b: &[Key<'_>], rb: u64, dirs: &[(bool, bool)]) -> Ordering {
    for ((x, y), &(desc, nulls_first)) in a.iter().zip(b).zip(dirs) {
        let o = cmp_ordered(x, 0, y, 0, desc, nulls_first);
        if o != Ordering::Equal {
            return o;
        }
    }
    ra.cmp(&rb)
}

/// Bytes of the strings among `keys` (owned in the top-k heap: `Scan::memory_bytes`).
fn str_bytes(keys: &[Key<'_>]) -> usize {
    keys.iter()
        .map(|k| match k {
            Key::Str(s) => s.len(),
            _ => 0,
        })
        .sum()
}

#[derive(Debug)]
struct Entry {
    keys: Box<[Key<'static>]>,
    row: u64,
    dirs: Arc<[(bool, bool)]>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_multi(&self.keys, self.row, &other.keys, other.row, &self.dirs)
    }
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

    fn make_page(&mut self, query: &RowsQuery) -> Result<Page, QueryError> {
        let total = self.count_exact;
        let sink = std::mem::replace(
            &mut self.sink,
            Sink::Rows {
                rows: Vec::new(),
                key_order: None,
            },
        );
        let mut page = Page {
            rows: Vec::new(),
            next_cursor: None,
            total: None,
            rows_examined: self.rows_examined,
            groups: None,
        };
        match sink {
            Sink::Rows {
                mut rows,
                key_order,
            } => {
                rows.drain(..self.skip.min(rows.len()));
                if rows.len() > self.limit || (self.truncated && self.limit > 0) {
                    rows.truncate(self.limit);
                    page.next_cursor = rows.last().map(|&r| match &key_order {
                        Some(_) => Cursor::Ordered(r).encode(query.version, &query.canonical),
                        None => Cursor::Row(r).encode(query.version, &query.canonical),
                    });
                }
                page.rows = rows;
                page.total = total.then_some(self.total);
            }
            Sink::TopK { heap, .. } => {
                let mut rows: Vec<Entry> = heap.into_sorted_vec();
                rows.drain(..self.skip.min(rows.len()));
                if rows.len() > self.limit {
                    rows.truncate(self.limit);
                    page.next_cursor = rows
                        .last()
                        .map(|e| Cursor::Ordered(e.row).encode(query.version, &query.canonical));
                }
                page.rows = rows.into_iter().map(|e| e.row).collect();
                page.total = total.then_some(self.total);
            }
            Sink::Aggregate(agg) => {
                let ngroups = agg.num_groups();
                let skip = match query.cursor {
                    Some(Cursor::Offset(o)) => usize::try_from(o).unwrap_or(usize::MAX),
                    _ => self.skip,
                };
                // One more than the page, to know whether there is a next one.
                let ids = page_groups(
                    &agg,
                    query,
                    skip.saturating_add(self.limit).saturating_add(1),
                )?;
                let rest = ids
                    .into_iter()
                    .skip(skip)
                    .map(|g| agg.row(g as usize))
                    .collect::<Result<Vec<_>, _>>()?;
                let more = rest.len() > self.limit;
                let page_rows: Vec<Vec<OwnedValue>> = rest.into_iter().take(self.limit).collect();
                if more && self.limit > 0 {
                    let next = skip.saturating_add(page_rows.len()) as u64;
                    page.next_cursor =
                        Some(Cursor::Offset(next).encode(query.version, &query.canonical));
                }
                page.groups = Some(GroupRows { rows: page_rows });
                page.total = total.then_some(ngroups as u64);
            }
        }
        Ok(page)
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

/// The ids of the first `keep` groups in output order. The output order is `order=` (if
/// given), with ties broken by the group columns ascending (nulls last), or just the group
/// columns. Groups are distinct, so the order is total and the page is deterministic for a given
/// dataset version. Ids are selected (`select_nth_unstable`) before the few kept are sorted, and
/// only the page's rows are built afterwards, so many groups cost O(groups) on the loop, not a
/// sort and a row each.
fn page_groups(agg: &Aggregator, query: &RowsQuery, keep: usize) -> Result<Vec<u32>, QueryError> {
    let n = agg.num_groups();
    let ngroup = agg.num_group_cols();
    let Projection::Aggregate { group_by, .. } = &query.projection else {
        return Ok((0..n as u32).take(keep).collect());
    };
    // Every aggregate of every group is computed once, so an overflow in any group is reported
    // whatever the page; the values of aggregates named in `order=` are kept for the
    // comparisons (`order_values[a]`, empty for the others).
    let mut order_values: Vec<Vec<OwnedValue>> = vec![Vec::new(); agg.num_aggs()];
    let ordered_by = |a: usize| {
        query
            .order
            .iter()
            .any(|o| o.target == OrderTarget::Aggregate(a))
    };
    for g in 0..n {
        for (a, values) in order_values.iter_mut().enumerate() {
            let v = agg.agg_value(g, a)?;
            if ordered_by(a) {
                values.push(v);
            }
        }
    }
    // Sort keys: a group column's index among the group columns, or an aggregate's index.
    let keys: Vec<(Result<usize, usize>, bool, bool)> = query
        .order
        .iter()
        .map(|order| {
            let target = match order.target {
                OrderTarget::Column(c) => Ok(group_by.iter().position(|&g| g == c).unwrap_or(0)),
                OrderTarget::Aggregate(a) => Err(a),
            };
            (target, order.desc, order.nulls_first)
        })
        .collect();
    let group_key = |g: u32, j: usize| Key::of(agg.group_value(g as usize, j));
    let cmp = |&x: &u32, &y: &u32| {
        for &(target, desc, nulls_first) in &keys {
            let o = match target {
                Ok(j) => cmp_ordered(&group_key(x, j), 0, &group_key(y, j), 0, desc, nulls_first),
                Err(a) => cmp_ordered(
                    &Key::of_owned(&order_values[a][x as usize]),
                    0,
                    &Key::of_owned(&order_values[a][y as usize]),
                    0,
                    desc,
                    nulls_first,
                ),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        (0..ngroup)
            .map(|j| cmp_ordered(&group_key(x, j), 0, &group_key(y, j), 0, false, false))
            .find(|&o| o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    };
    let mut ids: Vec<u32> = (0..n as u32).collect();
    if keep < ids.len() {
        if keep == 0 {
            return Ok(Vec::new());
        }
        // The `keep` first groups in output order end up in front, in some order.
        ids.select_nth_unstable_by(keep - 1, cmp);
        ids.truncate(keep);
    }
    ids.sort_unstable_by(cmp);
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use quarry_format::{AlignedBuf, ColumnData, DataType, Field, FileWriter, Schema};

    use super::*;
    use crate::{parse_rows_query, Limits};

    fn file(rows: i64) -> QuarryFile<AlignedBuf> {
        let schema = Schema::new(
            vec![Field {
                name: "id".into(),
                data_type: DataType::Int64,
                nullable: false,
            }],
            Some(0),
        )
        .unwrap();
        let mut w = FileWriter::new(Vec::new(), schema, Default::default()).unwrap();
        w.write_row_group(vec![ColumnData::Int64 {
            values: (0..rows).collect(),
            validity: None,
        }])
        .unwrap();
        let (bytes, _) = w.finish().unwrap();
        QuarryFile::open(AlignedBuf::from_slice(&bytes)).unwrap()
    }

    fn scan(f: &QuarryFile<AlignedBuf>, q: &str) -> Result<Page, QueryError> {
        let q = parse_rows_query(q, f.schema(), f.version(), &Limits::default()).unwrap();
        let mut s = Scan::new(&q, f);
        while !s.step(&q, f, 10)? {}
        Ok(s.finish())
    }

    #[test]
    fn too_many_groups_is_a_422() {
        let f = file(crate::aggregate::MAX_GROUPS as i64 + 1);
        let e = scan(&f, "select=id,count()").unwrap_err();
        assert_eq!((e.status(), e.code), (422, "too_many_groups"));
        let f = file(crate::aggregate::MAX_GROUPS as i64);
        let page = scan(&f, "select=id,count()&limit=1000").unwrap();
        assert_eq!(page.groups.unwrap().len(), crate::aggregate::MAX_GROUPS);
    }

    /// 2,000 rows of distinct 4,000-byte strings (plain, not dictionary-encoded).
    fn long_strings() -> QuarryFile<AlignedBuf> {
        let f = |name: &str, data_type| Field {
            name: name.into(),
            data_type,
            nullable: false,
        };
        let schema = Schema::new(
            vec![f("id", DataType::Int64), f("s", DataType::Utf8)],
            Some(0),
        )
        .unwrap();
        let (mut offsets, mut bytes) = (vec![0u64], Vec::new());
        for i in 0..2000 {
            bytes.extend_from_slice(format!("{i:06}").as_bytes());
            bytes.resize(bytes.len() + 3994, b'a');
            offsets.push(bytes.len() as u64);
        }
        let mut w = FileWriter::new(Vec::new(), schema, Default::default()).unwrap();
        w.write_row_group(vec![
            ColumnData::Int64 {
                values: (0..2000).collect(),
                validity: None,
            },
            ColumnData::Utf8 {
                offsets,
                bytes,
                validity: None,
            },
        ])
        .unwrap();
        let (bytes, _) = w.finish().unwrap();
        QuarryFile::open(AlignedBuf::from_slice(&bytes)).unwrap()
    }

    #[test]
    fn slices_over_long_strings_are_bounded_by_work_not_rows() {
        let f = long_strings();
        let wide = format!("*{}_b", "a".repeat(500));
        for (q, max_rows) in [
            // A plain comparison: 4,000 bytes a row at cost 1.
            ("s=gt.x".to_string(), MAX_SLICE_WORK / 4000 + 1),
            // A 9-word NFA: 10 word operations a byte.
            (format!("s=like.{wide}"), MAX_SLICE_WORK / 40_000 + 1),
            // Top-k on the strings reads every selected row's bytes.
            (
                "order=s.desc&limit=5".to_string(),
                MAX_SLICE_WORK / 4000 + 1,
            ),
        ] {
            let q = parse_rows_query(&q, f.schema(), f.version(), &Limits::default()).unwrap();
            let mut s = Scan::new(&q, &f);
            let mut steps = 0;
            loop {
                let before = s.rows_examined();
                let done = s.step(&q, &f, 4096).unwrap();
                let examined = s.rows_examined() - before;
                assert!(
                    examined <= max_rows,
                    "{q:?}: one step examined {examined} rows (work bound {max_rows})"
                );
                steps += 1;
                if done {
                    break;
                }
            }
            assert_eq!(s.rows_examined(), 2000);
            assert!(steps > 2, "{steps} steps");
            // Still exact.
            let page = s.finish();
            if !q.order.is_empty() {
                assert_eq!(page.rows, vec![1999, 1998, 1997, 1996, 1995]);
            } else {
                assert!(page.rows.is_empty());
            }
        }
    }

    #[test]
    fn arrow_batches_of_long_strings_stay_near_the_frame_size() {
        let f = long_strings();
        let q =
            parse_rows_query("limit=2000", f.schema(), f.version(), &Limits::default()).unwrap();
        let mut s = Scan::new(&q, &f);
        while !s.step(&q, &f, 4096).unwrap() {}
        let mut enc = crate::Encoder::new(&q, s.finish(), crate::OutputFormat::ArrowStream);
        let (mut frames, mut total) = (0, 0);
        while let Some(frame) = enc.step(&q, &f, 64 << 10) {
            // One batch of about 64 KiB (a row is 4 KB): never the whole page at once.
            assert!(frame.len() < 200 << 10, "a {} byte frame", frame.len());
            frames += 1;
            total += frame.len();
        }
        assert!(
            total > 2000 * 4000 && frames > 50,
            "{frames} frames, {total} bytes"
        );
    }

    #[test]
    fn memory_past_the_limit_is_a_422() {
        let f = file(60);
        let q = parse_rows_query(
            "select=id,count()",
            f.schema(),
            f.version(),
            &Limits::default(),
        )
        .unwrap();
        let run = |limit: usize| -> Result<usize, QueryError> {
            let mut s = Scan::new(&q, &f);
            s.set_memory_limit(limit);
            let mut peak = 0;
            while !s.step(&q, &f, 10)? {
                peak = peak.max(s.memory_bytes());
            }
            Ok(peak)
        };
        let used = run(usize::MAX).unwrap();
        assert!(
            used > 60 * 8,
            "60 groups hold their keys and counts: {used}"
        );
        let e = run(used / 2).unwrap_err();
        assert_eq!((e.status(), e.code), (422, "too_much_memory"));
        assert!(e.message.contains("--max-request-memory"), "{}", e.message);
    }

    #[test]
    fn step_makes_progress_with_a_zero_budget() {
        let f = file(10);
        let q = parse_rows_query("", f.schema(), f.version(), &Limits::default()).unwrap();
        let mut s = Scan::new(&q, &f);
        let mut steps = 0;
        while !s.step(&q, &f, 0).unwrap() {
            steps += 1;
            assert!(steps <= 20);
        }
        assert_eq!(s.finish().rows, (0..10).collect::<Vec<u64>>());
    }

    #[test]
    fn huge_budgets_do_not_overflow() {
        let f = file(10);
        let limits = Limits {
            max_scan_rows: u64::MAX,
            ..Limits::default()
        };
        let q = parse_rows_query("id=gte.3", f.schema(), f.version(), &limits).unwrap();
        let mut s = Scan::new(&q, &f);
        assert!(s.step(&q, &f, u64::MAX).unwrap());
        assert_eq!(s.finish().rows, (3..10).collect::<Vec<u64>>());
    }
}
