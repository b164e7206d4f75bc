//! Probing inputs (CSV header, a sample of records) and deciding the schema.
//!
//! The sample is the first [`SAMPLE_RECORDS`] records or the first [`SAMPLE_BYTES`] bytes
//! (decompressed) of each input, whichever ends first. Each column's type is the join of its
//! sampled values' types: int64 -> float64 -> utf8 widening, date -> timestamp, bool only with
//! bool, anything else utf8; a column with only empty values is utf8. Inferred columns are
//! nullable (a later empty value must not fail the build), except the key column, which is
//! int64 if inferred so and utf8 otherwise. A later value that does not fit is a bad row whose
//! message suggests --schema-out / --schema.
//!
//! CSV: an empty field is null. JSON Lines: `null` or a missing key is null; numbers that fit
//! i64 are int64, other numbers float64; strings are date/timestamp when they parse as such,
//! else utf8; nested objects/arrays are not supported (an error naming the column).

use std::io::Read;

use anyhow::{Context, Result};
use quarry_format::{DataType, Field, Schema};

use crate::cli::ReadArgs;
use crate::error::bad_input;
use crate::input::{self, Body, InputSpec};
use crate::schema_file::SchemaFile;
use crate::values;

pub const SAMPLE_RECORDS: usize = 10_000;
pub const SAMPLE_BYTES: usize = 8 << 20;

/// A column's type as far as the sample tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guess {
    Null,
    Bool,
    Int,
    Float,
    Date,
    Timestamp,
    Utf8,
}

impl Guess {
    pub fn join(self, other: Guess) -> Guess {
        use Guess::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, x) | (x, Null) => x,
            (Int, Float) | (Float, Int) => Float,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            _ => Utf8,
        }
    }

    pub fn data_type(self) -> DataType {
        match self {
            Guess::Null | Guess::Utf8 => DataType::Utf8,
            Guess::Bool => DataType::Bool,
            Guess::Int => DataType::Int64,
            Guess::Float => DataType::Float64,
            Guess::Date => DataType::Date,
            Guess::Timestamp => DataType::Timestamp,
        }
    }
}

/// The most specific type of a CSV text value.
pub fn classify_text(s: &str) -> Guess {
    if s.is_empty() {
        Guess::Null
    } else if values::parse_bool(s).is_some() {
        Guess::Bool
    } else if values::parse_int(s).is_some() {
        Guess::Int
    } else if values::looks_like_float(s) {
        Guess::Float
    } else {
        classify_string(s)
    }
}

fn classify_string(s: &str) -> Guess {
    if values::parse_date(s).is_some() {
        Guess::Date
    } else if values::parse_timestamp(s).is_some() {
        Guess::Timestamp
    } else {
        Guess::Utf8
    }
}

/// The type of a JSON value; `None` for nested objects and arrays.
pub fn classify_json(v: &serde_json::Value) -> Option<Guess> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => Guess::Null,
        J::Bool(_) => Guess::Bool,
        J::Number(n) if n.is_i64() => Guess::Int,
        J::Number(_) => Guess::Float,
        J::String(s) => classify_string(s),
        J::Array(_) | J::Object(_) => return None,
    })
}

/// What probing one input found.
pub struct Probe {
    /// CSV: header names (c1.. without header); JSON Lines: keys in order of first appearance.
    pub columns: Vec<String>,
    pub guesses: Vec<Guess>,
    /// CSV with header: bytes of the body before the first data record, and the line number of
    /// the first byte after them.
    pub header_len: usize,
    pub first_line: u64,
    /// Stdin cannot be reopened: the bytes read so far and the rest of the stream.
    pub stdin: Option<(Vec<u8>, Body)>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("columns", &self.columns)
            .field("guesses", &self.guesses)
            .finish()
    }
}

