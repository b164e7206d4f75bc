//! Logical types, fields and schemas (SPEC.md: ColumnMeta).

use crate::error::{FormatError, Result};
use crate::spec::type_tag;

/// The six column types of format v1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Bool,
    Int64,
    Float64,
    Utf8,
    /// Days since 1970-01-01, stored as i32.
    Date,
    /// Microseconds since the Unix epoch, UTC, stored as i64.
    Timestamp,
}

impl DataType {
    pub const ALL: [DataType; 6] = [
        DataType::Bool,
        DataType::Int64,
        DataType::Float64,
        DataType::Utf8,
        DataType::Date,
        DataType::Timestamp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::Int64 => "int64",
            DataType::Float64 => "float64",
            DataType::Utf8 => "utf8",
            DataType::Date => "date",
            DataType::Timestamp => "timestamp",
        }
    }

    pub fn from_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|t| t.name() == name)
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            DataType::Bool => type_tag::BOOL,
            DataType::Int64 => type_tag::INT64,
            DataType::Float64 => type_tag::FLOAT64,
            DataType::Utf8 => type_tag::UTF8,
            DataType::Date => type_tag::DATE,
            DataType::Timestamp => type_tag::TIMESTAMP,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<DataType> {
        DataType::ALL.into_iter().find(|t| t.tag() == tag)
    }

    /// Bytes per value of the plain fixed-width encoding; `None` for bool and utf8.
    pub fn fixed_width(self) -> Option<usize> {
        match self {
            DataType::Int64 | DataType::Float64 | DataType::Timestamp => Some(8),
            DataType::Date => Some(4),
            DataType::Bool | DataType::Utf8 => None,
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: DataType,
    pub nullable: bool,
}

/// Columns in order, and optionally the primary key column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    fields: Vec<Field>,
    key: Option<usize>,
}

impl Schema {
    /// # Errors
    /// Empty or duplicate names, more than `u32::MAX - 1` columns, or a key column that is out of
    /// range, nullable, or not int64/utf8.
    pub fn new(fields: Vec<Field>, key: Option<usize>) -> Result<Schema> {
        if fields.len() >= crate::spec::NO_KEY as usize {
            return Err(FormatError::Schema(format!(
                "{} columns is too many",
                fields.len()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in fields.iter().enumerate() {
            if f.name.is_empty() {
                return Err(FormatError::Schema(format!("column {i} has an empty name")));
            }
            if f.name.len() > u32::MAX as usize {
                return Err(FormatError::Schema(format!(
                    "column {i}'s name is too long"
                )));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(FormatError::Schema(format!(
                    "column name {:?} appears twice",
                    f.name
                )));
            }
        }
        if let Some(k) = key {
            let Some(f) = fields.get(k) else {
                return Err(FormatError::Schema(format!(
                    "key column index {k} is out of range ({} columns)",
                    fields.len()
                )));
            };
            if !matches!(f.data_type, DataType::Int64 | DataType::Utf8) {
                return Err(FormatError::Schema(format!(
                    "key column {:?} has type {}; keys must be int64 or utf8",
                    f.name, f.data_type
                )));
            }
            if f.nullable {
                return Err(FormatError::Schema(format!(
                    "key column {:?} is nullable; keys must not be null",
                    f.name
                )));
            }
        }
        Ok(Schema { fields, key })
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn key(&self) -> Option<usize> {
        self.key
    }

    pub fn key_field(&self) -> Option<&Field> {
        self.key.map(|k| &self.fields[k])
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}
