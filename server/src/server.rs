//! Threads, runtimes, the accept loop, connections, signals and the drain sequence.
//!
//! Each of `--threads N` loops is a single-threaded monoio runtime with its own listener on the
//! same port (SO_REUSEPORT when N > 1, after checking that no other process listens there) and
//! its own control socketpairs; all loops serve one catalog, loaded by loop 0. Signals reach the
//! loops through signal-hook writing a byte into those socketpairs (SIGTERM/SIGINT: every loop;
//! SIGHUP and SIGIO, a read lease being broken: loop 0); `ServerHandle` writes the same bytes for
//! in-process tests.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hyper::server::conn::http1;
use monoio::io::AsyncReadRent;
use monoio::net::{ListenerOpts, TcpListener, TcpStream, UnixStream};
use tracing::{debug, error, info, warn};

use crate::catalog::SharedCatalog;
use crate::config::Config;
use crate::metrics::{ConnActivity, DriverLabel, Metrics};
use crate::state::LoopCtx;

/// A running server: its address and the means to stop it (in-process tests, `run`).
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    threads: Vec<JoinHandle<anyhow::Result<()>>>,
    term: Vec<StdUnixStream>,
    hup: Vec<StdUnixStream>,
    metrics: Arc<Metrics>,
    admin_addr: SocketAddr,
}

impl ServerHandle {
    /// The bound address (the real port when `--listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Same as SIGTERM: drain, then stop.
    pub fn shutdown(&self) {
        for w in &self.term {
            let _ = (&*w).write(&[1]);
        }
    }

    /// Same as SIGHUP: rescan the data directory now.
    pub fn reload(&self) {
        for w in &self.hup {
            let _ = (&*w).write(&[1]);
        }
    }

    /// The bound admin address (`--admin-listen`: `/metrics` and probes).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Waits for every loop to finish; the first error wins.
    pub fn join(self) -> anyhow::Result<()> {
        let mut result = Ok(());
        for t in self.threads {
            let r = match t.join() {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("an event-loop thread panicked")),
            };
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

/// The control channels of one loop: read ends go to the loop, write ends to signal-hook and to
/// the handle. Only loop 0, the loader's, has the SIGHUP and SIGIO channels.
struct Control {
    term_rx: StdUnixStream,
    loader: Option<(StdUnixStream, StdUnixStream)>,
}

fn control_pair(
    config: &Config,
    with_loader: bool,
    term_writers: &mut Vec<StdUnixStream>,
    hup_writers: &mut Vec<StdUnixStream>,
) -> anyhow::Result<Control> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGIO, SIGTERM};
    use signal_hook::low_level::pipe;
    let (term_rx, term_tx) = StdUnixStream::pair().context("creating the control socketpair")?;
    if config.handle_signals {
        pipe::register(SIGTERM, term_tx.try_clone()?).context("installing the SIGTERM handler")?;
        pipe::register(SIGINT, term_tx.try_clone()?).context("installing the SIGINT handler")?;
    }
    // All ends non-blocking: the epoll driver reads the receiving ends with plain read(2).
    term_rx.set_nonblocking(true)?;
    term_tx.set_nonblocking(true)?;
    term_writers.push(term_tx);
    let mut loader = None;
    if with_loader {
        let (hup_rx, hup_tx) = StdUnixStream::pair().context("creating the control socketpair")?;
        let (io_rx, io_tx) = StdUnixStream::pair().context("creating the control socketpair")?;
        if config.handle_signals {
            pipe::register(SIGHUP, hup_tx.try_clone()?).context("installing the SIGHUP handler")?;
        }
        // Always: a broken read lease sends SIGIO, whose default action ends the process.
        pipe::register(SIGIO, io_tx).context("installing the SIGIO handler")?;
        for end in [&hup_rx, &hup_tx, &io_rx] {
            end.set_nonblocking(true)?;
        }
        hup_writers.push(hup_tx);
        loader = Some((hup_rx, io_rx));
    }
    Ok(Control { term_rx, loader })
}

