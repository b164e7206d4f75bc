#![forbid(unsafe_code)]
//! `quarry-server` binary: flags -> logging -> `quarry_server::run`, or `hash-token`.

use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "hash-token")
    {
        return hash_token();
    }
    // clap exits with 2 on usage errors.
    let config = quarry_server::Config::load();
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

/// `quarry-server hash-token [NAME] < token`: reads one token from stdin (never from the
/// command line, which other users can see) and prints the `sha256 = ...` line for the
/// `--auth-tokens` file, or a whole `[[token]]` entry when NAME is given.
fn hash_token() -> ExitCode {
    let name = std::env::args().nth(2);
    if name.as_deref().is_some_and(|n| n.starts_with('-')) {
        eprintln!("usage: quarry-server hash-token [NAME] < FILE_WITH_THE_TOKEN\n\nPrints the sha256 line of an --auth-tokens entry for the token read from stdin\n(one line; a trailing newline is ignored).");
        return ExitCode::from(2);
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().take(64 << 10).read_to_end(&mut input) {
        eprintln!("quarry-server hash-token: cannot read the token from stdin: {e}");
        return ExitCode::from(1);
    }
    let end = input
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    let token = &input[..end];
    if let Err(e) = quarry_server::auth::bearer_token(&[b"Bearer ", token].concat()) {
        eprintln!(
            "quarry-server hash-token: this token cannot be sent in an Authorization header: {}",
            e.message()
        );
        return ExitCode::from(1);
    }
    let hash = quarry_server::auth::tokens::sha256_hex(token);
    match name {
        Some(n) => println!(
            "[[token]]\nname = {}\nsha256 = \"{hash}\"\ndatasets = []",
            serde_json::Value::from(n)
        ),
        None => println!("sha256 = \"{hash}\""),
    }
    ExitCode::SUCCESS
}
