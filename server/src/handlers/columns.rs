//! `/v1/datasets/{name}/columns/{col}?offset=&limit=&part=values|offsets|validity`: raw
//! little-endian column bytes, served as `Bytes` slices of the mapping (no copy in our code).
//!
//! What a response holds (SPEC.md: Chunk buffers):
//! - fixed-width columns (int64, float64, timestamp: 8 bytes a row; date: 4), `part=values`:
//!   the values of rows `offset .. offset+limit`, across row groups (one slice per chunk);
//! - bool `values` and any column's `validity`: the LSB-first bitmap bytes of one row group
//!   covering the rows, starting at the byte holding the first row (`Quarry-Bit-Offset` says
//!   which bit of the first byte is row `Quarry-Row-Start`; `Quarry-Null-Count` counts the nulls
//!   of the rows returned); empty with `Quarry-Null-Count: 0` when the chunk has no nulls;
//! - utf8 (plain chunks) `values`: the string bytes of the rows; `offsets`: their `limit+1` u64
//!   offsets, relative to the chunk (subtract the first to index the `values` body).
//!   Dictionary-encoded chunks are refused with 400 `dictionary_encoded` (param `col`).
//!
//! Bitmaps and strings stop at the end of the row group holding `offset`; `Quarry-Row-End`
//! (exclusive) says where the response stops, so clients continue from there. Single byte
//! `Range` requests are honoured (206); multi-range requests get the whole body.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use quarry_format::{ColumnChunk, DataType, Encoding};

use super::{cacheable, etag, ApiResult};
use crate::body::Body;
use crate::dataset::{map_slice, Dataset};
use crate::error::ApiError;
use crate::state::LoopCtx;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Values,
    Offsets,
    Validity,
}

struct Params {
    offset: u64,
    limit: Option<u64>,
    part: Part,
}

/// Parses the query string with the rows endpoint's splitter and decoder
/// (`quarry_query::decode_query`): escapes decoded (`%2C` a comma), `+` a literal plus, a
/// malformed escape 400 `bad_encoding`, and a parameter given twice 400 `duplicate_parameter`.
fn parse_params(query: &str) -> Result<Params, ApiError> {
    let mut p = Params {
        offset: 0,
        limit: None,
        part: Part::Values,
    };
    let mut seen: Vec<String> = Vec::new();
    for (k, v) in quarry_query::decode_query(query)? {
        if seen.contains(&k) {
            return Err(quarry_query::duplicate_parameter(&k).into());
        }
        let number = |name: &str| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_param(
                    name,
                    format!("{name} must be a non-negative integer, found {v:?}"),
                )
            })
        };
        match k.as_str() {
            "offset" => p.offset = number("offset")?,
            "limit" => p.limit = Some(number("limit")?),
            "part" => {
                p.part = match v.as_str() {
                    "values" => Part::Values,
                    "offsets" => Part::Offsets,
                    "validity" => Part::Validity,
                    _ => {
                        return Err(ApiError::bad_param(
                            "part",
                            format!("part must be values, offsets or validity, found {v:?}"),
                        ))
                    }
                }
            }
            _ => {
                return Err(ApiError::BadRequest {
                    code: "unknown_parameter",
                    message: format!("unknown query parameter {k:?}; use offset, limit, part"),
                    param: Some(k),
                })
            }
        }
        seen.push(k);
    }
    Ok(p)
}

/// The slices making up the representation, and the rows they cover.
struct Raw {
    pieces: Vec<Bytes>,
    row_start: u64,
    row_end: u64,
    bit_offset: Option<u64>,
    null_count: Option<u64>,
}

fn width(t: DataType) -> Option<u64> {
    match t {
        DataType::Int64 | DataType::Float64 | DataType::Timestamp => Some(8),
        DataType::Date => Some(4),
        DataType::Bool | DataType::Utf8 => None,
    }
}

