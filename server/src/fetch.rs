//! `--source URL`: the fetcher, which mirrors a published prefix into `--cache-dir`.
//!
//! It runs on its own std thread (`quarry-fetch`), at a lower CPU priority (nice +10), with a
//! tokio current-thread runtime for the object store's async calls; the event loops never run
//! tokio and never wait for it. Each poll (`--reload-interval`) is one conditional GET of
//! `<prefix>/MANIFEST.json` (written by `quarry-etl build --out URL` after each dataset's
//! pointer), whatever the number of datasets. A bad entry (name, version, SHA-256, path) is
//! refused for its dataset alone. One scan of the cache deletes the `.part` files no pending
//! version needs. Then, for every dataset whose version differs from the cached one, it:
//! 1. HEADs the data object (missing object and size mismatch are refused before any download);
//! 2. checks that the new version fits under `--cache-max-bytes` beside every cached file
//!    (the old version stays on disk, served, until the swap) and in the volume's free space;
//! 3. downloads it into `<cache-dir>/.<name>.<version>.part` with ranged GETs of [`CHUNK`]
//!    bytes, [`IN_FLIGHT`] at once; a second thread (`fetch_sink`) appends and hashes them in
//!    order while the next ranges arrive (memory: at most `CHUNK * (IN_FLIGHT + DEPTH + 1)`);
//!    a failed range restarts from the bytes already received, and a `.part` left by a failed
//!    poll or a restart is resumed (its bytes are hashed again);
//! 4. refuses it unless size and SHA-256 match the manifest (the `.part` is deleted, and that
//!    version is not downloaded again before a pause that doubles each time);
//! 5. closes its writable descriptor, writes `.<name>.meta.json` (version, size, sha256,
//!    `synced: false`: how a restart knows what is cached), renames the `.part` to
//!    `<cache-dir>/<name>.qry` and wakes the loader (the SIGHUP channel), which maps the new
//!    file and swaps versions exactly as for `--data-dir`;
//! 6. at the end of the poll, fsyncs the installed files and rewrites their meta with
//!    `synced: true`. The flush is off the path to serving: until it is confirmed, a restart
//!    ([`prepare_cache`], before any loader runs) turns the file back into a `.part` whose
//!    bytes are hashed against the manifest before they serve, so a file torn by a crash is
//!    never mapped.
//!
//! The loader ignores dot-files, so nothing partial is ever mapped. The renamed-over old file is
//! unlinked at once; its disk is freed when the last request holding its map ends. A dataset
//! gone from the manifest is deleted from the cache (it stops serving). Every failure is one
//! JSON log line naming the object, a `quarry_fetch_failures{reason}` count and the reason in
//! `/healthz`; the cached version keeps serving.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::{error, info, warn};

use quarry_objects::{classify, describe, ObjectUrl};

use crate::catalog::Catalog;
use crate::fetch_sink::Sink;

/// Bytes per ranged GET.
pub const CHUNK: u64 = 8 << 20;
/// Ranged GETs in flight at once.
pub const IN_FLIGHT: usize = 4;
/// Bytes handed to the disk thread at once (fewer wake-ups than one per network read).
const BATCH: u64 = 1 << 20;
/// Restarts of a download from its written bytes within one poll.
const RANGE_ATTEMPTS: u32 = 5;
/// The object store client's retries of one request: a few, quickly. A failure that
/// outlasts them (an untrusted certificate, a long outage) is reported at once, and the
/// fetcher retries on its own terms: the interrupted range from the bytes received
/// ([`RANGE_ATTEMPTS`]), the manifest at the next poll.
fn request_retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(10),
    }
}
/// Nice value of the fetcher thread.
const NICE: i32 = 10;
/// The manifest's name inside the prefix.
const MANIFEST: &str = "MANIFEST.json";
/// The largest manifest read (tens of thousands of datasets fit in a few MiB).
const MAX_MANIFEST: u64 = 64 << 20;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchReason {
    pub reason: &'static str,
}

/// What the fetcher reports to `/healthz`, the readiness gate and `/metrics`; shared by the
/// fetcher thread and every loop (inside `Metrics`).
#[derive(Debug, Default)]
pub struct FetchStatus {
    /// `--source` is set.
    active: AtomicBool,
    /// A manifest was read and every dataset in it was attempted.
    first_sync_done: AtomicBool,
    /// Every dataset of the first synced manifest has been served once (stays set).
    opened: AtomicBool,
    /// The fetcher thread has stopped (a panic): `/livez` fails (why: `Inner::stopped`).
    stopped: AtomicBool,
    bytes_total: AtomicU64,
    bytes_done: AtomicU64,
    inner: Mutex<Inner>,
    pub downloaded: Counter,
    pub failures: Family<FetchReason, Counter>,
    pub last_poll: Gauge<f64, AtomicU64>,
    /// Datasets of the manifest not cached at its version after the last poll.
    pub behind: Gauge,
    pub cache_bytes: Gauge,
    pub cache_max_bytes: Gauge,
}

#[derive(Debug, Default)]
struct Inner {
    source: String,
    /// Datasets of the last manifest read.
    expected: Vec<String>,
    /// Why the manifest could not be used, at the last poll.
    manifest_error: Option<String>,
    /// Why a dataset's newest version is not cached, by dataset.
    errors: BTreeMap<String, String>,
    started: Option<Instant>,
    rate_bytes_per_s: f64,
    /// Why the fetcher thread stopped.
    stopped: Option<String>,
}

