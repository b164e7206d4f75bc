//! `QuarryFile::open`: every check that costs no more than the footer (SPEC.md: What a reader
//! MUST check). Nothing here panics on any input; each failure names the structure and offset.

use xxhash_rust::xxh3::xxh3_128;
use zerocopy::FromBytes;

use crate::error::{FormatError, Result};
use crate::layout::{ChunkMetaRaw, ColumnMetaRaw, FooterHeader, Header, RowGroupMetaRaw, Trailer};
use crate::schema::{DataType, Field, Schema};
use crate::spec::{
    self, encoding_tag, ALIGN, FOOTER_HEADER_LEN, HEADER_LEN, KEY_INDEX_STRIDE, MAGIC,
    MIN_FILE_LEN, NO_KEY, TRAILER_LEN, VERSION_MAJOR,
};
use crate::value::Version;

use super::{
    BufferRange, ChunkBuffers, ChunkMeta, Encoding, KeyIndex, QuarryFile, RowGroupMeta, Stat,
    NEXT_FILE_ID,
};

fn read<'a, T: FromBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
    bytes: &'a [u8],
    offset: usize,
    structure: &'static str,
) -> Result<&'a T> {
    bytes
        .get(offset..)
        .and_then(|b| T::ref_from_prefix(b).ok())
        .map(|(t, _)| t)
        .ok_or_else(|| {
            FormatError::corrupt(structure, offset as u64, "extends past the end of the file")
        })
}

impl<B: AsRef<[u8]>> QuarryFile<B> {
    /// Opens a file: checks magic at both ends, version, footer hash, and that every offset and
    /// length is in bounds, aligned, monotonic and consistent with its type and encoding. The
    /// cost is that of the footer, not of the file. Never panics.
    ///
    /// # Errors
    /// A [`FormatError`] naming the structure, the byte offset, and what was expected and found.
    pub fn open(source: B) -> Result<Self> {
        let bytes = source.as_ref();
        let len = bytes.len();
        if len < MIN_FILE_LEN {
            return Err(FormatError::TooSmall {
                len: len as u64,
                min: MIN_FILE_LEN as u64,
            });
        }
        if (bytes.as_ptr() as usize) % 8 != 0 {
            return Err(FormatError::Misaligned);
        }
        // SPEC.md: Header.
        let header: &Header = read(bytes, 0, "header")?;
        if header.magic != MAGIC {
            return Err(FormatError::BadMagic {
                structure: "header",
                offset: 0,
                expected: MAGIC,
                found: header.magic,
            });
        }
        if header.major.get() != VERSION_MAJOR {
            return Err(FormatError::UnsupportedVersion {
                structure: "header",
                major: header.major.get(),
                minor: header.minor.get(),
                supported: VERSION_MAJOR,
            });
        }
        if header.reserved.iter().any(|b| *b != 0) {
            return Err(FormatError::corrupt(
                "header",
                12,
                "reserved bytes are not zero",
            ));
        }
        // SPEC.md: Trailer.
        let trailer_at = len - TRAILER_LEN;
        let trailer: &Trailer = read(bytes, trailer_at, "trailer")?;
        if trailer.magic != MAGIC {
            return Err(FormatError::BadMagic {
                structure: "trailer",
                offset: (len - 8) as u64,
                expected: MAGIC,
                found: trailer.magic,
            });
        }
        if trailer.major.get() != header.major.get() || trailer.minor.get() != header.minor.get() {
            return Err(FormatError::corrupt(
                "trailer",
                (trailer_at + 32) as u64,
                format!(
                    "version {}.{} differs from the header's {}.{}",
                    trailer.major.get(),
                    trailer.minor.get(),
                    header.major.get(),
                    header.minor.get()
                ),
            ));
        }
        if trailer.reserved.iter().any(|b| *b != 0) {
            return Err(FormatError::corrupt(
                "trailer",
                (trailer_at + 36) as u64,
                "reserved bytes are not zero",
            ));
        }
        let footer_offset = trailer.footer_offset.get();
        let footer_len = trailer.footer_len.get();
        if footer_offset % ALIGN != 0
            || footer_offset < HEADER_LEN as u64
            || footer_offset.checked_add(footer_len) != Some(trailer_at as u64)
            || footer_len < FOOTER_HEADER_LEN as u64
        {
            return Err(FormatError::corrupt(
                "trailer",
                trailer_at as u64,
                format!(
                    "footer at {footer_offset} of {footer_len} bytes must be 64-aligned, start after the header and end at the trailer ({trailer_at})"
                ),
            ));
        }
        let footer = &bytes[footer_offset as usize..trailer_at];
        let hash = xxh3_128(footer).to_le_bytes();
        if hash != trailer.footer_hash {
            return Err(FormatError::Checksum {
                structure: "footer".into(),
                offset: footer_offset,
                end: trailer_at as u64,
                expected: u64::from_le_bytes(trailer.footer_hash[..8].try_into().unwrap_or([0; 8])),
                found: u64::from_le_bytes(hash[..8].try_into().unwrap_or([0; 8])),
            });
        }
        Self::parse_footer(source, footer_offset, Version(hash))
    }