/// With several loops: fails when another socket is bound to `addr` (a second server, even one
/// with SO_REUSEPORT), else returns the address with its concrete port. The probe binds without
/// SO_REUSEPORT, which the kernel refuses while any other socket holds the port.
fn own_the_port(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind(addr).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen on {addr}: another process is already listening on it \
                 (--threads > 1 binds the port with SO_REUSEPORT, which would silently share \
                 connections with that process; stop it or choose another --listen address)"
            )
        } else {
            anyhow::Error::new(e).context(format!("binding {addr}"))
        }
    })?;
    Ok(probe.local_addr()?)
}

/// Binds, starts every loop and returns once the first listener is bound (data loads after).
pub fn start(config: Config) -> anyhow::Result<ServerHandle> {
    let source = match &config.source {
        Some(url) => {
            let dir = config.dataset_dir();
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "creating the cache directory {} (--cache-dir / QUARRY_CACHE_DIR)",
                    dir.display()
                )
            })?;
            let source = crate::fetch::Source::parse(url)?;
            let cached = crate::fetch::prepare_cache(dir)?;
            Some((source, cached))
        }
        None => None,
    };
    let meta = std::fs::metadata(config.dataset_dir()).with_context(|| {
        format!(
            "data directory {} cannot be read (--data-dir / QUARRY_DATA_DIR)",
            config.dataset_dir().display()
        )
    })?;
    if !meta.is_dir() {
        bail!(
            "--data-dir {} is not a directory",
            config.dataset_dir().display()
        );
    }
    crate::panic::install_hook();
    if source.is_none() {
        warn_if_mounted_writable(config.dataset_dir());
    }
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let catalog = crate::catalog::shared();
    let creds = crate::auth::startup(&config, &metrics)?;
    let admin = std::net::TcpListener::bind(config.admin_listen).with_context(|| {
        format!(
            "binding the admin listener {} (--admin-listen)",
            config.admin_listen
        )
    })?;
    let admin_addr = admin.local_addr()?;
    let mut admin = Some(admin);
    let (budget_bytes, budget_source) = match config.memory_budget {
        Some(b) => (b, "--memory-budget".to_string()),
        None => crate::memory::default_budget(),
    };
    let budget = crate::memory::Budget::new(budget_bytes, metrics.clone());
    info!(
        max_request_memory = config.max_request_memory,
        memory_budget = budget_bytes,
        memory_budget_source = %budget_source,
        write_timeout = ?config.write_timeout,
        response_timeout = ?config.response_timeout,
        "budgets"
    );
    let mut term = Vec::new();
    let mut hup = Vec::new();
    let mut threads = Vec::new();
    let mut addr = config.listen;
    if config.threads > 1 {
        // Every loop must bind the same concrete port (bind(0) with SO_REUSEPORT may hand out a
        // port another reuseport socket holds), and no other process may hold it.
        addr = own_the_port(addr)?;
    }
    for index in 0..usize::from(config.threads) {
        let control = control_pair(&config, index == 0, &mut term, &mut hup)?;
        let (tx, rx) = mpsc::channel();
        let config = config.clone();
        let metrics = metrics.clone();
        let bind_to = addr;
        let extra = LoopExtra {
            catalog: catalog.clone(),
            admin: admin.take(),
            creds: creds.clone(),
            budget: budget.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("quarry-loop-{index}"))
            .spawn(move || loop_thread(index, config, metrics, bind_to, control, tx, extra))
            .context("spawning an event-loop thread")?;
        match rx.recv() {
            Ok(Ok(bound)) => addr = bound,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let r = thread.join();
                bail!("event-loop thread {index} ended before binding: {r:?}");
            }
        }
        threads.push(thread);
    }
    if config.plumbing() != quarry_runtime::Plumbing::FULL {
        warn!(plumbing = ?config.plumbing(), "--plain-runtime: benchmark mode, runtime glue off");
    }
    if let Some((source, cached)) = source {
        let dir = config.dataset_dir().to_path_buf();
        let (max, why) = match config.cache_max_bytes {
            Some(m) => (m, "--cache-max-bytes"),
            None => (
                crate::fetch::default_cache_max(&dir)?,
                "the cache volume's free space at startup",
            ),
        };
        info!(source = %source.url, cache_dir = %dir.display(), cache_max_bytes = max, cache_max_source = why, "fetching datasets from the source");
        let wake = hup
            .first()
            .context("no loader channel")?
            .try_clone()
            .context("cloning the loader's wake-up channel")?;
        crate::fetch::spawn(
            source,
            dir,
            max,
            config.reload_interval,
            metrics.fetch.clone(),
            wake,
            cached,
        )?;
    }
    info!(%addr, %admin_addr, threads = config.threads, "listening");
    Ok(ServerHandle {
        addr,
        threads,
        term,
        hup,
        metrics,
        admin_addr,
    })
}

