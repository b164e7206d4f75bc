//! Encoding one row group: checks the caller's columns, picks encodings, computes zone maps and
//! checksums. Pure and thread-safe, so the ETL runs it on every core (SPEC.md: Column chunks).

use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_64;
use zerocopy::IntoBytes;

use crate::error::{FormatError, Result};
use crate::layout::{BufferRaw, ChunkMetaRaw};
use crate::schema::Schema;
use crate::spec::{self, encoding_tag, KEY_INDEX_STRIDE, MAX_STRING_STAT_LEN};

use super::{ColumnData, DictionaryPolicy, WriteOptions};

/// A key value owned by the writer (for order checks and the sparse index).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum KeyOwned {
    Int64(i64),
    Utf8(String),
}

impl std::fmt::Display for KeyOwned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOwned::Int64(v) => write!(f, "{v}"),
            KeyOwned::Utf8(s) => write!(f, "{s:?}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StatOwned {
    Bits(u64),
    Utf8(String),
}

#[derive(Debug)]
pub(crate) struct EncodedChunk {
    /// The chunk's region, without trailing padding.
    pub bytes: Vec<u8>,
    /// Complete but for `offset` (set by the file writer) and string stats (`min`/`max` point
    /// into the footer's string pool, which the file writer fills).
    pub meta: ChunkMetaRaw,
    pub min: Option<StatOwned>,
    pub max: Option<StatOwned>,
}

/// One row group, encoded and checksummed, ready for [`FileWriter::write_encoded`](super::FileWriter::write_encoded).
#[derive(Debug)]
pub struct EncodedRowGroup {
    pub(crate) num_rows: usize,
    pub(crate) chunks: Vec<EncodedChunk>,
    /// First and last key, when the schema has a key.
    pub(crate) key_range: Option<(KeyOwned, KeyOwned)>,
    /// The key of every `KEY_INDEX_STRIDE`-th row, starting with row 0.
    pub(crate) index_keys: Vec<KeyOwned>,
}

impl EncodedRowGroup {
    pub fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// Bytes this row group adds to the file body (without padding).
    pub fn encoded_len(&self) -> usize {
        self.chunks.iter().map(|c| c.bytes.len()).sum()
    }
}

/// Encodes one row group of `1..=options.row_group_rows` rows.
///
/// # Errors
/// `FormatError::Input` when the columns do not match the schema (count, type, length, nulls in a
/// non-nullable column, malformed string offsets or UTF-8); `FormatError::KeyOrder` when the key
/// column is not strictly increasing.
pub fn encode_row_group(
    schema: &Schema,
    mut columns: Vec<ColumnData>,
    options: &WriteOptions,
) -> Result<EncodedRowGroup> {
    if columns.len() != schema.len() {
        return Err(FormatError::Input(format!(
            "row group has {} columns, the schema {}",
            columns.len(),
            schema.len()
        )));
    }
    let num_rows = columns.first().map_or(0, ColumnData::len);
    if num_rows == 0 || num_rows > options.row_group_rows {
        return Err(FormatError::Input(format!(
            "a row group holds 1..={} rows, got {num_rows}",
            options.row_group_rows
        )));
    }
    if u32::try_from(num_rows).is_err() {
        return Err(FormatError::Input(format!(
            "{num_rows} rows in one row group"
        )));
    }
    let mut chunks = Vec::with_capacity(columns.len());
    for (field, column) in schema.fields().iter().zip(columns.iter_mut()) {
        let name = &field.name;
        if column.data_type() != field.data_type {
            return Err(FormatError::Input(format!(
                "column {name:?} is {} in the schema, got {} values",
                field.data_type,
                column.data_type()
            )));
        }
        if column.len() != num_rows {
            return Err(FormatError::Input(format!(
                "column {name:?} has {} rows, the row group {num_rows}",
                column.len()
            )));
        }
        check_and_normalise(column, field.nullable).map_err(|e| match e {
            FormatError::Input(m) => FormatError::Input(format!("column {name:?}: {m}")),
            e => e,
        })?;
        chunks.push(encode_column(column, options.dictionary));
    }
    let (key_range, index_keys) = match schema.key() {
        Some(k) => {
            let (range, index) = check_keys(&columns[k])?;
            (Some(range), index)
        }
        None => (None, Vec::new()),
    };
    Ok(EncodedRowGroup {
        num_rows,
        chunks,
        key_range,
        index_keys,
    })
}

