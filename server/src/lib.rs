#![forbid(unsafe_code)]
//! The server.
