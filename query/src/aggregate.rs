//! Group-by aggregation over selected rows, one slice of one row group at a time.
//!
//! Each group column contributes one u64 word to a group key (int bits, normalised float bits,
//! bool, or a global id interned from the string), plus one word of null flags. Groups are
//! numbered in first-seen order; aggregate states are columnar vectors indexed by group id.
//!
//! Fast path: when every group column has a small per-row-group domain (dictionary codes of a
//! string chunk, or bools) a row's local composite code indexes a per-row-group table that maps
//! to the global group id, so the hash map is consulted once per distinct local combination,
//! not once per row. Otherwise each row looks its key up in a hash table of group ids whose keys
//! live in one flat vector (no allocation per group).
//!
//! int64 sums accumulate in i128 (no overflow below 2^64 rows); a final sum outside i64 is a
//! 422 `sum_overflow` error rather than a silently rounded float. avg is always float64.

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

use quarry_format::{Bitmap, ColumnChunk, DataType, QuarryFile, Stat, Value};

use crate::error::{ErrorKind, QueryError};
use crate::eval::cmp_f64;
use crate::output::OwnedValue;
use crate::query::{AggFunc, AggSpec};

/// Hash of a group key's words for the group table: multiply and fold (the splitmix64 steps),
/// so every word reaches the low bits the table indexes by. The words are data values and dense
/// interned string ids, not attacker-chosen strings.
#[inline]
fn hash_key(words: &[u64]) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for &w in words {
        h = (h ^ w).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 31;
    }
    h
}

/// At most this many group columns (one null-flag word).
pub(crate) const MAX_GROUP_COLUMNS: usize = 64;
/// Most groups one query may build (memory bound: ~100 bytes a group plus its states).
/// (Small in unit tests so the bound itself is tested.)
pub(crate) const MAX_GROUPS: usize = if cfg!(test) { 64 } else { 1 << 20 };
/// Largest per-row-group composite domain for the table fast path.
const LOCAL_TABLE_MAX: usize = 1 << 16;
const UNSET: u32 = u32::MAX;
/// Largest file-wide value range of a single integer group column for the direct index
/// (4 bytes an entry: 16 MiB, allocated zeroed, so untouched pages cost nothing).
const DIRECT_MAX: u64 = 1 << 22;

/// Group ids of a single integer-like group column (int64, date, timestamp) indexed by value:
/// `ids[0]` is the null group, `ids[1 + v - min]` the group of `v`, each stored as id + 1 (0:
/// not seen yet). The range comes from the chunks' statistics; a value outside it (statistics
/// of an unverified file can lie) takes the hash path.
#[derive(Debug)]
struct Direct {
    min: i64,
    ids: Vec<u32>,
}

impl Direct {
    /// For group column `col` of `file`, when every chunk has statistics and the range is small.
    fn for_column<B: AsRef<[u8]>>(file: &QuarryFile<B>, col: usize) -> Option<Direct> {
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for rg in 0..file.row_groups().len() {
            let meta = file.chunk_meta(rg, col);
            match (&meta.min, &meta.max) {
                (Some(Stat::Int(a)), Some(Stat::Int(b))) => {
                    lo = lo.min(*a);
                    hi = hi.max(*b);
                }
                // A chunk of nulls only has no statistics.
                (None, None) if meta.null_count == meta.num_rows => {}
                _ => return None,
            }
        }
        let span = if lo <= hi { hi.abs_diff(lo) + 1 } else { 0 };
        (span <= DIRECT_MAX).then(|| Direct {
            min: if lo <= hi { lo } else { 0 },
            ids: vec![0; span as usize + 1],
        })
    }

    fn slot(&self, v: Option<i64>) -> Option<usize> {
        match v {
            None => Some(0),
            Some(v) => usize::try_from(v.checked_sub(self.min)?)
                .ok()
                .map(|d| d + 1)
                .filter(|&s| s < self.ids.len()),
        }
    }
}

