//! The reader thread (checks each input against the schema and sends one job per row group
//! or record batch) and the parse workers' decoding of a job into a batch.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use arrow_schema::DataType as A;
use crossbeam_channel::Sender;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use quarry_format::Schema;

use super::convert::{convert_array, push_text, Cx};
use super::gate::Gate;
use super::inputs::{open, panic_text, Opened};
use super::nested::{self, Nested};
use super::types::{convertible, natural};
use super::{DECODE_ROWS, HIVE_NULL};
use crate::batch::{Batch, Origin};
use crate::columns::ColBuf;
use crate::error::bad_input;
use crate::input::InputSpec;
use crate::parse::{BadRow, Chunk, ParseCtx, Parsed};
use crate::plan::Stopped;

/// Where a schema column's values come from in one file.
#[derive(Debug)]
pub(super) enum ColSrc {
    /// The file's column `path[0]`, struct fields `path[1..]` below it, as JSON text if `json`.
    Column { path: Vec<String>, json: bool },
    /// A partition value (`None`: null), the same for every row of the file.
    Const(Option<String>),
}

/// One opened input, shared by its jobs.
pub(super) struct Source {
    pub(super) file: u32,
    pub(super) display: String,
    pub(super) path: PathBuf,
    pub(super) cols: Vec<ColSrc>,
    pub(super) strict_decimals: bool,
    pub(super) parquet: Option<(ArrowReaderMetadata, ProjectionMask)>,
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
    pub(super) seq: u64,
    pub(super) src: Arc<Source>,
    /// 0-based row of the file where this job starts.
    pub(super) first_row: u64,
    pub(super) rows: u64,
    pub(super) input_bytes: u64,
    pub(super) what: What,
}

pub(super) enum What {
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

/// Build options the reader needs for columnar inputs.
#[derive(Debug, Clone)]
pub struct ReadOpts {
    /// Schema columns read from nested columns (`--schema` `from` / `json`).
    pub nested: Arc<HashMap<String, Nested>>,
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
        let (path, json) = match opts.nested.get(&f.name) {
            Some(n) => (n.path.clone(), n.json),
            None => (vec![f.name.clone()], false),
        };
        let Ok(idx) = file_schema.index_of(&path[0]) else {
            return Err(bad_input(format!(
                "{}: the input has no column {:?}, which the schema has (input columns: {})",
                spec.display,
                path[0],
                file_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let t = &nested::type_at(file_schema.field(idx).data_type(), &path).map_err(|why| {
            bad_input(format!(
                "{}: schema column {:?} (\"from\": {:?}): {why}",
                spec.display,
                f.name,
                path.join(".")
            ))
        })?;
        if json {
            if !matches!(
                t,
                A::List(_) | A::LargeList(_) | A::FixedSizeList(..) | A::Map(..) | A::Struct(_)
            ) {
                return Err(bad_input(format!(
                    "{}: schema column {:?}: \"json\": true takes a list, map or struct column, \
                     but {:?} is {t}",
                    spec.display,
                    f.name,
                    path.join(".")
                )));
            }
            used.push(idx);
            cols.push(ColSrc::Column { path, json });
            continue;
        }
        if let Err(why) = natural(t) {
            return Err(bad_input(format!(
                "{}: column {:?}: {why}",
                spec.display,
                path.join(".")
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
        cols.push(ColSrc::Column { path, json });
    }
    used.sort_unstable();
    used.dedup();
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
pub(super) fn dispatch(gate: &Gate, tx: &Sender<Work>, job: Job, estimate: u64) -> Result<()> {
    if !gate.acquire(job.seq, estimate) || tx.send(Work::Columnar(job)).is_err() {
        return Err(anyhow::Error::new(Stopped));
    }
    Ok(())
}

pub(super) fn leaf_range(
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

pub(super) fn where_(job: &Job) -> String {
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

pub(super) fn decode_into(
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
pub(super) fn locate_corruption(
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
        let ColSrc::Column { path, .. } = c else {
            continue;
        };
        let name = &path[0];
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
pub(super) fn convert_batch(
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
            ColSrc::Column { path, json } => {
                let name = &path[0];
                let arr = b.column_by_name(name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "internal error: column {name:?} missing from the decoded batch"
                    )
                })?;
                if path.len() == 1 && !json {
                    convert_array(&cx, arr, f.data_type, buf)?;
                    continue;
                }
                let mut arr = nested::descend(arr, path).map_err(|e| cx.fatal(e))?;
                if *json {
                    arr = nested::to_json(&arr).map_err(|e| cx.fatal(e))?;
                }
                convert_array(&cx, &arr, f.data_type, buf)?;
            }
        }
    }
    Ok(())
}
