//! Point lookups: the `{key}` path segment and one row as a JSON object.

use percent_encoding::percent_decode_str;
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
    if let Some(at) = crate::query::malformed_escape(raw_percent_encoded) {
        return Err(QueryError::bad(
            "bad_encoding",
            "key",
            format!(
                "expected '%' followed by two hex digits at byte {at} of {raw_percent_encoded:?} (write a literal '%' as %25)"
            ),
        ));
    }
    let text = percent_decode_str(raw_percent_encoded).decode_utf8().map_err(|_| {
        QueryError::bad(
            "bad_key",
            "key",
            format!("expected UTF-8 after percent-decoding, found invalid bytes in {raw_percent_encoded:?}"),
        )
    })?;
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
    if row >= file.num_rows() {
        return b"null".to_vec();
    }
    let fields = file.schema().fields();
    let mut out = Vec::with_capacity(32 * fields.len() + 2);
    out.push(b'{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(&mut out, &f.name);
        out.push(b':');
        write_json_value(&mut out, file.value(row, i));
    }
    out.push(b'}');
    out
}
