#![forbid(unsafe_code)]
//! quarry-etl: builds Quarry dataset files from CSV and JSON Lines on all cores.
//!
//! `main.rs` only calls [`main_with_args`]; tests call [`run`] or [`build::build`] in-process.
//! See `build.rs` for the pipeline, `split.rs` for record-boundary splitting, `sort.rs` for
//! keyed builds and spilling, `publish.rs` for the atomic publish.

pub mod batch;
pub mod build;
pub mod cli;
pub mod columnar;
pub mod columns;
pub mod error;
pub mod infer;
pub mod input;
pub mod inspect;
pub mod memory;
pub mod parse;
pub mod plan;
pub mod progress;
pub mod publish;
pub mod remote;
pub mod schema_file;
pub mod sort;
pub mod sources;
pub mod spill;
pub mod split;
pub mod values;
pub mod writeback;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};

/// Runs a parsed command; returns what to print on stdout.
pub fn run(cli: Cli) -> Result<String> {
    match cli.command {
        Command::Build(args) => {
            let report = build::build(&args)?;
            eprintln!("{}", report.summary());
            Ok(String::new())
        }
        Command::Inspect(a) => inspect::inspect(&a.file, a.json),
        Command::Verify(a) => inspect::verify(&a.file, a.json),
        Command::Clean(a) => {
            let stale = publish::stale_after(&a.stale_after)?;
            if !a.dir.is_dir() {
                return Err(error::usage(format!(
                    "{} is not a directory",
                    a.dir.display()
                )));
            }
            let removed = publish::clean_stale(&a.dir, stale);
            let mut out = format!(
                "removed {} stale files from {}",
                removed.len(),
                a.dir.display()
            );
            for p in removed {
                out.push_str(&format!("\n  {}", p.display()));
            }
            Ok(out)
        }
        Command::Infer(a) => {
            let (read, _staged) = sources::stage(&a.read, None)?;
            let a = cli::InferArgs { read };
            let inputs = input::resolve_inputs(&a.read)?;
            let mut probes = inputs
                .iter()
                .map(|i| infer::probe(i, &a.read, true))
                .collect::<Result<Vec<_>>>()?;
            infer::apply_renames(&a.read, &mut probes)?;
            let (schema, _) = infer::resolve(&a.read, &inputs, &probes)?;
            Ok(serde_json::to_string_pretty(
                &schema_file::SchemaFile::from_schema(&schema),
            )?)
        }
    }
}

/// The whole program: parse arguments, run, print, and return the exit code.
pub fn main_with_args<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                error::EXIT_USAGE
            } else {
                error::EXIT_OK
            };
            let _ = e.print();
            return code;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    match run(cli) {
        Ok(out) => {
            if !out.is_empty() {
                use std::io::Write;
                // A reader that went away (`| head`) is not an error of ours.
                let mut stdout = std::io::stdout().lock();
                if let Err(e) = writeln!(stdout, "{out}").and_then(|()| stdout.flush()) {
                    if e.kind() != std::io::ErrorKind::BrokenPipe {
                        eprintln!("error: writing to stdout: {e}");
                        return error::EXIT_RUNTIME;
                    }
                }
            }
            error::EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            error::exit_code(&e)
        }
    }
}