impl FetchStatus {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "fetch_downloaded_bytes",
            "Bytes of dataset objects downloaded from --source",
            self.downloaded.clone(),
        );
        registry.register(
            "fetch_failures",
            "Failed manifest reads and refused or failed downloads, by reason",
            self.failures.clone(),
        );
        registry.register(
            "fetch_last_successful_poll_timestamp_seconds",
            "Unix time the manifest was last read successfully",
            self.last_poll.clone(),
        );
        registry.register(
            "fetch_datasets_behind",
            "Datasets of the manifest not served at its version after the last poll (refused, \
             failed, or not fetched yet); a dataset stuck behind keeps this above 0",
            self.behind.clone(),
        );
        registry.register(
            "fetch_cache_bytes",
            "Bytes of dataset files in --cache-dir",
            self.cache_bytes.clone(),
        );
        registry.register(
            "fetch_cache_max_bytes",
            "The cache limit (--cache-max-bytes or the volume's free space at startup)",
            self.cache_max_bytes.clone(),
        );
    }

    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Why the fetcher thread stopped, once it has (`/livez` fails from then on).
    pub fn stopped(&self) -> Option<String> {
        if !self.stopped.load(Ordering::Acquire) {
            return None;
        }
        self.lock().stopped.clone()
    }

    fn stop(&self, why: String) {
        self.lock().stopped = Some(why);
        self.stopped.store(true, Ordering::Release);
    }

    /// `None`: the fetcher does not hold readiness back. `Some(failed)`: unready, and whether
    /// it is for a failure (rather than a download in progress).
    pub fn holds_readiness(&self, cat: &Catalog) -> Option<bool> {
        if !self.active() || self.opened.load(Ordering::Acquire) {
            return None;
        }
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let failed = inner.manifest_error.is_some() || !inner.errors.is_empty();
        if !self.first_sync_done.load(Ordering::Acquire) {
            return Some(failed);
        }
        if inner
            .expected
            .iter()
            .all(|n| cat.datasets.contains_key(n.as_str()))
        {
            self.opened.store(true, Ordering::Release);
            return None;
        }
        Some(failed)
    }

    /// The `fetch` object of `/healthz`.
    pub fn health_json(&self) -> serde_json::Value {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        json!({
            "source": inner.source,
            "first_sync_done": self.first_sync_done.load(Ordering::Relaxed),
            "bytes_done": self.bytes_done.load(Ordering::Relaxed),
            "bytes_total": self.bytes_total.load(Ordering::Relaxed),
            "rate_bytes_per_second": inner.rate_bytes_per_s.round(),
            "manifest_error": inner.manifest_error,
            "errors": inner.errors,
        })
    }

    /// One line for `/healthz`'s reason while the fetcher holds readiness.
    pub fn reason(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = &inner.manifest_error {
            return format!("cannot use the manifest of {}: {e}", inner.source);
        }
        if !inner.errors.is_empty() {
            let list: Vec<String> = inner
                .errors
                .iter()
                .take(20)
                .map(|(n, e)| format!("{n}: {e}"))
                .collect();
            return format!("datasets not fetched: {}", list.join("; "));
        }
        format!(
            "fetching datasets from {}: {} of {} bytes",
            inner.source,
            self.bytes_done.load(Ordering::Relaxed),
            self.bytes_total.load(Ordering::Relaxed)
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, reason: &'static str) {
        debug_assert!(FAILURE_REASONS.contains(&reason), "{reason}");
        self.failures.get_or_create(&FetchReason { reason }).inc();
    }
}

/// Every `reason` of `quarry_fetch_failures_total`.
const FAILURE_REASONS: [&str; 11] = [
    "credentials",
    "source",
    "origin",
    "tls",
    "missing_manifest",
    "malformed_manifest",
    "missing_object",
    "size_mismatch",
    "checksum_mismatch",
    "cache_full",
    "cache_io",
];

/// The prefix manifest (see `etl/src/remote.rs`).
#[derive(Debug, Clone, Deserialize)]
struct Manifest {
    format: u32,
    datasets: BTreeMap<String, Entry>,
    /// Entries that cannot be fetched, and why: reported for their datasets alone, so one
    /// bad entry stops no other dataset's updates.
    #[serde(skip)]
    invalid: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    version: String,
    path: String,
    size: u64,
    sha256: String,
}

/// `--source` resolved: the store and the prefix inside it (URL parsing, the store and its
/// credentials: `quarry-objects`).
pub struct Source {
    /// `--source` without trailing `/`s.
    pub url: String,
    loc: ObjectUrl,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl Source {
    /// Parses `--source` and configures its store from the service's standard environment.
    /// Missing credentials are not an error here: every poll reports them (`credentials`).
    pub fn parse(url: &str) -> anyhow::Result<Source> {
        let loc = match ObjectUrl::parse(url, quarry_objects::ALL) {
            Ok(Some(loc)) => loc,
            Ok(None) => bail!(
                "--source {url}: not a URL (e.g. s3://bucket/prefix, https://host/prefix, \
                 file:///dir)"
            ),
            Err(e) => bail!("--source {url}: {e}"),
        };
        let prefix = loc
            .prefix()
            .map_err(|e| anyhow::anyhow!("--source {url}: {e}"))?;
        let store = loc
            .store_with_retry(request_retry())
            .map_err(|e| anyhow::anyhow!("--source {url}: {e}"))?;
        let rest = url.split_once("://").map_or("", |(_, r)| r);
        Ok(Source {
            url: format!("{}://{}", loc.scheme, rest.trim_end_matches('/')),
            loc,
            store,
            prefix,
        })
    }

    fn key(&self, rel: &str) -> anyhow::Result<Path> {
        quarry_objects::join(&self.prefix, rel).map_err(anyhow::Error::msg)
    }

    fn url_of(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url)
    }

    /// Why the store has no credentials (reported by every poll, no request made).
    fn missing_credentials(&self) -> Option<String> {
        quarry_objects::missing_credentials(self.loc.service)
    }
}

