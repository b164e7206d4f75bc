//! Nested columns (struct, list, map) read through a `--schema` file: a field with
//! `"from": "a.b"` takes struct `a`'s field `b` (any depth; null where any level is null), and
//! a field with `"json": true` (type utf8) holds its source column's JSON text. Without either,
//! a nested column stays refused naming the column.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, StructArray};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType as A;
use quarry_format::DataType;
use serde_json::Value;

use crate::error::usage;
use crate::schema_file::SchemaFile;

/// Where a schema column comes from when the schema file says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nested {
    /// The file's root column, then struct field names below it.
    pub path: Vec<String>,
    /// Store the value's JSON text.
    pub json: bool,
}

/// Schema column name -> its nested source, from the schema file's `from` and `json`.
pub fn sources(file: &SchemaFile) -> Result<HashMap<String, Nested>> {
    let mut out = HashMap::new();
    for f in &file.fields {
        if f.from.is_none() && !f.json {
            continue;
        }
        let from = f.from.clone().unwrap_or_else(|| f.name.clone());
        let path: Vec<String> = from.split('.').map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return Err(usage(format!(
                "schema field {:?}: \"from\": {from:?} is not a dot-separated path of names",
                f.name
            )));
        }
        if f.json && f.data_type != DataType::Utf8 {
            return Err(usage(format!(
                "schema field {:?}: \"json\": true needs type utf8, not {}",
                f.name, f.data_type
            )));
        }
        out.insert(f.name.clone(), Nested { path, json: f.json });
    }
    Ok(out)
}

