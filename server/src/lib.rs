#![forbid(unsafe_code)]
//! `quarry-server`: one core, one thread, one event loop serving Quarry dataset files over
//! HTTP/1.1 (monoio + hyper). `main.rs` only parses flags, sets up logging and calls [`run`];
//! tests call [`start`] to run the server in-process.

mod admin;
pub mod auth;
mod body;
mod catalog;
pub mod config;
mod dataset;
mod error;
mod fetch;
mod fetch_sink;
mod handlers;
mod loader;
pub mod logging;
mod memory;
mod metrics;
mod panic;
mod progress;
mod reaper;
pub mod routes;
mod server;
mod state;

pub use config::{Config, LogFormat, PlainPiece, VerifyMode};
pub use server::{run, start, ServerHandle};

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI_JSON: &str = handlers::OPENAPI_JSON;