/// Checks validity length, nulls against nullability and string offsets; zeroes null slots so
/// the output does not depend on what the caller left there.
fn check_and_normalise(column: &mut ColumnData, nullable: bool) -> Result<()> {
    let n = column.len();
    if let Some(v) = column.validity() {
        if v.len() != n {
            return Err(FormatError::Input(format!(
                "validity has {} entries for {n} rows",
                v.len()
            )));
        }
        if !nullable {
            if let Some(row) = v.iter().position(|ok| !ok) {
                return Err(FormatError::Input(format!(
                    "row {row} is null but the column is not nullable"
                )));
            }
        }
    }
    match column {
        ColumnData::Bool { values, validity } => zero_nulls(values, validity, false),
        ColumnData::Int64 { values, validity } | ColumnData::Timestamp { values, validity } => {
            zero_nulls(values, validity, 0)
        }
        ColumnData::Float64 { values, validity } => zero_nulls(values, validity, 0.0),
        ColumnData::Date { values, validity } => zero_nulls(values, validity, 0),
        ColumnData::Utf8 {
            offsets,
            bytes,
            validity,
        } => {
            if offsets.first() != Some(&0) || offsets.last() != Some(&(bytes.len() as u64)) {
                return Err(FormatError::Input(format!(
                    "string offsets must start at 0 and end at {} (the byte length)",
                    bytes.len()
                )));
            }
            if let Some(i) = offsets.windows(2).position(|w| w[0] > w[1]) {
                return Err(FormatError::Input(format!(
                    "string offsets decrease at row {i}"
                )));
            }
            let text = std::str::from_utf8(bytes).map_err(|e| {
                FormatError::Input(format!(
                    "string bytes are not UTF-8 at byte {}",
                    e.valid_up_to()
                ))
            })?;
            if let Some(i) = offsets
                .iter()
                .position(|&o| !text.is_char_boundary(o as usize))
            {
                return Err(FormatError::Input(format!(
                    "string offset of row {i} splits a UTF-8 character"
                )));
            }
            if let Some(v) = validity {
                if v.iter()
                    .zip(offsets.windows(2))
                    .any(|(ok, w)| !ok && w[0] != w[1])
                {
                    // Null rows hold the empty string: rebuild without their bytes.
                    let mut new_bytes = Vec::with_capacity(bytes.len());
                    let mut new_offsets = Vec::with_capacity(offsets.len());
                    new_offsets.push(0);
                    for (ok, w) in v.iter().zip(offsets.windows(2)) {
                        if *ok {
                            new_bytes.extend_from_slice(&bytes[w[0] as usize..w[1] as usize]);
                        }
                        new_offsets.push(new_bytes.len() as u64);
                    }
                    *bytes = new_bytes;
                    *offsets = new_offsets;
                }
            }
        }
    }
    Ok(())
}

fn zero_nulls<T: Copy>(values: &mut [T], validity: &mut Option<Vec<bool>>, zero: T) {
    if let Some(v) = validity {
        if v.iter().all(|ok| *ok) {
            *validity = None;
            return;
        }
        for (x, ok) in values.iter_mut().zip(v.iter()) {
            if !ok {
                *x = zero;
            }
        }
    }
}

fn check_keys(column: &ColumnData) -> Result<((KeyOwned, KeyOwned), Vec<KeyOwned>)> {
    let n = column.len();
    let key_at = |i: usize| -> KeyOwned {
        match column.get(i) {
            crate::Value::Int64(v) => KeyOwned::Int64(v),
            crate::Value::Utf8(s) => KeyOwned::Utf8(s.to_owned()),
            _ => KeyOwned::Int64(0),
        }
    };
    let bad = |i: usize| FormatError::KeyOrder {
        row: i as u64,
        key: key_at(i).to_string(),
        prev_row: (i - 1) as u64,
        prev_key: key_at(i - 1).to_string(),
    };
    match column {
        ColumnData::Int64 { values, .. } => {
            if let Some(i) = values.windows(2).position(|w| w[0] >= w[1]) {
                return Err(bad(i + 1));
            }
        }
        ColumnData::Utf8 { offsets, bytes, .. } => {
            let s = |i: usize| string_at(offsets, bytes, i);
            if let Some(i) = (1..n).find(|&i| s(i - 1) >= s(i)) {
                return Err(bad(i));
            }
        }
        _ => {
            return Err(FormatError::Input(
                "key column must be int64 or utf8".into(),
            ))
        }
    }
    let index = (0..n)
        .step_by(KEY_INDEX_STRIDE as usize)
        .map(key_at)
        .collect();
    Ok(((key_at(0), key_at(n - 1)), index))
}

