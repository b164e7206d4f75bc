//! quarry-etl integration tests: one test binary, modules by behaviour.

mod common;

mod bad_rows;
mod cli;
mod columnar;
mod csv_input;
mod determinism;
mod hostile;
mod inference;
mod jsonl_input;
mod keys;
mod memory;
mod publish;
mod quoting;
mod roundtrip;
