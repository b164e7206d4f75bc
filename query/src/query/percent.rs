//! Percent-decoding of query-string names and values: a malformed escape or bytes that are not
//! UTF-8 once decoded are a 400 naming the parameter, never passed through.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::error::QueryError;

/// The byte offset of the first `%` not followed by two hex digits (RFC 3986 2.1), if any.
/// `percent_decode_str` passes such a `%` through literally; Quarry refuses it instead.
pub(crate) fn malformed_escape(raw: &str) -> Option<usize> {
    let b = raw.as_bytes();
    (0..b.len()).find(|&i| {
        b[i] == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

pub(crate) fn decode(raw: &str, param_for_error: &str) -> Result<String, QueryError> {
    percent_decode(raw, param_for_error, "bad_encoding").map(Cow::into_owned)
}

/// Percent-decodes `raw`, borrowing it when it holds no `%` (the common case). A malformed
/// escape is 400 `bad_encoding`; bytes that are not UTF-8 once decoded are a 400 with the code
/// `utf8_code`.
pub(crate) fn percent_decode<'a>(
    raw: &'a str,
    param_for_error: &str,
    utf8_code: &'static str,
) -> Result<Cow<'a, str>, QueryError> {
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    if let Some(at) = malformed_escape(raw) {
        return Err(QueryError::bad(
            "bad_encoding",
            param_for_error,
            format!(
                "expected '%' followed by two hex digits at byte {at} of {raw:?} (write a literal '%' as %25)"
            ),
        ));
    }
    percent_decode_str(raw).decode_utf8().map_err(|_| {
        QueryError::bad(
            utf8_code,
            param_for_error,
            format!("expected UTF-8 after percent-decoding, found invalid bytes in {raw:?}"),
        )
    })
}
