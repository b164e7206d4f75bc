//! Command line (clap derive). Every option can also come from a `QUARRY_*` environment
//! variable so that a Kubernetes Job can set them.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  runtime or I/O error
  2  usage error (bad options, invalid dataset name)
  3  bad input data (bad rows past --max-bad-rows, duplicate keys, schema mismatch)
  4  verification failed (corrupt file)";

#[derive(Debug, Parser)]
#[command(name = "quarry-etl", version, about = "Builds Quarry dataset files from CSV and JSON Lines on all cores", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build <DATA_DIR>/<DATASET>.qry from one or more inputs of one schema.
    #[command(after_help = EXIT_CODES)]
    Build(BuildArgs),
    /// Print a file's schema, rows, row groups, encodings and sizes.
    #[command(after_help = EXIT_CODES)]
    Inspect(InspectArgs),
    /// Check every checksum and structure of a file (exit 4 when corrupt).
    #[command(after_help = EXIT_CODES)]
    Verify(InspectArgs),
    /// Print the schema that `build` would infer, in the --schema file format.
    #[command(after_help = EXIT_CODES)]
    Infer(InferArgs),
    /// Remove temporary and spill files of builds that are gone (lease older than
    /// --stale-after, or a dead process of this host); never a live build's.
    #[command(after_help = EXIT_CODES)]
    Clean(CleanArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CleanArgs {
    /// A data or spill directory.
    pub dir: PathBuf,
    /// Remove leftovers whose lease (mtime) is older than this, e.g. 90m, 1h, 2d (at least 60s).
    #[arg(long, env = "QUARRY_STALE_AFTER", default_value = "1h")]
    pub stale_after: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    Csv,
    Tsv,
    Jsonl,
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
    /// Arrow IPC file (`.arrow`, `.feather` v2, `.ipc`); a stream under such a name is read too.
    Arrow,
    /// Arrow IPC stream (`.arrows`).
    ArrowStream,
}

/// `--quote`: a quote character, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    None,
    Char(u8),
}