/// The default `--cache-max-bytes`: the cache volume's free space at startup plus the dataset
/// files already in it (downloads in progress included).
pub fn default_cache_max(dir: &FsPath) -> anyhow::Result<u64> {
    let st = rustix::fs::statvfs(dir)
        .with_context(|| format!("statvfs of the cache directory {}", dir.display()))?;
    Ok(st
        .f_bavail
        .saturating_mul(st.f_frsize)
        .saturating_add(cached_bytes(dir))
        .saturating_add(partial_bytes(dir)))
}

/// Bytes of the `.part` files of the cache.
fn partial_bytes(dir: &FsPath) -> u64 {
    bytes_of(dir, |n| n.starts_with('.') && n.ends_with(".part"))
}

/// Bytes of the `<name>.qry` files of the cache.
fn cached_bytes(dir: &FsPath) -> u64 {
    bytes_of(dir, |n| !n.starts_with('.') && n.ends_with(".qry"))
}

/// Bytes of the files of `dir` whose names `pick` accepts.
fn bytes_of(dir: &FsPath, pick: impl Fn(&str) -> bool) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .filter(|e| pick(&e.file_name().to_string_lossy()))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Starts the fetcher thread. `wake` is the loader's SIGHUP channel.
pub fn spawn(
    source: Source,
    cache_dir: PathBuf,
    max_bytes: u64,
    interval: Duration,
    status: Arc<FetchStatus>,
    wake: StdUnixStream,
    cached: Cached,
) -> anyhow::Result<()> {
    status.active.store(true, Ordering::Relaxed);
    // Every reason is exported from the start (at 0), so `increase()` sees the first failure.
    for reason in FAILURE_REASONS {
        let _ = status.failures.get_or_create(&FetchReason { reason });
    }
    status.lock().source = source.url.clone();
    status
        .cache_max_bytes
        .set(i64::try_from(max_bytes).unwrap_or(i64::MAX));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the fetcher's tokio runtime")?;
    let watch = status.clone();
    std::thread::Builder::new()
        .name("quarry-fetch".to_string())
        .spawn(move || {
            // Linux: PRIO_PROCESS with pid 0 sets the calling thread's nice value, inherited
            // by the threads it creates (the resolver's); the loops keep theirs.
            if let Err(e) = rustix::process::setpriority_process(None, NICE) {
                warn!(error = %e, "cannot lower the fetcher thread's priority");
            }
            let mut f = Fetcher {
                source,
                dir: cache_dir,
                max_bytes,
                status,
                wake,
                installed: cached.0,
                unsynced: Vec::new(),
                manifest: None,
                conditional_reads: 0,
                refused: BTreeMap::new(),
                reported_invalid: BTreeMap::new(),
                cached_total: 0,
            };
            f.cached_total = cached_bytes(&f.dir);
            f.update_cache_gauge();
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(f.run(interval))
            }));
            if let Err(payload) = ran {
                let why = format!(
                    "the fetcher thread panicked ({}): the source is no longer followed",
                    crate::panic::payload_text(&*payload)
                );
                error!(error = %why, "the fetcher stopped; /livez fails so that the pod is restarted, and the cached datasets serve until then");
                watch.stop(why);
            }
        })
        .context("spawning the fetcher thread")?;
    Ok(())
}

struct Fetcher {
    source: Source,
    dir: PathBuf,
    max_bytes: u64,
    status: Arc<FetchStatus>,
    wake: StdUnixStream,
    /// What `<name>.qry` in the cache holds, by dataset.
    installed: BTreeMap<String, Entry>,
    /// Versions installed by this poll and not yet fsynced (see `sync_installed`).
    unsynced: Vec<(String, Entry)>,
    /// The last manifest read and its e-tag (`None`: not trusted as a validator).
    manifest: Option<(Option<String>, Manifest)>,
    /// Conditional manifest reads since the last unconditional one.
    conditional_reads: u32,
    /// Versions whose bytes were refused (size or checksum), by dataset: not downloaded
    /// again before `retry_at`.
    refused: BTreeMap<String, Refused>,
    /// The bad manifest entries already logged and counted, with their messages.
    reported_invalid: BTreeMap<String, String>,
    /// Bytes of the `<name>.qry` files: summed at startup and by each poll's cache scan,
    /// then kept up to date by the installs and removals since.
    cached_total: u64,
}

/// A version refused for its bytes, and when it may be downloaded again.
struct Refused {
    entry: Entry,
    retry_at: Instant,
    backoff: Duration,
}

/// The pause before a refused version is downloaded again, doubling up to `REFUSED_MAX`.
const REFUSED_FIRST: Duration = Duration::from_secs(30);
const REFUSED_MAX: Duration = Duration::from_secs(30 * 60);

/// Every this many polls the manifest is read without `If-None-Match`. An origin's e-tag may
/// be derived from the modification second and the length (nginx, the local file store), so
/// two manifests written within one second can share it; this bounds how long such a twin can
/// hide behind 304s to this many reload intervals.
const UNCONDITIONAL_READ_EVERY: u32 = 10;

/// A manifest modified less than this before it was read keeps no validator: a write later in
/// the same second could leave its e-tag unchanged (the rule HTTP caches apply to
/// `Last-Modified`, RFC 9110 8.8.2.2, with room for clock skew).
const FRESH_WRITE: std::time::Duration = std::time::Duration::from_secs(2);

/// A refused or failed step: metric reason and message.
struct Failure {
    reason: &'static str,
    message: String,
}

fn failure(reason: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        reason,
        message: message.into(),
    }
}

/// The longest dataset name: what quarry-etl publishes (its `MAX_NAME_BYTES`).
const MAX_NAME: usize = 187;
/// The longest version: `.<name>.<version>.part` must fit a file name's 255 bytes.
const MAX_VERSION: usize = 255 - MAX_NAME - ".".len() - ".".len() - ".part".len();

