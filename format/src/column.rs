//! Typed views of one column chunk, straight from the file's bytes: no copy, no per-value decode
//! of fixed-width values (SPEC.md: Chunk buffers).
//!
//! Views are built from ranges that `open` checked to be in bounds and aligned. Bodies are only
//! proven intact by `verify`; before that, every accessor stays bounds-checked, so a corrupt
//! body yields wrong values (an empty string, `false`), never a panic.

use crate::schema::DataType;
use crate::value::Value;

/// A bit per row, least significant bit first: bit `i` is bit `i % 8` of byte `i / 8`.
#[derive(Clone, Copy, Debug)]
pub struct Bitmap<'a> {
    bytes: &'a [u8],
    len: usize,
}

impl<'a> Bitmap<'a> {
    pub(crate) fn new(bytes: &'a [u8], len: usize) -> Self {
        Bitmap { bytes, len }
    }

    /// Bit `i`; `false` past the end.
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        i < self.len
            && self
                .bytes
                .get(i / 8)
                .is_some_and(|b| (b >> (i % 8)) & 1 == 1)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed bytes (`len.div_ceil(8)` of them).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> usize {
        let full = self.len / 8;
        let mut n: usize = self.bytes[..full.min(self.bytes.len())]
            .iter()
            .map(|b| b.count_ones() as usize)
            .sum();
        for i in full * 8..self.len {
            n += usize::from(self.get(i));
        }
        n
    }
}

/// int64, float64, date (i32) and timestamp (i64) chunks.
#[derive(Clone, Copy, Debug)]
pub struct PrimitiveChunk<'a, T> {
    values: &'a [T],
    validity: Option<Bitmap<'a>>,
    null_count: u64,
}

impl<'a, T: Copy> PrimitiveChunk<'a, T> {
    pub(crate) fn new(values: &'a [T], validity: Option<Bitmap<'a>>, null_count: u64) -> Self {
        PrimitiveChunk {
            values,
            validity,
            null_count,
        }
    }

    /// All values, nulls included (a null's slot holds zero).
    #[inline]
    pub fn values(&self) -> &'a [T] {
        self.values
    }

    /// `None` when the chunk has no nulls.
    pub fn validity(&self) -> Option<Bitmap<'a>> {
        self.validity
    }

    #[inline]
    pub fn is_valid(&self, i: usize) -> bool {
        self.validity.is_none_or(|v| v.get(i))
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        if self.is_valid(i) {
            self.values.get(i).copied()
        } else {
            None
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn null_count(&self) -> u64 {
        self.null_count
    }
}

/// Bit-packed booleans.
#[derive(Clone, Copy, Debug)]
pub struct BoolChunk<'a> {
    values: Bitmap<'a>,
    validity: Option<Bitmap<'a>>,
    null_count: u64,
}

impl<'a> BoolChunk<'a> {
    pub(crate) fn new(values: Bitmap<'a>, validity: Option<Bitmap<'a>>, null_count: u64) -> Self {
        BoolChunk {
            values,
            validity,
            null_count,
        }
    }

    pub fn values(&self) -> Bitmap<'a> {
        self.values
    }

    pub fn validity(&self) -> Option<Bitmap<'a>> {
        self.validity
    }

    #[inline]
    pub fn is_valid(&self, i: usize) -> bool {
        self.validity.is_none_or(|v| v.get(i))
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<bool> {
        (i < self.len() && self.is_valid(i)).then(|| self.values.get(i))
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn null_count(&self) -> u64 {
        self.null_count
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum StringRepr<'a> {
    Plain {
        offsets: &'a [u64],
        bytes: &'a [u8],
    },
    Dictionary {
        codes: &'a [u32],
        dict_offsets: &'a [u64],
        dict_bytes: &'a [u8],
    },
}

/// utf8 chunks: plain (offsets + bytes) or dictionary-encoded (codes into a sorted dictionary).
#[derive(Clone, Copy, Debug)]
pub struct StringChunk<'a> {
    len: usize,
    validity: Option<Bitmap<'a>>,
    null_count: u64,
    repr: StringRepr<'a>,
    /// The file's strings passed a full verification (see [`slice_str`]).
    trusted: bool,
}

/// `offsets[i]..offsets[i+1]` of `bytes` as a str; "" when corrupt (only possible unverified).
///
/// Every read is UTF-8-checked, verified file or not (`trusted` is kept for the callers but not
/// acted on): a mapped file can still be rewritten in place by another process (the contract in
/// `source.rs` is a convention, not something the kernel enforces), and unchecked reads would turn
/// that broken contract into undefined behaviour.
#[inline]
pub(crate) fn slice_str<'a>(offsets: &[u64], bytes: &'a [u8], i: usize, trusted: bool) -> &'a str {
    let _ = trusted;
    let (Some(&start), Some(&end)) = (offsets.get(i), offsets.get(i + 1)) else {
        return "";
    };
    let range = usize::try_from(start).unwrap_or(usize::MAX)..usize::try_from(end).unwrap_or(0);
    let Some(b) = bytes.get(range) else {
        return "";
    };
    std::str::from_utf8(b).unwrap_or("")
}

