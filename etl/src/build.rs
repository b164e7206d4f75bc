//! `quarry-etl build`: the pipeline.
//!
//! ```text
//! reader thread ──chunks──> N parse workers ──batches──> collector (this thread)
//!   (split at record          (csv / serde_json,           in input order: line numbers,
//!    boundaries)               typing into columns)         bad rows, then either
//!                                                           · no key: plan row groups, or
//!                                                           · key: sort runs (rayon, N),
//!                                                             spill, k-way merge, dedupe
//!        ──plans──> N encode workers ──encoded row groups──> writer thread (in seq order)
//!                   (gather, encode_row_group:                FileWriter::write_encoded;
//!                    dictionaries, stats, checksums)          a helper fdatasyncs every 64 MiB;
//!                                                             then fsync, verify, rename
//! ```
//! All channels are bounded (crossbeam), so memory in flight is bounded by the channel sizes
//! and the chunk size. Every stage reorders by sequence number where it needs order, so the
//! output does not depend on thread timing. A stage that fails drops its channels; the others
//! then stop, and no file is published unless every stage succeeded.
//!
//! This module is longer than most (about 670 lines) because it is the pipeline's wiring, read
//! top to bottom: setup, threads, the reader loop and the collector share one `Setup` and its
//! channels. The stages' work lives in their own modules (`split.rs`, `parse/`, `sort.rs`,
//! `plan.rs`, `columnar.rs`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use quarry_format::{DictionaryPolicy, Schema, WriteOptions};

use crate::cli::{BuildArgs, InputFormat, OnBadRow};
use crate::columnar::{self, Gate, Work};
use crate::error::{bad_input, usage};
use crate::infer::{self, Probe};
use crate::input::{self, InputSpec};
use crate::memory;
use crate::parse::{Chunk, ParseCtx, Parsed};
use crate::plan::{self, Plan, Planner, Stopped};
use crate::progress::{Counters, Progress};
use crate::publish::{self, ScratchDir, TempFile};
use crate::remote;
use crate::schema_file::SchemaFile;
use crate::sort::{SortStats, Sorter};
use crate::sources;
use crate::writeback::EarlySync;

/// Bad rows quoted in messages and the summary.
pub const BAD_ROWS_SHOWN: usize = 10;
const MIN_CHUNK: usize = 64 << 10;
const MAX_CHUNK: usize = 4 << 20;

/// What a build did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub path: PathBuf,
    /// Rows in the file.
    pub rows: u64,
    /// Data lines read (after headers; a record with quoted line ends spans several).
    pub input_lines: u64,
    /// Rows parsed and kept before duplicate keys were dropped.
    pub rows_kept: u64,
    pub row_groups: usize,
    pub bad_rows: u64,
    pub bad_row_samples: Vec<String>,
    pub duplicates_dropped: u64,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub elapsed: Duration,
    pub threads: usize,
    pub memory_limit: u64,
    pub spilled_runs: usize,
    /// Peak RSS before the written file was mapped for verification (whose file-backed,
    /// reclaimable pages VmHWM also counts).
    pub peak_rss_build: Option<u64>,
    pub peak_rss: Option<u64>,
    pub version: String,
    pub schema: SchemaFile,
    /// Object storage: keys of the older versions removed by `--keep-versions`.
    pub removed_versions: Vec<String>,
}

impl BuildReport {
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut s = format!(
            "built {}: {} rows in {} row groups; {} input lines, {} rows kept, {} rows skipped \
             (bad), {} duplicates dropped; \
             read {:.1} MB in {:.2} s ({:.1} MB/s) on {} threads; wrote {:.1} MB; \
             {} spilled runs (memory limit {} MiB); peak RSS {} ({} before verifying); version {}",
            self.path.display(),
            self.rows,
            self.row_groups,
            self.input_lines,
            self.rows_kept,
            self.bad_rows,
            self.duplicates_dropped,
            self.input_bytes as f64 / 1e6,
            secs,
            self.input_bytes as f64 / 1e6 / secs,
            self.threads,
            self.output_bytes as f64 / 1e6,
            self.spilled_runs,
            self.memory_limit >> 20,
            mib(self.peak_rss),
            mib(self.peak_rss_build),
            self.version,
        );
        for k in &self.removed_versions {
            s.push_str("\n  removed old version: ");
            s.push_str(k);
        }
        for b in &self.bad_row_samples {
            s.push_str("\n  skipped: ");
            s.push_str(b);
        }
        s
    }
}

