//! Writing single values as JSON and CSV text (README.md, "The query API": values).
//!
//! JSON: int64 and finite float64 as numbers (shortest round-trip form), NaN/±inf as the
//! strings "NaN", "Infinity", "-Infinity", dates "YYYY-MM-DD", timestamps RFC 3339 with `Z`,
//! bools, null. CSV: the same texts unquoted, null as an empty field, the empty string as `""`.

use quarry_format::Value;

use crate::literal::{write_date, write_f64, write_timestamp};

/// An owned value: aggregate results and sort keys outlive the file borrow.
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedValue {
    Null,
    Bool(bool),
    Int64(i64),
    Float64(f64),
    Utf8(String),
    Date(i32),
    Timestamp(i64),
}

impl OwnedValue {
    pub fn as_value(&self) -> Value<'_> {
        match self {
            OwnedValue::Null => Value::Null,
            OwnedValue::Bool(b) => Value::Bool(*b),
            OwnedValue::Int64(v) => Value::Int64(*v),
            OwnedValue::Float64(v) => Value::Float64(*v),
            OwnedValue::Utf8(s) => Value::Utf8(s),
            OwnedValue::Date(d) => Value::Date(*d),
            OwnedValue::Timestamp(t) => Value::Timestamp(*t),
        }
    }

    pub fn from_value(v: Value<'_>) -> OwnedValue {
        match v {
            Value::Null => OwnedValue::Null,
            Value::Bool(b) => OwnedValue::Bool(b),
            Value::Int64(v) => OwnedValue::Int64(v),
            Value::Float64(v) => OwnedValue::Float64(v),
            Value::Utf8(s) => OwnedValue::Utf8(s.to_string()),
            Value::Date(d) => OwnedValue::Date(d),
            Value::Timestamp(t) => OwnedValue::Timestamp(t),
        }
    }
}

/// Appends `s` as a JSON string literal (quotes included). Runs of bytes that need no escape
/// (the common case: all of them) are found eight bytes at a time and copied whole.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(i) = first_escape(bytes, start) {
        out.extend_from_slice(&bytes[start..i]);
        push_escaped(out, bytes[i]);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// JSON strings cannot hold '"', '\\' and the control bytes below 0x20 as they are.
#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Index of the first byte at or after `from` that needs an escape.
#[inline]
fn first_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Exact "some byte is below n" for n <= 128 (and so "some byte is zero" for n = 1).
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH != 0;
    let mut i = from;
    while let Some(word) = bytes.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w);
        if below(x, 0x20)
            || below(x ^ (ONES * u64::from(b'"')), 1)
            || below(x ^ (ONES * u64::from(b'\\')), 1)
        {
            break;
        }
        i += 8;
    }
    bytes
        .get(i..)?
        .iter()
        .position(|&b| needs_escape(b))
        .map(|p| i + p)
}

fn push_escaped(out: &mut Vec<u8>, b: u8) {
    let esc: &[u8] = match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0x08 => b"\\b",
        0x0c => b"\\f",
        _ => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
            return;
        }
    };
    out.extend_from_slice(esc);
}

pub(crate) fn write_json_value(out: &mut Vec<u8>, v: Value<'_>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Int64(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Value::Float64(f) if f.is_finite() => write_f64(out, f),
        Value::Float64(f) => {
            out.push(b'"');
            write_f64(out, f);
            out.push(b'"');
        }
        Value::Utf8(s) => write_json_str(out, s),
        Value::Date(d) => {
            out.push(b'"');
            write_date(out, d);
            out.push(b'"');
        }
        Value::Timestamp(t) => {
            out.push(b'"');
            write_timestamp(out, t);
            out.push(b'"');
        }
    }
}

/// Appends one CSV field (RFC 4180): quoted when it holds `,` `"` CR or LF, or is empty
/// (so the empty string differs from null, which is written as nothing).
pub(crate) fn write_csv_str(out: &mut Vec<u8>, s: &str) {
    if !s.is_empty() && !s.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for part in s.split('"').enumerate() {
        if part.0 > 0 {
            out.extend_from_slice(b"\"\"");
        }
        out.extend_from_slice(part.1.as_bytes());
    }
    out.push(b'"');
}

pub(crate) fn write_csv_value(out: &mut Vec<u8>, v: Value<'_>) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Int64(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Value::Float64(f) => write_f64(out, f),
        Value::Utf8(s) => write_csv_str(out, s),
        Value::Date(d) => write_date(out, d),
        Value::Timestamp(t) => write_timestamp(out, t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: Value<'_>) -> String {
        let mut out = Vec::new();
        write_json_value(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_strings_round_trip_through_serde() {
        for s in [
            "",
            "plain",
            "quote\"back\\slash",
            "ctl\u{1}\u{1f}\n\r\t\u{8}\u{c}",
            "é€😀",
        ] {
            let out = json(Value::Utf8(s));
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    proptest::proptest! {
        /// Byte for byte what serde_json writes, for strings dense in escapes at every position
        /// of the eight-byte words the fast scan reads.
        #[test]
        fn json_strings_match_serde_json(
            s in proptest::string::string_regex("[a\"\\\\\u{0}-\u{1f}\u{7f}é😀 ]{0,40}").unwrap()
        ) {
            let mut out = Vec::new();
            write_json_str(&mut out, &s);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }
    }

    #[test]
    fn json_values() {
        assert_eq!(json(Value::Null), "null");
        assert_eq!(json(Value::Int64(-3)), "-3");
        assert_eq!(json(Value::Float64(0.1)), "0.1");
        assert_eq!(json(Value::Float64(f64::NAN)), "\"NaN\"");
        assert_eq!(json(Value::Float64(f64::INFINITY)), "\"Infinity\"");
        assert_eq!(json(Value::Date(0)), "\"1970-01-01\"");
        assert_eq!(
            json(Value::Timestamp(1_500_000)),
            "\"1970-01-01T00:00:01.500000Z\""
        );
        assert_eq!(json(Value::Bool(false)), "false");
    }

    #[test]
    fn csv_quoting() {
        let f = |s: &str| {
            let mut out = Vec::new();
            write_csv_str(&mut out, s);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(f("abc"), "abc");
        assert_eq!(f(""), "\"\"");
        assert_eq!(f("a,b"), "\"a,b\"");
        assert_eq!(f("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(f("two\nlines"), "\"two\nlines\"");
    }
}
