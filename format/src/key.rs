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

/// The sparse index's keys, viewed once per lookup.
enum IndexKeys<'a> {
    Int64(&'a [i64]),
    Utf8 { offsets: &'a [u64], bytes: &'a [u8] },
}

impl IndexKeys<'_> {
    fn len(&self) -> usize {
        match self {
            IndexKeys::Int64(k) => k.len(),
            IndexKeys::Utf8 { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }

    /// Entry `e` compared with `key`; `None` when the types differ or the entry is corrupt.
    fn cmp(&self, e: usize, key: KeyRef<'_>) -> Option<Ordering> {
        match (self, key) {
            (IndexKeys::Int64(keys), KeyRef::Int64(v)) => Some(keys.get(e)?.cmp(&v)),
            (IndexKeys::Utf8 { offsets, bytes }, KeyRef::Utf8(s)) => {
                let (a, b) = (*offsets.get(e)? as usize, *offsets.get(e + 1)? as usize);
                Some(bytes.get(a..b)?.cmp(s.as_bytes()))
            }
            _ => None,
        }
    }
}

/// Where a bound falls: row group `g`, block rows `start..end`, and the row `pos` in it.
struct Position {
    g: usize,
    end: usize,
    pos: usize,
}

impl<B: AsRef<[u8]>> QuarryFile<B> {
    /// The global row holding `key`, through the sparse index.
    pub fn find_key(&self, key: KeyRef<'_>) -> Option<u64> {
        let p = self.key_position(key, |o| o == Ordering::Less)?;
        // `pos` is the lower bound: if the key is anywhere, it is there. At the block's end the
        // bound is the next block's first row (which may start the next row group).
        let row = self.row_groups()[p.g].first_row + p.pos as u64;
        let (g, i) = if p.pos < p.end {
            (p.g, p.pos)
        } else if row < self.num_rows() {
            self.locate(row)
        } else {
            return None;
        };
        (self.compare_in_chunk(g, i, key) == Some(Ordering::Equal)).then_some(row)
    }

    /// The global row holding `key`, by binary search over row groups and then the key column,
    /// without the sparse index (the baseline the index is measured against).
    pub fn find_key_unindexed(&self, key: KeyRef<'_>) -> Option<u64> {
        self.schema().key()?;
        let groups = self.row_groups();
        let g = partition_point(groups.len(), |g| {
            self.compare_in_chunk(g, 0, key) != Some(Ordering::Greater)
        });
        let g = g.checked_sub(1)?;
        let n = groups[g].num_rows as usize;
        let i = self.search_block(g, 0, n, key, |o| o == Ordering::Less);
        (i < n && self.compare_in_chunk(g, i, key) == Some(Ordering::Equal))
            .then_some(groups[g].first_row + i as u64)
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

    fn key_bound(&self, key: KeyRef<'_>, before: impl Fn(Ordering) -> bool + Copy) -> u64 {
        match self.key_position(key, before) {
            Some(p) => self.row_groups()[p.g].first_row + p.pos as u64,
            None if self.key_type_matches(key)
                && self.index_keys().is_some_and(|k| k.len() > 0) =>
            {
                0
            }
            None => self.num_rows(),
        }
    }

    /// `before(ordering of a row's key vs. key)` is true for rows before the bound. `None` when
    /// there is no usable index (no key, no rows, a key of another type).
    fn key_position(
        &self,
        key: KeyRef<'_>,
        before: impl Fn(Ordering) -> bool + Copy,
    ) -> Option<Position> {
        let index = self.key_index.as_ref()?;
        let keys = self.index_keys()?;
        // Entries whose first key comes before the bound: the bound is in the last such block.
        let e = partition_point(keys.len(), |e| keys.cmp(e, key).is_some_and(before));
        if e == 0 {
            // The bound precedes every row (given a key of the right type and any rows).
            let rg = self
                .row_groups()
                .first()
                .filter(|_| self.key_type_matches(key))?;
            let end = (KEY_INDEX_STRIDE as u64).min(rg.num_rows) as usize;
            return Some(Position { g: 0, end, pos: 0 });
        }
        let block = e - 1;
        let g = index
            .entries_before
            .partition_point(|&b| b <= block as u64)
            .checked_sub(1)?;
        let rg = self.row_groups().get(g)?;
        let stride = KEY_INDEX_STRIDE as usize;
        let start = (block as u64 - index.entries_before[g]) as usize * stride;
        let end = (start + stride).min(rg.num_rows as usize);
        Some(Position {
            g,
            end,
            pos: self.search_block(g, start, end, key, before),
        })
    }

    fn index_keys(&self) -> Option<IndexKeys<'_>> {
        let index = self.key_index.as_ref()?;
        let region = self
            .bytes()
            .get(index.offset as usize..(index.offset + index.len) as usize)?;
        Some(match self.schema().key_field()?.data_type {
            crate::DataType::Int64 => IndexKeys::Int64(<[i64]>::ref_from_bytes(region).ok()?),
            _ => {
                let n = (index.entries as usize + 1) * 8;
                IndexKeys::Utf8 {
                    offsets: <[u64]>::ref_from_bytes(region.get(..n)?).ok()?,
                    bytes: self
                        .bytes()
                        .get(index.bytes_offset as usize..(index.offset + index.len) as usize)?,
                }
            }
        })
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
            (ColumnChunk::Utf8(c), KeyRef::Utf8(s)) => match c.plain_offsets() {
                // Keys are unique, so key chunks are plain: compare bytes without UTF-8 checks.
                Some(offsets) => {
                    let bytes = c.plain_bytes();
                    let at = |i: usize| -> &[u8] {
                        match (offsets.get(i), offsets.get(i + 1)) {
                            (Some(&a), Some(&b)) => {
                                bytes.get(a as usize..b as usize).unwrap_or(&[])
                            }
                            _ => &[],
                        }
                    };
                    start
                        + partition_point(end - start, |i| before(at(start + i).cmp(s.as_bytes())))
                }
                None => {
                    start
                        + partition_point(end - start, |i| {
                            before(c.get(start + i).unwrap_or("").cmp(s))
                        })
                }
            },
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

    /// The key at row `i` of row group `g` compared with `key`.
    fn compare_in_chunk(&self, g: usize, i: usize, key: KeyRef<'_>) -> Option<Ordering> {
        let k = self.schema().key()?;
        match (self.chunk(g, k), key) {
            (ColumnChunk::Int64(c), KeyRef::Int64(v)) => Some(c.get(i)?.cmp(&v)),
            (ColumnChunk::Utf8(c), KeyRef::Utf8(s)) => Some(c.get(i)?.cmp(s)),
            _ => None,
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
