//! Typed literals from the query string, and the text forms of dates and timestamps.
//!
//! Dates and timestamps are read with the grammar the ETL reads them with
//! (`quarry_format::text`); formatting, which runs once per output value, is a small
//! allocation-free civil-calendar conversion (Howard Hinnant's `civil_from_days`), checked
//! against chrono in the tests.

use quarry_format::DataType;

use crate::error::QueryError;

/// A literal parsed for one column's type. Int covers int64, date (days) and timestamp (micros).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Literal {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// Parses `text` as a value of `data_type`; the error names `param` and says what was expected.
pub(crate) fn parse_literal(
    data_type: DataType,
    text: &str,
    param: &str,
) -> Result<Literal, QueryError> {
    let wrong = |what: &str| {
        QueryError::bad(
            "bad_value",
            param,
            format!("column {param:?} has type {data_type}: expected {what}, found {text:?}"),
        )
    };
    match data_type {
        DataType::Bool => match text {
            "true" => Ok(Literal::Bool(true)),
            "false" => Ok(Literal::Bool(false)),
            _ => Err(wrong("true or false")),
        },
        DataType::Int64 => text
            .parse::<i64>()
            .map(Literal::Int)
            .map_err(|_| wrong("an integer between -9223372036854775808 and 9223372036854775807")),
        DataType::Float64 => parse_f64(text)
            .map(Literal::Float)
            .ok_or_else(|| wrong("a number (or NaN, Infinity, -Infinity)")),
        DataType::Utf8 => Ok(Literal::Str(text.to_string())),
        DataType::Date => parse_date(text)
            .map(|d| Literal::Int(i64::from(d)))
            .ok_or_else(|| wrong("a date YYYY-MM-DD")),
        DataType::Timestamp => parse_timestamp(text).map(Literal::Int).ok_or_else(|| {
            wrong("a timestamp in RFC 3339 / ISO 8601 form, e.g. 2024-01-31T12:00:00Z")
        }),
    }
}

fn parse_f64(text: &str) -> Option<f64> {
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        // Rust's parser also accepts "infinity" spellings; those are covered above on purpose
        // and anything else non-numeric is rejected here.
        _ if text
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            None
        }
        _ => text.parse::<f64>().ok(),
    }
}

/// `YYYY-MM-DD` -> days since 1970-01-01 (the ETL's grammar: `quarry_format::text`).
pub(crate) fn parse_date(text: &str) -> Option<i32> {
    quarry_format::text::parse_date(text)
}

/// A timestamp in the ETL's grammar (`quarry_format::text`) -> microseconds since the epoch, UTC.
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    quarry_format::text::parse_timestamp(text)
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 -> (year, month 1..=12, day 1..=31). Valid for every i64 day count
/// whose year fits in i64 (Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms").
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn push_2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

fn push_year(out: &mut Vec<u8>, y: i64) {
    // RFC 3339 covers 0000..=9999; outside that we write the ISO 8601 expanded form's digits
    // with a sign for negative years (at least 4 digits).
    if y < 0 {
        out.push(b'-');
    }
    let a = y.unsigned_abs();
    if a < 1000 {
        out.extend_from_slice(if a < 10 {
            b"000"
        } else if a < 100 {
            b"00"
        } else {
            b"0"
        });
    }
    out.extend_from_slice(itoa::Buffer::new().format(a).as_bytes());
}

/// Appends `YYYY-MM-DD`.
pub(crate) fn write_date(out: &mut Vec<u8>, days: i32) {
    let (y, m, d) = civil_from_days(i64::from(days));
    push_year(out, y);
    out.push(b'-');
    push_2(out, m);
    out.push(b'-');
    push_2(out, d);
}

/// Appends `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` (fraction only when non-zero, always 6 digits).
pub(crate) fn write_timestamp(out: &mut Vec<u8>, micros: i64) {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rem = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    push_year(out, y);
    out.push(b'-');
    push_2(out, m);
    out.push(b'-');
    push_2(out, d);
    out.push(b'T');
    let secs = (rem / 1_000_000) as u32;
    let frac = (rem % 1_000_000) as u32;
    push_2(out, secs / 3600);
    out.push(b':');
    push_2(out, secs / 60 % 60);
    out.push(b':');
    push_2(out, secs % 60);
    if frac != 0 {
        out.push(b'.');
        let mut digits = [b'0'; 6];
        let mut f = frac;
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + (f % 10) as u8;
            f /= 10;
        }
        out.extend_from_slice(&digits);
    }
    out.push(b'Z');
}

