//! Keyset cursors: `{version}.{kind}.{position}.{query}`, URL-safe (hex, letters, digits,
//! `-`, `_`, dots).
//!
//! - kind `r`: default order (row order, which is key order when the dataset has a key);
//!   position = the last row number returned. Next page: rows after it.
//! - kind `o`: `order=`; position = the last row returned. Its sort values are read back from
//!   the file: the version pins the exact file, so (values, row) is fully determined by the row.
//! - kind `g`: aggregates; position = the number of groups already returned (groups are in a
//!   deterministic order, and the version pins the data).
//!
//! `query` is the normalized query that made the cursor (its decoded parameters sorted, without
//! `cursor` and `offset`, as a query string), in unpadded URL-safe base64. `?cursor=X` alone
//! continues exactly that query; `query/params.rs` refuses the cursor with other parameters.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use quarry_format::Version;

use crate::error::{ErrorKind, QueryError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cursor {
    Row(u64),
    Ordered(u64),
    Offset(u64),
}

/// What must be escaped in a name or value of the carried query string: the separators, the
/// escape character, and controls.
const QUERY_PART: &AsciiSet = &CONTROLS.add(b'%').add(b'&').add(b'=');

impl Cursor {
    /// `query`: the normalized (name, value) pairs of the query the cursor continues.
    pub(crate) fn encode(self, version: Version, query: &[(String, String)]) -> String {
        let (kind, n) = match self {
            Cursor::Row(r) => ('r', r),
            Cursor::Ordered(r) => ('o', r),
            Cursor::Offset(o) => ('g', o),
        };
        let mut text = String::new();
        for (i, (name, value)) in query.iter().enumerate() {
            if i > 0 {
                text.push('&');
            }
            text.extend(utf8_percent_encode(name, QUERY_PART));
            text.push('=');
            text.extend(utf8_percent_encode(value, QUERY_PART));
        }
        format!(
            "{}.{kind}.{n}.{}",
            version.to_hex(),
            URL_SAFE_NO_PAD.encode(text.as_bytes())
        )
    }

    /// The cursor, its kind letter, and the raw query string it carries.
    pub(crate) fn parse(s: &str, version: Version) -> Result<(Cursor, char, String), QueryError> {
        let bad = |why: &str| {
            QueryError::bad(
                "bad_cursor",
                "cursor",
                format!("malformed cursor {s:?}: {why}; pass the `next` value of a previous page unchanged"),
            )
        };
        let parts: Vec<&str> = s.split('.').collect();
        let [ver, kind, pos, query] = parts[..] else {
            return Err(bad("expected four dot-separated parts"));
        };
        let cursor_version =
            parse_version(ver).ok_or_else(|| bad("the version is not 32 hex digits"))?;
        let n: u64 = pos
            .parse()
            .map_err(|_| bad("the position is not a number"))?;
        if cursor_version != version {
            return Err(QueryError::new(
                ErrorKind::Conflict,
                "stale_cursor",
                format!(
                    "the cursor was made for dataset version {ver}, but the dataset is now at \
                     version {version}; start again without a cursor"
                ),
            )
            .with_param("cursor"));
        }
        let query = URL_SAFE_NO_PAD
            .decode(query)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("its query part is not URL-safe base64 of UTF-8 text"))?;
        let (cursor, kind) = match kind {
            "g" => (Cursor::Offset(n), 'g'),
            "o" => (Cursor::Ordered(n), 'o'),
            "r" => (Cursor::Row(n), 'r'),
            _ => return Err(bad("the kind is not r, o or g")),
        };
        Ok((cursor, kind, query))
    }
}

fn parse_version(s: &str) -> Option<Version> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    // Only lowercase is ever produced; refuse other spellings so cursors are canonical.
    (s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(Version(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Version = Version([7; 16]);

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn round_trips() {
        let query = q(&[("a", "eq.x&y=%z"), ("order", "b.desc"), ("select", "a,é")]);
        for (c, kind) in [
            (Cursor::Row(42), 'r'),
            (Cursor::Ordered(0), 'o'),
            (Cursor::Offset(9), 'g'),
        ] {
            let s = c.encode(V, &query);
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "{s}"
            );
            let (back, k, text) = Cursor::parse(&s, V).unwrap();
            assert_eq!((back, k), (c, kind));
            assert_eq!(
                crate::percent::decode_query(&text).unwrap(),
                query,
                "the carried query decodes to the same pairs"
            );
        }
        let empty = Cursor::Row(1).encode(V, &[]);
        assert_eq!(Cursor::parse(&empty, V).unwrap().2, "");
    }

    #[test]
    fn stale_and_malformed() {
        let s = Cursor::Row(1).encode(Version([8; 16]), &[]);
        let e = Cursor::parse(&s, V).unwrap_err();
        assert_eq!((e.status(), e.code), (409, "stale_cursor"));
        for bad in [
            "",
            "x",
            "0707.r.1.",
            &format!("{V}.r.x."),
            &format!("{V}.r.1"),
            &format!("{V}.q.1."),
            &format!("{V}.r.1.%%%"),
            &format!("{}.r.1.", "G".repeat(32)),
        ] {
            let e = Cursor::parse(bad, V).unwrap_err();
            assert_eq!(
                (e.status(), e.param.as_deref()),
                (400, Some("cursor")),
                "{bad}"
            );
        }
    }
}