    fn parse_footer(source: B, footer_offset: u64, version: Version) -> Result<Self> {
        let bytes = source.as_ref();
        let footer = &bytes[footer_offset as usize..bytes.len() - TRAILER_LEN];
        let at = |rel: usize| footer_offset + rel as u64;
        let fh: &FooterHeader = read(footer, 0, "footer header")?;
        let num_columns = fh.num_columns.get() as usize;
        let num_groups = fh.num_row_groups.get() as usize;
        let expected_len = (|| {
            let chunks = num_columns.checked_mul(num_groups)?;
            FOOTER_HEADER_LEN
                .checked_add(num_columns.checked_mul(spec::COLUMN_META_LEN)?)?
                .checked_add(num_groups.checked_mul(spec::ROW_GROUP_META_LEN)?)?
                .checked_add(chunks.checked_mul(spec::CHUNK_META_LEN)?)?
                .checked_add(fh.strings_len.get() as usize)
        })();
        if expected_len != Some(footer.len()) {
            return Err(FormatError::corrupt(
                "footer header",
                footer_offset,
                format!(
                    "{num_columns} columns, {num_groups} row groups and {} string bytes do not add up to the footer's {} bytes",
                    fh.strings_len.get(),
                    footer.len()
                ),
            ));
        }
        let mut rel = FOOTER_HEADER_LEN;
        let columns = <[ColumnMetaRaw]>::ref_from_prefix_with_elems(&footer[rel..], num_columns)
            .map_err(|_| FormatError::corrupt("column table", at(rel), "out of bounds"))?
            .0;
        rel += num_columns * spec::COLUMN_META_LEN;
        let groups_raw =
            <[RowGroupMetaRaw]>::ref_from_prefix_with_elems(&footer[rel..], num_groups)
                .map_err(|_| FormatError::corrupt("row group table", at(rel), "out of bounds"))?
                .0;
        rel += num_groups * spec::ROW_GROUP_META_LEN;
        let chunks_at = rel;
        let chunks_raw =
            <[ChunkMetaRaw]>::ref_from_prefix_with_elems(&footer[rel..], num_columns * num_groups)
                .map_err(|_| FormatError::corrupt("chunk table", at(rel), "out of bounds"))?
                .0;
        rel += num_columns * num_groups * spec::CHUNK_META_LEN;
        let strings_at = rel;
        let strings = &footer[rel..];
        let string = |off: u64, len: u64, what: &'static str| -> Result<&str> {
            let r = off as usize..(off as usize).saturating_add(len as usize);
            let b = strings.get(r).ok_or_else(|| {
                FormatError::corrupt(
                    what,
                    at(strings_at),
                    format!("string {off}+{len} is outside the string pool"),
                )
            })?;
            std::str::from_utf8(b).map_err(|_| {
                FormatError::corrupt(what, at(strings_at) + off, "string is not valid UTF-8")
            })
        };
        let created_by = string(0, u64::from(fh.created_by_len.get()), "created_by")?.to_owned();

