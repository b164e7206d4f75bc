//! End-to-end tests: the real quarry-etl and quarry-server binaries over real sockets.
//! One test binary with modules (cargo test -p quarry-tests).

mod auth;
mod catalog;
mod differential;
mod endpoints;
mod etl_cli;
mod faults;
mod fixtures;
mod hostile;
mod postgrest;
mod query_fuzz;
mod robust;
mod soak;
