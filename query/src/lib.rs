#![forbid(unsafe_code)]
//! quarry-query: Quarry's query engine. No HTTP, no I/O.
//!
//! A request goes through three steps, each usable from a one-thread event loop:
//! 1. [`parse_rows_query`] turns a PostgREST-style query string into a [`RowsQuery`]
//!    (400s name the parameter at fault; 409 for a cursor from another version).
//! 2. [`Scan::step`] examines rows in slices of at most `budget_rows`, then [`Scan::finish`]
//!    gives the [`Page`] (row numbers, or group rows for aggregates).
//! 3. [`Encoder::step`] writes the page as JSON, NDJSON or CSV in pieces of about `max_bytes`.
//!
//! Decisions callers see:
//! - Error codes: 400 `bad_encoding`, `duplicate_parameter`, `unknown_parameter`, `bad_limit`,
//!   `bad_filter`, `bad_value`, `bad_select`, `bad_order`, `bad_cursor`, `cursor_mismatch`,
//!   `bad_offset`, `offset_too_large`, `bad_key`; 404
//!   `no_key`; 406 `not_acceptable`; 409 `stale_cursor`, `version_changed`; 422
//!   `too_much_work`, `too_many_groups`, `sum_overflow`. `param` names the query parameter
//!   (the column name for filters).
//! - Aggregate output columns: group columns, then `count`, `count(c)`, `sum(c)`, `avg(c)`,
//!   `min(c)`, `max(c)`; groups sorted by group keys unless `order=`; `total` counts groups.
//! - `+` in a query string is a literal plus (timestamps like `...+01:00` work unencoded).
//! - Arrow output: `OutputFormat::ArrowStream`; `next`/`total` also in the schema metadata.

mod aggregate;
mod arrow_out;
mod cursor;
mod encode;
mod error;
mod eval;
mod key;
mod like;
mod literal;
mod logic;
mod negotiate;
mod output;
mod percent;
mod plan;
mod query;
mod scan;

pub use encode::{Encoder, JsonShape};
pub use error::{ErrorKind, QueryError};
pub use key::{parse_key, row_json, KeyValue, RowJson};
pub use negotiate::{negotiate, OutputFormat};
pub use output::OwnedValue;
pub use percent::{decode_query, duplicate_parameter, percent_decode};
pub use query::{parse_rows_query, parse_rows_query_in, Dialect, RowsQuery};
pub use scan::{GroupRows, Page, Scan};

/// Per-request bounds, set from the server's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Page size when `limit=` is absent.
    pub default_limit: usize,
    /// Largest `limit=` accepted (larger -> 400).
    pub max_limit: usize,
    /// Rows a single request may examine (more -> 422 `too_much_work`).
    pub max_scan_rows: u64,
    /// Largest `offset=` accepted (larger -> 400 `offset_too_large`, pointing to cursors):
    /// skipped rows are scanned and, with `order=`, held in the top-k heap on every page.
    pub max_offset: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_limit: 100,
            max_limit: 10_000,
            max_scan_rows: 100_000_000,
            max_offset: 100_000,
        }
    }
}