/// `range` of the mapping, which must lie inside `buffer` (a buffer of chunk `(rg, col)`):
/// anything else is a corrupt file, answered as `corrupt_data`, never a panic.
fn slice_of(
    ds: &Arc<Dataset>,
    col: usize,
    rg: usize,
    buffer: std::ops::Range<usize>,
    range: std::ops::Range<usize>,
) -> Result<Bytes, ApiError> {
    let inside = buffer.start <= range.start && range.start <= range.end && range.end <= buffer.end;
    inside
        .then(|| map_slice(ds, range.clone()))
        .flatten()
        .ok_or_else(|| ApiError::CorruptData {
            dataset: ds.name.clone(),
            column: ds.file.schema().fields()[col].name.clone(),
            row_group: rg,
            detail: format!(
                "bytes {}..{} lie outside their buffer {}..{}",
                range.start, range.end, buffer.start, buffer.end
            ),
        })
}

fn collect(ds: &Arc<Dataset>, col: usize, p: &Params) -> Result<Raw, ApiError> {
    let file = &ds.file;
    let rows = file.num_rows();
    if p.offset > rows || (p.offset == rows && rows > 0) {
        return Err(ApiError::bad_param(
            "offset",
            format!("offset {} is past the last row ({rows} rows)", p.offset),
        ));
    }
    let data_type = file.schema().fields()[col].data_type;
    let want_end = p
        .limit
        .map_or(rows, |l| p.offset.saturating_add(l).min(rows));
    let mut raw = Raw {
        pieces: Vec::new(),
        row_start: p.offset,
        row_end: p.offset,
        bit_offset: None,
        null_count: None,
    };
    if want_end == p.offset {
        return Ok(raw);
    }
    let (first_rg, _) = file.locate(p.offset);
    if let (Part::Values, Some(w)) = (p.part, width(data_type)) {
        // Fixed width: one slice per row group, across groups.
        for (rg, meta) in file.row_groups().iter().enumerate().skip(first_rg) {
            if meta.first_row >= want_end {
                break;
            }
            let a = p.offset.max(meta.first_row) - meta.first_row;
            let b = want_end.min(meta.first_row + meta.num_rows) - meta.first_row;
            let buf = file.chunk_meta(rg, col).buffers.values.range();
            let start = buf.start.saturating_add((a * w) as usize);
            let end = buf.start.saturating_add((b * w) as usize);
            raw.pieces.push(slice_of(ds, col, rg, buf, start..end)?);
            raw.row_end = meta.first_row + b;
        }
        return Ok(raw);
    }
    // Everything else: within the row group holding `offset`.
    let group = file.row_groups()[first_rg];
    let meta = file.chunk_meta(first_rg, col);
    let a = p.offset - group.first_row;
    let b = want_end.min(group.first_row + group.num_rows) - group.first_row;
    raw.row_end = group.first_row + b;
    let bitmap = |range: std::ops::Range<usize>| {
        let start = range.start.saturating_add((a / 8) as usize);
        let end = range.start.saturating_add(b.div_ceil(8) as usize);
        slice_of(ds, col, first_rg, range, start..end)
    };
    match (p.part, data_type) {
        (Part::Validity, _) => {
            raw.null_count = Some(if meta.null_count == 0 {
                0
            } else {
                let validity = match file.chunk(first_rg, col) {
                    ColumnChunk::Bool(c) => c.validity(),
                    ColumnChunk::Int64(c) | ColumnChunk::Timestamp(c) => c.validity(),
                    ColumnChunk::Float64(c) => c.validity(),
                    ColumnChunk::Date(c) => c.validity(),
                    ColumnChunk::Utf8(c) => c.validity(),
                };
                validity.map_or(0, |v| nulls_in(v.bytes(), v.len(), a as usize, b as usize))
            });
            if let Some(v) = meta.buffers.validity {
                raw.pieces.push(bitmap(v.range())?);
                raw.bit_offset = Some(a % 8);
            }
        }
        (Part::Values, DataType::Bool) => {
            raw.pieces.push(bitmap(meta.buffers.values.range())?);
            raw.bit_offset = Some(a % 8);
        }
        (Part::Values | Part::Offsets, DataType::Utf8) => {
            if meta.encoding == Encoding::Dictionary {
                return Err(ApiError::BadRequest {
                    code: "dictionary_encoded",
                    message: format!(
                        "column chunk of row group {first_rg} is dictionary-encoded; raw reads serve \
                         plain utf8 chunks only: use the rows endpoint"
                    ),
                    param: Some("col".to_string()),
                });
            }
            let ColumnChunk::Utf8(chunk) = file.chunk(first_rg, col) else {
                return Err(ApiError::Internal {
                    message: "utf8 column without a utf8 chunk".into(),
                });
            };
            let offsets = chunk.plain_offsets().ok_or_else(|| ApiError::Internal {
                message: "plain chunk without offsets".into(),
            })?;
            let (oa, ob) = match (offsets.get(a as usize), offsets.get(b as usize)) {
                (Some(x), Some(y)) => (*x, *y),
                _ => {
                    return Err(ApiError::Internal {
                        message: "offsets shorter than the row group".into(),
                    })
                }
            };
            if p.part == Part::Offsets {
                let buf = meta.buffers.values.range();
                let start = buf.start.saturating_add((a * 8) as usize);
                let end = buf.start.saturating_add(((b + 1) * 8) as usize);
                raw.pieces
                    .push(slice_of(ds, col, first_rg, buf, start..end)?);
            } else {
                let data = meta.buffers.data.ok_or_else(|| ApiError::Internal {
                    message: "plain chunk without string bytes".into(),
                })?;
                let buf = data.range();
                let start = usize::try_from(oa).map_or(usize::MAX, |o| buf.start.saturating_add(o));
                let end = usize::try_from(ob).map_or(usize::MAX, |o| buf.start.saturating_add(o));
                raw.pieces
                    .push(slice_of(ds, col, first_rg, buf, start..end)?);
            }
        }
        (Part::Offsets, t) => {
            return Err(ApiError::bad_param(
                "part",
                format!(
                    "part=offsets exists for utf8 columns only; this column is {}",
                    t.name()
                ),
            ));
        }
        (Part::Values, _) => {
            return Err(ApiError::Internal {
                message: "fixed-width values are handled above".into(),
            })
        }
    }
    Ok(raw)
}