/// Distinct strings of one group column, numbered densely in first-seen order. The strings
/// live end to end in one buffer (two allocations, however many groups; dropped at once) and
/// each one's hash is kept, so growing the table never hashes a string again.
#[derive(Debug, Default)]
struct Interner {
    table: HashTable<u32>,
    hashes: Vec<u64>,
    bytes: String,
    /// End of string `i` in `bytes`; it starts where string `i - 1` ends.
    ends: Vec<usize>,
}

impl Interner {
    fn get(&self, id: usize) -> Option<&str> {
        let end = *self.ends.get(id)?;
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        self.bytes.get(start..end)
    }

    fn intern(&mut self, s: &str) -> u32 {
        let hash = xxh3_64(s.as_bytes());
        let found = self
            .table
            .find(hash, |&id| self.get(id as usize) == Some(s));
        if let Some(&id) = found {
            return id;
        }
        let id = self.ends.len() as u32;
        self.bytes.push_str(s);
        self.ends.push(self.bytes.len());
        self.hashes.push(hash);
        let hashes = &self.hashes;
        self.table
            .insert_unique(hash, id, |&id| hashes[id as usize]);
        id
    }
}

/// Accumulators, shared between aggregates that need the same one (`x.sum()` and `x.avg()`
/// share one sum; `count(x)`, `sum(x)` and `avg(x)` derive their row counts from the group's
/// row count minus x's null count, so a column without nulls costs one loop, not two).
#[derive(Debug, PartialEq)]
enum Kind {
    Nulls,
    Sum,
    Min,
    Max,
}

#[derive(Debug)]
enum State {
    /// Null rows of the column per group (only counted for chunks that have nulls).
    Nulls {
        counts: Vec<u64>,
    },
    SumInt {
        sums: Vec<i128>,
    },
    SumFloat {
        sums: Vec<f64>,
    },
    /// int64, date, timestamp, bool (as 0/1).
    MinMaxInt {
        v: Vec<i64>,
        has: Vec<bool>,
        max: bool,
    },
    MinMaxFloat {
        v: Vec<f64>,
        has: Vec<bool>,
        max: bool,
    },
    MinMaxStr {
        v: Vec<Option<Box<str>>>,
        max: bool,
    },
}

impl State {
    fn grow(&mut self, n: usize) {
        match self {
            State::Nulls { counts } => counts.resize(n, 0),
            State::SumInt { sums } => sums.resize(n, 0),
            State::SumFloat { sums } => sums.resize(n, 0.0),
            State::MinMaxInt { v, has, .. } => {
                v.resize(n, 0);
                has.resize(n, false);
            }
            State::MinMaxFloat { v, has, .. } => {
                v.resize(n, 0.0);
                has.resize(n, false);
            }
            State::MinMaxStr { v, .. } => v.resize(n, None),
        }
    }
}

/// How an output column is read from the accumulators (indexes into `states`).
#[derive(Debug, Clone, Copy)]
enum Output {
    Count,
    CountCol { nulls: usize },
    Sum { sum: usize, nulls: usize },
    Avg { sum: usize, nulls: usize },
    MinMax { state: usize },
}

#[derive(Debug)]
pub(crate) struct Aggregator {
    group_cols: Vec<(usize, DataType)>,
    aggs: Vec<(AggSpec, Option<DataType>, Output)>,
    /// (column, kind, accumulator), deduplicated.
    states: Vec<(usize, Kind, State)>,
    /// Rows per group.
    rows: Vec<u64>,
    /// Group ids, found by their key words in `keys` (no allocation per group).
    table: HashTable<u32>,
    /// Encoded key of each group, `key_width` words per group.
    keys: Vec<u64>,
    key_width: usize,
    interners: Vec<Interner>,
    ngroups: usize,
    // Per-row-group caches (fast path).
    cache_rg: Option<usize>,
    /// Per group column: local dictionary code -> global interned id (UNSET until needed).
    dict_ids: Vec<Vec<u32>>,
    /// Local composite code -> group id, when the fast path applies to this row group.
    local_table: Option<Vec<u32>>,
    /// Value -> group id for one integer-like group column with a small range.
    direct: Option<Direct>,
    // Scratch, reused across slices.
    gids: Vec<u32>,
    composite: Vec<u32>,
    key_buf: Vec<u64>,
    too_many_groups: bool,
}