fn mib(b: Option<u64>) -> String {
    b.map_or("?".to_string(), |b| {
        format!("{:.1} MiB", b as f64 / 1048576.0)
    })
}

/// Worker threads by default: `available_parallelism`, which on Linux honours the affinity
/// mask and the cgroup v2/v1 CPU quota (rounded down, at least 1).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn build(args: &BuildArgs) -> Result<BuildReport> {
    let Some(target) = remote::Target::parse(&args.out)? else {
        if args.keep_versions.is_some() {
            return Err(usage(
                "--keep-versions applies to an object storage --out (s3://, gs://, az://, \
                 file://); a local data directory holds one file per dataset",
            ));
        }
        // Inputs from object storage land in --spill-dir, else the system temporary
        // directory: not the data directory, which readers may share.
        let (read, _staged) = sources::stage(&args.read, args.spill_dir.as_deref())?;
        return build_local(&BuildArgs {
            read,
            ..args.clone()
        });
    };
    if args.keep_versions == Some(0) {
        return Err(usage(
            "--keep-versions must be at least 1 (the version the pointer names)",
        ));
    }
    publish::validate_name(&args.name)?;
    if let Some(why) = quarry_objects::unpublishable_name(&args.name) {
        return Err(usage(format!(
            "--name: {why} (only for a URL --out: a local directory takes it)"
        )));
    }
    // Configure the store (and check credentials) before the work of the build.
    let store = target.store()?;
    remote::preflight(&store, &target, &args.name)?;
    let staging = remote::staging_dir(args.spill_dir.as_deref())?;
    let (read, _staged) = sources::stage(&args.read, Some(staging.path()))?;
    let local = BuildArgs {
        read,
        out: staging.path().to_path_buf(),
        ..args.clone()
    };
    let mut report = build_local(&local)?;
    let published = remote::publish(
        store,
        &target,
        &args.name,
        &report.path,
        &report.version,
        args.keep_versions,
    )?;
    report.path = PathBuf::from(&published.data_url);
    report.removed_versions = published.removed;
    Ok(report)
}