/// The Arrow type at `path[1..]` below a root column of type `root`; `Err` says which step
/// is missing.
pub fn type_at(root: &A, path: &[String]) -> std::result::Result<A, String> {
    let mut t = root.clone();
    for (depth, seg) in path.iter().enumerate().skip(1) {
        let A::Struct(fields) = &t else {
            return Err(format!(
                "{:?} is {t}, not a struct, so it has no field {seg:?}",
                path[..depth].join(".")
            ));
        };
        let Some(f) = fields.iter().find(|f| f.name() == seg) else {
            return Err(format!(
                "struct {:?} has no field {seg:?} (fields: {})",
                path[..depth].join("."),
                fields
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        t = f.data_type().clone();
    }
    Ok(t)
}

/// The array at `path[1..]` below root array `arr`, null wherever it or a struct above it is.
pub fn descend(arr: &ArrayRef, path: &[String]) -> std::result::Result<ArrayRef, String> {
    let mut cur = Arc::clone(arr);
    for seg in path.iter().skip(1) {
        let s: &StructArray = cur
            .as_struct_opt()
            .ok_or_else(|| format!("{} is not a struct", cur.data_type()))?;
        let child = s
            .column_by_name(seg)
            .ok_or_else(|| format!("no struct field {seg:?}"))?;
        let nulls = NullBuffer::union(s.nulls(), child.nulls());
        let data = child
            .to_data()
            .into_builder()
            .nulls(nulls)
            .build()
            .map_err(|e| e.to_string())?;
        cur = arrow_array::make_array(data);
    }
    Ok(cur)
}

/// Each value of `arr` as JSON text (null stays null).
pub fn to_json(arr: &ArrayRef) -> std::result::Result<ArrayRef, String> {
    let mut b = StringBuilder::with_capacity(arr.len(), arr.len() * 16);
    for i in 0..arr.len() {
        if arr.is_null(i) {
            b.append_null();
        } else {
            let v = value(arr.as_ref(), i)?;
            b.append_value(serde_json::to_string(&v).map_err(|e| e.to_string())?);
        }
    }
    Ok(Arc::new(b.finish()))
}

/// Row `i` of `arr` as a JSON value (serde_json keeps insertion order here: the workspace
/// enables `preserve_order`): lists become arrays, structs and maps with text keys
/// objects (other maps arrays of `[key, value]`), numbers and booleans themselves, everything
/// else (dates, timestamps, decimals, binary) Arrow's display text.
fn value(arr: &dyn Array, i: usize) -> std::result::Result<Value, String> {
    if arr.is_null(i) {
        return Ok(Value::Null);
    }
    let list = |items: ArrayRef| -> std::result::Result<Value, String> {
        (0..items.len())
            .map(|j| value(items.as_ref(), j))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Value::Array)
    };
    Ok(match arr.data_type() {
        A::Boolean => Value::Bool(arr.as_boolean().value(i)),
        A::Utf8 => Value::String(arr.as_string::<i32>().value(i).to_string()),
        A::LargeUtf8 => Value::String(arr.as_string::<i64>().value(i).to_string()),
        A::Utf8View => Value::String(arr.as_string_view().value(i).to_string()),
        A::List(_) => list(arr.as_list::<i32>().value(i))?,
        A::LargeList(_) => list(arr.as_list::<i64>().value(i))?,
        A::FixedSizeList(..) => list(arr.as_fixed_size_list().value(i))?,
        A::Struct(fields) => {
            let s = arr.as_struct();
            let mut m = serde_json::Map::new();
            for (f, c) in fields.iter().zip(s.columns()) {
                m.insert(f.name().clone(), value(c.as_ref(), i)?);
            }
            Value::Object(m)
        }
        A::Map(..) => {
            let entries = arr.as_map().value(i);
            let (keys, vals) = (entries.column(0), entries.column(1));
            let text_keys = matches!(keys.data_type(), A::Utf8 | A::LargeUtf8 | A::Utf8View);
            if text_keys {
                let mut m = serde_json::Map::new();
                for j in 0..entries.len() {
                    let Value::String(k) = value(keys.as_ref(), j)? else {
                        return Err("a map key is null".to_string());
                    };
                    m.insert(k, value(vals.as_ref(), j)?);
                }
                Value::Object(m)
            } else {
                let pairs = (0..entries.len())
                    .map(|j| {
                        Ok(Value::Array(vec![
                            value(keys.as_ref(), j)?,
                            value(vals.as_ref(), j)?,
                        ]))
                    })
                    .collect::<std::result::Result<Vec<_>, String>>()?;
                Value::Array(pairs)
            }
        }
        A::Dictionary(..) => {
            let d = arr.as_any_dictionary();
            let k = match d.keys().data_type() {
                A::Int32 => d.keys().as_primitive::<Int32Type>().value(i) as usize,
                A::Int64 => d.keys().as_primitive::<Int64Type>().value(i) as usize,
                _ => {
                    let keys = arrow_cast::cast(d.keys(), &A::Int64).map_err(|e| e.to_string())?;
                    keys.as_primitive::<Int64Type>().value(i) as usize
                }
            };
            value(d.values().as_ref(), k)?
        }
        t if t.is_numeric() => {
            let text = display(arr, i)?;
            match serde_json::from_str::<serde_json::Number>(&text) {
                Ok(n) => Value::Number(n),
                Err(_) => Value::String(text), // NaN, inf
            }
        }
        _ => Value::String(display(arr, i)?),
    })
}

fn display(arr: &dyn Array, i: usize) -> std::result::Result<String, String> {
    let f = arrow_cast::display::ArrayFormatter::try_new(arr, &Default::default())
        .map_err(|e| e.to_string())?;
    Ok(f.value(i).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, ListArray, StringArray};
    use arrow_schema::{Field, Fields};

    #[test]
    fn struct_leaves_carry_parent_nulls_and_lists_become_json() {
        let a = Arc::new(Int64Array::from(vec![Some(1), Some(2), None])) as ArrayRef;
        let s = Arc::new(StructArray::new(
            Fields::from(vec![Field::new("b", A::Int64, true)]),
            vec![a],
            Some(NullBuffer::from(vec![true, false, true])),
        )) as ArrayRef;
        let path = vec!["a".to_string(), "b".to_string()];
        let leaf = descend(&s, &path).unwrap();
        let leaf = leaf.as_primitive::<Int64Type>();
        assert_eq!(
            (leaf.is_null(0), leaf.is_null(1), leaf.is_null(2)),
            (false, true, true)
        );
        assert_eq!(type_at(s.data_type(), &path), Ok(A::Int64));
        assert!(type_at(s.data_type(), &["a".into(), "c".into()]).is_err());

        let l = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
            Some(vec![]),
        ])) as ArrayRef;
        let j = to_json(&l).unwrap();
        let j = j.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(j.value(0), "[1,null]");
        assert!(j.is_null(1));
        assert_eq!(j.value(2), "[]");
    }
}
