#![forbid(unsafe_code)]
//! `quarry-runtime`: hyper 1.x on monoio, as Quarry's event loops run it. Each piece here is
//! runtime plumbing (nothing of Quarry's HTTP semantics) that replaces a plain hyper + monoio
//! default, and each can be switched back to that default through [`Plumbing`] so a benchmark
//! can A/B it (`docs/bench/runtime.md`).
//!
//! - [`event_loop`]: building a single-threaded monoio runtime (io_uring or epoll) and handing
//!   its sockets to hyper.
//! - [`turn_batch`]: small responses written together at the end of the loop's turn.
//! - [`coarse_timer`]: hyper's timer as a deadline list swept on a coarse tick.
//! - [`io_yield`]: a yield that resolves only after the driver polled for I/O.
//! - [`latch`]: a one-way flag many tasks of one thread can wait on.

pub mod coarse_timer;
pub mod event_loop;
pub mod io_yield;
pub mod latch;
pub mod turn_batch;

pub use coarse_timer::{CoarseTimer, LoopTimer};
pub use io_yield::{yield_to_io, yield_to_loop};
pub use latch::{Latch, LatchWait};
pub use turn_batch::{BatchingLoop, ConnIo, TurnBatchedIo, TurnEndWriter};

/// Which pieces of the runtime glue a loop uses. `Plumbing::default()` is everything on, as
/// served; `Plumbing::PLAIN` is plain hyper + monoio (for A/B benchmarks only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plumbing {
    /// Small responses wait for the end of the turn ([`turn_batch`]); off: written at once.
    pub turn_batching: bool,
    /// hyper's timer is [`CoarseTimer`]; off: `monoio_compat::hyper::MonoioTimer`.
    pub coarse_timer: bool,
    /// Long work yields through the I/O driver ([`yield_to_io`]); off: a plain yield to the
    /// back of the run queue.
    pub io_yield: bool,
}

impl Plumbing {
    /// Every piece on: what the server runs by default.
    pub const FULL: Plumbing = Plumbing {
        turn_batching: true,
        coarse_timer: true,
        io_yield: true,
    };

    /// Plain hyper + monoio: no write batching, monoio's timer, a plain yield to the back of
    /// the run queue.
    pub const PLAIN: Plumbing = Plumbing {
        turn_batching: false,
        coarse_timer: false,
        io_yield: false,
    };
}

impl Default for Plumbing {
    fn default() -> Self {
        Plumbing::FULL
    }
}
