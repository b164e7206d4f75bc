//! Integration tests of quarry-format: one binary, a module per concern.

mod common;
mod compat;
mod corruption;
mod edges;
mod lookup;
mod roundtrip;
mod spec_pins;