impl<'a> StringChunk<'a> {
    pub(crate) fn new(
        len: usize,
        validity: Option<Bitmap<'a>>,
        null_count: u64,
        repr: StringRepr<'a>,
        trusted: bool,
    ) -> Self {
        StringChunk {
            len,
            validity,
            null_count,
            repr,
            trusted,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn validity(&self) -> Option<Bitmap<'a>> {
        self.validity
    }

    pub fn null_count(&self) -> u64 {
        self.null_count
    }

    #[inline]
    pub fn is_valid(&self, i: usize) -> bool {
        self.validity.is_none_or(|v| v.get(i))
    }

    /// The string at row `i`, `None` for null (or past the end).
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a str> {
        if i >= self.len || !self.is_valid(i) {
            return None;
        }
        Some(match self.repr {
            StringRepr::Plain { offsets, bytes } => slice_str(offsets, bytes, i, self.trusted),
            StringRepr::Dictionary { codes, .. } => {
                self.dictionary_value(codes.get(i).copied().unwrap_or(u32::MAX))
            }
        })
    }

    /// Dictionary codes, one per row (null rows hold 0: check validity), when dictionary-encoded.
    /// Codes index a dictionary sorted by byte order, so comparing codes compares strings.
    pub fn codes(&self) -> Option<&'a [u32]> {
        match self.repr {
            StringRepr::Dictionary { codes, .. } => Some(codes),
            StringRepr::Plain { .. } => None,
        }
    }

    /// Number of dictionary entries (0 when plain).
    pub fn dictionary_len(&self) -> usize {
        match self.repr {
            StringRepr::Dictionary { dict_offsets, .. } => dict_offsets.len().saturating_sub(1),
            StringRepr::Plain { .. } => 0,
        }
    }

    /// Dictionary entry `code`; "" when out of range.
    #[inline]
    pub fn dictionary_value(&self, code: u32) -> &'a str {
        match self.repr {
            StringRepr::Dictionary {
                dict_offsets,
                dict_bytes,
                ..
            } => slice_str(dict_offsets, dict_bytes, code as usize, self.trusted),
            StringRepr::Plain { .. } => "",
        }
    }

    /// Offsets (`len + 1` of them) into [`plain_bytes`](Self::plain_bytes), when plain.
    pub fn plain_offsets(&self) -> Option<&'a [u64]> {
        match self.repr {
            StringRepr::Plain { offsets, .. } => Some(offsets),
            StringRepr::Dictionary { .. } => None,
        }
    }

    /// The concatenated string bytes when plain; empty when dictionary-encoded.
    pub fn plain_bytes(&self) -> &'a [u8] {
        match self.repr {
            StringRepr::Plain { bytes, .. } => bytes,
            StringRepr::Dictionary { .. } => &[],
        }
    }
}

/// One column of one row group.
#[derive(Clone, Copy, Debug)]
pub enum ColumnChunk<'a> {
    Bool(BoolChunk<'a>),
    Int64(PrimitiveChunk<'a, i64>),
    Float64(PrimitiveChunk<'a, f64>),
    Date(PrimitiveChunk<'a, i32>),
    Timestamp(PrimitiveChunk<'a, i64>),
    Utf8(StringChunk<'a>),
}

impl<'a> ColumnChunk<'a> {
    pub fn len(&self) -> usize {
        match self {
            ColumnChunk::Bool(c) => c.len(),
            ColumnChunk::Int64(c) | ColumnChunk::Timestamp(c) => c.len(),
            ColumnChunk::Float64(c) => c.len(),
            ColumnChunk::Date(c) => c.len(),
            ColumnChunk::Utf8(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn data_type(&self) -> DataType {
        match self {
            ColumnChunk::Bool(_) => DataType::Bool,
            ColumnChunk::Int64(_) => DataType::Int64,
            ColumnChunk::Float64(_) => DataType::Float64,
            ColumnChunk::Date(_) => DataType::Date,
            ColumnChunk::Timestamp(_) => DataType::Timestamp,
            ColumnChunk::Utf8(_) => DataType::Utf8,
        }
    }

    pub fn is_valid(&self, i: usize) -> bool {
        match self {
            ColumnChunk::Bool(c) => c.is_valid(i),
            ColumnChunk::Int64(c) | ColumnChunk::Timestamp(c) => c.is_valid(i),
            ColumnChunk::Float64(c) => c.is_valid(i),
            ColumnChunk::Date(c) => c.is_valid(i),
            ColumnChunk::Utf8(c) => c.is_valid(i),
        }
    }

    /// The value at row `i` of the chunk; `Value::Null` for null or past the end.
    #[inline]
    pub fn get(&self, i: usize) -> Value<'a> {
        let v = match self {
            ColumnChunk::Bool(c) => c.get(i).map(Value::Bool),
            ColumnChunk::Int64(c) => c.get(i).map(Value::Int64),
            ColumnChunk::Float64(c) => c.get(i).map(Value::Float64),
            ColumnChunk::Date(c) => c.get(i).map(Value::Date),
            ColumnChunk::Timestamp(c) => c.get(i).map(Value::Timestamp),
            ColumnChunk::Utf8(c) => c.get(i).map(Value::Utf8),
        };
        v.unwrap_or(Value::Null)
    }
}
