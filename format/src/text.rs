//! The text grammar of dates and timestamps, one for every reader of text: the ETL's inputs and
//! the query engine's literals accept exactly the same forms.
//!
//! - date: `YYYY-MM-DD`, proleptic Gregorian, years 0000-9999; stored as days since 1970-01-01.
//! - timestamp: `YYYY-MM-DD[T|t| ]HH:MM:SS[.f{1,9}][Z|z|±HH:MM|±HHMM|±HH]`, or a bare date
//!   (midnight). No offset means UTC. Stored as microseconds since the epoch, UTC; digits past
//!   the microsecond are truncated (floor, since the fraction is non-negative).

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

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
#[inline]
pub fn parse_date(s: &str) -> Option<i32> {
    parse_date_bytes(s.as_bytes())
}

/// `YYYY-MM-DD` as bytes to days since 1970-01-01.
#[inline]
pub fn parse_date_bytes(b: &[u8]) -> Option<i32> {
    date_days(b).and_then(|d| i32::try_from(d).ok())
}

/// Timestamp (see the module doc) to microseconds since the epoch, UTC.
#[inline]
pub fn parse_timestamp(s: &str) -> Option<i64> {
    parse_timestamp_bytes(s.as_bytes())
}

/// Timestamp (see the module doc) as bytes to microseconds since the epoch, UTC.
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
}
