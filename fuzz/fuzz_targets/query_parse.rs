//! Arbitrary query strings against the frozen fixture's schema (format/testdata/v1/small.qry):
//! `parse_rows_query_in` (both dialects), `parse_key` and `negotiate` never panic; a query that parses runs to
//! completion through `Scan` and `Encoder` (every output format) on the fixture without panics.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quarry_format::{AlignedBuf, QuarryFile};
use quarry_query::{
    negotiate, parse_key, parse_rows_query_in, Dialect, Encoder, Limits, OutputFormat, Scan,
};

static FIXTURE: &[u8] = include_bytes!("../../format/testdata/v1/small.qry");

fn file() -> &'static QuarryFile<AlignedBuf> {
    static FILE: OnceLock<QuarryFile<AlignedBuf>> = OnceLock::new();
    FILE.get_or_init(|| {
        QuarryFile::open(AlignedBuf::from_slice(FIXTURE)).expect("the frozen fixture opens")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let f = file();
    let schema = f.schema();
    let _ = parse_key(s, schema);
    let _ = negotiate(Some(s));
    let limits = Limits {
        default_limit: 100,
        max_limit: 10_000,
        max_scan_rows: 1_000_000,
        max_offset: 1_000,
    };
    // Both faces' grammars (they differ in `+`, null placement and aggregate names).
    let dialect = if data.len() % 3 == 0 {
        Dialect::PostgRest
    } else {
        Dialect::V1
    };
    let Ok(mut query) = parse_rows_query_in(s, schema, f.version(), &limits, dialect) else {
        return;
    };
    query.count_exact(data.len() % 2 == 0);
    let mut scan = Scan::new(&query, f);
    let mut steps = 0;
    loop {
        match scan.step(&query, f, 64) {
            Ok(true) => break,
            Ok(false) => {}
            Err(_) => return,
        }
        steps += 1;
        assert!(steps < 1_000_000, "scan does not finish");
    }
    let page = scan.finish();
    let format = [
        OutputFormat::Json,
        OutputFormat::Ndjson,
        OutputFormat::Csv,
        OutputFormat::ArrowStream,
    ][data.len() % 4];
    let mut enc = Encoder::new(&query, page, format);
    let _ = enc.next_cursor();
    while let Some(bytes) = enc.step(&query, f, 4096) {
        let _ = bytes;
    }
});