/// Unset bits in `a..b` of the LSB-first bitmap `bytes` of `len` bits (the nulls of those rows
/// when it is a validity bitmap): whole bytes by popcount.
fn nulls_in(bytes: &[u8], len: usize, a: usize, b: usize) -> u64 {
    let unset = |i: usize| u64::from(bytes.get(i / 8).is_none_or(|x| (x >> (i % 8)) & 1 == 0));
    let b = b.min(len);
    let mut nulls = 0u64;
    let mut i = a;
    while i < b && i % 8 != 0 {
        nulls += unset(i);
        i += 1;
    }
    let full_end = i + (b.saturating_sub(i) / 8) * 8;
    if let Some(whole) = bytes.get(i / 8..full_end / 8) {
        nulls += whole
            .iter()
            .map(|x| u64::from(x.count_zeros()))
            .sum::<u64>();
        i = full_end;
    }
    while i < b {
        nulls += unset(i);
        i += 1;
    }
    nulls
}

/// Parses `Range: bytes=a-b | a- | -n` against `len`. `Ok(None)`: serve the whole body.
fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) if a <= b => (a, b.min(len.saturating_sub(1))),
        (Ok(a), Err(_)) if b.is_empty() => (a, len.saturating_sub(1)),
        (Err(_), Ok(n)) if a.is_empty() && n > 0 => (len.saturating_sub(n), len.saturating_sub(1)),
        _ => return Ok(None),
    };
    if range.0 >= len {
        return Err(ApiError::RangeNotSatisfiable { len });
    }
    Ok(Some(range))
}

