#![forbid(unsafe_code)]
//! The query engine.
