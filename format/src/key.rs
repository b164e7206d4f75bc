//! Primary-key lookups (SPEC.md: Key index). The sparse index holds the first key of every
//! `KEY_INDEX_STRIDE`-row block (blocks restart at each row group), small enough to stay in
//! cache; a lookup binary-searches it, then searches one block of the key column.
//!
//! Every path is bounds-checked: on an unverified corrupt file a lookup may miss, never panic.

use std::cmp::Ordering;

use zerocopy::FromBytes;

use crate::column::ColumnChunk;
use crate::reader::QuarryFile;
use crate::spec::KEY_INDEX_STRIDE;
use crate::value::KeyRef;

impl<B: AsRef<[u8]>> QuarryFile<B> {
    /// The global row holding `key`, through the sparse index.
    pub fn find_key(&self, key: KeyRef<'_>) -> Option<u64> {
        let row = self.key_lower_bound(key);
        (row < self.num_rows() && self.compare_key_at(row, key) == Some(Ordering::Equal))
            .then_some(row)
    }

    /// The global row holding `key`, by binary search over row groups and then the key column,
    /// without the sparse index (the baseline the index is measured against).
    pub fn find_key_unindexed(&self, key: KeyRef<'_>) -> Option<u64> {
        self.schema().key()?;
        let groups = self.row_groups();
        let g = groups.partition_point(|rg| {
            self.compare_key_at(rg.first_row, key) != Some(Ordering::Greater)
        });
        let g = g.checked_sub(1)?;
        let (first, n) = (groups[g].first_row, groups[g].num_rows);
        let i = self.search_block(g, 0, n as usize, key, |o| o == Ordering::Less);
        let row = first + i as u64;
        (row < first + n && self.compare_key_at(row, key) == Some(Ordering::Equal)).then_some(row)
    }

    /// The first row whose key is `>= key` (`num_rows()` if none, or if the file has no key or a
    /// key of another type).
    pub fn key_lower_bound(&self, key: KeyRef<'_>) -> u64 {
        self.key_bound(key, |o| o == Ordering::Less)
    }

    /// The first row whose key is `> key` (`num_rows()` if none).
    pub fn key_upper_bound(&self, key: KeyRef<'_>) -> u64 {
        self.key_bound(key, |o| o != Ordering::Greater)
    }

    /// `before(ordering of row key vs. key)` is true for rows that come before the bound.
    fn key_bound(&self, key: KeyRef<'_>, before: impl Fn(Ordering) -> bool + Copy) -> u64 {
        let Some(index) = &self.key_index else {
            return self.num_rows();
        };
        if !self.key_type_matches(key) || index.entries == 0 {
            return self.num_rows();
        }
        // Entries whose first key comes before the bound: the bound is in the last such block.
        let e = partition_point(index.entries as usize, |e| {
            self.index_key_cmp(e, key).is_some_and(before)
        });
        let Some(block) = e.checked_sub(1) else {
            return 0;
        };
        let g = index.entries_before.partition_point(|&b| b <= block as u64) - 1;
        let Some(rg) = self.row_groups().get(g) else {
            return self.num_rows();
        };
        let stride = KEY_INDEX_STRIDE as usize;
        let start = (block as u64 - index.entries_before[g]) as usize * stride;
        let end = (start + stride).min(rg.num_rows as usize);
        rg.first_row + self.search_block(g, start, end, key, before) as u64
    }

    /// Within rows `start..end` of row group `g`, the first row not `before` the key.
    fn search_block(
        &self,
        g: usize,
        start: usize,
        end: usize,
        key: KeyRef<'_>,
        before: impl Fn(Ordering) -> bool,
    ) -> usize {
        let Some(k) = self.schema().key() else {
            return end;
        };
        match (self.chunk(g, k), key) {
            (ColumnChunk::Int64(c), KeyRef::Int64(v)) => {
                let block = c.values().get(start..end).unwrap_or(&[]);
                start + block.partition_point(|x| before(x.cmp(&v)))
            }
            (ColumnChunk::Utf8(c), KeyRef::Utf8(s)) => {
                start
                    + partition_point(end - start, |i| {
                        before(c.get(start + i).unwrap_or("").cmp(s))
                    })
            }
            _ => end,
        }
    }

    fn key_type_matches(&self, key: KeyRef<'_>) -> bool {
        matches!(
            (self.schema().key_field().map(|f| f.data_type), key),
            (Some(crate::DataType::Int64), KeyRef::Int64(_))
                | (Some(crate::DataType::Utf8), KeyRef::Utf8(_))
        )
    }

    /// The key at global `row` compared with `key`.
    fn compare_key_at(&self, row: u64, key: KeyRef<'_>) -> Option<Ordering> {
        let k = self.schema().key()?;
        match (self.value(row, k), key) {
            (crate::Value::Int64(a), KeyRef::Int64(b)) => Some(a.cmp(&b)),
            (crate::Value::Utf8(a), KeyRef::Utf8(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// Index entry `e`'s key compared with `key`.
    fn index_key_cmp(&self, e: usize, key: KeyRef<'_>) -> Option<Ordering> {
        let index = self.key_index.as_ref()?;
        let region = self
            .bytes()
            .get(index.offset as usize..(index.offset + index.len) as usize)?;
        match key {
            KeyRef::Int64(v) => {
                let keys = <[i64]>::ref_from_bytes(region).ok()?;
                Some(keys.get(e)?.cmp(&v))
            }
            KeyRef::Utf8(s) => {
                let n = (index.entries as usize + 1) * 8;
                let offsets = <[u64]>::ref_from_bytes(region.get(..n)?).ok()?;
                let strings = self
                    .bytes()
                    .get(index.bytes_offset as usize..(index.offset + index.len) as usize)?;
                let (a, b) = (*offsets.get(e)? as usize, *offsets.get(e + 1)? as usize);
                Some(strings.get(a..b)?.cmp(s.as_bytes()))
            }
        }
    }
}

/// The first `i` in `0..n` for which `pred(i)` is false, given `pred` is true then false.
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}
