//! JSON Lines: one object per line, its entries kept in input order with duplicates (so a
//! duplicate key is a bad row, not a silently dropped value), typed by the schema's columns.

use quarry_format::DataType;

use crate::columns::ColBuf;
use crate::values;

use super::*;

/// A JSON object's entries in input order, duplicates kept (serde_json's `Map` keeps only the
/// last of duplicate keys, silently).
#[derive(Debug, Default)]
pub struct JsonEntries(pub Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for JsonEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JsonEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<JsonEntries, A::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some(e) = m.next_entry()? {
                    v.push(e);
                }
                Ok(JsonEntries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON parse error in words; deep nesting says so.
pub fn json_error(e: &serde_json::Error) -> String {
    if e.to_string().starts_with("recursion limit exceeded") {
        format!(
            "not a JSON object: nested more than 128 levels deep ({e}); nested values are not \
             supported (flatten them, or store them as JSON text in a string)"
        )
    } else {
        format!("not a JSON object: {e}")
    }
}

/// An empty or duplicate key of one object.
pub fn json_keys_error(obj: &JsonEntries) -> Option<String> {
    if obj.0.iter().any(|(k, _)| k.is_empty()) {
        return Some("an empty key \"\"; columns need a name".to_string());
    }
    let mut seen = std::collections::HashSet::with_capacity(obj.0.len());
    obj.0
        .iter()
        .find(|(k, _)| !seen.insert(k.as_str()))
        .map(|(k, _)| format!("key {k:?} appears twice in one object"))
}

impl ParseCtx {
    fn push_json(
        &self,
        buf: &mut ColBuf,
        col: usize,
        v: Option<&serde_json::Value>,
    ) -> Result<(), String> {
        use serde_json::Value as J;
        let f = &self.schema.fields()[col];
        let v = match v {
            None | Some(J::Null) => {
                if !f.nullable {
                    return Err(self.null_error(col));
                }
                buf.push_null();
                return Ok(());
            }
            Some(v) => v,
        };
        let ok = match (f.data_type, v) {
            (_, J::Array(_) | J::Object(_)) => {
                return Err(format!(
                    "column {:?}: nested values are not supported (flatten them, or store them as JSON text in a string)",
                    f.name
                ))
            }
            (DataType::Utf8, J::String(s)) => {
                buf.push_str(s);
                true
            }
            (DataType::Utf8, other) => {
                buf.push_str(&other.to_string());
                true
            }
            (DataType::Int64, J::Number(n)) => n.as_i64().map(|x| buf.push_i64(x)).is_some(),
            (DataType::Float64, J::Number(n)) => n.as_f64().map(|x| buf.push_f64(x)).is_some(),
            (DataType::Bool, J::Bool(b)) => {
                buf.push_bool(*b);
                true
            }
            (DataType::Date, J::String(s)) => values::parse_date(s).map(|x| buf.push_date(x)).is_some(),
            (DataType::Timestamp, J::String(s)) => {
                values::parse_timestamp(s).map(|x| buf.push_i64(x)).is_some()
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            let text = match v {
                J::String(s) => s.clone(),
                other => other.to_string(),
            };
            Err(self.value_error(col, text.as_bytes(), "is not a valid"))
        }
    }

    fn json_row(
        &self,
        line: &[u8],
        bufs: &mut [ColBuf],
        slots: &mut Vec<Option<serde_json::Value>>,
    ) -> Result<(), String> {
        let obj: JsonEntries = serde_json::from_slice(line).map_err(|e| json_error(&e))?;
        slots.clear();
        slots.resize(bufs.len(), None);
        for (k, v) in obj.0 {
            match self.json_index.get(&k) {
                Some(&i) if slots[i].is_some() => {
                    return Err(format!("key {k:?} appears twice in one object"))
                }
                Some(&i) => slots[i] = Some(v),
                None if k.is_empty() => {
                    return Err("an empty key \"\"; columns need a name".to_string())
                }
                None if self.ignore_extra_keys => {}
                None => {
                    return Err(format!(
                        "key {k:?} is not a column of the schema (pass --ignore-extra-keys to drop such keys)"
                    ))
                }
            }
        }
        for (i, slot) in slots.iter().enumerate() {
            self.push_json(&mut bufs[i], i, slot.as_ref())?;
        }
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    pub(super) fn parse_jsonl(&self, bytes: &[u8]) -> (Vec<ColBuf>, Vec<u64>, Vec<BadRow>, u64) {
        let mut bufs = self.new_bufs(bytes.len() / 128.max(6 * self.schema.len()));
        let mut line_offsets = Vec::new();
        let mut bad = Vec::new();
        let mut slots = Vec::new();
        let mut rows = 0usize;
        for (offset, line) in bytes.split(|b| *b == b'\n').enumerate() {
            let offset = offset as u64;
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue; // blank lines are skipped
            }
            match self.json_row(line, &mut bufs, &mut slots) {
                Ok(()) => {
                    rows += 1;
                    if self.keep_lines {
                        line_offsets.push(offset);
                    }
                }
                Err(message) => {
                    bufs.iter_mut().for_each(|b| b.truncate(rows));
                    bad.push(BadRow {
                        line_offset: offset,
                        message,
                    });
                    if self.fail_fast {
                        break;
                    }
                }
            }
        }
        let lines = memchr::memchr_iter(b'\n', bytes).count() as u64;
        (bufs, line_offsets, bad, lines)
    }
}