/// Reads the start of an input: the header (CSV) and, if `sample`, a sample for inference.
pub fn probe(spec: &InputSpec, args: &ReadArgs, sample: bool) -> Result<Probe> {
    if crate::columnar::is_columnar(spec.format) {
        return crate::columnar::probe(spec, args.schema.is_none());
    }
    let mut body = input::open(spec)?;
    let mut prefix = Vec::new();
    input::read_up_to(&mut body, &mut prefix, SAMPLE_BYTES)
        .with_context(|| format!("reading {}", spec.display))?;
    let complete = prefix.len() < SAMPLE_BYTES;
    let dialect = crate::split::Dialect {
        delimiter: spec.delimiter,
        quote: spec.quote,
        max_field: input::max_field_bytes(args)?,
    };
    let usable = if complete {
        prefix.len()
    } else if spec.is_csv() {
        crate::split::last_csv_boundary(&prefix, &dialect).unwrap_or(prefix.len())
    } else {
        crate::split::last_line_boundary(&prefix).unwrap_or(prefix.len())
    };
    let data = &prefix[..usable];
    let mut p = Probe {
        columns: vec![],
        guesses: vec![],
        header_len: 0,
        first_line: 1,
        stdin: None,
    };
    if spec.is_csv() {
        probe_csv(spec, args, sample, data, &mut p)?;
    } else if sample {
        probe_jsonl(spec, data, &mut p)?;
    }
    if spec.path.is_none() {
        p.stdin = Some((prefix, body));
    }
    Ok(p)
}

fn probe_csv(
    spec: &InputSpec,
    args: &ReadArgs,
    sample: bool,
    data: &[u8],
    p: &mut Probe,
) -> Result<()> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(spec.delimiter)
        .quoting(spec.quote.is_some())
        .quote(spec.quote.unwrap_or(b'"'))
        .from_reader(data);
    let mut rec = csv::ByteRecord::new();
    let has_first = rdr
        .read_byte_record(&mut rec)
        .with_context(|| format!("reading the first record of {}", spec.display))?;
    if !args.no_header {
        let mut seen = std::collections::HashSet::new();
        if !has_first {
            return Err(bad_input(format!(
                "{}: the input is empty; a CSV input needs a header row (or pass --no-header with --schema)",
                spec.display
            )));
        }
        for (i, f) in rec.iter().enumerate() {
            let name = std::str::from_utf8(f).map_err(|_| {
                bad_input(format!(
                    "{}:1: header column {} is not valid UTF-8",
                    spec.display,
                    i + 1
                ))
            })?;
            if name.is_empty() {
                return Err(bad_input(format!(
                    "{}:1: header column {} has an empty name",
                    spec.display,
                    i + 1
                )));
            }
            if !seen.insert(name) {
                return Err(bad_input(format!(
                    "{}:1: header column {name:?} appears twice",
                    spec.display
                )));
            }
            p.columns.push(name.to_string());
        }
        p.header_len = rdr.position().byte() as usize;
        p.first_line = 1 + memchr::memchr_iter(b'\n', &data[..p.header_len]).count() as u64;
        p.guesses = vec![Guess::Null; p.columns.len()];
    } else if has_first {
        p.columns = (1..=rec.len()).map(|i| format!("c{i}")).collect();
        p.guesses = vec![Guess::Null; p.columns.len()];
        if sample {
            sample_record(&rec, &mut p.guesses);
        }
    }
    if !sample {
        return Ok(());
    }
    let mut n = 0;
    while n < SAMPLE_RECORDS && rdr.read_byte_record(&mut rec).unwrap_or(false) {
        sample_record(&rec, &mut p.guesses);
        n += 1;
    }
    Ok(())
}

fn sample_record(rec: &csv::ByteRecord, guesses: &mut [Guess]) {
    // Records of the wrong width are bad rows: the build reports them.
    if rec.len() != guesses.len() {
        return;
    }
    for (g, f) in guesses.iter_mut().zip(rec.iter()) {
        let t = match std::str::from_utf8(f) {
            Ok(s) => classify_text(s),
            Err(_) => Guess::Utf8,
        };
        *g = g.join(t);
    }
}

