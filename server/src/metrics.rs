//! Prometheus metrics (prometheus-client), shared by every loop of the process, and the
//! per-request guard that records them.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::LoopCtx;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatasetLabel {
    pub dataset: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatasetVersionLabel {
    pub dataset: String,
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriverLabel {
    pub driver: &'static str,
}

type HistogramFamily = Family<RouteLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 us .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric the server exports. One instance per process (`Arc`), updated by all loops.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteStatus, Counter>,
    pub latency: HistogramFamily,
    pub in_flight: Gauge,
    pub connections: Gauge,
    pub connections_rejected: Counter,
    pub bytes_sent: Counter,
    pub rows_examined: Counter,
    pub shed: Counter,
    /// Longest gap between two turns of any loop over the last second, in seconds.
    pub loop_lag: Gauge<f64, AtomicU64>,
    pub dataset_rows: Family<DatasetLabel, Gauge>,
    pub dataset_bytes: Family<DatasetLabel, Gauge>,
    pub dataset_version: Family<DatasetVersionLabel, Gauge>,
    pub dataset_last_reload: Family<DatasetLabel, Gauge<f64, AtomicU64>>,
    pub dataset_reload_failures: Family<DatasetLabel, Counter>,
    pub auth: crate::auth::AuthMetrics,
    /// Requests whose handler, scan or body panicked (contained: `panic.rs`).
    pub request_panics: Counter,
    /// Responses aborted by `--write-timeout` or `--response-timeout`.
    pub responses_aborted: Family<ReasonLabel, Counter>,
    /// Bytes charged to the process memory budget by requests in flight (`memory.rs`).
    pub memory_charged: Gauge,
    /// The process memory budget (`--memory-budget`).
    pub memory_budget: Gauge,
    /// Requests refused for memory: budget="request" (422) or "process" (503).
    pub memory_rejections: Family<BudgetLabel, Counter>,
    /// 1 per event loop on that I/O driver (`epoll` or `io_uring`).
    pub io_driver: Family<DriverLabel, Gauge>,
    /// The `--source` fetcher's progress, failures and readiness gate (`fetch.rs`).
    pub fetch: Arc<crate::fetch::FetchStatus>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabel {
    pub budget: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("quarry");
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            in_flight: Gauge::default(),
            connections: Gauge::default(),
            connections_rejected: Counter::default(),
            bytes_sent: Counter::default(),
            rows_examined: Counter::default(),
            shed: Counter::default(),
            loop_lag: Gauge::default(),
            dataset_rows: Family::default(),
            dataset_bytes: Family::default(),
            dataset_version: Family::default(),
            dataset_last_reload: Family::default(),
            dataset_reload_failures: Family::default(),
            auth: Default::default(),
            request_panics: Counter::default(),
            responses_aborted: Family::default(),
            memory_charged: Gauge::default(),
            memory_budget: Gauge::default(),
            memory_rejections: Family::default(),
            io_driver: Family::default(),
            fetch: Arc::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request head to last body byte handed to the socket",
            m.latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being answered",
            m.in_flight.clone(),
        );
        registry.register(
            "http_connections_open",
            "Open client connections",
            m.connections.clone(),
        );
        registry.register(
            "http_connections_rejected",
            "Connections closed at once because --max-connections was reached",
            m.connections_rejected.clone(),
        );
        registry.register(
            "http_response_body_bytes",
            "Response body bytes sent",
            m.bytes_sent.clone(),
        );
        registry.register(
            "rows_examined",
            "Rows examined by scans",
            m.rows_examined.clone(),
        );
        registry.register(
            "http_requests_shed",
            "Requests answered 503 by load shedding",
            m.shed.clone(),
        );
        registry.register(
            "event_loop_lag_seconds",
            "Longest gap between event-loop turns over the last second",
            m.loop_lag.clone(),
        );
        registry.register(
            "dataset_rows",
            "Rows in the served version",
            m.dataset_rows.clone(),
        );
        registry.register(
            "dataset_bytes",
            "File size of the served version",
            m.dataset_bytes.clone(),
        );
        registry.register(
            "dataset_version",
            "1 for the version being served (content hash in the label)",
            m.dataset_version.clone(),
        );
        registry.register(
            "dataset_last_reload_timestamp_seconds",
            "Unix time the served version went live",
            m.dataset_last_reload.clone(),
        );
        registry.register(
            "dataset_reload_failures",
            "Files that failed to map, open or verify",
            m.dataset_reload_failures.clone(),
        );
        m.auth.register(&mut registry);
        m.fetch.register(&mut registry);
        registry.register(
            "request_panics",
            "Requests ended by a panic in their handler, scan or body (contained; the loop goes on)",
            m.request_panics.clone(),
        );
        registry.register(
            "http_responses_aborted",
            "Responses aborted and released: write_timeout (no write progress) or response_timeout",
            m.responses_aborted.clone(),
        );
        registry.register(
            "memory_charged_bytes",
            "Bytes requests in flight hold that grow with the data (groups, top-k, rows)",
            m.memory_charged.clone(),
        );
        registry.register(
            "memory_budget_bytes",
            "Process memory budget for requests (--memory-budget)",
            m.memory_budget.clone(),
        );
        registry.register(
            "memory_rejections",
            "Requests refused for memory: budget=request (422 too_much_memory) or process (503)",
            m.memory_rejections.clone(),
        );
        registry.register(
            "io_driver",
            "Event loops running on each I/O driver (epoll where io_uring is refused or forced)",
            m.io_driver.clone(),
        );
        Metrics { registry, ..m }
    }

    /// OpenMetrics text of every metric plus process CPU time.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        if let Some(cpu) = process_cpu_seconds() {
            out.push_str("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n");
            out.push_str("# TYPE process_cpu_seconds_total counter\n");
            out.push_str(&format!("process_cpu_seconds_total {cpu}\n"));
        }
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

