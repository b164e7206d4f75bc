//! Columnar inputs: Parquet files (`.parquet`, `.pq`), Arrow IPC files (`.arrow`, `.feather`
//! v2, `.ipc`) and Arrow IPC streams (`.arrows`), read with the Apache Arrow crates.
//!
//! - Inputs: a file, a glob (`'data/*.parquet'`, expanded here when the shell did not), or a
//!   directory (every columnar file below it, in path order). `key=value` directories between
//!   the directory or the glob's fixed prefix and a file are Hive partitions: each key becomes a
//!   column holding the value (percent-decoded; `__HIVE_DEFAULT_PARTITION__` is null), typed
//!   like CSV text.
//! - The reader thread opens each file (footer or IPC schema), checks its columns against the
//!   build's schema and sends one job per Parquet row group (or per Arrow record batch). Parse
//!   workers decode Parquet row groups in parallel, reading only the schema's columns
//!   (`ProjectionMask`), and convert Arrow arrays into column buffers. Jobs carry sequence
//!   numbers like CSV chunks, so the output does not depend on `--threads`.
//! - Memory: a [`Gate`] admits a job only while the estimated decoded bytes in flight (decoded
//!   arrays plus column buffers) stay within a quarter of `--memory-limit`, as the CSV path's
//!   chunks do; one job is always admitted, so a row group larger than that still goes through.
//! - Errors name the file, row group (Parquet), column and the row (1-based within the file),
//!   and travel in input order (`Parsed::fatal`), so the first one is reported at any thread
//!   count. The row number stands where CSV messages put the line number. A refused value
//!   (`BadValue`) is a bad row: under `--on-bad-row skip` a null placeholder keeps the columns
//!   aligned, and the row is dropped from every column before the batch leaves the worker.
//!
//! Type mapping (also in etl/README.md): integers of every width -> int64 (uint64 above
//! 2^63-1 refused with value and row); float16/32/64 -> float64; decimal -> float64 through its
//! decimal text (the nearest double, as the CSV path parses the same text; refused when the
//! double does not round-trip the decimal under `--strict-decimals`); bool; date32/date64 ->
//! date; timestamp of any unit, with or without time zone -> timestamp (microseconds UTC;
//! nanoseconds floored, as CSV truncates fraction digits); time32/time64 -> utf8
//! `HH:MM:SS[.fraction]`; utf8, large utf8, utf8 view, dictionaries of them -> utf8 (the
//! writer keeps a dictionary where it pays); null -> utf8, all null. Binary, intervals,
//! durations and nested types (list, struct, map, union) are refused naming the column,
//! unless the `--schema` file reads a struct leaf (`"from"`) or a list/map/struct as JSON text
//! (`"json"`), see `nested.rs`. Arrow IPC inputs are checked by `ipc_check.rs` before
//! arrow-ipc reads them.
//!
//! Files: `inputs.rs` finds, opens and probes inputs; `types.rs` is the type mapping;
//! `pipeline.rs` is the reader thread and the workers' job decoding; `convert.rs` turns Arrow
//! arrays into column buffers; `gate.rs` is the memory gate; `ipc_check.rs` bounds IPC
//! lengths; `nested.rs` flattens nested columns.

mod convert;
mod gate;
mod inputs;
mod ipc_check;
mod nested;
mod pipeline;
mod types;

pub use gate::{CloseOnDrop, Gate};
pub use inputs::{expand, probe, Found};
pub use nested::{sources as nested_sources, Nested};
pub use pipeline::{decode, send_input, Job, ReadOpts, Work};
pub use types::natural;

use std::path::Path;

use crate::cli::InputFormat;

/// Rows per decoded Arrow batch within a Parquet row group.
const DECODE_ROWS: usize = 65_536;
/// Hive's name for a null partition value.
const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

pub fn is_columnar(f: InputFormat) -> bool {
    matches!(
        f,
        InputFormat::Parquet | InputFormat::Arrow | InputFormat::ArrowStream
    )
}

/// Format of a columnar file name, if it is one.
pub fn format_of(ext: &str) -> Option<InputFormat> {
    match ext {
        "parquet" | "pq" => Some(InputFormat::Parquet),
        "arrow" | "feather" | "ipc" => Some(InputFormat::Arrow),
        "arrows" => Some(InputFormat::ArrowStream),
        _ => None,
    }
}

fn is_columnar_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| format_of(&e.to_ascii_lowercase()).is_some())
}
