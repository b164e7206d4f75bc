//! Text to typed values: the one place that decides what "a valid int64 / date / ..." means,
//! shared by schema inference and by the parsers so that they can never disagree.
//!
//! - int64: what `str::parse::<i64>` accepts (optional sign, decimal digits).
//! - float64: what `str::parse::<f64>` accepts; inference only guesses float64 for text that
//!   starts like a number (so "nan", "inf" stay strings unless a schema says float64).
//! - bool: `true` / `false`, ASCII case-insensitive.
//! - date: `YYYY-MM-DD` (days since 1970-01-01).
//! - timestamp: `YYYY-MM-DD[T| ]HH:MM:SS[.f{1,9}][Z|±HH:MM|±HHMM|±HH]`, or a bare date
//!   (midnight). No offset means UTC. Stored as microseconds since the epoch, UTC; digits past
//!   the microsecond are truncated (floor, since the fraction is non-negative).

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

pub fn parse_bool(s: &str) -> Option<bool> {
    parse_bool_bytes(s.as_bytes())
}

pub fn parse_bool_bytes(s: &[u8]) -> Option<bool> {
    if s.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if s.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

pub fn parse_int(s: &str) -> Option<i64> {
    parse_int_bytes(s.as_bytes())
}

/// Same language as `str::parse::<i64>`, without a UTF-8 check: up to 18 digits cannot
/// overflow and are summed directly; longer inputs go through `str::parse`.
pub fn parse_int_bytes(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 {
        return std::str::from_utf8(b).ok()?.parse().ok();
    }
    let mut v: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + i64::from(d);
    }
    Some(if neg { -v } else { v })
}

/// A float64 value: what `str::parse` reads, except numbers out of the f64 range (`1e400`),
/// which would silently become an infinity. `inf`/`infinity`/`nan` spelled out are kept.
pub fn parse_float(s: &str) -> Option<f64> {
    parse_plain_decimal(s.as_bytes()).or_else(|| {
        let v = s.parse::<f64>().ok()?;
        (!v.is_infinite() || is_infinity_word(s)).then_some(v)
    })
}

/// `inf` or `infinity` (any case, optionally signed).
fn is_infinity_word(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    t.eq_ignore_ascii_case("inf") || t.eq_ignore_ascii_case("infinity")
}

/// A number that `str::parse` reads as an infinity although it is not spelled `inf`.
pub fn float_out_of_range(s: &str) -> bool {
    s.parse::<f64>().is_ok_and(f64::is_infinite) && !is_infinity_word(s)
}

/// Exact powers of ten as f64 (10^22 is the largest one an f64 holds exactly).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Fast path for the common `[-]digits[.digits]` shape with at most 15 significant-or-not
/// digits (Clinger's fast path, the same one `str::parse` takes for these inputs): the digits
/// form an integer m < 10^15 < 2^53 and the fraction length k <= 15, both exact in an f64, so
/// the one correctly rounded division m / 10^k is the correctly rounded value of the text,
/// i.e. exactly what `str::parse::<f64>` returns. Anything else (exponents, `+`, `inf`, long
/// inputs, ...) returns `None` and goes through `str::parse`.
fn parse_plain_decimal(b: &[u8]) -> Option<f64> {
    let (neg, body) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    if body.is_empty() || body.len() > 16 {
        return None;
    }
    let mut m: u64 = 0;
    let mut frac_digits: Option<usize> = None;
    let mut n_digits = 0usize;
    for (i, &c) in body.iter().enumerate() {
        let d = c.wrapping_sub(b'0');
        if d <= 9 {
            m = m * 10 + u64::from(d);
            n_digits += 1;
        } else if c == b'.' && frac_digits.is_none() {
            frac_digits = Some(body.len() - i - 1);
        } else {
            return None;
        }
    }
    // At least one digit (std rejects "." and "-"); <= 15 digits keeps m < 2^53.
    if n_digits == 0 || n_digits > 15 {
        return None;
    }
    let v = m as f64 / POW10[frac_digits.unwrap_or(0)];
    Some(if neg { -v } else { v })
}

