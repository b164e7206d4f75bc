//! Integration tests: the real server on 127.0.0.1, real HTTP, datasets written with
//! quarry-format, answers checked against references computed from the source rows.

#[path = "../../../tests/src/ports.rs"]
mod ports;
mod support;

mod auth;
mod columns;
mod datasets;
mod lifecycle;
mod limits;
mod panics;
mod reload;
mod routing;
mod rows;
mod source;
mod timeouts;
