//! Converting decoded Arrow arrays into Quarry column buffers, value by value, with
//! row-level errors.

use std::cell::RefCell;
use std::sync::Arc;

use anyhow::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Float64Type, Int64Type, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType as A, TimeUnit};
use quarry_format::DataType;

use super::pipeline::{where_, Job, What};
use super::types::natural;
use crate::columns::ColBuf;
use crate::error::bad_input;
use crate::values;

/// A refused value (row-level): with `--on-bad-row skip` its row is left out and reported.
#[derive(Debug)]
pub(super) struct BadValue {
    pub(super) full: String,
    /// Without file and row (the collector prefixes `file:row: `).
    pub(super) short: String,
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.full)
    }
}

/// Where a value is, for messages, and the rows skipped so far (job-relative row, message).
pub(super) struct Cx<'a> {
    pub(super) job: &'a Job,
    pub(super) name: &'a str,
    pub(super) first_row: u64,
    pub(super) nullable: bool,
    pub(super) is_key: bool,
    pub(super) skip: bool,
    pub(super) bad: &'a RefCell<Vec<(u64, String)>>,
}

impl Cx<'_> {
    /// A refused value at row `i` of the current batch.
    pub(super) fn err(&self, i: usize, what: impl std::fmt::Display) -> anyhow::Error {
        let g = match self.job.what {
            What::RowGroup(g) => format!("row group {g}, "),
            What::Batch(_) => String::new(),
        };
        let full = format!(
            "{}: {}, column {:?}, row {}: {what}",
            self.job.src.display,
            where_(self.job),
            self.name,
            self.first_row + i as u64 + 1
        );
        let short = format!("{g}column {:?}: {what}", self.name);
        bad_input(full.clone()).context(BadValue { full, short })
    }

    /// An error that is not one value's (the column cannot be converted at all).
    pub(super) fn fatal(&self, what: impl std::fmt::Display) -> anyhow::Error {
        bad_input(format!(
            "{}: {}, column {:?}: {what}",
            self.job.src.display,
            where_(self.job),
            self.name
        ))
    }

    /// `r` of row `i`: a refused value is skipped (a null placeholder pushed, the row
    /// recorded) under `--on-bad-row skip`, else returned.
    pub(super) fn check(&self, r: Result<()>, buf: &mut ColBuf, i: usize) -> Result<()> {
        match r {
            Err(e) if self.skip => {
                let Some(b) = e.downcast_ref::<BadValue>() else {
                    return Err(e);
                };
                let row = self.first_row - self.job.first_row + i as u64;
                self.bad.borrow_mut().push((row, b.short.clone()));
                buf.push_null();
                Ok(())
            }
            r => r,
        }
    }

    pub(super) fn null(&self, buf: &mut ColBuf, i: usize) -> Result<()> {
        if !self.nullable {
            let what = if self.is_key {
                "null in the key column"
            } else {
                "null in a non-nullable column"
            };
            return Err(self.err(i, what));
        }
        buf.push_null();
        Ok(())
    }
}

pub(super) fn push_text(
    cx: &Cx<'_>,
    buf: &mut ColBuf,
    t: DataType,
    s: &str,
    i: usize,
) -> Result<()> {
    let ok = match t {
        DataType::Utf8 => {
            buf.push_str(s);
            true
        }
        DataType::Int64 => values::parse_int(s).map(|v| buf.push_i64(v)).is_some(),
        DataType::Float64 => values::parse_float(s).map(|v| buf.push_f64(v)).is_some(),
        DataType::Bool => values::parse_bool(s).map(|v| buf.push_bool(v)).is_some(),
        DataType::Date => values::parse_date(s).map(|v| buf.push_date(v)).is_some(),
        DataType::Timestamp => values::parse_timestamp(s)
            .map(|v| buf.push_i64(v))
            .is_some(),
    };
    if ok {
        Ok(())
    } else {
        Err(cx.err(i, format!("value {s:?} is not a valid {t}")))
    }
}

