//! The one percent-decoder for path segments and query strings, and the one query-string
//! splitter: every endpoint decodes alike, so `%2C` is a comma, `+` stays a plus and a `%` not
//! followed by two hex digits is refused (RFC 3986 2.1; `percent_decode_str` would pass it
//! through literally) wherever it appears.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::error::QueryError;

/// The byte offset of the first `%` not followed by two hex digits, if any.
fn malformed_escape(raw: &str) -> Option<usize> {
    let b = raw.as_bytes();
    (0..b.len()).find(|&i| {
        b[i] == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// Percent-decodes `raw`, borrowing it when it holds no `%` (the common case).
///
/// # Errors
/// A malformed escape is 400 `bad_encoding`; bytes that are not UTF-8 once decoded are a 400
/// with the code `utf8_code`. Both name `param_for_error`.
pub fn percent_decode<'a>(
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

/// Splits a raw query string into percent-decoded (name, value) pairs, in order, repeats kept
/// (empty pieces between `&`s are skipped; a piece without `=` has an empty value).
///
/// # Errors
/// 400 `bad_encoding` naming the parameter for a malformed escape or invalid UTF-8.
pub fn decode_query(raw_query: &str) -> Result<Vec<(String, String)>, QueryError> {
    let mut pairs = Vec::new();
    for piece in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
        let lossy_name = percent_decode_str(raw_name)
            .decode_utf8_lossy()
            .into_owned();
        let name = percent_decode(raw_name, &lossy_name, "bad_encoding")?.into_owned();
        let value = percent_decode(raw_value, &name, "bad_encoding")?.into_owned();
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// 400 `duplicate_parameter`: a parameter that may be given once was given again.
pub fn duplicate_parameter(name: &str) -> QueryError {
    QueryError::bad(
        "duplicate_parameter",
        name,
        format!("parameter {name:?} given twice; give it once"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_keeps_plus_and_refuses_malformed_escapes() {
        assert_eq!(
            decode_query("select=a%2Cb&x=1+2&&flag").unwrap(),
            [
                ("select".to_string(), "a,b".to_string()),
                ("x".to_string(), "1+2".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
        let e = decode_query("a=%ZZ").unwrap_err();
        assert_eq!((e.code, e.param.as_deref()), ("bad_encoding", Some("a")));
        assert!(e.message.contains("byte 0"), "{}", e.message);
        let e = percent_decode("%FF", "name", "invalid_parameter").unwrap_err();
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("invalid_parameter", Some("name"))
        );
        assert!(matches!(
            percent_decode("plain", "p", "x"),
            Ok(Cow::Borrowed("plain"))
        ));
    }
}
