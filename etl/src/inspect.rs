//! `quarry-etl inspect` and `quarry-etl verify`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use quarry_format::{FormatError, MappedFile, QuarryFile};
use serde_json::json;

use crate::error::Corrupt;

/// Opens a file; format errors (anything but I/O) mean a corrupt file (exit 4).
fn open(path: &Path) -> Result<QuarryFile<MappedFile>> {
    quarry_format::read_file(path).map_err(|e| match e {
        FormatError::Io { .. } => {
            anyhow::Error::new(e).context(format!("opening {}", path.display()))
        }
        e => anyhow::Error::new(Corrupt(format!("{}: {e}", path.display()))),
    })
}

/// Human or JSON description of a file.
pub fn inspect(path: &Path, as_json: bool) -> Result<String> {
    let f = open(path)?;
    let schema = f.schema();
    let groups = f.row_groups();
    let mut columns = Vec::new();
    for (c, field) in schema.fields().iter().enumerate() {
        let mut encodings: BTreeMap<&'static str, usize> = BTreeMap::new();
        let (mut bytes, mut nulls) = (0u64, 0u64);
        for g in 0..groups.len() {
            let m = f.chunk_meta(g, c);
            *encodings.entry(m.encoding.name()).or_default() += 1;
            bytes += m.len;
            nulls += m.null_count;
        }
        columns.push(json!({
            "name": field.name,
            "type": field.data_type.name(),
            "nullable": field.nullable,
            "key": schema.key() == Some(c),
            "encodings": encodings,
            "bytes": bytes,
            "null_count": nulls,
        }));
    }
    let doc = json!({
        "path": path.display().to_string(),
        "version": f.version().to_string(),
        "created_by": f.created_by(),
        "file_bytes": f.file_len(),
        "rows": f.num_rows(),
        "row_groups": groups.len(),
        "key": schema.key_field().map(|k| k.name.clone()),
        "columns": columns,
    });
    if as_json {
        return Ok(serde_json::to_string_pretty(&doc)?);
    }
    let mut out = format!(
        "file:        {}\nversion:     {}\ncreated_by:  {}\nsize:        {} bytes\nrows:        {}\nrow groups:  {}\nkey:         {}\ncolumns:\n",
        path.display(),
        f.version(),
        f.created_by(),
        f.file_len(),
        f.num_rows(),
        groups.len(),
        schema.key_field().map_or("(none)", |k| k.name.as_str()),
    );
    out.push_str(&format!(
        "  {:<24} {:<10} {:<9} {:>14} {:>12}  encodings\n",
        "name", "type", "nullable", "bytes", "nulls"
    ));
    for c in &columns {
        let enc = c["encodings"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} x{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<24} {:<10} {:<9} {:>14} {:>12}  {}{}\n",
            c["name"].as_str().unwrap_or(""),
            c["type"].as_str().unwrap_or(""),
            c["nullable"].to_string(),
            c["bytes"].to_string(),
            c["null_count"].to_string(),
            enc,
            if c["key"] == true { "  (key)" } else { "" }
        ));
    }
    Ok(out)
}

/// Full verification; `Err` with a [`Corrupt`] marker (exit 4) on corruption.
pub fn verify(path: &Path, as_json: bool) -> Result<String> {
    let f = open(path)?;
    f.verify()
        .map_err(|e| anyhow::Error::new(Corrupt(format!("{}: {e}", path.display()))))?;
    Ok(if as_json {
        json!({"path": path.display().to_string(), "ok": true, "rows": f.num_rows(), "version": f.version().to_string()})
            .to_string()
    } else {
        format!(
            "ok: {} ({} rows, version {})",
            path.display(),
            f.num_rows(),
            f.version()
        )
    })
}