fn probe_jsonl(spec: &InputSpec, data: &[u8], p: &mut Probe) -> Result<()> {
    let mut n = 0;
    let mut first_error = None;
    let mut index = std::collections::HashMap::new();
    for (lineno, line) in data.split(|b| *b == b'\n').enumerate() {
        if n >= SAMPLE_RECORDS {
            break;
        }
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        n += 1;
        let obj = match serde_json::from_slice::<crate::parse::JsonEntries>(line) {
            Ok(obj) => obj,
            Err(e) => {
                // Reported as a bad row by the build; named here if no line parses.
                first_error.get_or_insert_with(|| {
                    format!(
                        "{}:{}: {}",
                        spec.display,
                        lineno + 1,
                        crate::parse::json_error(&e)
                    )
                });
                continue;
            }
        };
        if let Some(e) = crate::parse::json_keys_error(&obj) {
            return Err(bad_input(format!("{}:{}: {e}", spec.display, lineno + 1)));
        }
        for (k, v) in &obj.0 {
            let i = *index.entry(k.clone()).or_insert_with(|| {
                p.columns.push(k.clone());
                p.guesses.push(Guess::Null);
                p.columns.len() - 1
            });
            let g = classify_json(v).ok_or_else(|| {
                bad_input(format!(
                    "{}:{}: column {k:?} holds a nested {}; nested values are not supported \
                     (flatten them, or store them as JSON text in a string)",
                    spec.display,
                    lineno + 1,
                    if v.is_array() { "array" } else { "object" }
                ))
            })?;
            p.guesses[i] = p.guesses[i].join(g);
        }
    }
    if p.columns.is_empty() {
        if let Some(e) = first_error {
            return Err(bad_input(format!(
                "cannot infer a schema: no line of the sample is a JSON object; the first: {e}"
            )));
        }
    }
    Ok(())
}

/// Words the query API reserves as parameter names or operators: a column so named could not
/// be filtered or selected.
pub const RESERVED_NAMES: [&str; 8] = [
    "select", "order", "limit", "cursor", "offset", "or", "and", "not",
];

/// Bytes the query API uses as separators in `select=`, `order=` and filters.
const NAME_SEPARATORS: [char; 5] = [',', '(', ')', '.', ':'];

/// `--rename OLD=NEW` pairs.
pub fn renames(args: &ReadArgs) -> Result<Vec<(String, String)>> {
    args.renames
        .iter()
        .map(|r| match r.split_once('=') {
            Some((old, new)) if !old.is_empty() && !new.is_empty() => {
                Ok((old.to_string(), new.to_string()))
            }
            _ => Err(crate::error::usage(format!(
                "--rename {r:?}: use OLD=NEW with two non-empty names"
            ))),
        })
        .collect()
}

/// Applies `--rename` to the probed input columns (CSV headers, JSON keys).
pub fn apply_renames(args: &ReadArgs, probes: &mut [Probe]) -> Result<()> {
    for (old, new) in renames(args)? {
        let mut found = false;
        for p in probes.iter_mut() {
            for c in p.columns.iter_mut().filter(|c| **c == old) {
                *c = new.clone();
                found = true;
            }
        }
        if !found {
            return Err(crate::error::usage(format!(
                "--rename {old}={new}: no input has a column {old:?}"
            )));
        }
    }
    Ok(())
}

/// Refuses column names the query API cannot reach (reserved words, separators, leading or
/// trailing spaces), suggesting a `--rename`.
pub fn check_names(schema: &Schema) -> Result<()> {
    for f in schema.fields() {
        let n = f.name.as_str();
        let why = if RESERVED_NAMES.contains(&n) {
            "is a reserved word of the query API"
        } else if n.contains(NAME_SEPARATORS) {
            "holds one of , ( ) . : which the query API uses as separators"
        } else if n.trim() != n {
            "has leading or trailing white space"
        } else {
            continue;
        };
        let mut fixed: String = n
            .trim()
            .chars()
            .map(|c| if NAME_SEPARATORS.contains(&c) { '_' } else { c })
            .collect();
        if fixed.is_empty() {
            fixed = "column".into();
        }
        if RESERVED_NAMES.contains(&fixed.as_str()) {
            fixed.push('_');
        }
        return Err(bad_input(format!(
            "column name {n:?} {why}, so the API could not filter or select it; rename it, \
             e.g. --rename '{n}={fixed}' (or rename it in the --schema file and the input)"
        )));
    }
    Ok(())
}

/// How a CSV input's columns map onto the schema.
#[derive(Debug, Clone)]
pub enum Layout {
    /// `map[i]` = schema column of the input's column i.
    Csv {
        map: Vec<usize>,
    },
    Jsonl,
}