/// The dataset names quarry-etl publishes: one plain, visible file name, unchanged as an
/// object key.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NAME
        && !n.starts_with('.')
        && !n.chars().any(|c| c == '/' || c == '\\' || c.is_control())
        && quarry_objects::unpublishable_name(n).is_none()
}

/// Letters, digits, `_` and `-`: never a `.`, so `.<name>.<version>.part` parses back.
fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_VERSION
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// Why a manifest entry cannot be fetched (its name and version become file names here).
fn invalid_entry(name: &str, e: &Entry) -> Option<String> {
    if let Some(why) = quarry_objects::unpublishable_name(name) {
        Some(why)
    } else if !valid_name(name) {
        Some(format!(
            "dataset name {name:?}: not a file name of 1 to {MAX_NAME} bytes without '/', '\\', \
             control characters or a leading '.'"
        ))
    } else if !valid_version(&e.version) {
        Some(format!(
            "version {:?}: not 1 to {MAX_VERSION} letters, digits, '_' or '-'",
            e.version
        ))
    } else if e.sha256.len() != 64 || !e.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(format!("sha256 {:?} is not 64 hex digits", e.sha256))
    } else {
        None
    }
}

/// `(name, version)` of a `.<name>.<version>.part` file name.
fn parse_part(file_name: &str) -> Option<(&str, &str)> {
    let (name, version) = file_name
        .strip_prefix('.')?
        .strip_suffix(".part")?
        .rsplit_once('.')?;
    (valid_name(name) && valid_version(version)).then_some((name, version))
}

impl Fetcher {
    /// Notes that `entry`'s bytes were refused; returns the pause before the next download.
    fn refuse(&mut self, name: &str, entry: &Entry) -> Duration {
        let backoff = match self.refused.get(name) {
            Some(r) if r.entry == *entry => (r.backoff * 2).min(REFUSED_MAX),
            _ => REFUSED_FIRST,
        };
        self.refused.insert(
            name.to_string(),
            Refused {
                entry: entry.clone(),
                retry_at: Instant::now() + backoff,
                backoff,
            },
        );
        backoff
    }