/// Appends `buf` at the next 64-byte boundary of `region`; returns its descriptor.
fn push_buffer(region: &mut Vec<u8>, buf: &[u8]) -> BufferRaw {
    if buf.is_empty() {
        return BufferRaw::default();
    }
    let start = spec::align_up(region.len() as u64);
    region.resize(start as usize, 0);
    region.extend_from_slice(buf);
    BufferRaw {
        offset: start.into(),
        len: (buf.len() as u64).into(),
    }
}

fn pack_bits(bits: impl ExactSizeIterator<Item = bool>) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, b) in bits.enumerate() {
        out[i / 8] |= u8::from(b) << (i % 8);
    }
    out
}

fn encode_column(column: &ColumnData, policy: DictionaryPolicy) -> EncodedChunk {
    let n = column.len();
    let validity = column.validity();
    let null_count = validity.map_or(0, |v| v.iter().filter(|ok| !**ok).count()) as u64;
    let valid = |i: usize| validity.is_none_or(|v| v[i]);
    let mut region = Vec::new();
    let mut buffers = [BufferRaw::default(); spec::CHUNK_BUFFERS];
    if null_count > 0 {
        let bitmap = pack_bits(validity.unwrap_or(&[]).iter().copied());
        buffers[0] = push_buffer(&mut region, &bitmap);
    }
    let mut encoding = encoding_tag::PLAIN;
    let mut dictionary_len = 0u32;
    let (min, max) = match column {
        ColumnData::Bool { values, .. } => {
            encoding = encoding_tag::BIT_PACKED;
            buffers[1] = push_buffer(&mut region, &pack_bits(values.iter().copied()));
            let bit = |b: bool| Some(StatOwned::Bits(u64::from(b)));
            min_max(present(values, &valid)).map_or((None, None), |(lo, hi)| (bit(lo), bit(hi)))
        }
        ColumnData::Int64 { values, .. } | ColumnData::Timestamp { values, .. } => {
            buffers[1] = push_buffer(&mut region, values.as_bytes());
            int_stats(present(values, &valid))
        }
        ColumnData::Date { values, .. } => {
            buffers[1] = push_buffer(&mut region, values.as_bytes());
            int_stats(present(values, &valid).map(i64::from))
        }
        ColumnData::Float64 { values, .. } => {
            buffers[1] = push_buffer(&mut region, values.as_bytes());
            let bits = |v: f64| Some(StatOwned::Bits(v.to_bits()));
            min_max(present(values, &valid).filter(|v| !v.is_nan()))
                .map_or((None, None), |(lo, hi)| (bits(lo), bits(hi)))
        }
        ColumnData::Utf8 { offsets, bytes, .. } => {
            let s = |i: usize| string_at(offsets, bytes, i);
            let present = || (0..n).filter(|&i| valid(i)).map(s);
            let stat = |b: Option<&[u8]>| {
                b.filter(|b| b.len() <= MAX_STRING_STAT_LEN)
                    .map(|b| StatOwned::Utf8(String::from_utf8_lossy(b).into_owned()))
            };
            let dictionary = dictionary_for(n, offsets, bytes, &valid, policy);
            // A dictionary holds exactly the present values, sorted: its ends are the extremes.
            let (lo, hi) = match &dictionary {
                Some((dict, _)) => (dict.first().copied(), dict.last().copied()),
                None => min_max(present()).map_or((None, None), |(lo, hi)| (Some(lo), Some(hi))),
            };
            let stats = if lo.is_some_and(|b| b.len() > MAX_STRING_STAT_LEN)
                || hi.is_some_and(|b| b.len() > MAX_STRING_STAT_LEN)
            {
                (None, None)
            } else {
                (stat(lo), stat(hi))
            };
            match dictionary {
                Some((dict, codes)) => {
                    encoding = encoding_tag::DICTIONARY;
                    dictionary_len = dict.len() as u32;
                    let mut dict_offsets = Vec::with_capacity(dict.len() + 1);
                    let mut dict_bytes = Vec::new();
                    dict_offsets.push(0u64);
                    for d in &dict {
                        dict_bytes.extend_from_slice(d);
                        dict_offsets.push(dict_bytes.len() as u64);
                    }
                    buffers[1] = push_buffer(&mut region, codes.as_bytes());
                    buffers[2] = push_buffer(&mut region, dict_offsets.as_bytes());
                    buffers[3] = push_buffer(&mut region, &dict_bytes);
                }
                None => {
                    buffers[1] = push_buffer(&mut region, offsets.as_bytes());
                    buffers[2] = push_buffer(&mut region, bytes);
                }
            }
            stats
        }
    };
    let bits = |s: &Option<StatOwned>| match s {
        Some(StatOwned::Bits(b)) => *b,
        _ => 0,
    };
    let meta = ChunkMetaRaw {
        offset: 0.into(),
        len: (region.len() as u64).into(),
        checksum: xxh3_64(&region).into(),
        null_count: null_count.into(),
        encoding,
        has_stats: u8::from(min.is_some()),
        reserved: [0; 2],
        dictionary_len: dictionary_len.into(),
        min: bits(&min).into(),
        max: bits(&max).into(),
        reserved2: 0.into(),
        buffers,
    };
    EncodedChunk {
        bytes: region,
        meta,
        min,
        max,
    }
}

