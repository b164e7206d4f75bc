//! Point lookups: the `{key}` path segment and one row as a JSON object.

use quarry_format::{DataType, KeyRef, QuarryFile, Schema};

use crate::error::{ErrorKind, QueryError};
use crate::output::{write_json_str, write_json_value};

/// A parsed primary-key value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    Int64(i64),
    Utf8(String),
}

impl KeyValue {
    pub fn as_key_ref(&self) -> KeyRef<'_> {
        match self {
            KeyValue::Int64(v) => KeyRef::Int64(*v),
            KeyValue::Utf8(s) => KeyRef::Utf8(s),
        }
    }
}

/// Percent-decodes the path segment and parses it as the schema's key type.
///
/// # Errors
/// 400 (param `key`) for invalid UTF-8 or a non-integer for an int64 key; 404 `no_key` when the
/// dataset has no key column.
pub fn parse_key(raw_percent_encoded: &str, schema: &Schema) -> Result<KeyValue, QueryError> {
    let Some(field) = schema.key().and_then(|k| schema.fields().get(k)) else {
        return Err(QueryError::new(
            ErrorKind::NotFound,
            "no_key",
            "this dataset has no key column, so rows cannot be looked up by key; use the rows \
             endpoint with filters",
        )
        .with_param("key"));
    };
    let text = crate::percent::percent_decode(raw_percent_encoded, "key", "bad_key")?;
    match field.data_type {
        DataType::Int64 => text.parse::<i64>().map(KeyValue::Int64).map_err(|_| {
            QueryError::bad(
                "bad_key",
                "key",
                format!(
                    "key column {:?} has type int64: expected an integer, found {text:?}",
                    field.name
                ),
            )
        }),
        _ => Ok(KeyValue::Utf8(text.into_owned())),
    }
}

/// Row `row` (< num_rows) as `{"col": value, ...}` over every column.
/// A row past the end (a caller bug) gives `null` rather than a panic.
pub fn row_json<B: AsRef<[u8]>>(file: &QuarryFile<B>, row: u64) -> Vec<u8> {
    let mut out = Vec::new();
    RowJson::new(file.schema()).write(file, row, &mut out);
    out
}

/// Writes rows as JSON objects with the `"name":` parts of a schema encoded once: a server
/// builds one per dataset when it maps the file, so a lookup writes only the values.
#[derive(Clone, Debug)]
pub struct RowJson {
    /// `{"a":`, `,"b":`, ...: one per column, back to back.
    prefixes: Vec<u8>,
    /// End of each column's prefix in `prefixes`.
    ends: Vec<usize>,
}

impl RowJson {
    pub fn new(schema: &Schema) -> RowJson {
        let mut prefixes = Vec::new();
        let mut ends = Vec::with_capacity(schema.len());
        for (i, f) in schema.fields().iter().enumerate() {
            prefixes.push(if i == 0 { b'{' } else { b',' });
            write_json_str(&mut prefixes, &f.name);
            prefixes.push(b':');
            ends.push(prefixes.len());
        }
        RowJson { prefixes, ends }
    }

    /// Appends row `row` of `file` (which must have the schema this was built from) to `out`;
    /// `null` for a row past the end.
    pub fn write<B: AsRef<[u8]>>(&self, file: &QuarryFile<B>, row: u64, out: &mut Vec<u8>) {
        if row >= file.num_rows() || self.ends.len() != file.schema().len() {
            out.extend_from_slice(b"null");
            return;
        }
        if self.ends.is_empty() {
            out.extend_from_slice(b"{}");
            return;
        }
        // Names, punctuation and up to 32 bytes per value (and a caller's newline): one
        // allocation for most rows, where 16 bytes per value left longer strings to grow it.
        out.reserve(self.prefixes.len() + 32 * self.ends.len() + 2);
        let (g, i) = file.locate(row);
        file.prefetch_row(g, i);
        let mut start = 0;
        for (c, &end) in self.ends.iter().enumerate() {
            out.extend_from_slice(&self.prefixes[start..end]);
            write_json_value(out, file.value_at(g, c, i));
            start = end;
        }
        out.push(b'}');
    }
}
