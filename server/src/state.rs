//! Per-loop state. Each event loop (thread) owns one `LoopCtx` behind an `Rc`; nothing in it is
//! shared across threads except the config, the metrics and the catalog (one per process).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::catalog::{Catalog, Readiness, SharedCatalog};
use crate::config::Config;
use crate::metrics::{Metrics, RouteSeries};
use quarry_runtime::{BatchingLoop, Latch, TurnEndWriter};

/// Readiness of this loop, as `/healthz` reports it: the catalog's readiness unless draining.
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
    /// SIGTERM received.
    pub draining: Cell<bool>,
    /// The process's catalog (written by the loader on loop 0 only).
    pub shared_catalog: SharedCatalog,
    /// This loop's cached view of `shared_catalog`: one pointer comparison per request.
    catalog_cache: RefCell<arc_swap::Cache<SharedCatalog, Arc<Catalog>>>,
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
    /// Writers waiting for the end of the turn (`quarry_runtime::turn_batch`).
    pub turn_end: TurnEndWriter,
    /// Bearer tokens and JWTs (`auth`).
    pub auth: crate::auth::Auth,
    /// The process memory budget, shared by every loop (`memory.rs`).
    pub budget: Arc<crate::memory::Budget>,
}

impl LoopCtx {
    /// A loop with a catalog and a process budget of its own (unit tests).
    #[cfg(test)]
    pub fn new(index: usize, config: Arc<Config>, metrics: Arc<Metrics>) -> Rc<LoopCtx> {
        let limit = config
            .memory_budget
            .unwrap_or_else(|| crate::memory::default_budget().0);
        let budget = crate::memory::Budget::new(limit, metrics.clone());
        LoopCtx::new_shared(index, config, metrics, crate::catalog::shared(), budget)
    }

    /// A loop serving the process's catalog within the process's memory budget.
    pub fn new_shared(
        index: usize,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        shared_catalog: SharedCatalog,
        budget: Arc<crate::memory::Budget>,
    ) -> Rc<LoopCtx> {
        Rc::new(LoopCtx {
            index,
            cache_control: cache_control_header(&config.cache_control),
            metrics,
            route_series: RouteSeries::default(),
            draining: Cell::new(false),
            catalog_cache: RefCell::new(arc_swap::Cache::new(shared_catalog.clone())),
            shared_catalog,
            in_flight: Rc::new(Cell::new(0)),
            lag: Cell::new(Duration::ZERO),
            connections: Cell::new(0),
            stop_accept: Latch::default(),
            listener_closed: Latch::default(),
            close_conns: Latch::default(),
            conns_done: Latch::default(),
            turn_end: Default::default(),
            auth: crate::auth::Auth::new(&config),
            budget,
            config,
        })
    }

    /// Ends a slice of long work (a scan, verification, warming): the loop takes an I/O turn,
    /// then the responses that turn deferred are written before the next slice runs.
    pub async fn next_slice(&self) {
        quarry_runtime::yield_to_loop(self.config.plumbing().io_yield).await;
        self.turn_end.write_all();
    }

    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// The current catalog snapshot.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.with_catalog(Arc::clone)
    }

    /// Runs `f` on the current catalog snapshot without cloning its `Arc`.
    pub fn with_catalog<R>(&self, f: impl FnOnce(&Arc<Catalog>) -> R) -> R {
        let mut cache = self.catalog_cache.borrow_mut();
        f(cache.load())
    }

    pub fn phase(&self) -> Phase {
        if self.draining() {
            return Phase::Draining;
        }
        let (readiness, held) =
            self.with_catalog(|c| (c.readiness, self.metrics.fetch.holds_readiness(c)));
        match (readiness, held) {
            (Readiness::Failed, _) | (_, Some(true)) => Phase::Failed,
            (Readiness::Starting, _) | (_, Some(false)) => Phase::Starting,
            (Readiness::Ready, None) => Phase::Ready,
        }
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

impl BatchingLoop for LoopCtx {
    fn turn_end(&self) -> &TurnEndWriter {
        &self.turn_end
    }

    fn open_connections(&self) -> usize {
        self.connections.get()
    }
}

/// `--cache-control` as sent: nothing when empty or not a valid header value.
fn cache_control_header(value: &str) -> Option<HeaderValue> {
    if value.is_empty() {
        return None;
    }
    HeaderValue::from_str(value).ok()
}