/// Float for inference: only text that starts like a decimal number.
pub fn looks_like_float(s: &str) -> bool {
    let b = s.as_bytes();
    let rest = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    // An out-of-range number is a float64 value that the build then refuses, naming it.
    matches!(rest.first(), Some(c) if c.is_ascii_digit() || *c == b'.')
        && (parse_float(s).is_some() || float_out_of_range(s))
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() {
        return None;
    }
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn date_days(b: &[u8]) -> Option<i64> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = i64::from(digits(&b[0..4])?);
    let m = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d == 0 || d > month_days {
        return None;
    }
    Some(days_from_civil(y, i64::from(m), i64::from(d)))
}

/// Days since 1970-01-01 of a valid proleptic Gregorian date (H. Hinnant's `days_from_civil`;
/// the tests check it against chrono).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` to days since 1970-01-01.
pub fn parse_date(s: &str) -> Option<i32> {
    parse_date_bytes(s.as_bytes())
}

pub fn parse_date_bytes(b: &[u8]) -> Option<i32> {
    date_days(b).and_then(|d| i32::try_from(d).ok())
}

/// Timestamp (see the module doc) to microseconds since the epoch, UTC.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    parse_timestamp_bytes(s.as_bytes())
}

pub fn parse_timestamp_bytes(b: &[u8]) -> Option<i64> {
    if b.len() < 10 {
        return None;
    }
    let days = date_days(&b[..10])?;
    let mut micros = days * MICROS_PER_DAY;
    if b.len() == 10 {
        return Some(micros);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let h = i64::from(digits(&b[11..13])?);
    let mi = i64::from(digits(&b[14..16])?);
    let sec = i64::from(digits(&b[17..19])?);
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    micros += (h * 3600 + mi * 60 + sec) * MICROS_PER_SECOND;
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let mut us: i64 = 0;
        for i in 0..6 {
            us = us * 10
                + frac
                    .get(i)
                    .filter(|_| i < n)
                    .map_or(0, |c| i64::from(c - b'0'));
        }
        micros += us;
        rest = &frac[n..];
    }
    let offset_secs: i64 = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), tz @ ..] => {
            let (hh, mm): (&[u8], &[u8]) = match tz {
                [_, _] => (&tz[0..2], b"00"),
                [_, _, b':', _, _] => (&tz[0..2], &tz[3..5]),
                [_, _, _, _] => (&tz[0..2], &tz[2..4]),
                _ => return None,
            };
            let (h, m) = (i64::from(digits(hh)?), i64::from(digits(mm)?));
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    Some(micros - offset_secs * MICROS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};

    /// `parse_float` (fast path + fallback) must return the very bits `str::parse` returns.
    fn same_as_std(s: &str) {
        let want = s
            .parse::<f64>()
            .ok()
            .filter(|_| !float_out_of_range(s))
            .map(f64::to_bits);
        assert_eq!(parse_float(s).map(f64::to_bits), want, "{s:?}");
    }

    #[test]
    fn out_of_range_floats_are_refused() {
        for s in ["1e400", "-1e999", "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792"] {
            assert_eq!(parse_float(s), None, "{s}");
            assert!(float_out_of_range(s) && looks_like_float(s), "{s}");
        }
        for s in ["inf", "-Infinity", "1.7976931348623157e308", "NaN"] {
            assert!(parse_float(s).is_some() && !float_out_of_range(s), "{s}");
        }
    }

    #[test]
    fn floats_are_bit_identical_to_std() {
        for s in [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1.",
            ".5",
            "-.5",
            "-",
            ".",
            "",
            "+1.5",
            "1e5",
            "1.5E-3",
            "inf",
            "-NaN",
            "1..2",
            "1.2.",
            "--1",
            "1-",
            " 1",
            "0.1",
            "0.2",
            "0.3",
            "24386.67",
            "0.04",
            "999999999999999",
            "9999999999999999",
            "0.000000000000001",
            "123456789012345.",
            ".123456789012345",
            "1234567890123456",
            "00000000000000001.5",
            "9007199254740993",
            "1.7976931348623157",
            "4.9e-324",
        ] {
            same_as_std(s);
        }
        // Every shape of up to 16 digits with the dot anywhere, from a fixed pseudo-random
        // stream of digit strings.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 1 + (x % 17) as usize;
            let digits: String = (0..len)
                .map(|i| char::from(b'0' + ((x >> (i * 3 % 60)) % 10) as u8))
                .collect();
            let dot = ((x >> 40) % (len as u64 + 2)) as usize;
            let mut t = digits.clone();
            if dot <= len {
                t.insert(dot, '.');
            }
            same_as_std(&t);
            same_as_std(&format!("-{t}"));
        }
        // Two-decimal money values like TPC-H prices, all of a range.
        for cents in 0..300_000u32 {
            same_as_std(&format!("{}.{:02}", cents / 100, cents % 100));
        }
    }

    #[test]
    fn every_date_of_many_years_matches_chrono() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let mut d = NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
        let end = NaiveDate::from_ymd_opt(2500, 12, 31).unwrap();
        while d <= end {
            let s = d.format("%Y-%m-%d").to_string();
            assert_eq!(parse_date(&s), Some((d - epoch).num_days() as i32), "{s}");
            d = d.succ_opt().unwrap();
        }
        for y in [1900, 2000, 2023, 2024, 2100] {
            let s = format!("{y}-02-29");
            assert_eq!(
                parse_date(&s).is_some(),
                NaiveDate::from_ymd_opt(y, 2, 29).is_some(),
                "{s}"
            );
        }
    }

    #[test]
    fn dates_match_chrono() {
        for s in [
            "1970-01-01",
            "2000-02-29",
            "1969-12-31",
            "0001-01-01",
            "9999-12-31",
        ] {
            let want = NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
                - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
            assert_eq!(parse_date(s), Some(want.num_days() as i32), "{s}");
        }
        for s in [
            "2001-02-29",
            "2020-13-01",
            "2020-1-01",
            "20200101",
            "2020-01-01x",
            "",
        ] {
            assert_eq!(parse_date(s), None, "{s}");
        }
    }

    #[test]
    fn timestamps_match_chrono_rfc3339() {
        for s in [
            "2024-03-01T12:34:56Z",
            "2024-03-01T12:34:56.123456Z",
            "2024-03-01T12:34:56.1+02:00",
            "1960-07-15T00:00:00.999999999-05:30",
            "2024-03-01T23:59:59.000001+00:00",
        ] {
            let want = DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
            assert_eq!(parse_timestamp(s), Some(want), "{s}");
            let spaced = s.replacen('T', " ", 1);
            assert_eq!(parse_timestamp(&spaced), Some(want), "{spaced}");
        }
        let want = DateTime::parse_from_rfc3339("2024-03-01T12:34:56+05:00").unwrap();
        assert_eq!(
            parse_timestamp("2024-03-01 12:34:56+0500"),
            Some(want.timestamp_micros())
        );
        assert_eq!(
            parse_timestamp("2024-03-01 12:34:56+05"),
            Some(want.timestamp_micros())
        );
        let naive = DateTime::parse_from_rfc3339("2024-03-01T12:34:56Z").unwrap();
        assert_eq!(
            parse_timestamp("2024-03-01 12:34:56"),
            Some(naive.timestamp_micros())
        );
        let midnight = DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z").unwrap();
        assert_eq!(
            parse_timestamp("2024-03-01"),
            Some(midnight.timestamp_micros())
        );
        for s in [
            "2024-03-01T24:00:00",
            "2024-03-01T12:34",
            "2024-03-01T12:34:56.",
            "2024-03-01T12:34:56+5",
            "x",
        ] {
            assert_eq!(parse_timestamp(s), None, "{s}");
        }
    }

    #[test]
    fn numbers_and_bools() {
        assert_eq!(parse_int("-42"), Some(-42));
        assert_eq!(parse_int("4.2"), None);
        for s in [
            "0",
            "-0",
            "+7",
            "123456789012345678",
            "-9223372036854775808",
            "9223372036854775807",
            "9223372036854775808",
            "",
            "-",
            "+",
            "1a",
            " 1",
            "12345678901234567890123",
        ] {
            assert_eq!(parse_int(s), s.parse::<i64>().ok(), "{s:?}");
        }
        assert!(looks_like_float("-.5e3"));
        assert!(!looks_like_float("nan"));
        assert!(!looks_like_float("inf"));
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("yes"), None);
    }
}
