//! How a selected row finds its group: the key words of its group columns, strings interned to
//! dense ids, and the per-row-group table and direct-index fast paths before the hash table.

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

use quarry_format::{Bitmap, ColumnChunk, QuarryFile, Stat};

use super::*;

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

/// Group ids of a single integer-like group column (int64, date, timestamp) indexed by value:
/// `ids[0]` is the null group, `ids[1 + v - min]` the group of `v`, each stored as id + 1 (0:
/// not seen yet). The range comes from the chunks' statistics; a value outside it (statistics
/// of an unverified file can lie) takes the hash path.
#[derive(Debug)]
pub(super) struct Direct {
    min: i64,
    pub(super) ids: Vec<u32>,
}

impl Direct {
    /// For group column `col` of `file`, when every chunk has statistics and the range is small.
    pub(super) fn for_column<B: AsRef<[u8]>>(file: &QuarryFile<B>, col: usize) -> Option<Direct> {
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
pub(super) struct Interner {
    pub(super) table: HashTable<u32>,
    pub(super) hashes: Vec<u64>,
    pub(super) bytes: String,
    /// End of string `i` in `bytes`; it starts where string `i - 1` ends.
    pub(super) ends: Vec<usize>,
}

impl Interner {
    pub(super) fn get(&self, id: usize) -> Option<&str> {
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

pub(super) fn validity_of<'a>(chunk: &ColumnChunk<'a>) -> Option<Bitmap<'a>> {
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
    /// The group id of `self.key_buf`, creating the group on first sight.
    pub(super) fn group_of_key(&mut self) -> u32 {
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
    pub(super) fn assign_groups<B: AsRef<[u8]>>(
        &mut self,
        file: &QuarryFile<B>,
        rg: usize,
        sel: &[u32],
    ) {
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
}
