//! Error classes that decide the process exit code. Errors travel as `anyhow::Error`; one of
//! these markers somewhere in the chain picks the code (see `--help`).

use std::fmt;

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Runtime or I/O error (disk full, unreadable input, ...).
pub const EXIT_RUNTIME: i32 = 1;
/// Usage error (bad flag combination, invalid dataset name, ...). Clap also exits with 2.
pub const EXIT_USAGE: i32 = 2;
/// Bad input data: bad rows past the limit, duplicate keys, schema mismatch.
pub const EXIT_BAD_INPUT: i32 = 3;
/// Verification failed: the file is corrupt.
pub const EXIT_CORRUPT: i32 = 4;

macro_rules! marker {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(pub String);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::error::Error for $name {}
    };
}

marker!(
    /// The input data is wrong (exit 3).
    BadInput
);
marker!(
    /// The command line is wrong (exit 2).
    Usage
);
marker!(
    /// A Quarry file failed verification (exit 4).
    Corrupt
);

/// `anyhow::Error` for bad input data.
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// `anyhow::Error` for a usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

/// The exit code for an error: the first marker found in its chain, else [`EXIT_RUNTIME`].
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if cause.is::<BadInput>() {
            return EXIT_BAD_INPUT;
        }
        if cause.is::<Usage>() {
            return EXIT_USAGE;
        }
        if cause.is::<Corrupt>() {
            return EXIT_CORRUPT;
        }
    }
    EXIT_RUNTIME
}