/// What a loop shares with the others, and the admin listener (loop 0 only).
struct LoopExtra {
    catalog: SharedCatalog,
    admin: Option<std::net::TcpListener>,
    creds: Arc<crate::auth::SharedCredentials>,
    budget: Arc<crate::memory::Budget>,
}

/// The server never writes its data directory, but a read-write mount lets something else
/// rewrite a mapped file in place (SIGBUS, wrong answers): say so once, at startup. Serving
/// is unaffected, so readiness is too.
fn warn_if_mounted_writable(dir: &std::path::Path) {
    match rustix::fs::statvfs(dir) {
        Ok(st) if !st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) => warn!(
            data_dir = %dir.display(),
            "the data directory is on a read-write mount: mount it read-only (readOnly: true on \
             the volume and the mount); a published file must never change in place"
        ),
        Ok(_) => {}
        Err(e) => {
            debug!(data_dir = %dir.display(), error = %e, "statvfs of the data directory failed")
        }
    }
}

fn loop_thread(
    index: usize,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    bind_to: SocketAddr,
    control: Control,
    bound: mpsc::Sender<anyhow::Result<SocketAddr>>,
    extra: LoopExtra,
) -> anyhow::Result<()> {
    if config.pin_cores {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        if let Err(e) = monoio::utils::bind_to_cpu_set([index % cores]) {
            warn!(loop_index = index, error = ?e, "could not pin the loop to a core");
        }
    }
    let force_epoll = config.epoll_forced();
    let fut = async move {
        // SO_REUSEPORT only when several loops share the port: with one loop, a second server
        // started on the same port by mistake fails loudly instead of silently taking half the
        // connections.
        let opts = ListenerOpts::new()
            .reuse_port(config.threads > 1)
            .backlog(4096);
        let listener = match TcpListener::bind_with_config(bind_to, &opts) {
            Ok(l) => l,
            Err(e) => {
                let _ = bound.send(Err(
                    anyhow::Error::new(e).context(format!("binding {bind_to}"))
                ));
                return Ok(());
            }
        };
        let addr = listener.local_addr()?;
        let _ = bound.send(Ok(addr));
        // FusionDriver falls back to epoll when io_uring_setup fails, as under the default
        // seccomp profiles of Docker >= 25 and containerd >= 2.0.
        let (driver, reason) = match (monoio::utils::is_legacy(), force_epoll) {
            (false, _) => ("io_uring", "allowed by the kernel and seccomp"),
            (true, true) => (
                "epoll",
                "forced (--force-epoll / MONOIO_FORCE_LEGACY_DRIVER)",
            ),
            (true, false) => ("epoll", "io_uring refused (seccomp or kernel)"),
        };
        metrics
            .io_driver
            .get_or_create(&DriverLabel { driver })
            .inc();
        info!(loop_index = index, driver, reason, "event loop started");
        let ctx = LoopCtx::new_shared(index, config, metrics, extra.catalog, extra.budget);
        ctx.auth.install(extra.creds);
        if let Some(admin) = extra.admin {
            monoio::spawn(crate::admin::accept_loop(ctx.clone(), admin));
        }
        run_loop(ctx, listener, control).await
    };
    quarry_runtime::event_loop::block_on(force_epoll, fut).with_context(|| {
        if force_epoll {
            "building the epoll runtime"
        } else {
            "building the runtime"
        }
    })?
}