/// The sub-slices of `pieces` covering bytes `a..=b` (still no copy).
fn cut(pieces: Vec<Bytes>, a: u64, b: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    for p in pieces {
        let (s, e) = (pos, pos + p.len() as u64);
        pos = e;
        if e <= a || s > b {
            continue;
        }
        let from = a.saturating_sub(s) as usize;
        let to = ((b + 1).min(e) - s) as usize;
        out.push(p.slice(from..to));
    }
    out
}

pub fn raw(ctx: &LoopCtx, req: &Request<Incoming>, ds: &Arc<Dataset>, column: &str) -> ApiResult {
    let col = ds
        .file
        .schema()
        .index_of(column)
        .ok_or_else(|| ApiError::ColumnNotFound {
            column: column.to_string(),
        })?;
    let params = parse_params(req.uri().query().unwrap_or(""))?;
    let tag = etag(&[&ds.version_hex], req, &[]);
    if super::not_modified(req.headers(), &tag) {
        return Ok(cacheable(ctx, req, tag, "", Response::new(Body::empty())));
    }
    let raw = collect(ds, col, &params)?;
    let total: u64 = raw.pieces.iter().map(|b| b.len() as u64).sum();
    let range = match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) => match parse_range(v, total) {
            Ok(r) => r,
            Err(e) => {
                let mut resp = super::error_response(e);
                resp.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{total}")),
                );
                return Ok(resp);
            }
        },
        None => None,
    };
    let (status, pieces) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, cut(raw.pieces, a, b)),
        None => (StatusCode::OK, raw.pieces),
    };
    let mut resp = Response::new(Body::pieces(pieces));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some((a, b)) = range {
        h.insert(
            header::CONTENT_RANGE,
            header_value(&format!("bytes {a}-{b}/{total}")),
        );
    }
    let data_type = ds.file.schema().fields()[col].data_type;
    h.insert("quarry-type", HeaderValue::from_static(data_type.name()));
    h.insert("quarry-row-start", HeaderValue::from(raw.row_start));
    h.insert("quarry-row-end", HeaderValue::from(raw.row_end));
    h.insert("quarry-version", header_value(&ds.version_hex));
    if let Some(bit) = raw.bit_offset {
        h.insert("quarry-bit-offset", HeaderValue::from(bit));
    }
    if let Some(n) = raw.null_count {
        h.insert("quarry-null-count", HeaderValue::from(n));
    }
    Ok(cacheable(ctx, req, tag, "", resp))
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_in_counts_unset_bits_of_any_range() {
        let bytes: Vec<u8> = (0..9u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        let len = 67;
        let set = |i: usize| (bytes[i / 8] >> (i % 8)) & 1 == 1;
        for a in 0..=len {
            for b in a..=len + 3 {
                let want = (a..b.min(len)).filter(|&i| !set(i)).count() as u64;
                assert_eq!(nulls_in(&bytes, len, a, b), want, "{a}..{b}");
            }
        }
    }

    #[test]
    fn ranges_parse_like_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100).ok(), Some(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100).ok(), Some(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100).ok(), Some(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100).ok(), Some(Some((50, 99))));
        assert_eq!(parse_range("bytes=0-1,5-6", 100).ok(), Some(None));
        assert_eq!(parse_range("items=0-1", 100).ok(), Some(None));
        assert!(parse_range("bytes=100-", 100).is_err());
    }

    #[test]
    fn cut_takes_sub_slices_across_pieces() {
        let pieces = vec![Bytes::from_static(b"abcd"), Bytes::from_static(b"efgh")];
        let got: Vec<u8> = cut(pieces, 2, 5).iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(got, b"cdef");
    }
}
