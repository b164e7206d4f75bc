//! Finding columnar inputs (files, globs, directories, Hive partitions), opening them and
//! probing their columns.

use std::fs::File;
use std::io::{BufReader, Read};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use arrow_schema::{DataType as A, SchemaRef};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};

use super::is_columnar_name;
use super::types::{guess_of, natural, partition_guess};
use crate::cli::InputFormat;
use crate::error::{bad_input, usage};
use crate::infer::{Guess, Probe};
use crate::input::InputSpec;

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

pub(super) fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
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

/// An opened columnar file.
pub(super) enum Opened {
    Parquet(ArrowReaderMetadata),
    Arrow(
        Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow_schema::ArrowError>> + Send>,
        SchemaRef,
    ),
}

impl Opened {
    pub(super) fn schema(&self) -> SchemaRef {
        match self {
            Opened::Parquet(m) => m.schema().clone(),
            Opened::Arrow(_, s) => s.clone(),
        }
    }
}

pub(super) const ARROW_MAGIC: &[u8] = b"ARROW1";

/// Opens a columnar input; `projection` (file column indices) applies to Arrow IPC readers.
pub(super) fn open(spec: &InputSpec, projection: Option<Vec<usize>>) -> Result<Opened> {
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
            let file_format = n == 6 && magic == ARROW_MAGIC && spec.format == InputFormat::Arrow;
            // The check itself reads untrusted flatbuffers: a panic there is a refusal too.
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                super::ipc_check::check(path, &spec.display, file_format)
            }))
            .map_err(|p| {
                bad_input(format!(
                    "{}: not a readable Arrow IPC file or stream: {}",
                    spec.display,
                    panic_text(&p)
                ))
            })??;
            if file_format {
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

pub(super) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

pub(super) fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
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