async fn run_loop(ctx: Rc<LoopCtx>, listener: TcpListener, control: Control) -> anyhow::Result<()> {
    let term = UnixStream::from_std(control.term_rx).context("registering the control socket")?;
    monoio::spawn(lag_monitor(ctx.clone()));
    if ctx.config.plumbing().turn_batching {
        monoio::spawn(quarry_runtime::TurnEndWriter::run(ctx.clone()));
    }
    monoio::spawn(accept_loop(ctx.clone(), listener));
    if let Some((hup, sigio)) = control.loader {
        let hup = UnixStream::from_std(hup).context("registering the control socket")?;
        let sigio = UnixStream::from_std(sigio).context("registering the control socket")?;
        monoio::spawn(crate::loader::run(ctx.clone(), hup, sigio));
    }

    wait_for_byte(term).await;
    ctx.draining.set(true);
    let cfg = &ctx.config;
    info!(loop_index = ctx.index, drain_delay = ?cfg.drain_delay, "termination requested: readiness is now 503, draining");
    monoio::time::sleep(cfg.drain_delay).await;
    ctx.stop_accept.set();
    let _ = monoio::time::timeout(Duration::from_secs(1), ctx.listener_closed.wait()).await;
    ctx.close_conns.set();
    if ctx.connections.get() == 0 {
        ctx.conns_done.set();
    }
    info!(
        loop_index = ctx.index,
        open_connections = ctx.connections.get(),
        "stopped accepting; finishing in-flight requests"
    );
    if monoio::time::timeout(cfg.shutdown_timeout, ctx.conns_done.wait())
        .await
        .is_err()
    {
        warn!(
            loop_index = ctx.index,
            open_connections = ctx.connections.get(),
            "shutdown timeout reached with connections still open; closing them"
        );
    }
    info!(loop_index = ctx.index, "event loop stopped");
    Ok(())
}

/// Completes when a byte arrives (or the other end is gone). Every byte already waiting is
/// read with it: one loader pass answers them all (the fetcher writes one per dataset it
/// installs, thousands at a first sync).
async fn wait_for_byte(mut s: UnixStream) -> UnixStream {
    let buf = vec![0u8; 4096];
    let (r, _) = s.read(buf).await;
    if let Err(e) = r {
        error!(error = %e, "control socket failed");
    }
    s
}

/// Reads one control byte; returns the stream for the next wait.
pub(crate) async fn next_control_byte(s: UnixStream) -> UnixStream {
    wait_for_byte(s).await
}

/// Measures how late a 10 ms timer fires: the longest gap between loop turns, kept per second.
async fn lag_monitor(ctx: Rc<LoopCtx>) {
    const TICK: Duration = Duration::from_millis(10);
    let mut window_start = Instant::now();
    let mut window_max = Duration::ZERO;
    loop {
        let before = Instant::now();
        monoio::time::sleep(TICK).await;
        let lag = before.elapsed().saturating_sub(TICK);
        // Drop a replaced catalog even when no request comes: its old versions (their maps,
        // descriptors and read leases) must not outlive the swap on an idle loop.
        ctx.with_catalog(|_| ());
        window_max = window_max.max(lag);
        // Lag visible at once when it grows, decays after a quiet second.
        if lag > ctx.lag.get() {
            ctx.lag.set(lag);
        }
        if window_start.elapsed() >= Duration::from_secs(1) {
            ctx.lag.set(window_max);
            if ctx.index == 0 {
                ctx.metrics.loop_lag.set(window_max.as_secs_f64());
            }
            window_max = Duration::ZERO;
            window_start = Instant::now();
        }
    }
}