/// Appends the shortest decimal that round-trips (ryu); non-finite values as `NaN`,
/// `Infinity`, `-Infinity` (callers quote them in JSON).
pub(crate) fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date_str(d: i32) -> String {
        let mut v = Vec::new();
        write_date(&mut v, d);
        String::from_utf8(v).unwrap()
    }

    fn ts_str(t: i64) -> String {
        let mut v = Vec::new();
        write_timestamp(&mut v, t);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn dates_match_chrono() {
        use chrono::Datelike;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for d in (-800_000..800_000)
            .step_by(997)
            .chain([-1, 0, 1, 59, 60, 365, 11_016])
        {
            let c = epoch + chrono::Duration::days(i64::from(d));
            assert_eq!(date_str(d), c.format("%Y-%m-%d").to_string(), "day {d}");
            // The text grammar reads years 0000-9999 (`quarry_format::text`).
            if (0..=9999).contains(&c.year()) {
                assert_eq!(parse_date(&date_str(d)), Some(d));
            }
        }
    }

    #[test]
    fn timestamps_match_chrono() {
        for t in [
            0i64,
            1,
            -1,
            999_999,
            1_000_000,
            1_706_702_400_123_456,
            -86_400_000_001,
        ] {
            let c = chrono::DateTime::from_timestamp_micros(t).unwrap();
            let expect = c.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            // chrono's AutoSi picks 3/6/9 digits; ours always 6 when non-zero: compare parsed.
            assert_eq!(parse_timestamp(&ts_str(t)), Some(t), "{t} {expect}");
            assert_eq!(parse_timestamp(&expect), Some(t));
        }
        assert_eq!(ts_str(0), "1970-01-01T00:00:00Z");
        assert_eq!(ts_str(1), "1970-01-01T00:00:00.000001Z");
        assert_eq!(ts_str(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn timestamp_forms() {
        let t = parse_timestamp("2024-01-31T12:00:00Z").unwrap();
        assert_eq!(parse_timestamp("2024-01-31T13:00:00+01:00"), Some(t));
        assert_eq!(parse_timestamp("2024-01-31T12:00:00"), Some(t));
        assert_eq!(parse_timestamp("2024-01-31 12:00:00"), Some(t));
        // The ETL's grammar: seconds are required, so a literal means what the same text
        // in an input file means.
        assert_eq!(parse_timestamp("2024-01-31T12:00"), None);
        assert_eq!(parse_timestamp("2024-01-31"), Some(t - 12 * 3_600_000_000));
        assert_eq!(parse_timestamp("2024-01-31T12:00:00.5Z"), Some(t + 500_000));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2024-13-01"), None);
    }

    #[test]
    fn literals_per_type() {
        assert_eq!(
            parse_literal(DataType::Int64, "-5", "a").unwrap(),
            Literal::Int(-5)
        );
        assert_eq!(
            parse_literal(DataType::Float64, "1.5", "a").unwrap(),
            Literal::Float(1.5)
        );
        assert_eq!(
            parse_literal(DataType::Float64, "1e3", "a").unwrap(),
            Literal::Float(1000.0)
        );
        assert!(
            matches!(parse_literal(DataType::Float64, "NaN", "a").unwrap(), Literal::Float(f) if f.is_nan())
        );
        assert_eq!(
            parse_literal(DataType::Bool, "true", "a").unwrap(),
            Literal::Bool(true)
        );
        assert_eq!(
            parse_literal(DataType::Date, "1970-01-02", "a").unwrap(),
            Literal::Int(1)
        );
        assert_eq!(
            parse_literal(DataType::Utf8, "x,y", "a").unwrap(),
            Literal::Str("x,y".into())
        );
        for (t, s) in [
            (DataType::Int64, "1.5"),
            (DataType::Int64, "99999999999999999999"),
            (DataType::Float64, "abc"),
            (DataType::Float64, "infinity"),
            (DataType::Bool, "1"),
            (DataType::Date, "2024-02-30"),
            (DataType::Timestamp, "noon"),
        ] {
            let e = parse_literal(t, s, "col").unwrap_err();
            assert_eq!(e.param.as_deref(), Some("col"));
            assert!(
                e.message.contains(t.name()) && e.message.contains(s),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn floats_shortest_round_trip() {
        for v in [
            0.1,
            1.0,
            -2.5e-300,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            123456.789,
        ] {
            let mut out = Vec::new();
            write_f64(&mut out, v);
            let s = String::from_utf8(out).unwrap();
            assert_eq!(s.parse::<f64>().unwrap(), v);
        }
        let mut out = Vec::new();
        write_f64(&mut out, f64::NEG_INFINITY);
        assert_eq!(out, b"-Infinity");
    }
}