/// Pushes `arr[i]` for every `i` through `f`, nulls handled.
pub(super) fn each<T>(
    cx: &Cx<'_>,
    buf: &mut ColBuf,
    arr: &dyn Array,
    get: impl Fn(usize) -> T,
    mut f: impl FnMut(&mut ColBuf, T, usize) -> Result<()>,
) -> Result<()> {
    for i in 0..arr.len() {
        let r = if arr.is_null(i) {
            cx.null(buf, i)
        } else {
            f(buf, get(i), i)
        };
        cx.check(r, buf, i)?;
    }
    Ok(())
}

/// Midnight of a day as a timestamp; days past the microsecond range are refused.
pub(super) fn day_micros(cx: &Cx<'_>, days: i32, i: usize) -> Result<i64> {
    i64::from(days).checked_mul(86_400_000_000).ok_or_else(|| {
        cx.err(
            i,
            format!("date {days} (days) is out of the timestamp range"),
        )
    })
}

pub(super) fn ts_micros(v: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => v.checked_mul(1_000_000),
        TimeUnit::Millisecond => v.checked_mul(1_000),
        TimeUnit::Microsecond => Some(v),
        TimeUnit::Nanosecond => Some(v.div_euclid(1_000)),
    }
}

/// `HH:MM:SS[.fraction]`, trailing zeros of the fraction dropped.
pub(super) fn time_text(v: i64, per_sec: i64, digits: usize) -> Option<String> {
    if v < 0 || v >= 86_400 * per_sec {
        return None;
    }
    let secs = v / per_sec;
    let frac = v % per_sec;
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let f = format!("{frac:0digits$}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    Some(s)
}

/// `digits` of a decimal text without sign, leading zeros, trailing fraction zeros and point.
pub(super) fn decimal_digits(s: &str) -> (bool, String) {
    let neg = s.starts_with('-');
    let s = s.trim_start_matches(['-', '+']);
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = frac.trim_end_matches('0');
    let int = int.trim_start_matches('0');
    let all = format!("{int}.{frac}");
    let zero = int.is_empty() && frac.is_empty();
    (neg && !zero, all)
}

pub(super) fn convert_array(
    cx: &Cx<'_>,
    arr: &ArrayRef,
    t: DataType,
    buf: &mut ColBuf,
) -> Result<()> {
    let at = arr.data_type().clone();
    if let A::Dictionary(_, v) = &at {
        let plain = arrow_cast::cast(arr, v)
            .map_err(|e| cx.fatal(format!("cannot unpack the dictionary: {e}")))?;
        return convert_array(cx, &plain, t, buf);
    }
    let a = arr.as_ref();
    match (&at, t) {
        (A::Null, _) => each(cx, buf, a, |_| (), |_, _, _| Ok(())),
        (A::Boolean, DataType::Bool) => {
            let x = a.as_boolean();
            each(
                cx,
                buf,
                a,
                |i| x.value(i),
                |b, v, _| {
                    b.push_bool(v);
                    Ok(())
                },
            )
        }
        (A::UInt64, DataType::Int64 | DataType::Float64) => {
            let x = a.as_primitive::<UInt64Type>();
            each(
                cx,
                buf,
                a,
                |i| x.value(i),
                |b, v, i| {
                    if t == DataType::Float64 {
                        b.push_f64(v as f64);
                        return Ok(());
                    }
                    let v = i64::try_from(v).map_err(|_| {
                    cx.err(i, format!("value {v} (uint64) does not fit int64 (at most 9223372036854775807)"))
                })?;
                    b.push_i64(v);
                    Ok(())
                },
            )
        }
        (
            A::Int8 | A::Int16 | A::Int32 | A::Int64 | A::UInt8 | A::UInt16 | A::UInt32,
            DataType::Int64 | DataType::Float64,
        ) => {
            let ints = match &at {
                A::Int64 => Ok(Arc::clone(arr)),
                _ => arrow_cast::cast(arr, &A::Int64),
            }
            .map_err(|e| cx.fatal(e))?;
            let x = ints.as_primitive::<Int64Type>();
            each(
                cx,
                buf,
                a,
                |i| x.value(i),
                |b, v, _| {
                    if t == DataType::Float64 {
                        b.push_f64(v as f64)
                    } else {
                        b.push_i64(v)
                    }
                    Ok(())
                },
            )
        }
        (A::Float16 | A::Float32 | A::Float64, DataType::Float64) => {
            let fl = match &at {
                A::Float64 => Ok(Arc::clone(arr)),
                _ => arrow_cast::cast(arr, &A::Float64),
            }
            .map_err(|e| cx.fatal(e))?;
            let x = fl.as_primitive::<Float64Type>();
            each(
                cx,
                buf,
                a,
                |i| x.value(i),
                |b, v, _| {
                    b.push_f64(v);
                    Ok(())
                },
            )
        }
        (A::Decimal128(_, scale), DataType::Float64)
            if !cx.job.src.strict_decimals && (0..=22).contains(scale) =>
        {
            // Clinger's fast path: |m| <= 2^53 and 10^scale (scale <= 22) are exact doubles, so
            // one division is the correctly rounded value, the same double that parsing the
            // decimal's text gives; other values go through their text.
            let x = a.as_primitive::<Decimal128Type>();
            let pow = 10f64.powi(i32::from(*scale));
            let text = std::cell::OnceCell::new();
            each(
                cx,
                buf,
                a,
                |i| x.value(i),
                |b, m, i| {
                    if m.unsigned_abs() <= 1u128 << 53 {
                        // Exact: |m| <= 2^53 fits i64 and converts to f64 without rounding.
                        b.push_f64(m as i64 as f64 / pow);
                        return Ok(());
                    }
                    let t = match text.get() {
                        Some(t) => t,
                        None => {
                            let t = arrow_cast::cast(arr, &A::Utf8).map_err(|e| cx.fatal(e))?;
                            text.get_or_init(|| t)
                        }
                    };
                    let s = t.as_string::<i32>().value(i);
                    let v = values::parse_float(s)
                        .ok_or_else(|| cx.err(i, format!("decimal {s:?} is not a number")))?;
                    b.push_f64(v);
                    Ok(())
                },
            )
        }
        (
            A::Decimal32(..) | A::Decimal64(..) | A::Decimal128(..) | A::Decimal256(..),
            DataType::Float64,
        ) => {
            let text = arrow_cast::cast(arr, &A::Utf8).map_err(|e| cx.fatal(e))?;
            let x = text.as_string::<i32>();
            let strict = cx.job.src.strict_decimals;
            each(
                cx,
                buf,
                a,
                |i| x.value(i),
                |b, s, i| {
                    let v = values::parse_float(s)
                        .ok_or_else(|| cx.err(i, format!("decimal {s:?} is not a number")))?;
                    if strict && decimal_digits(s) != decimal_digits(&format!("{v}")) {
                        return Err(cx.err(
                        i,
                        format!("decimal {s} has no exact float64 form (nearest {v}); --strict-decimals refuses it"),
                    ));
                    }
                    b.push_f64(v);
                    Ok(())
                },
            )
        }
        (A::Date32, DataType::Date | DataType::Timestamp) => {
            let x = a.as_primitive::<Date32Type>();
            each(
                cx,
                buf,
                a,
                |i| x.value(i),
                |b, v, i| {
                    if t == DataType::Date {
                        b.push_date(v)
                    } else {
                        b.push_i64(day_micros(cx, v, i)?)
                    }
                    Ok(())
                },
            )
        }
        (A::Date64, DataType::Date | DataType::Timestamp) => {
            let x = a.as_primitive::<Date64Type>();
            each(
                cx,
                buf,
                a,
                |i| x.value(i),
                |b, ms, i| {
                    let days = i32::try_from(ms.div_euclid(86_400_000))
                        .map_err(|_| cx.err(i, format!("date64 {ms} ms is out of range")))?;
                    if t == DataType::Date {
                        b.push_date(days)
                    } else {
                        b.push_i64(day_micros(cx, days, i)?)
                    }
                    Ok(())
                },
            )
        }
        (A::Timestamp(unit, _), DataType::Timestamp) => {
            let unit = *unit;
            let vals: Vec<Option<i64>> = match unit {
                TimeUnit::Second => a.as_primitive::<TimestampSecondType>().iter().collect(),
                TimeUnit::Millisecond => a
                    .as_primitive::<TimestampMillisecondType>()
                    .iter()
                    .collect(),
                TimeUnit::Microsecond => a
                    .as_primitive::<TimestampMicrosecondType>()
                    .iter()
                    .collect(),
                TimeUnit::Nanosecond => {
                    a.as_primitive::<TimestampNanosecondType>().iter().collect()
                }
            };
            for (i, v) in vals.into_iter().enumerate() {
                let r = match v {
                    None => cx.null(buf, i),
                    Some(v) => match ts_micros(v, unit) {
                        Some(us) => {
                            buf.push_i64(us);
                            Ok(())
                        }
                        None => Err(cx.err(
                            i,
                            format!("timestamp {v} ({unit:?}) is out of the microsecond range"),
                        )),
                    },
                };
                cx.check(r, buf, i)?;
            }
            Ok(())
        }
        (A::Time32(_) | A::Time64(_), DataType::Utf8) => {
            let (vals, per_sec, digits): (Vec<Option<i64>>, i64, usize) = match &at {
                A::Time32(TimeUnit::Second) => (
                    a.as_primitive::<Time32SecondType>()
                        .iter()
                        .map(|v| v.map(i64::from))
                        .collect(),
                    1,
                    0,
                ),
                A::Time32(_) => (
                    a.as_primitive::<Time32MillisecondType>()
                        .iter()
                        .map(|v| v.map(i64::from))
                        .collect(),
                    1_000,
                    3,
                ),
                A::Time64(TimeUnit::Nanosecond) => (
                    a.as_primitive::<Time64NanosecondType>().iter().collect(),
                    1_000_000_000,
                    9,
                ),
                _ => (
                    a.as_primitive::<Time64MicrosecondType>().iter().collect(),
                    1_000_000,
                    6,
                ),
            };
            for (i, v) in vals.into_iter().enumerate() {
                let r = match v {
                    None => cx.null(buf, i),
                    Some(v) => match time_text(v, per_sec, digits) {
                        Some(s) => {
                            buf.push_str(&s);
                            Ok(())
                        }
                        None => Err(cx.err(i, format!("time of day {v} is out of range"))),
                    },
                };
                cx.check(r, buf, i)?;
            }
            Ok(())
        }
        (A::Utf8, _) => {
            let x = a.as_string::<i32>();
            each(
                cx,
                buf,
                a,
                |i| x.value(i),
                |b, s, i| push_text(cx, b, t, s, i),
            )
        }
        (A::LargeUtf8, _) => {
            let x = a.as_string::<i64>();
            each(
                cx,
                buf,
                a,
                |i| x.value(i),
                |b, s, i| push_text(cx, b, t, s, i),
            )
        }
        (A::Utf8View, _) => {
            let x = a.as_string_view();
            each(
                cx,
                buf,
                a,
                |i| x.value(i),
                |b, s, i| push_text(cx, b, t, s, i),
            )
        }
        (_, DataType::Utf8) if natural(&at).is_ok() => {
            // Numbers, booleans, dates, timestamps into a utf8 column: Arrow's display text.
            let text = arrow_cast::cast(arr, &A::Utf8).map_err(|e| cx.fatal(e))?;
            convert_array(cx, &text, t, buf)
        }
        _ => Err(cx.fatal(format!("type {at} cannot be read as {t}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_decimals() {
        assert_eq!(time_text(0, 1, 0).as_deref(), Some("00:00:00"));
        assert_eq!(
            time_text(45_296_500, 1_000, 3).as_deref(),
            Some("12:34:56.5")
        );
        assert_eq!(time_text(86_400, 1, 0), None);
        assert_eq!(decimal_digits("-0012.3400"), (true, "12.34".into()));
        assert_eq!(decimal_digits("-0.00"), (false, ".".into()));
        assert_eq!(
            decimal_digits("12.34"),
            decimal_digits(&format!("{}", 12.34f64))
        );
        assert_ne!(
            decimal_digits("12345678901234567.89"),
            decimal_digits(&format!("{}", 12345678901234567.89f64))
        );
        assert_eq!(ts_micros(-1, TimeUnit::Nanosecond), Some(-1));
        assert_eq!(ts_micros(i64::MAX, TimeUnit::Second), None);
    }
}
