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
//!
//! This module holds the aggregator and its results; `group.rs` how a row finds its group
//! (keys, interned strings, the table and direct fast paths); `state.rs` the accumulators.

mod group;
mod state;

use hashbrown::HashTable;

use quarry_format::{DataType, QuarryFile, Value};

use crate::error::{ErrorKind, QueryError};
use crate::output::OwnedValue;
use crate::query::{AggFunc, AggSpec};

use group::{Direct, Interner};
use state::{update_state, Kind, State};

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
