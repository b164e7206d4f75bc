//! Keyset cursors: `{version}.{kind}.{order}.{position}`, URL-safe (hex, letters, digits, dots).
//!
//! - kind `r`: default order (row order, which is key order when the dataset has a key);
//!   position = the last row number returned. Next page: rows after it.
//! - kind `o`: `order=col`; position = the last row returned. Its sort value is read back from
//!   the file: the version pins the exact file, so (value, row) is fully determined by the row.
//! - kind `g`: aggregates; position = the number of groups already returned (groups are in a
//!   deterministic order, and the version pins the data).
//!
//! `order` fingerprints the sort (`n` none, `c{col}{a|d}{f|l}` or `g{agg}{a|d}{f|l}`), so a
//! cursor replayed with another `order=` is refused rather than silently skipping rows.

use quarry_format::Version;

use crate::error::{ErrorKind, QueryError};
use crate::query::{OrderBy, OrderTarget};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cursor {
    Row(u64),
    Ordered(u64),
    Offset(u64),
}

fn fingerprint(order: Option<&OrderBy>) -> String {
    match order {
        None => "n".into(),
        Some(o) => {
            let (t, i) = match o.target {
                OrderTarget::Column(c) => ('c', c),
                OrderTarget::Aggregate(a) => ('g', a),
            };
            format!(
                "{t}{i}{}{}",
                if o.desc { 'd' } else { 'a' },
                if o.nulls_first { 'f' } else { 'l' }
            )
        }
    }
}

impl Cursor {
    pub(crate) fn encode(self, version: Version, order: Option<&OrderBy>) -> String {
        let (kind, n) = match self {
            Cursor::Row(r) => ('r', r),
            Cursor::Ordered(r) => ('o', r),
            Cursor::Offset(o) => ('g', o),
        };
        format!("{}.{kind}.{}.{n}", version.to_hex(), fingerprint(order))
    }

    pub(crate) fn parse(
        s: &str,
        version: Version,
        order: Option<&OrderBy>,
        aggregate: bool,
    ) -> Result<Cursor, QueryError> {
        let bad = |why: &str| {
            QueryError::bad(
                "bad_cursor",
                "cursor",
                format!("malformed cursor {s:?}: {why}; pass the `next` value of a previous page unchanged"),
            )
        };
        let parts: Vec<&str> = s.split('.').collect();
        let [ver, kind, fp, pos] = parts[..] else {
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
        let expected_kind = if aggregate {
            "g"
        } else if order.is_some() {
            "o"
        } else {
            "r"
        };
        if kind != expected_kind || fp != fingerprint(order) {
            return Err(QueryError::bad(
                "bad_cursor",
                "cursor",
                "the cursor was made for a query with another select or order; keep the query \
                 the same while following `next`",
            ));
        }
        Ok(match kind {
            "g" => Cursor::Offset(n),
            "o" => Cursor::Ordered(n),
            _ => Cursor::Row(n),
        })
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

    #[test]
    fn round_trips() {
        let o = OrderBy {
            target: OrderTarget::Column(3),
            desc: true,
            nulls_first: false,
        };
        for (c, order, agg) in [
            (Cursor::Row(42), None, false),
            (Cursor::Ordered(0), Some(&o), false),
            (Cursor::Offset(9), Some(&o), true),
            (Cursor::Offset(9), None, true),
        ] {
            let s = c.encode(V, order);
            assert!(
                s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'),
                "{s}"
            );
            assert_eq!(Cursor::parse(&s, V, order, agg).unwrap(), c);
        }
    }

    #[test]
    fn stale_and_malformed() {
        let s = Cursor::Row(1).encode(Version([8; 16]), None);
        let e = Cursor::parse(&s, V, None, false).unwrap_err();
        assert_eq!((e.status(), e.code), (409, "stale_cursor"));
        for bad in [
            "",
            "x",
            "0707.r.n.1",
            &format!("{V}.r.n.x"),
            &format!("{V}.r.n"),
            &format!("{}.r.n.1", "G".repeat(32)),
        ] {
            let e = Cursor::parse(bad, V, None, false).unwrap_err();
            assert_eq!(
                (e.status(), e.param.as_deref()),
                (400, Some("cursor")),
                "{bad}"
            );
        }
        // A cursor replayed with another order.
        let o = OrderBy {
            target: OrderTarget::Column(1),
            desc: false,
            nulls_first: false,
        };
        let s = Cursor::Row(1).encode(V, None);
        assert_eq!(
            Cursor::parse(&s, V, Some(&o), false).unwrap_err().status(),
            400
        );
    }
}
