//! Per-loop state. Each event loop (thread) owns one `LoopCtx` behind an `Rc`; nothing in it is
//! shared across threads except the config and the metrics.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::metrics::{Metrics, RouteSeries};
use crate::sync::Latch;

/// Readiness of this loop, as `/healthz` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Datasets are being mapped, opened, verified or warmed.
    Starting,
    /// Every dataset found at startup is serving.
    Ready,
    /// Startup finished but at least one dataset failed; the rest is served, readiness stays 503.
    Failed,
    /// SIGTERM received: readiness 503, still serving until the listener closes.
    Draining,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
            Phase::Draining => "draining",
        }
    }
}

#[derive(Debug)]
pub struct LoopCtx {
    pub index: usize,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// This loop's handles on the per-route request series (no label hashing per request).
    pub route_series: RouteSeries,
    /// `--cache-control` as a header value, parsed once (`None`: empty or not a valid value).
    pub cache_control: Option<HeaderValue>,
    pub phase: Cell<Phase>,
    pub catalog: RefCell<Catalog>,
    /// Requests being answered on this loop (load shedding bound).
    pub in_flight: Rc<Cell<usize>>,
    /// Longest gap between loop turns over the last second.
    pub lag: Cell<Duration>,
    /// Open connections on this loop.
    pub connections: Cell<usize>,
    /// Set after the drain delay: the accept loop stops.
    pub stop_accept: Latch,
    /// Set by the accept loop once the listener is closed.
    pub listener_closed: Latch,
    /// Set with `stop_accept`: connections finish their request and close.
    pub close_conns: Latch,
    /// Set when `close_conns` is set and the last connection has closed.
    pub conns_done: Latch,
    /// Writers waiting for the end of the turn (`batch`).
    pub turn_end: crate::batch::TurnEnd,
    /// The process memory budget, shared by every loop (`memory.rs`).
    pub budget: Arc<crate::memory::Budget>,
}

impl LoopCtx {
    /// A loop with a process budget of its own (`--memory-budget` or the default): unit tests.
    #[cfg(test)]
    pub fn new(index: usize, config: Arc<Config>, metrics: Arc<Metrics>) -> Rc<LoopCtx> {
        let limit = config
            .memory_budget
            .unwrap_or_else(|| crate::memory::default_budget().0);
        let budget = crate::memory::Budget::new(limit, metrics.clone());
        LoopCtx::with_budget(index, config, metrics, budget)
    }

    pub fn with_budget(
        index: usize,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        budget: Arc<crate::memory::Budget>,
    ) -> Rc<LoopCtx> {
        Rc::new(LoopCtx {
            index,
            cache_control: cache_control_header(&config.cache_control),
            config,
            metrics,
            route_series: RouteSeries::default(),
            phase: Cell::new(Phase::Starting),
            catalog: RefCell::new(Catalog::default()),
            in_flight: Rc::new(Cell::new(0)),
            lag: Cell::new(Duration::ZERO),
            connections: Cell::new(0),
            stop_accept: Latch::default(),
            listener_closed: Latch::default(),
            close_conns: Latch::default(),
            conns_done: Latch::default(),
            turn_end: Default::default(),
            budget,
        })
    }

    /// Ends a slice of long work (a scan, verification, warming): the loop takes an I/O turn,
    /// then the responses that turn deferred are written before the next slice runs.
    pub async fn next_slice(&self) {
        crate::sync::yield_now().await;
        self.turn_end.write_all();
    }

    pub fn draining(&self) -> bool {
        self.phase.get() == Phase::Draining
    }

    pub fn conn_opened(&self) {
        self.connections.set(self.connections.get() + 1);
        self.metrics.connections.inc();
    }

    pub fn conn_closed(&self) {
        self.connections
            .set(self.connections.get().saturating_sub(1));
        self.metrics.connections.dec();
        if self.connections.get() == 0 && self.close_conns.is_set() {
            self.conns_done.set();
        }
    }
}

/// `--cache-control` as sent: nothing when empty or not a valid header value.
fn cache_control_header(value: &str) -> Option<HeaderValue> {
    if value.is_empty() {
        return None;
    }
    HeaderValue::from_str(value).ok()
}
