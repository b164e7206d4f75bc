//! Helpers for the end-to-end tests: the real `quarry-etl` and `quarry-server` binaries (built
//! once per test run), temp data directories, a small HTTP/1.1 client over `TcpStream` (also
//! for hostile raw bytes), a server guard that kills the process on drop, a seeded PRNG, and
//! the DuckDB oracle process.
//!
//! Invariants:
//! - Every server a test starts listens on 127.0.0.1 only and is killed when its guard drops.
//! - Every wait is bounded by a deadline; a helper that times out panics with what it waited for.

pub mod bins;
pub mod data;
pub mod http;
pub mod oracle;
pub mod ports;
pub mod rng;
pub mod server;

pub use bins::{etl, etl_build, etl_build_any, Bins, EtlOutput};
pub use http::{Conn, Response};
pub use oracle::Oracle;
pub use rng::Rng;
pub use server::{Server, ServerOptions};

/// Percent-encodes everything but RFC 3986 unreserved characters (for query values and keys).
pub fn pct(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SET: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(s, SET).to_string()
}

/// A fresh temporary directory (removed on drop).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("quarry-e2e-")
        .tempdir()
        .expect("creating a temp dir")
}

/// Asserts two row lists are equal, reporting the first differing row (not whole lists).
pub fn assert_rows_eq(got: &[serde_json::Value], want: &[serde_json::Value], what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g,
            w,
            "{what}: first difference at row {i} (got {} rows, want {})",
            got.len(),
            want.len()
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: row count");
}