    /// One pass over the cache per poll: deletes every `.part` that is not of a pending
    /// version (a dataset gone from the manifest, a version replaced or rolled back) and every
    /// meta left half-written by a crash, and sums the cached files for the cache limit.
    fn scan_cache(&mut self, pending: &BTreeMap<String, Entry>) {
        self.cached_total = 0;
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.filter_map(Result::ok) {
            let file_name = e.file_name();
            let Some(n) = file_name.to_str() else {
                continue;
            };
            if !n.starts_with('.') && n.ends_with(".qry") {
                self.cached_total += e.metadata().map_or(0, |m| m.len());
            } else if n.starts_with('.') && n.ends_with(".meta.json.tmp") {
                let _ = std::fs::remove_file(e.path());
            } else if n.starts_with('.') && n.ends_with(".part") {
                match parse_part(n) {
                    Some((name, version))
                        if pending.get(name).is_some_and(|p| p.version == version) => {}
                    _ => {
                        info!(file = %e.path().display(), "deleting a partial download no pending version needs");
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
    }

    fn meta_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!(".{name}.meta.json"))
    }

    fn file_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.qry"))
    }

    fn update_cache_gauge(&self) {
        self.status
            .cache_bytes
            .set(i64::try_from(self.cached_total).unwrap_or(i64::MAX));
    }

    fn wake_loader(&self) {
        let _ = (&self.wake).write(&[1]);
    }

    async fn run(&mut self, interval: Duration) {
        loop {
            let clean = self.poll().await;
            let wait = if clean && self.status.first_sync_done.load(Ordering::Relaxed) {
                if interval.is_zero() {
                    info!("--reload-interval 0s: the fetcher stops polling");
                    return;
                }
                interval
            } else if interval.is_zero() {
                Duration::from_secs(5)
            } else {
                interval.min(Duration::from_secs(5))
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One poll; `true` when everything in the manifest is cached.
    async fn poll(&mut self) -> bool {
        // Test builds: `QUARRY_FAULT_FETCHER=1` panics the poll after the first sync.
        #[cfg(feature = "fault-injection")]
        if std::env::var_os("QUARRY_FAULT_FETCHER").is_some()
            && self.status.first_sync_done.load(Ordering::Acquire)
        {
            panic!("injected fault in the fetcher");
        }
        let manifest = match self.read_manifest().await {
            Ok(m) => {
                self.status.lock().manifest_error = None;
                m
            }
            Err(f) => {
                let then = if self.installed.is_empty() {
                    "nothing is served until it can be read"
                } else {
                    "the cached datasets keep serving"
                };
                error!(source = %self.source.url, object = %self.source.url_of(MANIFEST), reason = f.reason, error = %f.message, "cannot use the manifest; {then}");
                // The reason before the count: whoever sees the count can read why.
                self.status.lock().manifest_error = Some(f.message);
                self.status.fail(f.reason);
                return false;
            }
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.status.last_poll.set(now);
        // What the cache lacks: the manifest's versions not installed (bad entries aside).
        let pending: BTreeMap<String, Entry> = manifest
            .datasets
            .iter()
            .filter(|(n, e)| {
                !manifest.invalid.contains_key(n.as_str())
                    && self.installed.get(n.as_str()) != Some(e)
            })
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect();
        self.scan_cache(&pending);
        self.refused.retain(|n, r| pending.get(n) == Some(&r.entry));
        let started = Instant::now();
        let todo: Vec<(String, Entry)> = pending
            .iter()
            .filter(|(n, _)| self.refused.get(*n).is_none_or(|r| started >= r.retry_at))
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect();
        {
            let mut inner = self.status.lock();
            inner.expected = manifest.datasets.keys().cloned().collect();
            // A dataset served at the manifest's version has no error (after a rollback to
            // the cached version too); a refused one keeps its error until it is retried.
            inner
                .errors
                .retain(|n, _| pending.contains_key(n) || manifest.invalid.contains_key(n));
            inner.started = Some(started);
            inner.rate_bytes_per_s = 0.0;
        }
        let mut clean = todo.len() == pending.len() && manifest.invalid.is_empty();
        for (name, why) in &manifest.invalid {
            let message = format!("{}: {why}", self.source.url_of(MANIFEST));
            // Reported once per change, not once per poll.
            if self.reported_invalid.get(name) != Some(&message) {
                error!(dataset = %name, object = %self.source.url_of(MANIFEST), reason = "malformed_manifest", error = %why, old_version_serving = self.installed.contains_key(name), "manifest entry refused; the other datasets are fetched");
                self.status
                    .lock()
                    .errors
                    .insert(name.clone(), message.clone());
                self.status.fail("malformed_manifest");
                self.reported_invalid.insert(name.clone(), message);
            }
        }
        self.reported_invalid
            .retain(|n, _| manifest.invalid.contains_key(n));
        self.status
            .bytes_total
            .store(todo.iter().map(|(_, e)| e.size).sum(), Ordering::Relaxed);
        self.status.bytes_done.store(0, Ordering::Relaxed);
        for (name, entry) in &todo {
            match self.fetch(name, entry).await {
                Ok(()) => {
                    self.status.lock().errors.remove(name);
                    self.refused.remove(name);
                }
                Err(f) => {
                    clean = false;
                    let object = self.source.url_of(&entry.path);
                    let serving = self.installed.contains_key(name);
                    // An object refused for its bytes is downloaded again only after a
                    // growing pause (unless the manifest names another): never in a loop.
                    let retry_in = matches!(f.reason, "checksum_mismatch" | "size_mismatch")
                        .then(|| self.refuse(name, entry));
                    error!(dataset = %name, version = %entry.version, object = %object, reason = f.reason, error = %f.message, old_version_serving = serving, retry_in_s = retry_in.map(|d| d.as_secs()), "dataset version not fetched");
                    self.status
                        .lock()
                        .errors
                        .insert(name.clone(), format!("{object}: {}", f.message));
                    self.status.fail(f.reason);
                }
            }
        }
        let behind = manifest
            .datasets
            .iter()
            .filter(|(n, e)| self.installed.get(n.as_str()) != Some(e))
            .count();
        self.status
            .behind
            .set(i64::try_from(behind).unwrap_or(i64::MAX));
        // Datasets no longer published stop serving.
        let gone: Vec<String> = self
            .installed
            .keys()
            .filter(|n| !manifest.datasets.contains_key(n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            info!(dataset = %name, "dataset no longer in the manifest: removed from the cache");
            let _ = std::fs::remove_file(self.file_path(&name));
            let _ = std::fs::remove_file(self.meta_path(&name));
            if let Some(e) = self.installed.remove(&name) {
                self.cached_total = self.cached_total.saturating_sub(e.size);
            }
            self.wake_loader();
        }
        // Readiness does not wait for the flush: the loader already serves these files.
        if !self.status.first_sync_done.swap(true, Ordering::AcqRel) {
            info!(
                datasets = manifest.datasets.len(),
                failed = !clean,
                "first sync from the source finished"
            );
            self.wake_loader();
        }
        self.sync_installed();
        self.update_cache_gauge();
        clean
    }

    async fn read_manifest(&mut self) -> Result<Manifest, Failure> {
        if let Some(why) = self.source.missing_credentials() {
            return Err(failure("credentials", why));
        }
        let key = self
            .source
            .key(MANIFEST)
            .map_err(|e| failure("source", e.to_string()))?;
        let validator = if self.conditional_reads + 1 >= UNCONDITIONAL_READ_EVERY {
            None
        } else {
            self.manifest.as_ref().and_then(|(etag, _)| etag.clone())
        };
        self.conditional_reads = if validator.is_some() {
            self.conditional_reads + 1
        } else {
            0
        };
        let opts = GetOptions {
            if_none_match: validator,
            ..Default::default()
        };
        let got = match self.source.store.get_opts(&key, opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotModified { .. }) => {
                if let Some((_, m)) = &self.manifest {
                    return Ok(m.clone());
                }
                return Err(failure(
                    "origin",
                    "304 Not Modified without a manifest read before",
                ));
            }
            Err(e) => {
                let reason = match classify(&e) {
                    "missing_object" => "missing_manifest",
                    r => r,
                };
                return Err(failure(reason, describe(&e)));
            }
        };
        let modified_secs = got.meta.last_modified.timestamp();
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let etag = if now_secs.saturating_sub(modified_secs) >= FRESH_WRITE.as_secs() as i64 {
            got.meta.e_tag.clone()
        } else {
            None
        };
        // Read at most MAX_MANIFEST bytes, whatever the origin says the length is: a wrong
        // URL or a hostile origin must not make the fetcher allocate without bound.
        let too_big = |n: u64| {
            failure(
                "malformed_manifest",
                format!("{n} bytes or more, more than the {MAX_MANIFEST} a manifest may have"),
            )
        };
        if got.meta.size > MAX_MANIFEST {
            return Err(too_big(got.meta.size));
        }
        let mut bytes = Vec::new();
        let mut body = got.into_stream();
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| failure(classify(&e), describe(&e)))?;
            if (bytes.len() + piece.len()) as u64 > MAX_MANIFEST {
                return Err(too_big((bytes.len() + piece.len()) as u64));
            }
            bytes.extend_from_slice(&piece);
        }
        let mut m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| failure("malformed_manifest", format!("not a manifest: {e}")))?;
        if m.format != 1 {
            return Err(failure(
                "malformed_manifest",
                format!("format {} (this server reads format 1)", m.format),
            ));
        }
        for (name, e) in &mut m.datasets {
            // SHA-256 is compared as the lowercase hex this fetcher computes.
            e.sha256.make_ascii_lowercase();
            let bad = invalid_entry(name, e)
                .or_else(|| self.source.key(&e.path).err().map(|err| err.to_string()));
            if let Some(bad) = bad {
                m.invalid.insert(name.clone(), bad);
            }
        }
        self.manifest = Some((etag, m.clone()));
        Ok(m)
    }

    /// Downloads, verifies and installs one dataset version.
    async fn fetch(&mut self, name: &str, entry: &Entry) -> Result<(), Failure> {
        let key = self
            .source
            .key(&entry.path)
            .map_err(|e| failure("malformed_manifest", e.to_string()))?;
        let head = self.source.store.head(&key).await.map_err(|e| {
            let reason = classify(&e);
            let msg = if reason == "missing_object" {
                format!(
                    "the manifest names version {} but the object does not exist",
                    entry.version
                )
            } else {
                describe(&e)
            };
            failure(reason, msg)
        })?;
        if head.size != entry.size {
            return Err(failure(
                "size_mismatch",
                format!(
                    "the object has {} bytes, the manifest says {} (truncated or overwritten): refused",
                    head.size, entry.size
                ),
            ));
        }
        // Partial downloads do not count: one that cannot finish would otherwise hold every
        // other dataset's update back (the volume's free space below still counts them).
        let others = self.cached_total;
        if others.saturating_add(entry.size) > self.max_bytes {
            return Err(failure(
                "cache_full",
                format!(
                    "version {} ({} bytes) does not fit in the cache beside the {others} bytes \
                     cached (--cache-max-bytes {}); the cached version keeps serving",
                    entry.version, entry.size, self.max_bytes
                ),
            ));
        }
        let part = part_path(&self.dir, name, &entry.version);
        let io_err = |what: &str, e| cache_failure(format!("{what} {}", part.display()), e);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&part)
            .map_err(|e| io_err("opening", e))?;
        // The bytes of an earlier attempt (a failed poll, a restart, or a cached file whose
        // writeback was never confirmed) are hashed again, not trusted.
        let mut hasher = Sha256::new();
        let resumed =
            resume(&mut file, &mut hasher, entry.size).map_err(|e| io_err("reading", e))?;
        if resumed > 0 {
            info!(dataset = %name, version = %entry.version, bytes = resumed, "resuming a partial download");
        }
        let free = rustix::fs::statvfs(&self.dir)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .unwrap_or(u64::MAX);
        if entry.size - resumed > free {
            return Err(failure(
                "cache_full",
                format!(
                    "version {} needs {} more bytes and the cache volume has {free} free; the \
                     cached version keeps serving",
                    entry.version,
                    entry.size - resumed
                ),
            ));
        }
        self.status.bytes_done.fetch_add(resumed, Ordering::Relaxed);
        let (file, got) = match self
            .transfer(&key, name, entry, file, hasher, resumed)
            .await?
        {
            (file, got) if got != entry.sha256 && resumed > 0 => {
                // The resumed bytes were wrong (a torn write before a crash, a changed disk):
                // one fresh download before calling the object bad.
                warn!(dataset = %name, version = %entry.version, bytes = resumed, "the resumed bytes do not hash to the manifest's SHA-256; downloading the whole object again");
                let mut file = file;
                file.set_len(0).map_err(|e| io_err("truncating", e))?;
                file.seek(std::io::SeekFrom::Start(0))
                    .map_err(|e| io_err("seeking", e))?;
                self.transfer(&key, name, entry, file, Sha256::new(), 0)
                    .await?
            }
            done => done,
        };
        if got != entry.sha256 {
            drop(file);
            let _ = std::fs::remove_file(&part);
            return Err(failure(
                "checksum_mismatch",
                format!(
                    "SHA-256 of the downloaded bytes is {got}, the manifest says {}: refused",
                    entry.sha256
                ),
            ));
        }
        // No fsync before the rename: the loader maps the file from the page cache, and the
        // meta file marks it unsynced until `sync_installed` has flushed it, so a crash before
        // that leaves a file that `prepare_cache` hashes again instead of trusting.
        // The writable descriptor is closed before the loader maps the file: a read lease
        // cannot be taken on a file open for writing.
        drop(file);
        // The meta names the new version before the rename: a crash in between leaves the
        // old file under an unsynced record of the new version, hashed (and refused) before
        // it serves, never the old record trusted for the new file.
        let dest = self.file_path(name);
        if !self.write_meta(name, entry, false) {
            // No record at all rather than the old one, which could vouch for the new file:
            // a restart deletes an unrecorded file and downloads it again.
            let _ = std::fs::remove_file(self.meta_path(name));
        }
        std::fs::rename(&part, &dest).map_err(|e| {
            failure(
                "cache_io",
                format!("renaming {} to {}: {e}", part.display(), dest.display()),
            )
        })?;
        let replaced = self.installed.insert(name.to_string(), entry.clone());
        self.cached_total =
            (self.cached_total + entry.size).saturating_sub(replaced.map_or(0, |e| e.size));
        info!(dataset = %name, version = %entry.version, bytes = entry.size, object = %self.source.url_of(&entry.path), "dataset version fetched and verified");
        self.wake_loader();
        self.unsynced.push((name.to_string(), entry.clone()));
        Ok(())
    }

    /// Downloads the bytes of `entry` after the `have` already in `file`, retrying interrupted
    /// ranges; returns the file and the SHA-256 (hex) of all its bytes.
    async fn transfer(
        &self,
        key: &Path,
        name: &str,
        entry: &Entry,
        file: std::fs::File,
        hasher: Sha256,
        have: u64,
    ) -> Result<(std::fs::File, String), Failure> {
        let sink_err = |e| cache_failure("writing the cache".to_string(), e);
        let mut sink = Sink::start(file, hasher, have).map_err(sink_err)?;
        let mut pushed = have;
        let mut attempt = 0;
        let mut failed = None;
        while pushed < entry.size {
            match self.download(key, &mut sink, &mut pushed, entry.size).await {
                Ok(()) => {}
                Err(f) if f.reason == "origin" && attempt + 1 < RANGE_ATTEMPTS => {
                    attempt += 1;
                    let ms = 200u64 << attempt;
                    let jitter = u64::from(std::process::id().wrapping_mul(attempt)) % ms;
                    warn!(dataset = %name, object = %self.source.url_of(&entry.path), bytes_received = pushed, attempt, error = %f.message, "download interrupted; resuming from the bytes received");
                    tokio::time::sleep(Duration::from_millis(ms + jitter)).await;
                }
                Err(f) if f.reason == SINK_STOPPED => break,
                Err(f) => {
                    failed = Some(f);
                    break;
                }
            }
        }
        // Joined on every path: the next attempt reads the `.part` this thread writes.
        let end = sink.finish().map_err(sink_err)?;
        if let Some(e) = end.error {
            return Err(sink_err(e));
        }
        if let Some(f) = failed {
            return Err(f);
        }
        if end.written != entry.size {
            return Err(failure(
                "cache_io",
                format!("wrote {} bytes of {} to the cache", end.written, entry.size),
            ));
        }
        Ok((end.file, hex(&end.hasher.finalize())))
    }

    /// Ranged GETs from `pushed` to `size`, [`IN_FLIGHT`] at once, handed to the disk thread
    /// in order: the oldest range's body goes to the disk as it arrives (in batches of
    /// [`BATCH`] bytes), the younger ones are held until it is done.
    async fn download(
        &self,
        key: &Path,
        sink: &mut Sink,
        pushed: &mut u64,
        size: u64,
    ) -> Result<(), Failure> {
        let mut requested = *pushed;
        let mut ranges = std::collections::VecDeque::new();
        loop {
            while ranges.len() < IN_FLIGHT && requested < size {
                let end = (requested + CHUNK).min(size);
                ranges.push_back(self.request_range(key, requested..end));
                requested = end;
            }
            let Some(mut head) = ranges.pop_front() else {
                return Ok(());
            };
            let mut got = 0u64;
            let mut batch = Vec::new();
            let mut batched = 0u64;
            loop {
                let piece = match head.body.recv().await {
                    Some(Ok(b)) => Some(b),
                    Some(Err(e)) => return Err(failure(classify(&e), describe(&e))),
                    None => None,
                };
                let last = piece.is_none();
                if let Some(b) = piece {
                    got += b.len() as u64;
                    if got > head.range.end - head.range.start {
                        break;
                    }
                    batched += b.len() as u64;
                    batch.push(b);
                }
                if batched >= BATCH || (last && batched > 0) {
                    if sink.push(std::mem::take(&mut batch)).await.is_err() {
                        return Err(failure(SINK_STOPPED, "the disk thread stopped"));
                    }
                    *pushed += batched;
                    self.progress(batched);
                    batched = 0;
                }
                if last {
                    break;
                }
            }
            if got != head.range.end - head.range.start {
                return Err(failure(
                    "size_mismatch",
                    format!(
                        "the range {}..{} came back with {}{got} bytes (truncated or \
                         replaced object)",
                        head.range.start,
                        head.range.end,
                        if got > head.range.end - head.range.start {
                            "at least "
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
    }

    /// Starts one ranged GET on the runtime; its body arrives on the returned channel, an
    /// error as its last item. The channel holds at most the range's bytes and one piece: a
    /// body longer than its range ends there (the reader reports the excess).
    fn request_range(&self, key: &Path, range: std::ops::Range<u64>) -> RangeGet {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let store = self.source.store.clone();
        let key = key.clone();
        let opts = GetOptions {
            range: Some(range.clone().into()),
            ..Default::default()
        };
        let len = range.end - range.start;
        let task = tokio::spawn(async move {
            let got = match store.get_opts(&key, opts).await {
                Ok(got) => got,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            if let object_store::GetResultPayload::File(..) = got.payload {
                // A local file: one read of the range, not a stream of small blocking reads.
                let _ = tx.send(got.bytes().await);
                return;
            }
            let mut received = 0u64;
            let mut body = got.into_stream();
            while let Some(piece) = body.next().await {
                let failed = piece.is_err();
                received += piece.as_ref().map_or(0, |b| b.len() as u64);
                // A closed channel: the download was abandoned.
                if tx.send(piece).is_err() || failed || received > len {
                    return;
                }
            }
        });
        RangeGet {
            range,
            body: rx,
            task,
        }
    }

    fn progress(&self, bytes: u64) {
        self.status.downloaded.inc_by(bytes);
        let done = self.status.bytes_done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let mut inner = self.status.lock();
        if let Some(t) = inner.started {
            let s = t.elapsed().as_secs_f64();
            if s > 0.0 {
                inner.rate_bytes_per_s = done as f64 / s;
            }
        }
    }

    /// Records what `<name>.qry` holds; `synced`: its bytes are known to be on disk. `false`
    /// when the record could not be written (logged).
    fn write_meta(&self, name: &str, entry: &Entry, synced: bool) -> bool {
        let meta = CacheMeta {
            entry: entry.clone(),
            synced,
        };
        let path = self.meta_path(name);
        // Written whole under a temporary name and renamed: a crash leaves the old record or
        // the new one, never an empty one.
        let tmp = self.dir.join(format!(".{name}.meta.json.tmp"));
        let written = serde_json::to_vec(&meta)
            .map_err(std::io::Error::other)
            .and_then(|b| {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&b)?;
                if synced {
                    f.sync_all()?;
                }
                std::fs::rename(&tmp, &path)
            });
        if let Err(e) = written {
            warn!(dataset = %name, error = %e, "cannot record the cached version (a restart checks or downloads it again)");
            return false;
        }
        true
    }

    /// Flushes the files installed by this poll, then marks them synced: the loader already
    /// serves them, so the flush delays no request, and a restart trusts a synced file without
    /// hashing it again.
    fn sync_installed(&mut self) {
        let mut any = false;
        for (name, entry) in std::mem::take(&mut self.unsynced) {
            if self.installed.get(&name) != Some(&entry) {
                continue;
            }
            // Read-only: fsync needs no write access, and a writer would break the loader's
            // read lease.
            match std::fs::File::open(self.file_path(&name)).and_then(|f| f.sync_all()) {
                Ok(()) => {
                    self.write_meta(&name, &entry, true);
                    any = true;
                }
                Err(e) => {
                    warn!(dataset = %name, version = %entry.version, error = %e, "fsync of the cached file failed; a restart hashes it again before serving it");
                }
            }
        }
        if any {
            if let Ok(d) = std::fs::File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
    }
}

/// One ranged GET in flight: its body's channel, and its task, aborted when this is dropped
/// (a download that failed or ended leaves no request waiting on the origin).
struct RangeGet {
    range: std::ops::Range<u64>,
    body: tokio::sync::mpsc::UnboundedReceiver<object_store::Result<bytes::Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RangeGet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reason of a download stopped because the disk thread failed (its error is the one
/// reported).
const SINK_STOPPED: &str = "sink_stopped";

/// `<cache-dir>/.<name>.<version>.part`: a download in progress, or a cached file waiting to be
/// hashed again; the loader never maps dot-files.
fn part_path(dir: &FsPath, name: &str, version: &str) -> PathBuf {
    dir.join(format!(".{name}.{version}.part"))
}

/// The dataset versions a previous run left in `--cache-dir`, flushed and trusted.
pub struct Cached(BTreeMap<String, Entry>);

/// Readies `--cache-dir` before any loader looks at it: a `<name>.qry` whose meta says it was
/// flushed stays (and is returned); one that was renamed into place but never confirmed flushed
/// (a crash or a kill soon after its download) becomes the `.part` of its version again, so the
/// fetcher hashes it against the manifest before it serves; one without a readable meta is
/// deleted.
pub fn prepare_cache(dir: &FsPath) -> anyhow::Result<Cached> {
    let mut kept = BTreeMap::new();
    let rd = std::fs::read_dir(dir)
        .with_context(|| format!("reading the cache directory {}", dir.display()))?;
    for e in rd.filter_map(Result::ok) {
        let file_name = e.file_name();
        let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".qry")) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let meta_path = dir.join(format!(".{name}.meta.json"));
        let meta: Option<CacheMeta> = std::fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let size = e.metadata().map(|m| m.len()).ok();
        match meta {
            Some(m) if m.synced && Some(m.entry.size) == size => {
                kept.insert(name.to_string(), m.entry);
            }
            Some(m) if valid_name(name) && valid_version(&m.entry.version) => {
                let part = part_path(dir, name, &m.entry.version);
                info!(dataset = %name, version = %m.entry.version, "cached file not known to be flushed: hashed again before it serves");
                std::fs::rename(e.path(), &part).with_context(|| {
                    format!("renaming {} to {}", e.path().display(), part.display())
                })?;
                let _ = std::fs::remove_file(&meta_path);
            }
            _ => {
                warn!(file = %e.path().display(), "cached file without a readable record of its version: deleted");
                std::fs::remove_file(e.path())
                    .with_context(|| format!("deleting {}", e.path().display()))?;
                let _ = std::fs::remove_file(&meta_path);
            }
        }
    }
    Ok(Cached(kept))
}

/// `.<name>.meta.json`: the manifest entry a cached `<name>.qry` holds.
#[derive(Debug, Serialize, Deserialize)]
struct CacheMeta {
    #[serde(flatten)]
    entry: Entry,
    /// Written `true` only after the file was fsynced; absent (older caches) means `false`.
    #[serde(default)]
    synced: bool,
}

/// A failed cache read or write: `cache_full` when the volume is out of space.
fn cache_failure(what: String, e: std::io::Error) -> Failure {
    let reason = if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
        "cache_full"
    } else {
        "cache_io"
    };
    failure(reason, format!("{what}: {e}"))
}

/// Hashes what a previous attempt left in `file` and positions it at its end; a `.part`
/// longer than the object is discarded.
fn resume(file: &mut std::fs::File, hasher: &mut Sha256, size: u64) -> std::io::Result<u64> {
    use std::io::Seek;
    let len = file.metadata()?.len();
    if len > size {
        file.set_len(0)?;
        file.seek(std::io::SeekFrom::Start(0))?;
        return Ok(0);
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    file.seek(std::io::SeekFrom::Start(0))?;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        read += n as u64;
    }
    Ok(read)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_parse_back_to_their_dataset_and_version() {
        assert_eq!(parse_part(".a.v1.part"), Some(("a", "v1")));
        assert_eq!(parse_part(".a.b.v1.part"), Some(("a.b", "v1")));
        assert_eq!(
            parse_part(".Orders 2024.0af3.part"),
            Some(("Orders 2024", "0af3"))
        );
        assert_eq!(parse_part(".a.part"), None);
        assert_eq!(parse_part("a.v1.part"), None);
        assert_eq!(parse_part(".a.v1.part.tmp"), None);
        assert_eq!(parse_part("..v1.part"), None);
    }

    #[test]
    fn the_longest_name_and_version_still_make_a_file_name() {
        let part = part_path(
            FsPath::new("/"),
            &"n".repeat(MAX_NAME),
            &"v".repeat(MAX_VERSION),
        );
        assert_eq!(part.file_name().map(|n| n.len()), Some(255));
    }
}