/// Decides the schema (from `--schema`, or inferred) and each input's layout.
pub fn resolve(
    args: &ReadArgs,
    inputs: &[InputSpec],
    probes: &[Probe],
) -> Result<(Schema, Vec<Layout>)> {
    let schema = match &args.schema {
        Some(path) => {
            let mut file = SchemaFile::read(path)?;
            if let Some(k) = &args.key {
                file.key = Some(k.clone());
            }
            file.to_schema()?
        }
        None => infer_schema(args, inputs, probes)?,
    };
    let mut layouts = Vec::with_capacity(inputs.len());
    for (spec, p) in inputs.iter().zip(probes) {
        if !spec.is_csv() {
            layouts.push(Layout::Jsonl);
            continue;
        }
        let map = if args.no_header && args.schema.is_some() {
            if !p.columns.is_empty() && p.columns.len() != schema.len() {
                return Err(bad_input(format!(
                    "{}:1: the first record has {} fields but the schema has {} columns",
                    spec.display,
                    p.columns.len(),
                    schema.len()
                )));
            }
            (0..schema.len()).collect()
        } else {
            let by_name: std::collections::HashMap<&str, usize> = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.as_str(), i))
                .collect();
            let mut map = Vec::with_capacity(p.columns.len());
            for c in &p.columns {
                map.push(by_name.get(c.as_str()).copied().ok_or_else(|| {
                    bad_input(format!(
                        "{}: column {c:?} is not in the schema (columns: {})",
                        spec.display,
                        names(&schema)
                    ))
                })?);
            }
            let present: std::collections::HashSet<&str> =
                p.columns.iter().map(String::as_str).collect();
            if let Some(f) = schema
                .fields()
                .iter()
                .find(|f| !present.contains(f.name.as_str()))
            {
                return Err(bad_input(format!(
                    "{}: the input has no column {:?}, which the schema has (input columns: {})",
                    spec.display,
                    f.name,
                    p.columns.join(", ")
                )));
            }
            map
        };
        layouts.push(Layout::Csv { map });
    }
    Ok((schema, layouts))
}

fn names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn infer_schema(args: &ReadArgs, inputs: &[InputSpec], probes: &[Probe]) -> Result<Schema> {
    let mut columns: Vec<String> = vec![];
    let mut guesses: Vec<Guess> = vec![];
    let mut index = std::collections::HashMap::new();
    for p in probes {
        for (c, g) in p.columns.iter().zip(&p.guesses) {
            let i = *index.entry(c.as_str()).or_insert_with(|| {
                columns.push(c.clone());
                guesses.push(Guess::Null);
                columns.len() - 1
            });
            guesses[i] = guesses[i].join(*g);
        }
    }
    if columns.is_empty() {
        let what = inputs
            .iter()
            .map(|i| i.display.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(bad_input(format!(
            "cannot infer a schema: no columns found in {what} (empty input?); pass --schema FILE"
        )));
    }
    let key = match &args.key {
        None => None,
        Some(k) => Some(columns.iter().position(|c| c == k).ok_or_else(|| {
            bad_input(format!(
                "--key {k:?} is not a column (columns: {})",
                columns.join(", ")
            ))
        })?),
    };
    let fields = columns
        .into_iter()
        .zip(guesses)
        .enumerate()
        .map(|(i, (name, g))| {
            let is_key = Some(i) == key;
            let data_type = match (is_key, g.data_type()) {
                (true, DataType::Int64) => DataType::Int64,
                (true, _) => DataType::Utf8,
                (false, t) => t,
            };
            Field {
                name,
                data_type,
                nullable: !is_key,
            }
        })
        .collect();
    Schema::new(fields, key).map_err(|e| bad_input(e.to_string()))
}

/// Reads the rest of a probed stdin after its kept prefix.
pub fn stdin_body(prefix: Vec<u8>, rest: Body) -> Body {
    Box::new(std::io::Cursor::new(prefix).chain(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening() {
        let join = |vals: &[&str]| {
            vals.iter()
                .fold(Guess::Null, |g, v| g.join(classify_text(v)))
        };
        assert_eq!(join(&["1", "2", ""]), Guess::Int);
        assert_eq!(join(&["1", "2.5"]), Guess::Float);
        assert_eq!(join(&["1", "2.5", "x"]), Guess::Utf8);
        assert_eq!(join(&["true", "FALSE"]), Guess::Bool);
        assert_eq!(join(&["true", "1"]), Guess::Utf8);
        assert_eq!(
            join(&["2024-01-02", "2024-01-02 10:00:00"]),
            Guess::Timestamp
        );
        assert_eq!(join(&["2024-01-02"]), Guess::Date);
        assert_eq!(join(&["", ""]), Guess::Null);
        assert_eq!(join(&["nan"]), Guess::Utf8);
        assert_eq!(join(&["99999999999999999999"]), Guess::Float);
    }
}
