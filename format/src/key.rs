//! Primary-key lookups (SPEC.md: Key index). The sparse index holds the first key of every
//! `KEY_INDEX_STRIDE`-row block (blocks restart at each row group), small enough to stay in
//! cache; a lookup searches it, then searches one block of the key column.
//!
//! String keys are searched first among integers: each index entry's 8 bytes after the prefix
//! every entry shares, big-endian (`KeyWords`, made on the first lookup: 8 bytes per 64 rows). A
//! binary search over that dense array finds the entries whose word equals the key's; only those
//! are compared as strings. Words order like the strings they come from, so this is exact.
//!
//! Integer keys are searched from an interpolated guess, galloping out to the bound: for keys
//! spread evenly the first probe lands on or next to the answer, so a lookup touches one or two
//! cache lines of the key block instead of a binary search's chain of four dependent misses. Any
//! distribution of keys gets the right answer; a skewed one costs at most twice the probes of a
//! binary search.
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

/// String index entries as integers (see the module docs): `words[e]` is entry `e`'s bytes
/// `skip..skip + 8`, zero-padded, big-endian; every entry starts with `common`.
#[derive(Debug, Default)]
pub(crate) struct KeyWords {
    common: Vec<u8>,
    words: Vec<u64>,
}

fn word_at(s: &[u8], skip: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(rest) = s.get(skip..) {
        let n = rest.len().min(8);
        w[..n].copy_from_slice(&rest[..n]);
    }
    u64::from_be_bytes(w)
}

impl KeyWords {
    fn new(offsets: &[u64], bytes: &[u8]) -> KeyWords {
        let n = offsets.len().saturating_sub(1);
        let entry = |e: usize| -> &[u8] {
            match (offsets.get(e), offsets.get(e + 1)) {
                (Some(&a), Some(&b)) => bytes.get(a as usize..b as usize).unwrap_or(&[]),
                _ => &[],
            }
        };
        let (first, last) = (entry(0), entry(n.saturating_sub(1)));
        // The entries are sorted, so what the first and last share, every entry shares.
        let skip = first.iter().zip(last).take_while(|(a, b)| a == b).count();
        KeyWords {
            common: first[..skip].to_vec(),
            words: (0..n).map(|e| word_at(entry(e), skip)).collect(),
        }
    }

    /// The number of entries before the bound for `key`, given `before(entry vs key)`; string
    /// comparisons only among the entries whose word equals the key's.
    fn partition_point(
        &self,
        keys: &IndexKeys<'_>,
        key: &str,
        before: impl Fn(Ordering) -> bool + Copy,
    ) -> usize {
        let k = key.as_bytes();
        let head = &k[..k.len().min(self.common.len())];
        match head.cmp(&self.common[..head.len()]) {
            Ordering::Less => return 0,
            Ordering::Greater => return self.words.len(),
            // A proper prefix of what every entry starts with: before them all.
            Ordering::Equal if k.len() < self.common.len() => return 0,
            Ordering::Equal => {}
        }
        let w = word_at(k, self.common.len());
        let lo = self.words.partition_point(|&x| x < w);
        let hi = lo + self.words[lo..].partition_point(|&x| x == w);
        lo + partition_point(hi - lo, |i| {
            keys.cmp(lo + i, KeyRef::Utf8(key)).is_some_and(before)
        })
    }
}

/// Where a bound falls: row group `g`, block rows `start..end`, and the row `pos` in it.
struct Position {
    g: usize,
    end: usize,
    pos: usize,
}

