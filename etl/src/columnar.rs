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
//! durations and nested types (list, struct, map, union) are refused naming the column.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use anyhow::{Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Float64Type, Int64Type, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType as A, SchemaRef, TimeUnit};
use crossbeam_channel::Sender;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use quarry_format::{DataType, Schema};

use crate::batch::{Batch, Origin};
use crate::cli::InputFormat;
use crate::columns::ColBuf;
use crate::error::{bad_input, usage};
use crate::infer::{Guess, Probe};
use crate::input::InputSpec;
use crate::parse::{BadRow, Chunk, ParseCtx, Parsed};
use crate::plan::Stopped;
use crate::values;

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

/// A file found by [`expand`] and its Hive partition values.
pub type Found = (PathBuf, Vec<(String, String)>);

/// Expands a directory or a glob that names no existing file into its columnar files, sorted
/// by path; `None` when `p` is a plain file name. Every file of one argument must have the same
/// partition keys in the same order.
pub fn expand(p: &Path) -> Result<Option<Vec<Found>>> {
    let (base, mut files) = if p.is_dir() {
        let mut files = Vec::new();
        walk(p, &mut files).with_context(|| format!("listing {}", p.display()))?;
        (p.to_path_buf(), files)
    } else {
        let s = p.to_string_lossy();
        if p.exists() || !s.contains(['*', '?', '[']) {
            return Ok(None);
        }
        let mut files = Vec::new();
        for entry in glob::glob(&s).map_err(|e| usage(format!("bad glob {s:?}: {e}")))? {
            let f = entry.with_context(|| format!("expanding {s}"))?;
            if f.is_file() {
                files.push(f);
            }
        }
        // The fixed prefix: components before the first one with a glob character.
        let base: PathBuf = p
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .collect();
        (base, files)
    };
    if files.is_empty() {
        return Err(usage(format!(
            "{} matches no .parquet, .arrow, .arrows or .feather file",
            p.display()
        )));
    }
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let rel = f.strip_prefix(&base).unwrap_or(&f);
        let mut parts = Vec::new();
        if let Some(dir) = rel.parent() {
            for c in dir.components() {
                let c = c.as_os_str().to_string_lossy();
                if let Some((k, v)) = c.split_once('=') {
                    if !k.is_empty() {
                        // Writers (Hive, Spark, DuckDB) percent-encode special characters.
                        let dec = |s: &str| {
                            percent_encoding::percent_decode_str(s)
                                .decode_utf8()
                                .map(|s| s.into_owned())
                                .map_err(|_| {
                                    bad_input(format!(
                                        "{}: partition directory {c:?} is not UTF-8 once percent-decoded",
                                        f.display()
                                    ))
                                })
                        };
                        parts.push((dec(k)?, dec(v)?));
                    }
                }
            }
        }
        out.push((f, parts));
    }
    let keys =
        |parts: &[(String, String)]| parts.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    let first = keys(&out[0].1);
    if let Some((f, parts)) = out.iter().find(|(_, parts)| keys(parts) != first) {
        return Err(bad_input(format!(
            "{}: partition directories {:?} differ from {:?} of {} (all files under {} must have the same key=value levels)",
            f.display(),
            keys(parts),
            first,
            out[0].0.display(),
            p.display()
        )));
    }
    Ok(Some(out))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        // Hidden and underscore files are metadata or in-progress writes (Spark, Hive).
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let t = e.file_type()?;
        if t.is_dir() {
            walk(&e.path(), out)?;
        } else if t.is_file() && is_columnar_name(&e.path()) {
            out.push(e.path());
        }
    }
    Ok(())
}

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
fn convertible(t: &A, q: DataType) -> bool {
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

fn guess_of(t: DataType) -> Guess {
    match t {
        DataType::Bool => Guess::Bool,
        DataType::Int64 => Guess::Int,
        DataType::Float64 => Guess::Float,
        DataType::Date => Guess::Date,
        DataType::Timestamp => Guess::Timestamp,
        DataType::Utf8 => Guess::Utf8,
    }
}

fn partition_guess(v: &str) -> Guess {
    if v == HIVE_NULL {
        Guess::Null
    } else {
        crate::infer::classify_text(v)
    }
}

/// An opened columnar file.
enum Opened {
    Parquet(ArrowReaderMetadata),
    Arrow(
        Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>> + Send>,
        SchemaRef,
    ),
}

impl Opened {
    fn schema(&self) -> SchemaRef {
        match self {
            Opened::Parquet(m) => m.schema().clone(),
            Opened::Arrow(_, s) => s.clone(),
        }
    }
}

const ARROW_MAGIC: &[u8] = b"ARROW1";

/// Opens a columnar input; `projection` (file column indices) applies to Arrow IPC readers.
fn open(spec: &InputSpec, projection: Option<Vec<usize>>) -> Result<Opened> {
    let path = spec
        .path
        .as_ref()
        .ok_or_else(|| usage("Parquet and Arrow inputs must be files, not stdin"))?;
    let mut file = File::open(path).with_context(|| format!("opening {}", spec.display))?;
    match spec.format {
        InputFormat::Parquet => {
            // A decoder bug must not take the build down without naming the file.
            let loaded = std::panic::catch_unwind(AssertUnwindSafe(|| {
                ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
            }))
            .map_err(|p| {
                bad_input(format!(
                    "{}: the Parquet footer reader failed: {}",
                    spec.display,
                    panic_text(&p)
                ))
            })?;
            let meta = loaded.map_err(|e| {
                bad_input(format!(
                    "{}: not a readable Parquet file: {e}",
                    spec.display
                ))
            })?;
            Ok(Opened::Parquet(meta))
        }
        _ => {
            let mut magic = [0u8; 6];
            let n = read_fully(&mut file, &mut magic)
                .with_context(|| format!("reading {}", spec.display))?;
            let file = File::open(path).with_context(|| format!("opening {}", spec.display))?;
            let buffered = BufReader::with_capacity(1 << 20, file);
            let bad = |e: arrow_schema::ArrowError| {
                bad_input(format!(
                    "{}: not a readable Arrow IPC file or stream: {e}",
                    spec.display
                ))
            };
            if n == 6 && magic == ARROW_MAGIC && spec.format == InputFormat::Arrow {
                let r =
                    arrow_ipc::reader::FileReader::try_new(buffered, projection).map_err(bad)?;
                let schema = r.schema();
                Ok(Opened::Arrow(Box::new(r), schema))
            } else {
                let r =
                    arrow_ipc::reader::StreamReader::try_new(buffered, projection).map_err(bad)?;
                let schema = r.schema();
                Ok(Opened::Arrow(Box::new(r), schema))
            }
        }
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Probes a columnar input: its columns (then its partition keys) and their types. When the
/// schema is inferred, a column of a refused type fails here, naming it; with `--schema`,
/// such columns are left out (a schema that names one fails when the file is read).
pub fn probe(spec: &InputSpec, inferring: bool) -> Result<Probe> {
    let opened = open(spec, None)?;
    let schema = opened.schema();
    let mut p = Probe {
        columns: vec![],
        guesses: vec![],
        header_len: 0,
        first_line: 1,
        stdin: None,
    };
    for f in schema.fields() {
        match natural(f.data_type()) {
            Ok(t) => {
                p.columns.push(f.name().clone());
                p.guesses.push(if f.data_type() == &A::Null {
                    Guess::Null
                } else {
                    guess_of(t)
                });
            }
            Err(why) if inferring => {
                return Err(bad_input(format!(
                    "{}: column {:?}: {why}",
                    spec.display,
                    f.name()
                )))
            }
            Err(_) => {}
        }
    }
    for (k, v) in &spec.partitions {
        if p.columns.contains(k) {
            return Err(bad_input(format!(
                "{}: partition key {k:?} is also a column of the file",
                spec.display
            )));
        }
        p.columns.push(k.clone());
        p.guesses.push(partition_guess(v));
    }
    Ok(p)
}

/// Where a schema column's values come from in one file.
#[derive(Debug)]
enum ColSrc {
    /// The file's column of this name.
    Column(String),
    /// A partition value (`None`: null), the same for every row of the file.
    Const(Option<String>),
}

/// One opened input, shared by its jobs.
struct Source {
    file: u32,
    display: String,
    path: PathBuf,
    cols: Vec<ColSrc>,
    strict_decimals: bool,
    parquet: Option<(ArrowReaderMetadata, ProjectionMask)>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("display", &self.display)
            .field("cols", &self.cols)
            .finish()
    }
}

/// A unit of decoding work: one Parquet row group or one Arrow record batch.
pub struct Job {
    seq: u64,
    src: Arc<Source>,
    /// 0-based row of the file where this job starts.
    first_row: u64,
    rows: u64,
    input_bytes: u64,
    what: What,
}

enum What {
    RowGroup(usize),
    Batch(RecordBatch),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("seq", &self.seq)
            .field("src", &self.src.display)
            .field("first_row", &self.first_row)
            .field("rows", &self.rows)
            .finish()
    }
}

/// What the reader thread hands the parse workers.
#[derive(Debug)]
pub enum Work {
    Text(Chunk),
    Columnar(Job),
}

/// Bounds the estimated decoded bytes of columnar jobs in flight (sent and not yet taken by
/// the collector).
#[derive(Debug)]
pub struct Gate {
    budget: u64,
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    in_flight: u64,
    held: HashMap<u64, u64>,
    closed: bool,
}

impl Gate {
    pub fn new(budget: u64) -> Gate {
        Gate {
            budget,
            state: Mutex::new(GateState::default()),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `bytes` more fit in the budget (at once when nothing is in flight) and
    /// records them under `seq`; `false` when the gate was closed.
    fn acquire(&self, seq: u64, bytes: u64) -> bool {
        let mut st = self.lock();
        while !st.closed && st.in_flight > 0 && st.in_flight.saturating_add(bytes) > self.budget {
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.closed {
            return false;
        }
        st.in_flight = st.in_flight.saturating_add(bytes);
        st.held.insert(seq, bytes);
        true
    }

    /// The collector took `seq`: its bytes no longer count (a no-op for text chunks).
    pub fn release(&self, seq: u64) {
        let mut st = self.lock();
        if let Some(b) = st.held.remove(&seq) {
            st.in_flight -= b;
            self.cv.notify_all();
        }
    }

    /// Wakes and stops the reader (the collector has stopped).
    pub fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }
}

/// Closes the gate when dropped.
#[derive(Debug)]
pub struct CloseOnDrop<'a>(pub &'a Gate);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Build options the reader needs for columnar inputs.
#[derive(Debug, Clone, Copy)]
pub struct ReadOpts {
    /// The schema was inferred: every file's column must have the schema's type.
    pub inferred: bool,
    pub strict_decimals: bool,
}

/// Reader thread, one columnar input: checks its columns against the schema, then sends its
/// jobs from sequence number `seq` on; returns the next sequence number.
pub fn send_input(
    schema: &Schema,
    file: u32,
    spec: &InputSpec,
    opts: ReadOpts,
    mut seq: u64,
    gate: &Gate,
    tx: &Sender<Work>,
) -> Result<u64> {
    let probe_open = open(spec, None)?;
    let file_schema = probe_open.schema();
    let mut cols = Vec::with_capacity(schema.len());
    let mut used: Vec<usize> = Vec::new();
    for (ci, f) in schema.fields().iter().enumerate() {
        if let Some((_, v)) = spec.partitions.iter().find(|(k, _)| *k == f.name) {
            cols.push(ColSrc::Const((v != HIVE_NULL).then(|| v.clone())));
            continue;
        }
        let Ok(idx) = file_schema.index_of(&f.name) else {
            return Err(bad_input(format!(
                "{}: the input has no column {:?}, which the schema has (input columns: {})",
                spec.display,
                f.name,
                file_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let t = file_schema.field(idx).data_type();
        if let Err(why) = natural(t) {
            return Err(bad_input(format!(
                "{}: column {:?}: {why}",
                spec.display, f.name
            )));
        }
        let same = natural(t).ok() == Some(f.data_type) || t == &A::Null;
        if opts.inferred && !same && Some(ci) != schema.key() {
            return Err(bad_input(format!(
                "{}: column {:?} is {t} here, but {} in the schema inferred from all inputs: \
                 the files of one build must have the same schema (or pass --schema to convert)",
                spec.display, f.name, f.data_type
            )));
        }
        if !convertible(t, f.data_type) {
            return Err(bad_input(format!(
                "{}: column {:?} of type {t} cannot be read as {}",
                spec.display, f.name, f.data_type
            )));
        }
        used.push(idx);
        cols.push(ColSrc::Column(f.name.clone()));
    }
    used.sort_unstable();
    let path = spec.path.clone().unwrap_or_default();
    match probe_open {
        Opened::Parquet(meta) => {
            let mask = ProjectionMask::roots(meta.parquet_schema(), used.iter().copied());
            let md = meta.metadata().clone();
            let src = Arc::new(Source {
                file,
                display: spec.display.clone(),
                path,
                cols,
                strict_decimals: opts.strict_decimals,
                parquet: Some((meta, mask)),
            });
            let leaves: Vec<usize> = used
                .iter()
                .filter_map(|&i| leaf_range(&md, i))
                .flatten()
                .collect();
            let mut first_row = 0u64;
            for (g, rg) in md.row_groups().iter().enumerate() {
                let rows = u64::try_from(rg.num_rows()).unwrap_or(0);
                let (mut compressed, mut decoded) = (0u64, 0u64);
                for c in leaves.iter().filter_map(|&l| rg.columns().get(l)) {
                    compressed += u64::try_from(c.compressed_size()).unwrap_or(0);
                    decoded += u64::try_from(c.uncompressed_size()).unwrap_or(0);
                }
                // Decoded arrays and the column buffers exist at the same time.
                let estimate = decoded
                    .saturating_mul(2)
                    .saturating_add(rows.saturating_mul(16));
                let job = Job {
                    seq,
                    src: Arc::clone(&src),
                    first_row,
                    rows,
                    input_bytes: compressed,
                    what: What::RowGroup(g),
                };
                dispatch(gate, tx, job, estimate)?;
                seq += 1;
                first_row += rows;
            }
        }
        Opened::Arrow(..) => {
            let Opened::Arrow(mut reader, _) = open(spec, Some(used.clone()))? else {
                anyhow::bail!(
                    "internal error: {} reopened as another format",
                    spec.display
                );
            };
            let src = Arc::new(Source {
                file,
                display: spec.display.clone(),
                path,
                cols,
                strict_decimals: opts.strict_decimals,
                parquet: None,
            });
            let mut first_row = 0u64;
            for i in 0.. {
                let next =
                    std::panic::catch_unwind(AssertUnwindSafe(|| reader.next())).map_err(|p| {
                        bad_input(format!(
                            "{}: record batch {i} (from row {}): the IPC reader failed: {}",
                            spec.display,
                            first_row + 1,
                            panic_text(&p)
                        ))
                    })?;
                let Some(b) = next else { break };
                let b = b.map_err(|e| {
                    bad_input(format!(
                        "{}: record batch {i} (from row {}): {e}",
                        spec.display,
                        first_row + 1
                    ))
                })?;
                let rows = b.num_rows() as u64;
                let bytes = b.get_array_memory_size() as u64;
                let job = Job {
                    seq,
                    src: Arc::clone(&src),
                    first_row,
                    rows,
                    input_bytes: bytes,
                    what: What::Batch(b),
                };
                dispatch(gate, tx, job, bytes.saturating_mul(2))?;
                seq += 1;
                first_row += rows;
            }
        }
    }
    Ok(seq)
}

/// Leaf column indices of root column `root` of a Parquet file.
/// Waits until the memory gate admits `estimate` more bytes for the job, then sends it to the
/// parse workers. `Stopped` when the build is ending (gate closed or workers gone).
fn dispatch(gate: &Gate, tx: &Sender<Work>, job: Job, estimate: u64) -> Result<()> {
    if !gate.acquire(job.seq, estimate) || tx.send(Work::Columnar(job)).is_err() {
        return Err(anyhow::Error::new(Stopped));
    }
    Ok(())
}

fn leaf_range(
    md: &parquet::file::metadata::ParquetMetaData,
    root: usize,
) -> Option<std::ops::Range<usize>> {
    let s = md.file_metadata().schema_descr();
    let leaves: Vec<usize> = (0..s.num_columns())
        .filter(|&l| s.get_column_root_idx(l) == root)
        .collect();
    Some(*leaves.first()?..*leaves.last()? + 1)
}

/// Parse worker: decodes one job into a batch; an error travels in `Parsed::fatal`.
pub fn decode(ctx: &ParseCtx, job: Job) -> Parsed {
    let rows = job.rows;
    let mut bufs: Vec<ColBuf> = ctx
        .schema
        .fields()
        .iter()
        .map(|f| ColBuf::new(f.data_type, rows.min(1 << 20) as usize))
        .collect();
    // A decoder bug on hostile bytes must not take the build down without naming the place.
    let bad = RefCell::new(Vec::new());
    let result =
        std::panic::catch_unwind(AssertUnwindSafe(|| decode_into(ctx, &job, &mut bufs, &bad)))
            .unwrap_or_else(|p| {
                Err(bad_input(format!(
                    "{}: {}: the decoder failed: {}",
                    job.src.display,
                    where_(&job),
                    panic_text(&p)
                )))
            });
    let got = bufs.first().map_or(0, ColBuf::len);
    let fatal = match result {
        Err(e) => Some(e),
        Ok(()) if got as u64 != rows => Some(bad_input(format!(
            "{}: {}: the metadata promises {rows} rows but {got} were decoded",
            job.src.display,
            where_(&job)
        ))),
        Ok(()) => None,
    };
    let mut columns: Vec<_> = bufs.into_iter().map(ColBuf::finish).collect();
    // Skipped rows (a row may be refused in several columns: reported once, first column).
    let mut bad = bad.into_inner();
    bad.sort_by_key(|(r, _)| *r);
    bad.dedup_by_key(|(r, _)| *r);
    let mut kept: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0usize;
    for (r, _) in &bad {
        let r = *r as usize;
        if r > start {
            kept.push(start..r);
        }
        start = r + 1;
    }
    if start < got {
        kept.push(start..got);
    }
    if fatal.is_none() && !bad.is_empty() {
        columns = columns
            .iter()
            .zip(ctx.schema.fields())
            .map(|(c, f)| {
                let parts: Vec<_> = kept.iter().map(|r| (c, r.clone())).collect();
                crate::columns::gather(f.data_type, &parts)
            })
            .collect();
    }
    let kept_rows: usize = kept.iter().map(|r| r.len()).sum();
    let line_offsets = if ctx.keep_lines && fatal.is_none() {
        kept.iter()
            .flat_map(|r| r.clone())
            .map(|r| r as u64)
            .collect()
    } else {
        Vec::new()
    };
    Parsed {
        seq: job.seq,
        file: job.src.file,
        first_line: Some(job.first_row + 1),
        lines: rows,
        input_bytes: job.input_bytes,
        batch: Batch {
            columns,
            rows: if fatal.is_none() { kept_rows } else { got },
            origin: Origin::Chunk {
                file: job.src.file,
                base_line: 0,
                line_offsets,
            },
        },
        bad: bad
            .into_iter()
            .map(|(r, message)| BadRow {
                line_offset: r,
                message,
            })
            .collect(),
        tail_line: false,
        fatal: None,
        failed: fatal,
    }
}

fn where_(job: &Job) -> String {
    match job.what {
        What::RowGroup(g) => format!(
            "row group {g} (rows {}-{})",
            job.first_row + 1,
            job.first_row + job.rows
        ),
        What::Batch(_) => format!(
            "record batch at rows {}-{}",
            job.first_row + 1,
            job.first_row + job.rows
        ),
    }
}

fn decode_into(
    ctx: &ParseCtx,
    job: &Job,
    bufs: &mut [ColBuf],
    bad: &RefCell<Vec<(u64, String)>>,
) -> Result<()> {
    let src = &job.src;
    match &job.what {
        What::Batch(b) => convert_batch(ctx, job, b, job.first_row, bufs, bad),
        What::RowGroup(g) => {
            let Some((meta, mask)) = &src.parquet else {
                anyhow::bail!("internal error: a row group job without Parquet metadata");
            };
            let reader = |mask: ProjectionMask| -> Result<_> {
                let file =
                    File::open(&src.path).with_context(|| format!("opening {}", src.display))?;
                ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
                    .with_projection(mask)
                    .with_row_groups(vec![*g])
                    .with_batch_size(DECODE_ROWS)
                    .build()
                    .map_err(|e| bad_input(format!("{}: {}: {e}", src.display, where_(job))))
            };
            let mut row = job.first_row;
            for b in reader(mask.clone())? {
                let b = match b {
                    Ok(b) => b,
                    Err(e) => return Err(locate_corruption(job, &reader, e)),
                };
                convert_batch(ctx, job, &b, row, bufs, bad)?;
                row += b.num_rows() as u64;
            }
            Ok(())
        }
    }
}

/// A row group failed to decode: decode its columns one by one to name the broken one.
fn locate_corruption(
    job: &Job,
    reader: &dyn Fn(
        ProjectionMask,
    ) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader>,
    e: arrow_schema::ArrowError,
) -> anyhow::Error {
    let src = &job.src;
    let whole = bad_input(format!(
        "{}: {}: cannot decode: {e}",
        src.display,
        where_(job)
    ));
    let Some((meta, _)) = &src.parquet else {
        return whole;
    };
    for c in &src.cols {
        let ColSrc::Column(name) = c else { continue };
        let Ok(idx) = meta.schema().index_of(name) else {
            continue;
        };
        let mask = ProjectionMask::roots(meta.parquet_schema(), [idx]);
        let Ok(r) = reader(mask) else { continue };
        let mut row = job.first_row;
        for b in r {
            match b {
                Ok(b) => row += b.num_rows() as u64,
                Err(e) => {
                    return bad_input(format!(
                        "{}: {}, column {name:?}: cannot decode (the batch from row {}): {e}",
                        src.display,
                        where_(job),
                        row + 1
                    ))
                }
            }
        }
    }
    whole
}

/// Appends one record batch's rows (the first is row `first_row` of the file, 0-based).
fn convert_batch(
    ctx: &ParseCtx,
    job: &Job,
    b: &RecordBatch,
    first_row: u64,
    bufs: &mut [ColBuf],
    bad: &RefCell<Vec<(u64, String)>>,
) -> Result<()> {
    let src = &job.src;
    for (ci, (c, buf)) in src.cols.iter().zip(bufs.iter_mut()).enumerate() {
        let f = &ctx.schema.fields()[ci];
        let cx = Cx {
            job,
            name: &f.name,
            first_row,
            nullable: f.nullable,
            is_key: ctx.schema.key() == Some(ci),
            skip: !ctx.fail_fast,
            bad,
        };
        match c {
            ColSrc::Const(v) => {
                for i in 0..b.num_rows() {
                    let r = match v {
                        None => cx.null(buf, i),
                        Some(v) => push_text(&cx, buf, f.data_type, v, i),
                    };
                    cx.check(r, buf, i)?;
                }
            }
            ColSrc::Column(name) => {
                let arr = b.column_by_name(name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "internal error: column {name:?} missing from the decoded batch"
                    )
                })?;
                convert_array(&cx, arr, f.data_type, buf)?;
            }
        }
    }
    Ok(())
}

/// A refused value (row-level): with `--on-bad-row skip` its row is left out and reported.
#[derive(Debug)]
struct BadValue {
    full: String,
    /// Without file and row (the collector prefixes `file:row: `).
    short: String,
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.full)
    }
}

/// Where a value is, for messages, and the rows skipped so far (job-relative row, message).
struct Cx<'a> {
    job: &'a Job,
    name: &'a str,
    first_row: u64,
    nullable: bool,
    is_key: bool,
    skip: bool,
    bad: &'a RefCell<Vec<(u64, String)>>,
}

impl Cx<'_> {
    /// A refused value at row `i` of the current batch.
    fn err(&self, i: usize, what: impl std::fmt::Display) -> anyhow::Error {
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
    fn fatal(&self, what: impl std::fmt::Display) -> anyhow::Error {
        bad_input(format!(
            "{}: {}, column {:?}: {what}",
            self.job.src.display,
            where_(self.job),
            self.name
        ))
    }

    /// `r` of row `i`: a refused value is skipped (a null placeholder pushed, the row
    /// recorded) under `--on-bad-row skip`, else returned.
    fn check(&self, r: Result<()>, buf: &mut ColBuf, i: usize) -> Result<()> {
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

    fn null(&self, buf: &mut ColBuf, i: usize) -> Result<()> {
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

fn push_text(cx: &Cx<'_>, buf: &mut ColBuf, t: DataType, s: &str, i: usize) -> Result<()> {
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
fn each<T>(
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
fn day_micros(cx: &Cx<'_>, days: i32, i: usize) -> Result<i64> {
    i64::from(days).checked_mul(86_400_000_000).ok_or_else(|| {
        cx.err(
            i,
            format!("date {days} (days) is out of the timestamp range"),
        )
    })
}

fn ts_micros(v: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => v.checked_mul(1_000_000),
        TimeUnit::Millisecond => v.checked_mul(1_000),
        TimeUnit::Microsecond => Some(v),
        TimeUnit::Nanosecond => Some(v.div_euclid(1_000)),
    }
}

/// `HH:MM:SS[.fraction]`, trailing zeros of the fraction dropped.
fn time_text(v: i64, per_sec: i64, digits: usize) -> Option<String> {
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
fn decimal_digits(s: &str) -> (bool, String) {
    let neg = s.starts_with('-');
    let s = s.trim_start_matches(['-', '+']);
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = frac.trim_end_matches('0');
    let int = int.trim_start_matches('0');
    let all = format!("{int}.{frac}");
    let zero = int.is_empty() && frac.is_empty();
    (neg && !zero, all)
}

fn convert_array(cx: &Cx<'_>, arr: &ArrayRef, t: DataType, buf: &mut ColBuf) -> Result<()> {
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
    fn gate_admits_one_job_always_and_blocks_past_the_budget() {
        let gate = Arc::new(Gate::new(100));
        assert!(gate.acquire(0, 1_000), "an empty gate admits any job");
        let g = Arc::clone(&gate);
        let waiter = std::thread::spawn(move || g.acquire(1, 10));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "admitted past the budget");
        gate.release(0);
        assert!(waiter.join().unwrap());
        gate.release(7); // not held: no-op
        assert!(gate.acquire(2, 90));
        let g = Arc::clone(&gate);
        let waiter = std::thread::spawn(move || g.acquire(3, 50));
        gate.close();
        assert!(!waiter.join().unwrap(), "a closed gate stops the reader");
    }

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