async fn accept_loop(ctx: Rc<LoopCtx>, listener: TcpListener) {
    let mut builder = http1::Builder::new();
    builder
        .timer(quarry_runtime::LoopTimer::new(
            ctx.config.plumbing().coarse_timer,
        ))
        .header_read_timeout(ctx.config.header_read_timeout)
        // hyper answers an oversized head itself with a bodiless 431; its limit sits above
        // --max-header-bytes so that heads up to twice that reach `handlers`, which answer
        // the JSON 431 (`ApiError::HeaderTooLarge`). Only larger heads get hyper's.
        .max_buf_size(hyper_head_limit(ctx.config.max_header_bytes) + 8192)
        .max_header_size(hyper_head_limit(ctx.config.max_header_bytes))
        .keep_alive(true);
    let builder = Rc::new(builder);
    loop {
        // A dropped io_uring accept is cancelled (monoio feature `async-cancel`); without it the
        // listener fd would stay open, with the kernel queueing connections nobody accepts.
        let accepted = monoio::select! {
            _ = ctx.stop_accept.wait() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                warn!(error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if ctx.connections.get() >= ctx.config.max_connections {
            ctx.metrics.connections_rejected.inc();
            debug!(%peer, "connection limit reached; closing");
            drop(stream);
            continue;
        }
        ctx.conn_opened();
        monoio::spawn(serve_connection(ctx.clone(), builder.clone(), stream));
    }
    drop(listener);
    // Let the driver submit the cancel and the close (io_uring queues both as operations).
    for _ in 0..3 {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
    ctx.listener_closed.set();
    debug!(loop_index = ctx.index, "listener closed");
}

/// The head size at which hyper refuses a request by itself (see `accept_loop`).
fn hyper_head_limit(max_header_bytes: usize) -> usize {
    max_header_bytes
        .saturating_mul(2)
        .max(max_header_bytes.saturating_add(8192))
        .max(8192)
}

async fn serve_connection(ctx: Rc<LoopCtx>, builder: Rc<http1::Builder>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let io = match quarry_runtime::event_loop::hyper_io(stream) {
        Ok(io) => io,
        Err(e) => {
            debug!(error = %e, "into_poll_io failed");
            ctx.conn_closed();
            return;
        }
    };
    let activity = ConnActivity::new();
    let svc_ctx = ctx.clone();
    let svc_activity = activity.clone();
    let service = hyper::service::service_fn(move |req| {
        crate::handlers::serve(svc_ctx.clone(), svc_activity.clone(), req)
    });
    let progress = Rc::new(crate::progress::WriteProgress::default());
    let io = crate::progress::ProgressIo::new(io, progress.clone());
    let io = quarry_runtime::ConnIo::new(io, ctx.clone(), ctx.config.plumbing().turn_batching);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let cfg = &ctx.config;
    let idle = cfg.idle_timeout;
    // The task wakes at least every `check_every` to check write progress and the response
    // deadline while a response is in flight or its bytes wait for the socket, and every
    // `check_idle` (half the shorter timeout) otherwise: a request can arrive and block on a
    // full socket inside one poll of `conn`, without the select below computing a new
    // deadline. So a response is aborted within 1.5 times its timeout.
    let check_idle =
        (cfg.write_timeout.min(cfg.response_timeout) / 2).max(Duration::from_millis(10));
    let check_every = check_idle.min(Duration::from_secs(1));
    let mut closing = false;
    loop {
        let now = Instant::now();
        let deadline =
            if activity.in_flight.get() > 0 || progress.blocked_since().is_some() || closing {
                now + check_every
            } else {
                (activity.last_active.get() + idle).min(now + check_idle)
            };
        let result = monoio::select! {
            r = conn.as_mut() => Some(r),
            _ = ctx.close_conns.wait(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
                None
            },
            _ = monoio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                let in_flight = activity.in_flight.get() > 0;
                let stalled = progress
                    .blocked_since()
                    .is_some_and(|t| now.saturating_duration_since(t) >= cfg.write_timeout);
                // A body handed to hyper in full ends its request, but while its bytes still
                // wait for the socket the response is not finished.
                let overdue = (in_flight || progress.blocked_since().is_some())
                    && now.saturating_duration_since(activity.busy_since.get())
                        >= cfg.response_timeout;
                if stalled || overdue {
                    let reason = if stalled { "write_timeout" } else { "response_timeout" };
                    ctx.metrics
                        .responses_aborted
                        .get_or_create(&crate::metrics::ReasonLabel { reason })
                        .inc();
                    warn!(
                        loop_index = ctx.index,
                        reason,
                        write_timeout = ?cfg.write_timeout,
                        response_timeout = ?cfg.response_timeout,
                        "response aborted: connection closed, everything it held released"
                    );
                    break;
                } else if !in_flight
                    && progress.blocked_since().is_none()
                    && !closing
                    && activity.last_active.get() + idle <= now
                {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                None
            },
        };
        if let Some(r) = result {
            if let Err(e) = r {
                debug!(error = %e, "connection ended with an error");
            }
            break;
        }
    }
    ctx.conn_closed();
}

/// `run`: start, wait, and report. Used by `main`.
pub fn run(config: Config) -> anyhow::Result<()> {
    let handle = start(config)?;
    handle.join()
}