fn validity_of<'a>(chunk: &ColumnChunk<'a>) -> Option<Bitmap<'a>> {
    match chunk {
        ColumnChunk::Bool(c) => c.validity(),
        ColumnChunk::Int64(c) | ColumnChunk::Timestamp(c) => c.validity(),
        ColumnChunk::Float64(c) => c.validity(),
        ColumnChunk::Date(c) => c.validity(),
        ColumnChunk::Utf8(c) => c.validity(),
    }
}

/// Canonical float bits for grouping: one NaN, and -0 groups with 0.
fn float_key(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

impl Aggregator {
    /// An aggregator for scans of `file` (whose zone maps decide the direct index).
    pub(crate) fn new<B: AsRef<[u8]>>(
        group_by: &[usize],
        aggs: &[AggSpec],
        fields: &[(String, DataType)],
        file: &QuarryFile<B>,
    ) -> Aggregator {
        let group_cols: Vec<(usize, DataType)> =
            group_by.iter().map(|&c| (c, fields[c].1)).collect();
        let direct = match group_cols[..] {
            [(col, DataType::Int64 | DataType::Date | DataType::Timestamp)] => {
                Direct::for_column(file, col)
            }
            _ => None,
        };
        let mut states: Vec<(usize, Kind, State)> = Vec::new();
        let mut slot = |col: usize, kind: Kind| -> usize {
            if let Some(i) = states.iter().position(|(c, k, _)| *c == col && *k == kind) {
                return i;
            }
            let t = fields[col].1;
            let state = match (&kind, t) {
                (Kind::Nulls, _) => State::Nulls { counts: Vec::new() },
                (Kind::Sum, DataType::Float64) => State::SumFloat { sums: Vec::new() },
                (Kind::Sum, _) => State::SumInt { sums: Vec::new() },
                (k, DataType::Float64) => State::MinMaxFloat {
                    v: Vec::new(),
                    has: Vec::new(),
                    max: *k == Kind::Max,
                },
                (k, DataType::Utf8) => State::MinMaxStr {
                    v: Vec::new(),
                    max: *k == Kind::Max,
                },
                (k, _) => State::MinMaxInt {
                    v: Vec::new(),
                    has: Vec::new(),
                    max: *k == Kind::Max,
                },
            };
            states.push((col, kind, state));
            states.len() - 1
        };
        let aggs: Vec<(AggSpec, Option<DataType>, Output)> = aggs
            .iter()
            .map(|a| {
                let out = match (a.func, a.column) {
                    (_, None) => Output::Count,
                    (AggFunc::Count, Some(c)) => Output::CountCol {
                        nulls: slot(c, Kind::Nulls),
                    },
                    (AggFunc::Sum, Some(c)) => Output::Sum {
                        sum: slot(c, Kind::Sum),
                        nulls: slot(c, Kind::Nulls),
                    },
                    (AggFunc::Avg, Some(c)) => Output::Avg {
                        sum: slot(c, Kind::Sum),
                        nulls: slot(c, Kind::Nulls),
                    },
                    (AggFunc::Min, Some(c)) => Output::MinMax {
                        state: slot(c, Kind::Min),
                    },
                    (AggFunc::Max, Some(c)) => Output::MinMax {
                        state: slot(c, Kind::Max),
                    },
                };
                (a.clone(), a.column.map(|c| fields[c].1), out)
            })
            .collect();
        let key_width = group_cols.len() + 1;
        let n = group_cols.len();
        let mut agg = Aggregator {
            group_cols,
            aggs,
            states,
            rows: Vec::new(),
            table: HashTable::new(),
            keys: Vec::new(),
            key_width,
            interners: (0..n).map(|_| Interner::default()).collect(),
            ngroups: 0,
            cache_rg: None,
            dict_ids: vec![Vec::new(); n],
            local_table: None,
            direct,
            gids: Vec::new(),
            composite: Vec::new(),
            key_buf: vec![0; key_width],
            too_many_groups: false,
        };
        if n == 0 {
            // No group columns: exactly one group, even over zero rows (SQL semantics).
            agg.key_buf.iter_mut().for_each(|w| *w = 0);
            agg.group_of_key();
        }
        agg
    }

    /// The group id of `self.key_buf`, creating the group on first sight.
    fn group_of_key(&mut self) -> u32 {
        let kw = self.key_width;
        let hash = hash_key(&self.key_buf);
        let (keys, key) = (&self.keys, &self.key_buf);
        let same = |g: &u32| {
            let at = *g as usize * kw;
            keys[at..at + kw].iter().zip(key).all(|(a, b)| a == b)
        };
        if let Some(&g) = self.table.find(hash, same) {
            return g;
        }
        if self.ngroups >= MAX_GROUPS {
            // The scan turns this into a 422 after the slice; fold into group 0 meanwhile.
            self.too_many_groups = true;
            return 0;
        }
        let g = self.ngroups as u32;
        self.keys.extend_from_slice(&self.key_buf);
        let keys = &self.keys;
        self.table.insert_unique(hash, g, |&g| {
            let at = g as usize * kw;
            hash_key(&keys[at..at + kw])
        });
        self.ngroups += 1;
        self.rows.resize(self.ngroups, 0);
        for (_, _, s) in &mut self.states {
            s.grow(self.ngroups);
        }
        g
    }

    fn enter_row_group<B: AsRef<[u8]>>(&mut self, file: &QuarryFile<B>, rg: usize) {
        if self.cache_rg == Some(rg) {
            return;
        }
        self.cache_rg = Some(rg);
        self.local_table = None;
        let mut domain: usize = 1;
        let mut fast = !self.group_cols.is_empty();
        for (j, &(col, _)) in self.group_cols.iter().enumerate() {
            let chunk = file.chunk(rg, col);
            let d = match chunk {
                ColumnChunk::Utf8(c) if c.codes().is_some() => {
                    self.dict_ids[j] = vec![UNSET; c.dictionary_len()];
                    c.dictionary_len() + 1
                }
                ColumnChunk::Bool(_) => 3,
                _ => {
                    fast = false;
                    1
                }
            };
            domain = domain.saturating_mul(d);
        }
        if fast && domain <= LOCAL_TABLE_MAX {
            self.local_table = Some(vec![UNSET; domain]);
        }
    }

    /// Fills `self.key_buf` for row `i` of the current row group.
    fn key_of_row(&mut self, chunks: &[ColumnChunk<'_>], i: usize) {
        let mut nulls = 0u64;
        for (j, chunk) in chunks.iter().enumerate() {
            let word = match chunk {
                ColumnChunk::Utf8(c) => match (c.codes(), c.get(i)) {
                    (_, None) => None,
                    (Some(codes), Some(s)) => {
                        let code = codes.get(i).copied().unwrap_or(0) as usize;
                        match self.dict_ids[j].get(code).copied() {
                            Some(id) if id != UNSET => Some(u64::from(id)),
                            Some(_) => {
                                let id = self.interners[j].intern(s);
                                self.dict_ids[j][code] = id;
                                Some(u64::from(id))
                            }
                            None => Some(u64::from(self.interners[j].intern(s))),
                        }
                    }
                    (None, Some(s)) => Some(u64::from(self.interners[j].intern(s))),
                },
                ColumnChunk::Bool(c) => c.get(i).map(u64::from),
                ColumnChunk::Int64(c) | ColumnChunk::Timestamp(c) => c.get(i).map(|v| v as u64),
                ColumnChunk::Date(c) => c.get(i).map(|v| i64::from(v) as u64),
                ColumnChunk::Float64(c) => c.get(i).map(float_key),
            };
            match word {
                Some(w) => self.key_buf[j] = w,
                None => {
                    self.key_buf[j] = 0;
                    nulls |= 1 << j;
                }
            }
        }
        let last = self.key_width - 1;
        self.key_buf[last] = nulls;
    }

    /// Assigns a group id to each selected row (`sel` = offsets in row group `rg`).
    fn assign_groups<B: AsRef<[u8]>>(&mut self, file: &QuarryFile<B>, rg: usize, sel: &[u32]) {
        let mut gids = std::mem::take(&mut self.gids);
        gids.clear();
        if self.group_cols.is_empty() {
            gids.resize(sel.len(), 0);
            self.gids = gids;
            return;
        }
        self.enter_row_group(file, rg);
        let chunks: Vec<ColumnChunk<'_>> = self
            .group_cols
            .iter()
            .map(|&(c, _)| file.chunk(rg, c))
            .collect();
        if let Some(mut table) = self.local_table.take() {
            // Column by column over the selection (tight loops), then one table lookup a row.
            let mut composite = std::mem::take(&mut self.composite);
            composite.clear();
            composite.resize(sel.len(), 0);
            for chunk in &chunks {
                match chunk {
                    ColumnChunk::Utf8(c) => {
                        let d = c.dictionary_len() as u32 + 1;
                        let codes = c.codes().unwrap_or(&[]);
                        let local =
                            |i: usize| codes.get(i).map_or(0, |&k| k.saturating_add(1).min(d - 1));
                        match c.validity() {
                            None => {
                                for (acc, &off) in composite.iter_mut().zip(sel) {
                                    *acc = *acc * d + local(off as usize);
                                }
                            }
                            Some(v) => {
                                for (acc, &off) in composite.iter_mut().zip(sel) {
                                    let i = off as usize;
                                    *acc = *acc * d + if v.get(i) { local(i) } else { 0 };
                                }
                            }
                        }
                    }
                    ColumnChunk::Bool(c) => {
                        for (acc, &off) in composite.iter_mut().zip(sel) {
                            *acc = *acc * 3 + c.get(off as usize).map_or(0, |b| u32::from(b) + 1);
                        }
                    }
                    // enter_row_group enables the table only for the two kinds above.
                    _ => {}
                }
            }
            for (&code, &off) in composite.iter().zip(sel) {
                let g = match table.get(code as usize).copied() {
                    Some(g) if g != UNSET => g,
                    _ => {
                        self.key_of_row(&chunks, off as usize);
                        let g = self.group_of_key();
                        if let Some(slot) = table.get_mut(code as usize) {
                            *slot = g;
                        }
                        g
                    }
                };
                gids.push(g);
            }
            self.composite = composite;
            self.local_table = Some(table);
        } else if let Some(mut direct) = self.direct.take() {
            // Out of `self` while the loop below borrows it mutably; put back after.
            for &off in sel {
                let i = off as usize;
                let v = match &chunks[0] {
                    ColumnChunk::Int64(c) | ColumnChunk::Timestamp(c) => c.get(i),
                    ColumnChunk::Date(c) => c.get(i).map(i64::from),
                    _ => None,
                };
                let slot = direct.slot(v);
                let g = match slot.map(|s| direct.ids[s]) {
                    Some(id) if id != 0 => id - 1,
                    _ => {
                        self.key_of_row(&chunks, i);
                        let g = self.group_of_key();
                        if let (Some(s), false) = (slot, self.too_many_groups) {
                            direct.ids[s] = g + 1;
                        }
                        g
                    }
                };
                gids.push(g);
            }
            self.direct = Some(direct);
        } else {
            for &off in sel {
                self.key_of_row(&chunks, off as usize);
                gids.push(self.group_of_key());
            }
        }
        self.gids = gids;
    }

    /// Folds the selected rows of row group `rg` into the aggregates.
    pub(crate) fn update<B: AsRef<[u8]>>(&mut self, file: &QuarryFile<B>, rg: usize, sel: &[u32]) {
        if sel.is_empty() {
            return;
        }
        self.assign_groups(file, rg, sel);
        let gids = std::mem::take(&mut self.gids);
        for &g in &gids {
            self.rows[g as usize] += 1;
        }
        for (col, _, state) in &mut self.states {
            update_state(state, &file.chunk(rg, *col), sel, &gids);
        }
        self.gids = gids;
    }

    /// Bytes this aggregator holds on the heap, from its buffers' capacities (what the
    /// allocator handed out, touched or not): group keys, the group table, row counts,
    /// accumulators, interned strings, per-row-group caches and scratch. The strings of
    /// string min/max states are not counted (one `Box<str>` header each is).
    pub(crate) fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        fn cap<T>(v: &Vec<T>) -> usize {
            v.capacity() * size_of::<T>()
        }
        // hashbrown: one u32 slot plus one control byte per bucket.
        let table = |t: &HashTable<u32>| t.capacity() * (size_of::<u32>() + 1);
        let states: usize = self
            .states
            .iter()
            .map(|(_, _, st)| match st {
                State::Nulls { counts } => cap(counts),
                State::SumInt { sums } => cap(sums),
                State::SumFloat { sums } => cap(sums),
                State::MinMaxInt { v, has, .. } => cap(v) + cap(has),
                State::MinMaxFloat { v, has, .. } => cap(v) + cap(has),
                State::MinMaxStr { v, .. } => cap(v),
            })
            .sum();
        let interners: usize = self
            .interners
            .iter()
            .map(|i| table(&i.table) + cap(&i.hashes) + i.bytes.capacity() + cap(&i.ends))
            .sum();
        cap(&self.keys)
            + table(&self.table)
            + cap(&self.rows)
            + states
            + interners
            + self.dict_ids.iter().map(cap).sum::<usize>()
            + self.local_table.as_ref().map_or(0, cap)
            + self.direct.as_ref().map_or(0, |d| cap(&d.ids))
            + cap(&self.gids)
            + cap(&self.composite)
            + cap(&self.key_buf)
    }

    /// Utf8 columns read per selected row (string group keys are interned, string min/max
    /// compared): their bytes are work (`Scan::slice_work`).
    pub(crate) fn string_columns(&self) -> Vec<usize> {
        let mut cols: Vec<usize> = self
            .group_cols
            .iter()
            .filter(|(_, t)| *t == DataType::Utf8)
            .map(|(c, _)| *c)
            .chain(
                self.states
                    .iter()
                    .filter_map(|(c, _, st)| matches!(st, State::MinMaxStr { .. }).then_some(*c)),
            )
            .collect();
        cols.sort_unstable();
        cols.dedup();
        cols
    }

    /// Set once a new group would exceed [`MAX_GROUPS`].
    pub(crate) fn too_many_groups(&self) -> bool {
        self.too_many_groups
    }

    fn final_value(
        &self,
        out: Output,
        g: usize,
        t: Option<DataType>,
        spec: &AggSpec,
    ) -> Result<OwnedValue, QueryError> {
        let rows = self.rows[g];
        let non_null = |nulls: usize| match &self.states[nulls].2 {
            State::Nulls { counts } => rows - counts[g],
            _ => rows,
        };
        let sum = |sum: usize| match &self.states[sum].2 {
            State::SumInt { sums } => Ok(sums[g]),
            State::SumFloat { sums } => Err(sums[g]),
            _ => Ok(0),
        };
        Ok(match out {
            Output::Count => OwnedValue::Int64(rows as i64),
            Output::CountCol { nulls } => OwnedValue::Int64(non_null(nulls) as i64),
            Output::Sum { nulls, .. } | Output::Avg { nulls, .. } if non_null(nulls) == 0 => {
                OwnedValue::Null
            }
            Output::Avg { sum: s, nulls } => {
                let n = non_null(nulls) as f64;
                match sum(s) {
                    Ok(i) => OwnedValue::Float64(i as f64 / n),
                    Err(f) => OwnedValue::Float64(f / n),
                }
            }
            Output::Sum { sum: s, .. } => match sum(s) {
                Err(f) => OwnedValue::Float64(f),
                Ok(i) => match i64::try_from(i) {
                    Ok(v) => OwnedValue::Int64(v),
                    Err(_) => {
                        return Err(QueryError::new(
                            ErrorKind::TooMuchWork,
                            "sum_overflow",
                            format!(
                                "{} is {i} in one group, outside the int64 range; use avg() or \
                                 narrow the filters",
                                spec.name
                            ),
                        ))
                    }
                },
            },
            Output::MinMax { state } => match &self.states[state].2 {
                State::MinMaxInt { v, has, .. } if has[g] => match t {
                    Some(DataType::Bool) => OwnedValue::Bool(v[g] != 0),
                    Some(DataType::Date) => OwnedValue::Date(v[g] as i32),
                    Some(DataType::Timestamp) => OwnedValue::Timestamp(v[g]),
                    _ => OwnedValue::Int64(v[g]),
                },
                State::MinMaxFloat { v, has, .. } if has[g] => OwnedValue::Float64(v[g]),
                State::MinMaxStr { v, .. } => match &v[g] {
                    Some(s) => OwnedValue::Utf8(s.to_string()),
                    None => OwnedValue::Null,
                },
                _ => OwnedValue::Null,
            },
        })
    }

    pub(crate) fn num_groups(&self) -> usize {
        self.ngroups
    }

    /// Group column `j` of group `g`, borrowed (interned strings are not copied).
    pub(crate) fn group_value(&self, g: usize, j: usize) -> Value<'_> {
        let key = &self.keys[g * self.key_width..(g + 1) * self.key_width];
        if key[self.key_width - 1] & (1 << j) != 0 {
            return Value::Null;
        }
        let w = key[j];
        match self.group_cols[j].1 {
            DataType::Bool => Value::Bool(w != 0),
            DataType::Int64 => Value::Int64(w as i64),
            DataType::Timestamp => Value::Timestamp(w as i64),
            DataType::Date => Value::Date(w as i64 as i32),
            DataType::Float64 => Value::Float64(f64::from_bits(w)),
            DataType::Utf8 => Value::Utf8(self.interners[j].get(w as usize).unwrap_or("")),
        }
    }

    /// Aggregate `a` of group `g` (a 422 when an int64 sum overflows).
    pub(crate) fn agg_value(&self, g: usize, a: usize) -> Result<OwnedValue, QueryError> {
        let (spec, t, out) = &self.aggs[a];
        self.final_value(*out, g, *t, spec)
    }

    /// Output row of group `g`: group key values then aggregate values.
    pub(crate) fn row(&self, g: usize) -> Result<Vec<OwnedValue>, QueryError> {
        let mut row = Vec::with_capacity(self.group_cols.len() + self.aggs.len());
        for j in 0..self.group_cols.len() {
            row.push(OwnedValue::from_value(self.group_value(g, j)));
        }
        for a in 0..self.aggs.len() {
            row.push(self.agg_value(g, a)?);
        }
        Ok(row)
    }

    pub(crate) fn num_group_cols(&self) -> usize {
        self.group_cols.len()
    }

    pub(crate) fn num_aggs(&self) -> usize {
        self.aggs.len()
    }
}