        // SPEC.md: ColumnMeta.
        let mut fields = Vec::with_capacity(num_columns);
        for (i, c) in columns.iter().enumerate() {
            let where_ = at(FOOTER_HEADER_LEN + i * spec::COLUMN_META_LEN);
            let name = string(
                u64::from(c.name_offset.get()),
                u64::from(c.name_len.get()),
                "column name",
            )?;
            let data_type = DataType::from_tag(c.data_type).ok_or_else(|| {
                FormatError::corrupt(
                    "column meta",
                    where_ + 8,
                    format!("unknown type tag {}", c.data_type),
                )
            })?;
            if c.nullable > 1 || c.reserved.iter().any(|b| *b != 0) {
                return Err(FormatError::corrupt(
                    "column meta",
                    where_ + 9,
                    "nullable flag not 0/1 or reserved bytes not zero",
                ));
            }
            fields.push(Field {
                name: name.to_owned(),
                data_type,
                nullable: c.nullable == 1,
            });
        }
        let key = match fh.key_column.get() {
            NO_KEY => None,
            k => Some(k as usize),
        };
        let schema = Schema::new(fields, key).map_err(|e| {
            FormatError::corrupt("footer header", footer_offset + 16, format!("schema: {e}"))
        })?;

        // SPEC.md: RowGroupMeta.
        let mut row_groups = Vec::with_capacity(num_groups);
        let mut next_row = 0u64;
        for (g, rg) in groups_raw.iter().enumerate() {
            let (first, n) = (rg.first_row.get(), rg.num_rows.get());
            if first != next_row || n == 0 || n > u64::from(u32::MAX) {
                return Err(FormatError::corrupt(
                    "row group meta",
                    at(FOOTER_HEADER_LEN + num_columns * spec::COLUMN_META_LEN + g * spec::ROW_GROUP_META_LEN),
                    format!("row group {g} starts at row {first} with {n} rows; expected to start at {next_row} with 1..=2^32-1 rows"),
                ));
            }
            next_row += n;
            row_groups.push(RowGroupMeta {
                first_row: first,
                num_rows: n,
            });
        }
        if next_row != fh.num_rows.get() {
            return Err(FormatError::corrupt(
                "footer header",
                footer_offset,
                format!(
                    "row groups hold {next_row} rows, the header says {}",
                    fh.num_rows.get()
                ),
            ));
        }

        // Where the body ends: the key index if any, else the footer.
        let ki_offset = fh.key_index_offset.get();
        let ki_entries = fh.key_index_entries.get();
        let body_end = if ki_entries > 0 {
            ki_offset
        } else {
            footer_offset
        };

        // SPEC.md: ChunkMeta, Chunk buffers.
        let mut chunks = Vec::with_capacity(chunks_raw.len());
        let mut prev_end = HEADER_LEN as u64;
        for (i, raw) in chunks_raw.iter().enumerate() {
            let (g, c) = (i / num_columns.max(1), i % num_columns.max(1));
            let field = &schema.fields()[c];
            let where_ = at(chunks_at + i * spec::CHUNK_META_LEN);
            let meta = parse_chunk(
                raw,
                field,
                row_groups[g].num_rows,
                prev_end,
                body_end,
                strings,
            )
            .map_err(|detail| {
                FormatError::corrupt(
                    "chunk meta",
                    where_,
                    format!("column {:?} row group {g}: {detail}", field.name),
                )
            })?;
            prev_end = meta.offset + meta.len;
            chunks.push(meta);
        }

        // SPEC.md: Key index.
        let key_index =
            parse_key_index(fh, &schema, &row_groups, prev_end, footer_offset, bytes)
                .map_err(|detail| FormatError::corrupt("key index", footer_offset + 16, detail))?;

        Ok(QuarryFile {
            num_rows: fh.num_rows.get(),
            source,
            schema,
            row_groups,
            chunks,
            version,
            created_by,
            key_index,
            key_words: std::sync::OnceLock::new(),
            id: NEXT_FILE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            verified_at: std::sync::OnceLock::new(),
            footer_offset,
        })
    }
}