fn build_local(args: &BuildArgs) -> Result<BuildReport> {
    let started = Instant::now();
    publish::validate_name(&args.name)?;
    let threads = args.threads.unwrap_or_else(default_threads);
    if threads == 0 || threads > 1024 {
        return Err(usage("--threads must be between 1 and 1024"));
    }
    if !(0.0..=1.0).contains(&args.max_bad_fraction) {
        return Err(usage("--max-bad-fraction must be between 0 and 1"));
    }
    if args.row_group_rows == 0 || args.row_group_rows > u32::MAX as usize {
        return Err(usage("--row-group-rows must be between 1 and 2^32-1"));
    }
    let memory_limit = match &args.memory_limit {
        Some(s) => memory::parse_size(s)?,
        None => memory::default_limit(),
    };
    let stale_after = publish::stale_after(&args.stale_after)?;
    let inputs = input::resolve_inputs(&args.read)?;
    if args.out.exists() && !args.out.is_dir() {
        return Err(usage(format!(
            "--out {} is not a directory (it names a file); --out takes the data directory, \
             --name the dataset",
            args.out.display()
        )));
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    publish::clean_stale(&args.out, stale_after);
    if let Some(d) = &args.spill_dir {
        publish::clean_stale(d, stale_after);
    }

    let inferred = args.read.schema.is_none();
    let mut probes = inputs
        .iter()
        .map(|i| infer::probe(i, &args.read, inferred))
        .collect::<Result<Vec<Probe>>>()?;
    infer::apply_renames(&args.read, &mut probes)?;
    let (schema, layouts) = infer::resolve(&args.read, &inputs, &probes)?;
    infer::check_names(&schema)?;
    if let Some(p) = &args.schema_out {
        SchemaFile::from_schema(&schema).write(p)?;
    }
    let mut json_index: std::collections::HashMap<String, usize> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.clone(), i))
        .collect();
    // JSON keys are input names: a renamed column is found under its old name.
    for (old, new) in infer::renames(&args.read)? {
        if let Some(i) = json_index.remove(&new) {
            json_index.insert(old, i);
        }
    }
    let ctx = ParseCtx {
        schema: schema.clone(),
        layouts,
        keep_lines: schema.key().is_some(),
        fail_fast: args.on_bad_row == OnBadRow::Fail,
        ignore_extra_keys: args.read.ignore_extra_keys,
        inferred,
        json_index,
        delimiters: inputs.iter().map(|i| i.delimiter).collect(),
        quotes: inputs.iter().map(|i| i.quote).collect(),
        max_field_bytes: input::max_field_bytes(&args.read)?,
    };

    // Chunks in flight: 2 per worker in each channel, plus the ones being parsed, each about 3x
    // its size once typed. The chunk size keeps that at about 1/4 of the budget.
    let chunk_size =
        ((memory_limit as usize) / (4 * 3 * (4 * threads + 2))).clamp(MIN_CHUNK, MAX_CHUNK);
    let in_flight = chunk_size * 3 * (4 * threads + 2);
    // Row groups end early past a power of two near 1/16 of the limit (a power of two, so
    // that a default limit that moves a little with MemAvailable rarely changes the cuts);
    // groups in flight (planned, gathered, encoded) share half of the limit.
    let max_group_bytes = 1usize << (memory_limit / 16).max(1 << 20).ilog2();
    // 3/4: allocator slack and the sort's temporary vectors come on top of what is counted.
    let run_budget = (memory_limit as usize).saturating_sub(in_flight) / 4 * 3;

    let (temp, file) = TempFile::create(&args.out, &args.name)?;
    let scratch = ScratchDir::new(args.spill_dir.as_deref().unwrap_or(&args.out), &args.name);
    let _lease = publish::Lease::start(vec![
        temp.path().to_path_buf(),
        scratch.path().to_path_buf(),
    ])?;
    let counters = Counters::default();
    // Columnar jobs in flight: the share the CSV path gives its chunks.
    let gate = Gate::new(memory_limit / 4);
    let progress = Progress::start(args.progress, input::total_size(&inputs), &counters);
    let options = WriteOptions {
        row_group_rows: args.row_group_rows,
        created_by: format!("quarry-etl {}", env!("CARGO_PKG_VERSION")),
        dictionary: DictionaryPolicy::Auto,
    };
    let stdin = probes.iter_mut().find_map(|p| p.stdin.take());
    let setup = Setup {
        args,
        ctx: &ctx,
        inputs: &inputs,
        probes: &probes,
        threads,
        chunk_size,
        max_record: (memory_limit as usize / 8).max(MAX_CHUNK),
        max_group_bytes,
        group_budget: memory_limit as usize / 2,
        run_budget,
        counters: &counters,
        scratch: &scratch,
        gate: &gate,
    };
    let result = run_pipeline(&setup, stdin, file, temp.path(), &options);
    progress.finish();
    let (file, out) = result?;
    let peak_rss_build = memory::peak_rss();
    let path = temp.publish(file, &args.out, &args.name, threads)?;
    let output_bytes = std::fs::metadata(&path)
        .map(|m| m.len())
        .unwrap_or(out.summary_bytes);
    Ok(BuildReport {
        path,
        rows: out.rows,
        input_lines: out.lines,
        rows_kept: out.rows + out.sort.duplicates_dropped,
        row_groups: out.row_groups,
        bad_rows: out.bad_rows,
        bad_row_samples: out.bad_samples,
        duplicates_dropped: out.sort.duplicates_dropped,
        input_bytes: counters.bytes.load(Ordering::Relaxed),
        output_bytes,
        elapsed: started.elapsed(),
        threads,
        memory_limit,
        spilled_runs: out.sort.spilled_runs,
        peak_rss_build,
        peak_rss: memory::peak_rss(),
        version: out.version,
        schema: SchemaFile::from_schema(&schema),
        removed_versions: Vec::new(),
    })
}

