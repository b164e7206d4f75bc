//! Owned column values handed to the writer, one row group at a time.

use crate::error::{FormatError, Result};
use crate::schema::DataType;
use crate::value::Value;

/// One column's values for one row group. `validity: None` means no nulls; `Some(v)`: `v[i]`
/// is `true` when row `i` is valid. Values at null positions are ignored (stored as zero).
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData {
    Bool {
        values: Vec<bool>,
        validity: Option<Vec<bool>>,
    },
    Int64 {
        values: Vec<i64>,
        validity: Option<Vec<bool>>,
    },
    Float64 {
        values: Vec<f64>,
        validity: Option<Vec<bool>>,
    },
    Date {
        values: Vec<i32>,
        validity: Option<Vec<bool>>,
    },
    Timestamp {
        values: Vec<i64>,
        validity: Option<Vec<bool>>,
    },
    /// `offsets.len() == rows + 1`, `offsets[0] == 0`, non-decreasing, last `== bytes.len()`,
    /// each slice valid UTF-8.
    Utf8 {
        offsets: Vec<u64>,
        bytes: Vec<u8>,
        validity: Option<Vec<bool>>,
    },
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Bool { values, .. } => values.len(),
            ColumnData::Int64 { values, .. } | ColumnData::Timestamp { values, .. } => values.len(),
            ColumnData::Float64 { values, .. } => values.len(),
            ColumnData::Date { values, .. } => values.len(),
            ColumnData::Utf8 { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn data_type(&self) -> DataType {
        match self {
            ColumnData::Bool { .. } => DataType::Bool,
            ColumnData::Int64 { .. } => DataType::Int64,
            ColumnData::Float64 { .. } => DataType::Float64,
            ColumnData::Date { .. } => DataType::Date,
            ColumnData::Timestamp { .. } => DataType::Timestamp,
            ColumnData::Utf8 { .. } => DataType::Utf8,
        }
    }

    pub fn validity(&self) -> Option<&[bool]> {
        match self {
            ColumnData::Bool { validity, .. }
            | ColumnData::Int64 { validity, .. }
            | ColumnData::Float64 { validity, .. }
            | ColumnData::Date { validity, .. }
            | ColumnData::Timestamp { validity, .. }
            | ColumnData::Utf8 { validity, .. } => validity.as_deref(),
        }
    }

    /// The value at row `i` (`Value::Null` for null or past the end).
    pub fn get(&self, i: usize) -> Value<'_> {
        if i >= self.len()
            || self
                .validity()
                .is_some_and(|v| !v.get(i).copied().unwrap_or(false))
        {
            return Value::Null;
        }
        match self {
            ColumnData::Bool { values, .. } => Value::Bool(values[i]),
            ColumnData::Int64 { values, .. } => Value::Int64(values[i]),
            ColumnData::Float64 { values, .. } => Value::Float64(values[i]),
            ColumnData::Date { values, .. } => Value::Date(values[i]),
            ColumnData::Timestamp { values, .. } => Value::Timestamp(values[i]),
            ColumnData::Utf8 { offsets, bytes, .. } => {
                let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
                Value::Utf8(
                    bytes
                        .get(s..e)
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .unwrap_or(""),
                )
            }
        }
    }
}

/// Builds a [`ColumnData`] one value at a time.
#[derive(Debug)]
pub struct ColumnBuilder {
    data: ColumnData,
    validity: Vec<bool>,
    has_nulls: bool,
}

impl ColumnBuilder {
    pub fn new(data_type: DataType) -> Self {
        Self::with_capacity(data_type, 0)
    }

    pub fn with_capacity(data_type: DataType, rows: usize) -> Self {
        let data = match data_type {
            DataType::Bool => ColumnData::Bool {
                values: Vec::with_capacity(rows),
                validity: None,
            },
            DataType::Int64 => ColumnData::Int64 {
                values: Vec::with_capacity(rows),
                validity: None,
            },
            DataType::Float64 => ColumnData::Float64 {
                values: Vec::with_capacity(rows),
                validity: None,
            },
            DataType::Date => ColumnData::Date {
                values: Vec::with_capacity(rows),
                validity: None,
            },
            DataType::Timestamp => ColumnData::Timestamp {
                values: Vec::with_capacity(rows),
                validity: None,
            },
            DataType::Utf8 => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                ColumnData::Utf8 {
                    offsets,
                    bytes: Vec::new(),
                    validity: None,
                }
            }
        };
        ColumnBuilder {
            data,
            validity: Vec::with_capacity(rows),
            has_nulls: false,
        }
    }

    pub fn data_type(&self) -> DataType {
        self.data.data_type()
    }

    pub fn len(&self) -> usize {
        self.validity.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validity.is_empty()
    }

    /// # Errors
    /// `FormatError::Input` when the value's type is not the column's.
    pub fn push(&mut self, value: Value<'_>) -> Result<()> {
        match (&mut self.data, value) {
            (_, Value::Null) => {
                self.push_null();
                return Ok(());
            }
            (ColumnData::Bool { values, .. }, Value::Bool(v)) => values.push(v),
            (ColumnData::Int64 { values, .. }, Value::Int64(v)) => values.push(v),
            (ColumnData::Float64 { values, .. }, Value::Float64(v)) => values.push(v),
            (ColumnData::Date { values, .. }, Value::Date(v)) => values.push(v),
            (ColumnData::Timestamp { values, .. }, Value::Timestamp(v)) => values.push(v),
            (ColumnData::Utf8 { offsets, bytes, .. }, Value::Utf8(s)) => {
                bytes.extend_from_slice(s.as_bytes());
                offsets.push(bytes.len() as u64);
            }
            (data, value) => {
                return Err(FormatError::Input(format!(
                    "cannot push {value:?} into a {} column",
                    data.data_type()
                )))
            }
        }
        self.validity.push(true);
        Ok(())
    }

    pub fn push_null(&mut self) {
        match &mut self.data {
            ColumnData::Bool { values, .. } => values.push(false),
            ColumnData::Int64 { values, .. } | ColumnData::Timestamp { values, .. } => {
                values.push(0)
            }
            ColumnData::Float64 { values, .. } => values.push(0.0),
            ColumnData::Date { values, .. } => values.push(0),
            ColumnData::Utf8 { offsets, bytes, .. } => offsets.push(bytes.len() as u64),
        }
        self.validity.push(false);
        self.has_nulls = true;
    }

    pub fn finish(self) -> ColumnData {
        let mut data = self.data;
        let validity = self.has_nulls.then_some(self.validity);
        match &mut data {
            ColumnData::Bool { validity: v, .. }
            | ColumnData::Int64 { validity: v, .. }
            | ColumnData::Float64 { validity: v, .. }
            | ColumnData::Date { validity: v, .. }
            | ColumnData::Timestamp { validity: v, .. }
            | ColumnData::Utf8 { validity: v, .. } => *v = validity,
        }
        data
    }
}
