//! The schema file format of `--schema` and `--schema-out`:
//! `{"fields":[{"name":"id","type":"int64","nullable":false}, ...], "key":"id"}`.
//! Types: bool, int64, float64, utf8, date, timestamp. `nullable` defaults to true; `key` may be
//! null or absent. The key column is always stored non-nullable. For Parquet and Arrow inputs a
//! field may also say `"from": "a.b"` (struct `a`'s field `b`) and `"json": true` (a list, map
//! or struct column as JSON text); see `columnar/nested.rs`.

use std::path::Path;

use anyhow::{Context, Result};
use quarry_format::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use crate::error::{bad_input, usage};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: DataType,
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Parquet/Arrow inputs: the nested source `root.field.field` of a struct leaf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Parquet/Arrow inputs: store the source column (list, map, struct) as JSON text.
    #[serde(default, skip_serializing_if = "is_false")]
    pub json: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaFile {
    pub fields: Vec<FieldSpec>,
    #[serde(default)]
    pub key: Option<String>,
}

impl SchemaFile {
    pub fn read(path: &Path) -> Result<SchemaFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading schema file {}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| {
            usage(format!(
                "schema file {}: {e} (expected {{\"fields\":[{{\"name\":..,\"type\":\"int64\",\"nullable\":true}}],\"key\":..}})",
                path.display()
            ))
        })
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        std::fs::write(path, text)
            .with_context(|| format!("writing schema file {}", path.display()))
    }

    pub fn from_schema(schema: &Schema) -> SchemaFile {
        SchemaFile {
            fields: schema
                .fields()
                .iter()
                .map(|f| FieldSpec {
                    name: f.name.clone(),
                    data_type: f.data_type,
                    nullable: f.nullable,
                    from: None,
                    json: false,
                })
                .collect(),
            key: schema.key().map(|k| schema.fields()[k].name.clone()),
        }
    }

    /// Builds the format's schema; the key column is made non-nullable.
    pub fn to_schema(&self) -> Result<Schema> {
        let key =
            match &self.key {
                None => None,
                Some(k) => Some(self.fields.iter().position(|f| &f.name == k).ok_or_else(
                    || bad_input(format!("key column {k:?} is not among the schema's fields")),
                )?),
            };
        let fields = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| Field {
                name: f.name.clone(),
                data_type: f.data_type,
                nullable: f.nullable && Some(i) != key,
            })
            .collect();
        Schema::new(fields, key).map_err(|e| bad_input(e.to_string()))
    }
}