fn parse_quote(s: &str) -> Result<Quote, String> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        _ if s == "none" => Ok(Quote::None),
        (Some(c), None) if c.is_ascii() && !matches!(c, '\n' | '\r') => Ok(Quote::Char(c as u8)),
        _ => Err(format!(
            "{s:?} is not one ASCII character (other than a line end) or `none`"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnBadRow {
    /// Stop at the first bad row (exit 3).
    Fail,
    /// Skip bad rows, report the first few, fail past --max-bad-rows or --max-bad-fraction.
    /// A bad row is one record, or one line where a quote is wrong (parsing resumes on the
    /// next line).
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnDuplicateKey {
    /// Fail naming both records (exit 3).
    Error,
    /// Keep the record that comes first in input order.
    First,
    /// Keep the record that comes last in input order.
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, log lines otherwise.
    Auto,
    Bar,
    Log,
    None,
}

/// How inputs are read; shared by `build` and `infer`.
#[derive(Debug, Clone, Args)]
pub struct ReadArgs {
    /// Input files (.csv, .tsv, .jsonl, .ndjson, each optionally .gz; .parquet, .arrow,
    /// .arrows, .feather), globs of them, or directories of Parquet/Arrow files (Hive
    /// `key=value/` folders become columns); `-` reads stdin (text formats only). Also object
    /// URLs (s3://bucket/raw/*.csv.gz, gs://, az://, file:///path, https://host/one.csv),
    /// downloaded into --spill-dir (else TMPDIR) before the build; credentials as for --out.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Local copies of URL inputs: (staging folder, the URL it stands for), so that messages
    /// name the URL. Filled by `sources::stage`; not an option.
    #[arg(skip)]
    pub origins: Vec<(PathBuf, String)>,
    /// Input format; default from each input's extension (required for `-`).
    #[arg(long, env = "QUARRY_INPUT_FORMAT", value_enum)]
    pub input_format: Option<InputFormat>,
    /// CSV/TSV inputs have no header row: columns are named c1, c2, ... (or taken from --schema).
    #[arg(long, env = "QUARRY_NO_HEADER", value_parser = BoolishValueParser::new())]
    pub no_header: bool,
    /// CSV field delimiter (one ASCII character; default `,`, or tab for .tsv).
    #[arg(long, env = "QUARRY_DELIMITER")]
    pub delimiter: Option<char>,
    /// CSV quote character (one ASCII character), or `none`: quotes are ordinary characters
    /// (default `"` for CSV, none for TSV, whose fields cannot hold tabs or line ends).
    #[arg(long, env = "QUARRY_QUOTE", value_name = "CHAR|none", value_parser = parse_quote)]
    pub quote: Option<Quote>,
    /// Longest field (CSV) or line (JSON Lines), e.g. 16M: a quote not closed within it is a bad
    /// row; an unquoted field or line past it without a delimiter or line end fails the build.
    #[arg(
        long,
        env = "QUARRY_MAX_FIELD_BYTES",
        value_name = "SIZE",
        default_value = "16M"
    )]
    pub max_field_bytes: String,
    /// Rename input columns (CSV header names, JSON keys) before anything else: `old=new`,
    /// repeatable or `;`-separated (QUARRY_RENAME='a=b;c=d'); `--key`, `--schema` and the file
    /// use the new names.
    #[arg(
        long = "rename",
        env = "QUARRY_RENAME",
        value_name = "OLD=NEW",
        value_delimiter = ';'
    )]
    pub renames: Vec<String>,
    /// JSON Lines: ignore keys that are not in the schema (default: such a record is a bad row).
    #[arg(long, env = "QUARRY_IGNORE_EXTRA_KEYS", value_parser = BoolishValueParser::new())]
    pub ignore_extra_keys: bool,
    /// Schema file (JSON) instead of inference: {"fields":[{"name":..,"type":..,"nullable":..}],"key":..}.
    #[arg(long, env = "QUARRY_SCHEMA", value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Key column (int64 or utf8, non-null, unique): rows are sorted by it.
    #[arg(long, env = "QUARRY_KEY", value_name = "COL")]
    pub key: Option<String>,
    /// Parquet/Arrow decimals: refuse a value that float64 cannot hold exactly (its shortest
    /// float64 text differs from the decimal), instead of storing the nearest float64.
    #[arg(long, env = "QUARRY_STRICT_DECIMALS", value_parser = BoolishValueParser::new())]
    pub strict_decimals: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Data directory to publish into, or an object storage URL (s3://bucket/prefix,
    /// gs://bucket/prefix, az://container/prefix, file:///dir): the file is built and verified
    /// in a local staging directory, uploaded as <prefix>/<DATASET>/<version>.qry, checked, and
    /// then the pointer <prefix>/<DATASET>/CURRENT is written. Credentials come from the
    /// service's standard environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT, AWS_ALLOW_HTTP, ...).
    #[arg(long, env = "QUARRY_OUT", value_name = "DATA_DIR|URL")]
    pub out: PathBuf,
    /// With a URL --out: after the pointer moved, remove the older data objects of the dataset
    /// past the N newest (the current one counts; default: keep all).
    #[arg(long, env = "QUARRY_KEEP_VERSIONS", value_name = "N")]
    pub keep_versions: Option<usize>,
    /// Dataset name: the file is <DATA_DIR>/<DATASET>.qry.
    #[arg(long, env = "QUARRY_NAME", value_name = "DATASET")]
    pub name: String,
    /// Write the schema used (inferred or given) to this file, in the --schema format.
    #[arg(long, env = "QUARRY_SCHEMA_OUT", value_name = "FILE")]
    pub schema_out: Option<PathBuf>,
    /// Worker threads (default: the CPUs this process may use, honouring cgroup quotas).
    #[arg(long, env = "QUARRY_THREADS")]
    pub threads: Option<usize>,
    /// Rows per row group.
    #[arg(long, env = "QUARRY_ROW_GROUP_ROWS", default_value_t = 65_536)]
    pub row_group_rows: usize,
    #[arg(long, env = "QUARRY_ON_BAD_ROW", value_enum, default_value_t = OnBadRow::Fail)]
    pub on_bad_row: OnBadRow,
    /// With --on-bad-row skip: fail once more than this many rows were skipped.
    #[arg(long, env = "QUARRY_MAX_BAD_ROWS", default_value_t = 1000)]
    pub max_bad_rows: u64,
    /// With --on-bad-row skip: fail when skipped rows are more than this fraction of the rows
    /// read (kept + skipped), checked at the end.
    #[arg(long, env = "QUARRY_MAX_BAD_FRACTION", default_value_t = 0.01)]
    pub max_bad_fraction: f64,
    #[arg(long, env = "QUARRY_ON_DUPLICATE_KEY", value_enum, default_value_t = OnDuplicateKey::Error)]
    pub on_duplicate_key: OnDuplicateKey,
    /// Memory budget, e.g. 512M, 2G (default: 25% of the smaller of MemAvailable and the cgroup
    /// memory.max). Keyed builds spill sorted runs to disk past it.
    #[arg(long, env = "QUARRY_MEMORY_LIMIT", value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// Directory for spilled runs (default: DATA_DIR).
    #[arg(long, env = "QUARRY_SPILL_DIR", value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// Before building, remove other builds' temporary files whose lease (mtime, refreshed
    /// every 5 s while a build lives) is older than this, from any host (at least 60s).
    #[arg(long, env = "QUARRY_STALE_AFTER", default_value = "1h")]
    pub stale_after: String,
    #[arg(long, env = "QUARRY_PROGRESS", value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// A .qry file.
    pub file: PathBuf,
    /// Machine-readable JSON output.
    #[arg(long, env = "QUARRY_JSON", value_parser = BoolishValueParser::new())]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct InferArgs {
    #[command(flatten)]
    pub read: ReadArgs,
}
