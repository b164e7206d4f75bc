//! The mapping from Arrow types to Quarry types (the table in the module header of
//! `columnar/mod.rs` and in etl/README.md).

use arrow_schema::DataType as A;
use quarry_format::DataType;

use super::HIVE_NULL;
use crate::infer::Guess;

/// The Quarry type an Arrow type maps to by default; `Err` says why it is refused.
pub fn natural(t: &A) -> std::result::Result<DataType, String> {
    Ok(match t {
        A::Null => DataType::Utf8,
        A::Boolean => DataType::Bool,
        A::Int8 | A::Int16 | A::Int32 | A::Int64 => DataType::Int64,
        A::UInt8 | A::UInt16 | A::UInt32 | A::UInt64 => DataType::Int64,
        A::Float16 | A::Float32 | A::Float64 => DataType::Float64,
        A::Decimal32(..) | A::Decimal64(..) | A::Decimal128(..) | A::Decimal256(..) => {
            DataType::Float64
        }
        A::Date32 | A::Date64 => DataType::Date,
        A::Timestamp(..) => DataType::Timestamp,
        A::Time32(_) | A::Time64(_) => DataType::Utf8,
        A::Utf8 | A::LargeUtf8 | A::Utf8View => DataType::Utf8,
        A::Dictionary(_, v) => return natural(v),
        A::Binary | A::LargeBinary | A::BinaryView | A::FixedSizeBinary(_) => {
            return Err(format!(
                "{t} (binary) is not supported: cast it to a string (hex or base64) before loading, or leave the column out with --schema"
            ))
        }
        A::List(_)
        | A::LargeList(_)
        | A::ListView(_)
        | A::LargeListView(_)
        | A::FixedSizeList(..)
        | A::Struct(_)
        | A::Map(..)
        | A::Union(..)
        | A::RunEndEncoded(..) => {
            return Err(format!(
                "nested type {t} is not supported: flatten it (one column per field), or leave the column out with --schema"
            ))
        }
        _ => {
            return Err(format!(
                "type {t} is not supported: cast it to a number or string, or leave the column out with --schema"
            ))
        }
    })
}

/// Whether a column of Arrow type `t` can fill a Quarry column of type `q`.
pub(super) fn convertible(t: &A, q: DataType) -> bool {
    let Ok(n) = natural(t) else { return false };
    if n == q || q == DataType::Utf8 {
        return true;
    }
    let t = match t {
        A::Dictionary(_, v) => v.as_ref(),
        t => t,
    };
    match (t, q) {
        (A::Utf8 | A::LargeUtf8 | A::Utf8View, _) => true,
        (A::Null, _) => true,
        (_, DataType::Float64) => n == DataType::Int64,
        (_, DataType::Timestamp) => n == DataType::Date,
        _ => false,
    }
}

pub(super) fn guess_of(t: DataType) -> Guess {
    match t {
        DataType::Bool => Guess::Bool,
        DataType::Int64 => Guess::Int,
        DataType::Float64 => Guess::Float,
        DataType::Date => Guess::Date,
        DataType::Timestamp => Guess::Timestamp,
        DataType::Utf8 => Guess::Utf8,
    }
}

pub(super) fn partition_guess(v: &str) -> Guess {
    if v == HIVE_NULL {
        Guess::Null
    } else {
        crate::infer::classify_text(v)
    }
}
