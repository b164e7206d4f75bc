//! Text to typed values: the one place that decides what "a valid int64 / date / ..." means,
//! shared by schema inference and by the parsers so that they can never disagree.
//!
//! - int64: what `str::parse::<i64>` accepts (optional sign, decimal digits).
//! - float64: what `str::parse::<f64>` accepts; inference only guesses float64 for text that
//!   starts like a number (so "nan", "inf" stay strings unless a schema says float64).
//! - bool: `true` / `false`, ASCII case-insensitive.
//! - date, timestamp: `quarry_format::text`, the one grammar the query literals share.

pub use quarry_format::text::{
    parse_date, parse_date_bytes, parse_timestamp, parse_timestamp_bytes,
};

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

#[cfg(test)]
mod tests {
    use super::*;

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