/// Calls `f(group, offset)` for each selected row that is valid in `validity`.
#[inline]
fn for_valid(
    validity: Option<Bitmap<'_>>,
    sel: &[u32],
    gids: &[u32],
    mut f: impl FnMut(usize, usize),
) {
    match validity {
        None => {
            for (&off, &g) in sel.iter().zip(gids) {
                f(g as usize, off as usize);
            }
        }
        Some(bm) => {
            for (&off, &g) in sel.iter().zip(gids) {
                if bm.get(off as usize) {
                    f(g as usize, off as usize);
                }
            }
        }
    }
}

fn min_max_int(v: &mut [i64], has: &mut [bool], max: bool, g: usize, x: i64) {
    if !has[g] || (max && x > v[g]) || (!max && x < v[g]) {
        v[g] = x;
        has[g] = true;
    }
}

fn update_state(state: &mut State, chunk: &ColumnChunk<'_>, sel: &[u32], gids: &[u32]) {
    let validity = validity_of(chunk);
    match (state, chunk) {
        (State::Nulls { counts }, _) => {
            if let Some(bm) = validity {
                for (&off, &g) in sel.iter().zip(gids) {
                    if !bm.get(off as usize) {
                        counts[g as usize] += 1;
                    }
                }
            }
        }
        // A value missing from a short (corrupt, unverified) chunk adds nothing.
        (State::SumInt { sums }, ColumnChunk::Int64(c)) => {
            let vals = c.values();
            for_valid(validity, sel, gids, |g, i| {
                sums[g] += i128::from(vals.get(i).copied().unwrap_or(0));
            });
        }
        (State::SumFloat { sums }, ColumnChunk::Float64(c)) => {
            let vals = c.values();
            for_valid(validity, sel, gids, |g, i| {
                sums[g] += vals.get(i).copied().unwrap_or(0.0);
            });
        }
        (State::MinMaxInt { v, has, max }, ColumnChunk::Int64(c) | ColumnChunk::Timestamp(c)) => {
            let vals = c.values();
            let max = *max;
            for_valid(validity, sel, gids, |g, i| {
                if let Some(&x) = vals.get(i) {
                    min_max_int(v, has, max, g, x);
                }
            });
        }
        (State::MinMaxInt { v, has, max }, ColumnChunk::Date(c)) => {
            let vals = c.values();
            let max = *max;
            for_valid(validity, sel, gids, |g, i| {
                if let Some(&x) = vals.get(i) {
                    min_max_int(v, has, max, g, i64::from(x));
                }
            });
        }
        (State::MinMaxInt { v, has, max }, ColumnChunk::Bool(c)) => {
            let max = *max;
            for_valid(validity, sel, gids, |g, i| {
                if let Some(x) = c.get(i) {
                    min_max_int(v, has, max, g, i64::from(x));
                }
            });
        }
        (State::MinMaxFloat { v, has, max }, ColumnChunk::Float64(c)) => {
            let vals = c.values();
            let max = *max;
            for_valid(validity, sel, gids, |g, i| {
                if let Some(&x) = vals.get(i) {
                    let ord = cmp_f64(x, v[g]);
                    if !has[g] || (max && ord.is_gt()) || (!max && ord.is_lt()) {
                        v[g] = x;
                        has[g] = true;
                    }
                }
            });
        }
        (State::MinMaxStr { v, max }, ColumnChunk::Utf8(c)) => {
            let max = *max;
            for (&off, &g) in sel.iter().zip(gids) {
                if let Some(s) = c.get(off as usize) {
                    let slot = &mut v[g as usize];
                    let better = match slot {
                        None => true,
                        Some(cur) => {
                            if max {
                                s > &**cur
                            } else {
                                s < &**cur
                            }
                        }
                    };
                    if better {
                        *slot = Some(s.into());
                    }
                }
            }
        }
        // A chunk whose type differs from the schema (corrupt file): contributes nothing.
        _ => {}
    }
}