fn parse_chunk(
    raw: &ChunkMetaRaw,
    field: &Field,
    n: u64,
    prev_end: u64,
    body_end: u64,
    strings: &[u8],
) -> Result<ChunkMeta, String> {
    let offset = raw.offset.get();
    let len = raw.len.get();
    let end = offset.checked_add(len).ok_or("offset + length overflows")?;
    if offset % ALIGN != 0 || offset < prev_end || end > body_end {
        return Err(format!(
            "region {offset}..{end} must be 64-aligned, after the previous chunk (ends {prev_end}) and before {body_end}"
        ));
    }
    let null_count = raw.null_count.get();
    if null_count > n || (!field.nullable && null_count > 0) {
        return Err(format!(
            "{null_count} nulls in {n} rows of a {} column",
            if field.nullable {
                "nullable"
            } else {
                "non-nullable"
            }
        ));
    }
    if raw.reserved != [0; 2] || raw.reserved2.get() != 0 || raw.has_stats > 1 {
        return Err("reserved bytes not zero or stats flag not 0/1".into());
    }
    let encoding = match (field.data_type, raw.encoding) {
        (DataType::Bool, encoding_tag::BIT_PACKED) => Encoding::BitPacked,
        (DataType::Utf8, encoding_tag::DICTIONARY) => Encoding::Dictionary,
        (DataType::Bool, _) | (DataType::Utf8, encoding_tag::BIT_PACKED) => {
            return Err(format!(
                "encoding tag {} is not valid for {}",
                raw.encoding, field.data_type
            ))
        }
        (_, encoding_tag::PLAIN) => Encoding::Plain,
        (t, e) => return Err(format!("encoding tag {e} is not valid for {t}")),
    };
    let dictionary_len = raw.dictionary_len.get();
    if (encoding == Encoding::Dictionary) != (dictionary_len > 0) {
        return Err(format!(
            "dictionary length {dictionary_len} does not fit encoding {}",
            encoding.name()
        ));
    }
    // Expected buffer lengths per slot; None = any length (string bytes).
    let bitmap_len = n.div_ceil(8);
    let d = u64::from(dictionary_len);
    let expect: [Option<u64>; 4] = match (field.data_type, encoding) {
        (DataType::Bool, _) => [Some(bitmap_len), Some(bitmap_len), Some(0), Some(0)],
        (DataType::Utf8, Encoding::Plain) => [Some(bitmap_len), Some(8 * (n + 1)), None, Some(0)],
        (DataType::Utf8, _) => [Some(bitmap_len), Some(4 * n), Some(8 * (d + 1)), None],
        (t, _) => [
            Some(bitmap_len),
            Some(t.fixed_width().unwrap_or(8) as u64 * n),
            Some(0),
            Some(0),
        ],
    };
    let mut ranges = [None; 4];
    let mut buf_end = 0u64;
    for (slot, (b, want)) in raw.buffers.iter().zip(expect).enumerate() {
        let (boff, blen) = (b.offset.get(), b.len.get());
        let want = if slot == 0 && null_count == 0 {
            Some(0)
        } else {
            want
        };
        if want.is_some_and(|w| w != blen) {
            return Err(format!(
                "buffer {slot} is {blen} bytes, expected {}",
                want.unwrap_or(0)
            ));
        }
        if blen == 0 {
            if boff != 0 {
                return Err(format!("empty buffer {slot} has offset {boff}, expected 0"));
            }
            continue;
        }
        if boff % ALIGN != 0 || boff < buf_end || boff.checked_add(blen).is_none_or(|e| e > len) {
            return Err(format!("buffer {slot} at {boff}+{blen} must be 64-aligned, ordered and inside the chunk's {len} bytes"));
        }
        buf_end = boff + blen;
        ranges[slot] = Some(BufferRange {
            offset: offset + boff,
            len: blen,
        });
    }
    if buf_end != len {
        return Err(format!("buffers end at {buf_end}, the chunk at {len}"));
    }
    let values = ranges[1].unwrap_or(BufferRange {
        offset: offset + len,
        len: 0,
    });
    let (min, max) = if raw.has_stats == 1 {
        let stat = |bits: u64| -> Result<Stat, String> {
            Ok(match field.data_type {
                DataType::Bool => Stat::Bool(bits != 0),
                DataType::Float64 => Stat::Float(f64::from_bits(bits)),
                DataType::Utf8 => {
                    let (o, l) = ((bits & 0xffff_ffff) as usize, (bits >> 32) as usize);
                    let b = strings
                        .get(o..o.saturating_add(l))
                        .ok_or("string statistic outside the string pool")?;
                    Stat::Utf8(
                        std::str::from_utf8(b)
                            .map_err(|_| "string statistic is not UTF-8")?
                            .to_owned(),
                    )
                }
                _ => Stat::Int(bits as i64),
            })
        };
        (Some(stat(raw.min.get())?), Some(stat(raw.max.get())?))
    } else {
        if raw.min.get() != 0 || raw.max.get() != 0 {
            return Err("statistics are set without the stats flag".into());
        }
        (None, None)
    };
    Ok(ChunkMeta {
        encoding,
        num_rows: n,
        null_count,
        min,
        max,
        offset,
        len,
        checksum: raw.checksum.get(),
        dictionary_len,
        buffers: ChunkBuffers {
            validity: ranges[0],
            values,
            data: ranges[2],
            dictionary: ranges[3],
        },
    })
}