impl<B: AsRef<[u8]>> QuarryFile<B> {
    /// Makes what string-key searches use (8 bytes per index entry, 1/64 of the rows), which
    /// the first string lookup would otherwise make. Nothing for other keys.
    pub fn prepare_key_search(&self) {
        if let Some(IndexKeys::Utf8 { offsets, bytes }) = self.index_keys() {
            self.key_words.get_or_init(|| KeyWords::new(offsets, bytes));
        }
    }

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
        let i = self.search_block(g, 0, n, key, None, |o| o == Ordering::Less);
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
        let ints = match (&keys, key) {
            (IndexKeys::Int64(k), KeyRef::Int64(v)) => Some((*k, v)),
            _ => None,
        };
        // Entries whose first key comes before the bound: the bound is in the last such block.
        let e = match (ints, &keys, key) {
            (Some((k, v)), ..) => {
                let guess = k.first().zip(k.last()).map_or(0, |(&lo, &hi)| {
                    interpolate(v, lo, Some(hi), k.len().saturating_sub(1))
                });
                gallop(k, guess, |x| before(x.cmp(&v)))
            }
            (_, IndexKeys::Utf8 { offsets, bytes }, KeyRef::Utf8(k)) => self
                .key_words
                .get_or_init(|| KeyWords::new(offsets, bytes))
                .partition_point(&keys, k, before),
            _ => partition_point(keys.len(), |e| keys.cmp(e, key).is_some_and(before)),
        };
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
        // The block's keys lie between its index entry and the next one: a guess for integers.
        let guess = ints.and_then(|(k, v)| {
            let last = end.saturating_sub(start + 1);
            k.get(block)
                .map(|&lo| interpolate(v, lo, k.get(block + 1).copied(), last))
        });
        Some(Position {
            g,
            end,
            pos: self.search_block(g, start, end, key, guess, before),
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

    /// Within rows `start..end` of row group `g`, the first row not `before` the key; integer
    /// keys are searched outward from `guess` (an offset from `start`) when there is one.
    fn search_block(
        &self,
        g: usize,
        start: usize,
        end: usize,
        key: KeyRef<'_>,
        guess: Option<usize>,
        before: impl Fn(Ordering) -> bool,
    ) -> usize {
        let Some(k) = self.schema().key() else {
            return end;
        };
        match (self.chunk(g, k), key) {
            (ColumnChunk::Int64(c), KeyRef::Int64(v)) => {
                let block = c.values().get(start..end).unwrap_or(&[]);
                let pred = |x: &i64| before(x.cmp(&v));
                start
                    + match guess {
                        Some(guess) => gallop(block, guess, pred),
                        None => block.partition_point(pred),
                    }
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

/// Where `v` would sit among `0..=last` positions holding keys that rise evenly from `lo` to
/// `hi` (when a bound above is known; else the middle).
fn interpolate(v: i64, lo: i64, hi: Option<i64>, last: usize) -> usize {
    let Some(hi) = hi.filter(|&hi| hi > lo) else {
        return last / 2;
    };
    if v <= lo {
        return 0;
    }
    // In f64 the differences cannot overflow; rounding only moves the guess, never the answer.
    let frac = (v as f64 - lo as f64) / (hi as f64 - lo as f64);
    ((frac * last as f64) as usize).min(last)
}

/// `slice.partition_point(pred)`, searched outward from `guess` in doubling steps, then by
/// bisection between the last two probes: O(log distance from the guess).
fn gallop<T>(slice: &[T], guess: usize, pred: impl Fn(&T) -> bool) -> usize {
    let n = slice.len();
    if n == 0 {
        return 0;
    }
    let guess = guess.min(n - 1);
    let (mut lo, mut hi) = (0, n);
    let mut step = 1;
    if pred(&slice[guess]) {
        // The answer is after `guess`: probe right until an element is not `pred`.
        lo = guess + 1;
        let mut probe = guess + step;
        while probe < n {
            if !pred(&slice[probe]) {
                hi = probe;
                break;
            }
            lo = probe + 1;
            step *= 2;
            probe = guess + step;
        }
    } else {
        // The answer is at or before `guess`: probe left until an element is `pred`.
        hi = guess;
        while let Some(probe) = guess.checked_sub(step) {
            if pred(&slice[probe]) {
                lo = probe + 1;
                break;
            }
            hi = probe;
            step *= 2;
        }
    }
    lo + slice[lo..hi].partition_point(pred)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gallop_finds_the_partition_point_from_any_guess() {
        let xs: Vec<i64> = (0..40).map(|i| i * 3).collect();
        for v in -2..125 {
            let expected = xs.partition_point(|&x| x < v);
            for guess in 0..xs.len() + 3 {
                assert_eq!(
                    gallop(&xs, guess, |&x| x < v),
                    expected,
                    "v {v} guess {guess}"
                );
            }
        }
        assert_eq!(gallop(&[] as &[i64], 5, |&x| x < 1), 0);
    }

    #[test]
    fn interpolate_stays_in_range() {
        assert_eq!(interpolate(i64::MAX, i64::MIN, Some(i64::MAX), 63), 63);
        assert_eq!(interpolate(i64::MIN, i64::MIN, Some(i64::MAX), 63), 0);
        assert_eq!(interpolate(50, 0, Some(100), 64), 32);
        assert_eq!(interpolate(500, 0, Some(100), 64), 64);
        assert_eq!(interpolate(5, 7, Some(7), 10), 5);
        assert_eq!(interpolate(5, 0, None, 10), 5);
        // Keys closer together than an f64 can tell apart near i64::MAX.
        assert!(interpolate(i64::MAX - 1, i64::MAX - 3, Some(i64::MAX), 10) <= 10);
    }
}