struct Setup<'a> {
    args: &'a BuildArgs,
    ctx: &'a ParseCtx,
    inputs: &'a [InputSpec],
    probes: &'a [Probe],
    threads: usize,
    chunk_size: usize,
    /// Longest record the splitter buffers.
    max_record: usize,
    /// Column data bytes after which a row group ends early.
    max_group_bytes: usize,
    /// Bytes of row groups between the planner and the file (see plan::InFlight).
    group_budget: usize,
    run_budget: usize,
    counters: &'a Counters,
    scratch: &'a ScratchDir,
    gate: &'a Gate,
}

struct Outcome {
    rows: u64,
    lines: u64,
    row_groups: usize,
    bad_rows: u64,
    bad_samples: Vec<String>,
    sort: SortStats,
    version: String,
    summary_bytes: u64,
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>, what: &str) -> Result<T> {
    h.join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the {what} thread panicked")))
}

fn run_pipeline(
    s: &Setup<'_>,
    stdin: Option<(Vec<u8>, input::Body)>,
    file: std::fs::File,
    path: &std::path::Path,
    options: &WriteOptions,
) -> Result<(std::fs::File, Outcome)> {
    let t = s.threads;
    let (chunk_tx, chunk_rx) = bounded::<Work>(2 * t);
    let (parsed_tx, parsed_rx) = bounded::<Parsed>(2 * t);
    let (plan_tx, plan_rx) = bounded::<Plan>(t);
    let (enc_tx, enc_rx) = bounded(t);
    let schema = &s.ctx.schema;
    let in_flight = plan::InFlight::new(s.group_budget);
    let writer_in_flight = Arc::clone(&in_flight);
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("quarry-read".into())
            .spawn_scoped(scope, move || read_loop(s, stdin, chunk_tx))
            .context("spawning the reader thread")?;
        let mut parsers = Vec::new();
        for i in 0..t {
            let (rx, tx) = (chunk_rx.clone(), parsed_tx.clone());
            let ctx = s.ctx;
            parsers.push(
                std::thread::Builder::new()
                    .name(format!("quarry-parse-{i}"))
                    .spawn_scoped(scope, move || -> Result<()> {
                        for work in rx {
                            let parsed = match work {
                                Work::Text(chunk) => ctx.parse(chunk),
                                Work::Columnar(job) => columnar::decode(ctx, job),
                            };
                            if tx.send(parsed).is_err() {
                                return Err(anyhow::Error::new(Stopped));
                            }
                        }
                        Ok(())
                    })
                    .context("spawning a parse thread")?,
            );
        }
        drop((chunk_rx, parsed_tx));
        let mut encoders = Vec::new();
        for i in 0..t {
            let (rx, tx) = (plan_rx.clone(), enc_tx.clone());
            encoders.push(
                std::thread::Builder::new()
                    .name(format!("quarry-encode-{i}"))
                    .spawn_scoped(scope, move || plan::encode_loop(schema, options, rx, tx))
                    .context("spawning an encode thread")?,
            );
        }
        drop((plan_rx, enc_tx));
        let writer = std::thread::Builder::new()
            .name("quarry-write".into())
            .spawn_scoped(scope, move || -> Result<_> {
                let out = EarlySync::new(file).context("starting the background fsync thread")?;
                // The file's name goes into the error: a full disk otherwise reads only
                // "writing at byte N".
                let (out, summary) = plan::write_loop(
                    out,
                    schema.clone(),
                    options.clone(),
                    enc_rx,
                    writer_in_flight,
                )
                .with_context(|| format!("writing {}", path.display()))?;
                let (file, _) = out.finish().with_context(|| {
                    format!("writing {} to disk (background fsync)", path.display())
                })?;
                Ok((file, summary))
            })
            .context("spawning the writer thread")?;

        let collected = collect(s, parsed_rx, plan_tx, in_flight);

        // Join everything, then report the first real error in pipeline order.
        let mut errors: Vec<anyhow::Error> = Vec::new();
        let mut results: Vec<Result<()>> = vec![join(reader, "reader")];
        for p in parsers {
            results.push(join(p, "parse"));
        }
        let collected = match collected {
            Ok(c) => Some(c),
            Err(e) => {
                results.push(Err(e));
                None
            }
        };
        for e in encoders {
            results.push(join(e, "encode"));
        }
        let written = match join(writer, "writer") {
            Ok(w) => Some(w),
            Err(e) => {
                results.push(Err(e));
                None
            }
        };
        errors.extend(results.into_iter().filter_map(Result::err));
        if let Some(e) = errors
            .iter()
            .position(|e| !e.is::<Stopped>())
            .map(|i| errors.swap_remove(i))
        {
            return Err(e);
        }
        if let Some(e) = errors.pop() {
            return Err(e);
        }
        let (Some(mut c), Some((file, summary))) = (collected, written) else {
            anyhow::bail!("the build pipeline stopped without an error");
        };
        c.row_groups = summary.row_groups;
        c.version = summary.version.to_string();
        c.summary_bytes = summary.bytes;
        if summary.rows != c.rows {
            anyhow::bail!(
                "internal error: planned {} rows but wrote {}",
                c.rows,
                summary.rows
            );
        }
        Ok((file, c))
    })
}

