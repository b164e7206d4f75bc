//! Opening inputs: files or stdin (`-`), gzip detected by its magic bytes, UTF-8 BOM stripped,
//! format from the extension (`.csv`, `.tsv`, `.jsonl`, `.ndjson`, each optionally `.gz`) or
//! `--input-format`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flate2::read::MultiGzDecoder;

use crate::cli::{InputFormat, Quote, ReadArgs};
use crate::error::usage;

/// One input as given on the command line.
#[derive(Debug, Clone)]
pub struct InputSpec {
    /// `None` for stdin.
    pub path: Option<PathBuf>,
    /// Name used in messages: the path, or `<stdin>`.
    pub display: String,
    pub format: InputFormat,
    pub delimiter: u8,
    /// CSV/TSV quote character; `None`: no quoting.
    pub quote: Option<u8>,
    /// Hive partition values (`key=value` directories) of a columnar input.
    pub partitions: Vec<(String, String)>,
}

impl InputSpec {
    pub fn is_csv(&self) -> bool {
        matches!(self.format, InputFormat::Csv | InputFormat::Tsv)
    }
}

fn format_from_name(path: &Path) -> Option<InputFormat> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let ext = name.rsplit_once('.')?.1;
    match ext {
        "csv" => Some(InputFormat::Csv),
        "tsv" | "tab" => Some(InputFormat::Tsv),
        "jsonl" | "ndjson" => Some(InputFormat::Jsonl),
        ext => crate::columnar::format_of(ext),
    }
}

/// Resolves every input's format and delimiter.
pub fn resolve_inputs(args: &ReadArgs) -> Result<Vec<InputSpec>> {
    let delimiter = match args.delimiter {
        None => None,
        Some(c) if c.is_ascii() && c != '\n' && c != '\r' && (c != '"' || args.quote.is_some()) => {
            Some(c as u8)
        }
        Some(c) => {
            return Err(usage(format!(
                "--delimiter {c:?} must be one ASCII character other than a quote or newline"
            )))
        }
    };
    let mut stdin_seen = false;
    let mut out = Vec::with_capacity(args.inputs.len());
    let mut expanded = Vec::with_capacity(args.inputs.len());
    for p in &args.inputs {
        match crate::columnar::expand(p)? {
            Some(found) => expanded.extend(found),
            None => expanded.push((p.clone(), Vec::new())),
        }
    }
    for (p, partitions) in expanded {
        let p = &p;
        let is_stdin = p.as_os_str() == "-";
        if is_stdin {
            if stdin_seen {
                return Err(usage("`-` (stdin) may be given only once"));
            }
            stdin_seen = true;
        }
        let format = match args.input_format {
            Some(f) => f,
            None if is_stdin => {
                return Err(usage(
                    "reading stdin (`-`) needs --input-format csv|tsv|jsonl",
                ))
            }
            None => format_from_name(p).ok_or_else(|| {
                usage(format!(
                    "cannot tell the format of {}: use a .csv, .tsv, .jsonl or .ndjson name \
                     (optionally .gz), a .parquet, .arrow, .arrows or .feather name, or pass \
                     --input-format",
                    p.display()
                ))
            })?,
        };
        if is_stdin && crate::columnar::is_columnar(format) {
            return Err(usage(
                "Parquet and Arrow inputs must be files: stdin (`-`) takes csv, tsv or jsonl",
            ));
        }
        let default_delim = if format == InputFormat::Tsv {
            b'\t'
        } else {
            b','
        };
        let delimiter = delimiter.unwrap_or(default_delim);
        if args.quote == Some(Quote::Char(delimiter)) {
            return Err(usage(format!(
                "--quote {:?} is also the delimiter of {}",
                delimiter as char,
                p.display()
            )));
        }
        out.push(InputSpec {
            path: if is_stdin { None } else { Some(p.clone()) },
            display: if is_stdin {
                "<stdin>".to_string()
            } else {
                display_name(args, p)
            },
            format,
            delimiter,
            quote: match args.quote {
                Some(Quote::None) => None,
                Some(Quote::Char(q)) => Some(q),
                // TSV (IANA text/tab-separated-values) has no quoting: a field cannot hold a
                // tab or line end, and a quote is an ordinary character.
                None if format == InputFormat::Tsv => None,
                None => Some(b'"'),
            },
            partitions,
        });
    }
    Ok(out)
}

/// An input's name in messages: its path, or the URL of the object a local copy was
/// downloaded from.
fn display_name(args: &ReadArgs, p: &Path) -> String {
    for (dir, url) in &args.origins {
        if let Ok(rel) = p.strip_prefix(dir) {
            let rel = rel.to_string_lossy();
            return if rel.is_empty() {
                url.clone()
            } else {
                format!("{url}/{rel}")
            };
        }
    }
    p.display().to_string()
}

/// A decoded byte stream of one input: decompressed, BOM removed.
pub type Body = Box<dyn Read + Send + Sync>;

/// Opens an input.
pub fn open(spec: &InputSpec) -> Result<Body> {
    let raw: Box<dyn Read + Send + Sync> = match &spec.path {
        Some(p) => Box::new(File::open(p).with_context(|| format!("opening {}", p.display()))?),
        None => Box::new(io::stdin()),
    };
    let mut reader = BufReader::with_capacity(1 << 16, raw);
    let head = reader
        .fill_buf()
        .with_context(|| format!("reading {}", spec.display))?;
    let gz = head.starts_with(&[0x1f, 0x8b]);
    let mut body: Box<dyn BufRead + Send + Sync> = if gz {
        Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(reader),
        ))
    } else {
        Box::new(reader)
    };
    // Strip a UTF-8 byte order mark. fill_buf may return fewer than 3 bytes: loop until it
    // cannot be a BOM any more.
    let mut probe = Vec::with_capacity(3);
    while probe.len() < 3 {
        let buf = body
            .fill_buf()
            .with_context(|| format!("reading {}", spec.display))?;
        if buf.is_empty() {
            break;
        }
        let take = (3 - probe.len()).min(buf.len());
        probe.extend_from_slice(&buf[..take]);
        body.consume(take);
        if !b"\xEF\xBB\xBF".starts_with(&probe) {
            break;
        }
    }
    if probe == b"\xEF\xBB\xBF" {
        probe.clear();
    }
    Ok(Box::new(io::Cursor::new(probe).chain(body)))
}

/// Total size of the inputs (for the progress bar, which counts decoded bytes); `None` when
/// stdin or a compressed input is among them.
pub fn total_size(inputs: &[InputSpec]) -> Option<u64> {
    let mut total = 0;
    for i in inputs {
        let path = i.path.as_ref()?;
        let mut magic = [0u8; 2];
        let n = File::open(path).and_then(|mut f| f.read(&mut magic)).ok()?;
        if n == 2 && magic == [0x1f, 0x8b] {
            return None;
        }
        total += std::fs::metadata(path).ok()?.len();
    }
    Some(total)
}

/// Reads until `buf` holds `want` bytes or the stream ends; returns bytes added.
pub fn read_up_to(r: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    let start = buf.len();
    let limit = (want.saturating_sub(start)) as u64;
    r.take(limit).read_to_end(buf)?;
    Ok(buf.len() - start)
}

/// `--max-field-bytes` in bytes.
pub fn max_field_bytes(args: &ReadArgs) -> Result<usize> {
    let n = crate::memory::parse_size(&args.max_field_bytes).context("--max-field-bytes")?;
    usize::try_from(n).map_err(|_| usage("--max-field-bytes is too large"))
}