/// utime + stime of this process from /proc/self/stat, in seconds (USER_HZ is 100 on Linux).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Per-connection activity, used for the idle keep-alive timeout.
#[derive(Debug)]
pub struct ConnActivity {
    pub in_flight: Cell<u32>,
    pub last_active: Cell<Instant>,
    /// When the oldest request still in flight arrived (`--response-timeout`).
    pub busy_since: Cell<Instant>,
}

impl ConnActivity {
    pub fn new() -> Rc<ConnActivity> {
        Rc::new(ConnActivity {
            in_flight: Cell::new(0),
            last_active: Cell::new(Instant::now()),
            busy_since: Cell::new(Instant::now()),
        })
    }
}

/// Slots of [`RouteSeries`]: one per route template, plus one for requests that matched none.
const ROUTE_SLOTS: usize = crate::routes::TEMPLATES.len() + 1;

fn route_label(slot: usize) -> &'static str {
    crate::routes::TEMPLATES
        .get(slot)
        .copied()
        .unwrap_or(crate::routes::UNKNOWN_ROUTE)
}

/// One loop's handles on the per-route series. `Family::get_or_create` hashes the label set
/// and takes the family's lock on every call; a clone of a series shares its value with the
/// family, so each loop resolves a (route, status) once and then updates its own handle.
/// Series are still created on first use only, so `/metrics` lists the same series as before.
#[derive(Debug, Default)]
pub struct RouteSeries {
    latency: [OnceCell<Histogram>; ROUTE_SLOTS],
    /// (route slot, status, counter); a handful of entries, searched linearly.
    requests: RefCell<Vec<(usize, u16, Counter)>>,
}

impl RouteSeries {
    fn record(&self, metrics: &Metrics, slot: usize, status: u16, seconds: f64) {
        let slot = slot.min(ROUTE_SLOTS - 1);
        let mut requests = self.requests.borrow_mut();
        match requests.iter().find(|(r, s, _)| *r == slot && *s == status) {
            Some((_, _, c)) => {
                c.inc();
            }
            None => {
                let c = metrics
                    .requests
                    .get_or_create(&RouteStatus {
                        route: route_label(slot),
                        status,
                    })
                    .clone();
                c.inc();
                requests.push((slot, status, c));
            }
        }
        drop(requests);
        self.latency[slot]
            .get_or_init(|| {
                metrics
                    .latency
                    .get_or_create(&RouteLabel {
                        route: route_label(slot),
                    })
                    .clone()
            })
            .observe(seconds);
    }
}

/// Lives as long as one request's response (it sits in the body): counts in-flight work and
/// records status, latency and bytes when dropped.
#[derive(Debug)]
pub struct RequestGuard {
    ctx: Rc<LoopCtx>,
    conn: Rc<ConnActivity>,
    /// Index into `routes::TEMPLATES`; past the end = no route matched.
    /// (u16 keeps the guard, which rides in every response body, small.)
    route: u16,
    status: u16,
    start: Instant,
    bytes: u64,
    done: bool,
    /// `--access-log` only.
    access: Option<Box<AccessLine>>,
}

