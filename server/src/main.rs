#![forbid(unsafe_code)]
//! `quarry-server` binary: flags -> logging -> `quarry_server::run`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap exits with 2 on usage errors.
    let config = quarry_server::Config::parse();
    quarry_server::logging::init(config.log_format);
    match quarry_server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "quarry-server failed");
            eprintln!("quarry-server: {e:#}");
            ExitCode::from(1)
        }
    }
}