fn int_stats(it: impl Iterator<Item = i64>) -> (Option<StatOwned>, Option<StatOwned>) {
    let bits = |v: i64| Some(StatOwned::Bits(v as u64));
    min_max(it).map_or((None, None), |(lo, hi)| (bits(lo), bits(hi)))
}

/// The smallest and largest item in one pass (the first of equals); `None` when empty.
fn min_max<T: PartialOrd + Copy>(mut it: impl Iterator<Item = T>) -> Option<(T, T)> {
    let first = it.next()?;
    Some(it.fold((first, first), |(lo, hi), v| {
        (if v < lo { v } else { lo }, if v > hi { v } else { hi })
    }))
}

/// A hasher for byte strings that hashes each slice in one xxh3 call: SipHash, the std
/// default, made dictionary building the largest single cost of encoding.
#[derive(Default)]
struct BytesHasher(u64);

impl std::hash::Hasher for BytesHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = self.0.rotate_left(29) ^ xxh3_64(bytes);
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = self.0.rotate_left(29) ^ n as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Rows looked at before giving up on a dictionary for a column that is mostly distinct.
const DICTIONARY_SAMPLE_ROWS: usize = 4096;

/// A sorted dictionary and one code per row, when dictionary encoding is allowed and smaller.
/// Deterministic: the result depends only on the values.
fn dictionary_for<'a>(
    n: usize,
    offsets: &[u64],
    bytes: &'a [u8],
    valid: &dyn Fn(usize) -> bool,
    policy: DictionaryPolicy,
) -> Option<(Vec<&'a [u8]>, Vec<u32>)> {
    if policy == DictionaryPolicy::Never {
        return None;
    }
    let s = |i: usize| string_at(offsets, bytes, i);
    let max_distinct = n / 2;
    let mut ids: HashMap<&[u8], u32, std::hash::BuildHasherDefault<BytesHasher>> =
        HashMap::default();
    // Distinct values in first-seen order, and each row's index into it (0 for nulls).
    let mut firsts: Vec<&[u8]> = Vec::new();
    let mut provisional: Vec<u32> = Vec::with_capacity(n);
    for i in 0..n {
        if !valid(i) {
            provisional.push(0);
            continue;
        }
        let v = s(i);
        let id = *ids.entry(v).or_insert_with(|| {
            firsts.push(v);
            (firsts.len() - 1) as u32
        });
        provisional.push(id);
        if firsts.len() > max_distinct
            || (i + 1 == DICTIONARY_SAMPLE_ROWS && firsts.len() > DICTIONARY_SAMPLE_ROWS / 2)
        {
            return None;
        }
    }
    if firsts.is_empty() {
        return None;
    }
    let dict_bytes: usize = firsts.iter().map(|d| d.len()).sum();
    let dict_size = 4 * n + 8 * (firsts.len() + 1) + dict_bytes;
    let plain_size = 8 * (n + 1) + bytes.len();
    if dict_size >= plain_size {
        return None;
    }
    let mut order: Vec<u32> = (0..firsts.len() as u32).collect();
    order.sort_unstable_by_key(|&j| firsts[j as usize]);
    let mut rank = vec![0u32; firsts.len()];
    for (r, &j) in order.iter().enumerate() {
        rank[j as usize] = r as u32;
    }
    let dict = order.iter().map(|&j| firsts[j as usize]).collect();
    let codes = provisional
        .iter()
        .enumerate()
        .map(|(i, &p)| if valid(i) { rank[p as usize] } else { 0 })
        .collect();
    Some((dict, codes))
}

/// String `i` of a utf8 column's offsets and bytes (checked by `check_and_normalise`).
fn string_at<'a>(offsets: &[u64], bytes: &'a [u8], i: usize) -> &'a [u8] {
    &bytes[offsets[i] as usize..offsets[i + 1] as usize]
}

/// The values of the rows that are not null.
fn present<'a, T: Copy>(
    values: &'a [T],
    valid: &'a impl Fn(usize) -> bool,
) -> impl Iterator<Item = T> + 'a {
    values
        .iter()
        .enumerate()
        .filter(|(i, _)| valid(*i))
        .map(|(_, v)| *v)
}