/// What the access log says of a request besides status, time and bytes.
#[derive(Debug)]
struct AccessLine {
    method: http::Method,
    target: String,
    principal: Option<std::sync::Arc<crate::auth::Principal>>,
}

/// The status recorded for a request whose client went away before the handler answered
/// (nginx's convention; no response is sent with it).
pub const CLIENT_CLOSED: u16 = 499;

impl RequestGuard {
    pub fn new(ctx: Rc<LoopCtx>, conn: Rc<ConnActivity>) -> RequestGuard {
        ctx.metrics.in_flight.inc();
        ctx.in_flight.set(ctx.in_flight.get() + 1);
        let start = Instant::now();
        if conn.in_flight.get() == 0 {
            conn.busy_since.set(start);
        }
        conn.in_flight.set(conn.in_flight.get() + 1);
        RequestGuard {
            ctx,
            conn,
            route: (ROUTE_SLOTS - 1) as u16,
            status: CLIENT_CLOSED,
            start,
            bytes: 0,
            done: false,
            access: None,
        }
    }

    /// With `--access-log`: this request gets a log line when it is recorded.
    pub fn log_access<B>(&mut self, req: &http::Request<B>) {
        if self.ctx.config.access_log {
            self.access = Some(Box::new(AccessLine {
                method: req.method().clone(),
                target: req
                    .uri()
                    .path_and_query()
                    .map_or_else(String::new, |p| p.as_str().to_string()),
                principal: None,
            }));
        }
    }

    /// Who the request is from, for the access log (a token's name or a JWT's subject).
    pub fn set_access(&mut self, access: &crate::auth::Access) {
        if let (Some(line), Some(p)) = (&mut self.access, access.principal()) {
            line.principal = Some(p.clone());
        }
    }

    /// `route` is the matched route's index in `routes::TEMPLATES`.
    pub fn set_route(&mut self, route: usize) {
        self.route = u16::try_from(route.min(ROUTE_SLOTS - 1)).unwrap_or(u16::MAX);
    }

    pub fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    pub fn add_bytes(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    pub fn ctx(&self) -> &LoopCtx {
        &self.ctx
    }

    /// The last body frame was produced: record now rather than when hyper drops the body.
    pub fn body_done(&mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let ctx = &*self.ctx;
        let m = &*ctx.metrics;
        m.in_flight.dec();
        ctx.in_flight.set(ctx.in_flight.get().saturating_sub(1));
        self.conn
            .in_flight
            .set(self.conn.in_flight.get().saturating_sub(1));
        let now = Instant::now();
        self.conn.last_active.set(now);
        let seconds = now.saturating_duration_since(self.start).as_secs_f64();
        ctx.route_series
            .record(m, usize::from(self.route), self.status, seconds);
        m.bytes_sent.inc_by(self.bytes);
        if let Some(line) = self.access.take() {
            let principal = line.principal.as_ref().map(|p| p.to_string());
            tracing::info!(
                target: "quarry::access",
                method = %line.method,
                uri = %line.target,
                status = self.status,
                seconds,
                bytes = self.bytes,
                principal = principal.as_deref().unwrap_or("-"),
                "request"
            );
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use clap::Parser;
    use std::sync::Arc;

    #[test]
    fn a_request_dropped_before_its_answer_counts_as_499_and_leaves_in_flight() {
        let metrics = Arc::new(Metrics::new());
        let config = Arc::new(Config::parse_from(["quarry-server", "--data-dir", "/d"]));
        let ctx = LoopCtx::new(0, config, metrics.clone());
        let conn = ConnActivity::new();
        let mut answered = RequestGuard::new(ctx.clone(), conn.clone());
        answered.set_route(0);
        answered.set_status(200);
        drop(answered);
        let mut abandoned = RequestGuard::new(ctx.clone(), conn.clone());
        abandoned.set_route(0);
        assert_eq!(ctx.in_flight.get(), 1);
        drop(abandoned); // hyper drops the service future when the client goes away
        assert_eq!(ctx.in_flight.get(), 0);
        assert_eq!(conn.in_flight.get(), 0);
        let text = metrics.encode();
        let requests: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("quarry_http_requests_total{"))
            .collect();
        assert!(
            requests.iter().any(|l| l.contains("status=\"499\"")),
            "{requests:?}"
        );
        assert!(
            requests.iter().any(|l| l.contains("status=\"200\"")),
            "{requests:?}"
        );
        assert!(!text.contains("status=\"0\""), "{text}");
    }
}