fn parse_key_index(
    fh: &FooterHeader,
    schema: &Schema,
    row_groups: &[RowGroupMeta],
    body_end: u64,
    footer_offset: u64,
    bytes: &[u8],
) -> Result<Option<KeyIndex>, String> {
    let (offset, len, entries) = (
        fh.key_index_offset.get(),
        fh.key_index_len.get(),
        fh.key_index_entries.get(),
    );
    if fh.key_index_stride.get() != KEY_INDEX_STRIDE {
        return Err(format!(
            "stride {} is not {KEY_INDEX_STRIDE}",
            fh.key_index_stride.get()
        ));
    }
    let Some(key) = schema.key_field() else {
        if offset != 0 || len != 0 || entries != 0 || fh.key_index_checksum.get() != 0 {
            return Err("a file without a key has a key index".into());
        }
        return Ok(None);
    };
    let stride = u64::from(KEY_INDEX_STRIDE);
    let mut entries_before = Vec::with_capacity(row_groups.len() + 1);
    let mut total = 0u64;
    for rg in row_groups {
        entries_before.push(total);
        total += rg.num_rows.div_ceil(stride);
    }
    entries_before.push(total);
    if entries != total {
        return Err(format!(
            "{entries} entries, expected {total} for the row groups"
        ));
    }
    if entries == 0 {
        if offset != 0 || len != 0 || fh.key_index_checksum.get() != 0 {
            return Err("an empty key index has an offset, length or checksum".into());
        }
        return Ok(Some(KeyIndex {
            offset,
            len,
            checksum: 0,
            entries,
            bytes_offset: 0,
            entries_before,
        }));
    }
    let end = offset.checked_add(len).ok_or("offset + length overflows")?;
    if offset % ALIGN != 0 || offset < body_end || end > footer_offset {
        return Err(format!("region {offset}..{end} must be 64-aligned, after the last chunk ({body_end}) and before the footer ({footer_offset})"));
    }
    let mut bytes_offset = end;
    match key.data_type {
        DataType::Int64 => {
            if len != 8 * entries {
                return Err(format!("{len} bytes for {entries} int64 keys"));
            }
        }
        _ => {
            let offsets_len = 8 * (entries + 1);
            if len < offsets_len {
                return Err(format!(
                    "{len} bytes cannot hold {} string offsets",
                    entries + 1
                ));
            }
            let last = bytes
                .get((offset + offsets_len - 8) as usize..(offset + offsets_len) as usize)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
                .ok_or("offsets out of bounds")?;
            let start = if last == 0 {
                offset + offsets_len
            } else {
                spec::align_up(offset + offsets_len)
            };
            if start.checked_add(last) != Some(end) {
                return Err(format!("string bytes ({last}) do not end the index"));
            }
            bytes_offset = start;
        }
    }
    Ok(Some(KeyIndex {
        offset,
        len,
        checksum: fh.key_index_checksum.get(),
        entries,
        bytes_offset,
        entries_before,
    }))
}