/// Reader thread: every input in order, cut into chunks at record boundaries.
fn read_loop(
    s: &Setup<'_>,
    mut stdin: Option<(Vec<u8>, input::Body)>,
    tx: Sender<Work>,
) -> Result<()> {
    let mut seq = 0u64;
    let nested = match &s.args.read.schema {
        Some(path) => columnar::nested_sources(&SchemaFile::read(path)?)?,
        None => Default::default(),
    };
    let nested = std::sync::Arc::new(nested);
    for (i, (spec, probe)) in s.inputs.iter().zip(s.probes).enumerate() {
        if columnar::is_columnar(spec.format) {
            let opts = columnar::ReadOpts {
                nested: std::sync::Arc::clone(&nested),
                inferred: s.ctx.inferred,
                strict_decimals: s.args.read.strict_decimals,
            };
            seq = columnar::send_input(&s.ctx.schema, i as u32, spec, opts, seq, s.gate, &tx)?;
            continue;
        }
        let (mut body, carry) = match (&spec.path, stdin.take()) {
            (None, Some((prefix, rest))) => {
                let skip = probe.header_len.min(prefix.len());
                (rest, prefix[skip..].to_vec())
            }
            (None, None) => anyhow::bail!("stdin was not probed"),
            (Some(_), kept) => {
                stdin = kept;
                let mut body = input::open(spec)?;
                let skipped = std::io::copy(
                    &mut (&mut body).take(probe.header_len as u64),
                    &mut std::io::sink(),
                )
                .with_context(|| format!("reading {}", spec.display))?;
                if skipped != probe.header_len as u64 {
                    anyhow::bail!("{} changed while it was being read", spec.display);
                }
                (body, Vec::new())
            }
        };
        let dialect = (spec.format != InputFormat::Jsonl).then(|| s.ctx.dialect(i));
        let mut splitter =
            crate::split::Splitter::new(&mut body, dialect, s.chunk_size, s.max_record, carry)
                .with_max_line(s.ctx.max_field_bytes);
        let mut first = Some(probe.first_line);
        let mut offset = probe.header_len as u64;
        while let Some(piece) = splitter
            .next_chunk()
            .with_context(|| format!("reading {}", spec.display))?
        {
            let (bytes, fatal, quote_faults) = match piece {
                crate::split::Piece::Chunk { bytes, faults } => (bytes, None, faults),
                crate::split::Piece::Fatal { bytes, at, message } => {
                    (bytes, Some((at, message)), false)
                }
            };
            let stop = fatal.is_some();
            let len = bytes.len() as u64;
            let chunk = Chunk {
                seq,
                file: i as u32,
                bytes,
                first_line: first.take(),
                offset,
                fatal,
                quote_faults,
            };
            offset += len;
            seq += 1;
            if tx.send(Work::Text(chunk)).is_err() {
                return Err(anyhow::Error::new(Stopped));
            }
            if stop {
                // The collector reports it with its line; nothing after it is read.
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Collector: takes parsed chunks in input order, numbers lines, counts bad rows, and feeds
/// the planner directly (no key) or through the sorter (key).
fn collect(
    s: &Setup<'_>,
    rx: Receiver<Parsed>,
    plan_tx: Sender<Plan>,
    in_flight: Arc<plan::InFlight>,
) -> Result<Outcome> {
    let args = s.args;
    let schema: &Schema = &s.ctx.schema;
    let names: Vec<String> = s.inputs.iter().map(|i| i.display.clone()).collect();
    let mut planner = Planner::new(args.row_group_rows, s.max_group_bytes, plan_tx, in_flight);
    let mut sorter = match schema.key() {
        Some(k) => Some(Sorter::new(schema, k, s.run_budget, s.threads, s.scratch)?),
        None => None,
    };
    let _gate_closer = columnar::CloseOnDrop(s.gate);
    let mut pending: BTreeMap<u64, Parsed> = BTreeMap::new();
    let mut next = 0u64;
    let mut line = 1u64;
    let mut bad_rows = 0u64;
    let mut kept_rows = 0u64;
    let mut lines_seen = 0u64;
    let mut bad_samples = Vec::new();
    for parsed in rx {
        pending.insert(parsed.seq, parsed);
        while let Some(mut p) = pending.remove(&next) {
            next += 1;
            s.gate.release(p.seq);
            if let Some(e) = p.failed.take() {
                return Err(e);
            }
            if let Some(first) = p.first_line {
                line = first;
            }
            let base_line = line;
            line += p.lines;
            lines_seen += p.lines + u64::from(p.tail_line);
            if let Some(b) = &p.fatal {
                return Err(bad_input(format!(
                    "{}:{}: {}",
                    names[p.file as usize],
                    base_line + b.line_offset,
                    b.message
                )));
            }
            for b in &p.bad {
                let msg = format!(
                    "{}:{}: {}",
                    names[p.file as usize],
                    base_line + b.line_offset,
                    b.message
                );
                bad_rows += 1;
                if args.on_bad_row == OnBadRow::Fail {
                    return Err(bad_input(format!(
                        "bad row at {msg} (pass --on-bad-row skip to skip bad rows)"
                    )));
                }
                if bad_samples.len() < BAD_ROWS_SHOWN {
                    tracing::warn!("skipping bad row at {msg}");
                    bad_samples.push(msg);
                }
                if bad_rows > args.max_bad_rows {
                    return Err(bad_input(format!(
                        "more than --max-bad-rows {} bad rows; the first ones:\n  {}",
                        args.max_bad_rows,
                        bad_samples.join("\n  ")
                    )));
                }
            }
            if let crate::batch::Origin::Chunk { base_line: b, .. } = &mut p.batch.origin {
                *b = base_line;
            }
            kept_rows += p.batch.rows as u64;
            s.counters
                .rows
                .fetch_add(p.batch.rows as u64, Ordering::Relaxed);
            s.counters.bytes.fetch_add(p.input_bytes, Ordering::Relaxed);
            match &mut sorter {
                Some(sorter) => sorter.push(p.batch)?,
                None => {
                    let rows = p.batch.rows;
                    planner.push_range(&Arc::new(p.batch), 0..rows)?;
                }
            }
        }
    }
    if !pending.is_empty() {
        // A parse worker stopped early; its error is reported by the join.
        return Err(anyhow::Error::new(Stopped));
    }
    let read = kept_rows + bad_rows;
    if args.on_bad_row == OnBadRow::Skip && bad_rows as f64 > args.max_bad_fraction * read as f64 {
        return Err(bad_input(format!(
            "{bad_rows} of {read} rows were bad, more than --max-bad-fraction {}; the first \
             ones:\n  {}",
            args.max_bad_fraction,
            bad_samples.join("\n  ")
        )));
    }
    let sort = match sorter {
        Some(sorter) => sorter.finish(&mut planner, args.on_duplicate_key, &names)?,
        None => SortStats::default(),
    };
    let rows = planner.total_rows;
    planner.finish()?;
    Ok(Outcome {
        rows,
        lines: lines_seen,
        row_groups: 0,
        bad_rows,
        bad_samples,
        sort,
        version: String::new(),
        summary_bytes: 0,
    })
}
