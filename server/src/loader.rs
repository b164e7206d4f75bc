//! Loading and reloading datasets on loop 0, in slices that never stall it, into the one
//! catalog every loop serves from.
//!
//! A pass lists `--data-dir`, and for every `<name>.qry` whose identity (device, inode, size,
//! mtime) differs from the version being served, maps it, opens it, verifies it (`--verify
//! full`: 8 MiB of checksums per step, yielding between steps), warms it (`--warm`), then puts it
//! in the loader's working catalog. Whatever the work (listing, stat, open, map, footer parse,
//! metadata), the loader yields to the loop once it has run for `SLICE_TIME`, so thousands of
//! small files cost the loop no more than one big one. The working catalog is published (one
//! `ArcSwap` store, seen by every loop at its next request) at most every `PUBLISH_EVERY` during
//! a pass and at its end. Requests in flight hold an `Arc` of the old version and finish on it.
//! A file that fails leaves the old version serving. Removed files stop serving.
//!
//! Mappings: one per served version per process, counted against a limit derived from
//! `vm.max_map_count` (or `--max-mapped-datasets`); a file past it fails, named, and is not mapped.
//!
//! Files changed under the map: a read lease where the kernel grants one (SIGIO wakes the
//! loader, the version stops serving, its map is dropped when the last request ends, and only
//! then can the writer proceed); without a lease, a pass that sees the served inode with another
//! size or mtime. Either way the dataset is `Modified` and the process unready until a new file
//! (another identity) loads under that name. The first pass decides readiness; see `Readiness`.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use monoio::net::UnixStream;
use quarry_format::{MappedFile, QuarryFile, Step};
use tracing::{debug, error, info, warn};

use crate::catalog::{Catalog, LoadState, Readiness};
use crate::config::VerifyMode;
use crate::dataset::{Dataset, FileIdentity, MapCount};
use crate::metrics::{DatasetLabel, DatasetVersionLabel};
use crate::state::LoopCtx;

/// Bytes verified or warmed per loop turn.
const SLICE_BYTES: usize = 8 << 20;
const PAGE_BYTES: usize = 4096;
/// Loader work between two yields to the loop (files listed, stat'ed, opened, parsed).
const SLICE_TIME: Duration = Duration::from_millis(1);
/// During a pass, the working catalog is published at most this often (each publication
/// copies the catalog's maps: O(datasets)).
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Mappings left to everything else (heap arenas, large allocations, stacks, libraries) when
/// the dataset limit is derived from `vm.max_map_count`.
const MAP_RESERVE: usize = 4096;

/// Whether read leases were refused once (logged once per process).
static LEASE_REFUSAL_LOGGED: AtomicBool = AtomicBool::new(false);
static LEASE_LIMIT_LOGGED: AtomicBool = AtomicBool::new(false);

/// Leases (one descriptor each) at most: half the soft `RLIMIT_NOFILE`, leaving the rest to
/// connections.
fn lease_limit() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<usize>().ok())
        })
        .unwrap_or(1024);
    soft / 2
}

/// How many datasets may be mapped at once: `--max-mapped-datasets`, else `vm.max_map_count`
/// minus the mappings the process has now minus `MAP_RESERVE`.
pub fn map_limit(configured: usize) -> (usize, String) {
    if configured > 0 {
        return (configured, "--max-mapped-datasets".to_string());
    }
    let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(65_530);
    let now = std::fs::read_to_string("/proc/self/maps")
        .map(|s| s.lines().count())
        .unwrap_or(1024);
    (
        max.saturating_sub(now + MAP_RESERVE),
        format!(
            "vm.max_map_count {max} minus {now} mappings at startup and a reserve of {MAP_RESERVE}"
        ),
    )
}

struct Loader {
    ctx: Rc<LoopCtx>,
    /// What the next publication will be; only the loader changes it.
    work: Catalog,
    dirty: bool,
    last_publish: Instant,
    slice_start: Instant,
    map_limit: usize,
    map_limit_why: String,
    lease_limit: usize,
}

/// Initial load, then a pass every `--reload-interval`, on every SIGHUP and on every SIGIO
/// (a lease being broken).
pub async fn run(ctx: Rc<LoopCtx>, hup: UnixStream, sigio: UnixStream) {
    let (map_limit, map_limit_why) = map_limit(ctx.config.max_mapped_datasets);
    info!(limit = map_limit, reason = %map_limit_why, "datasets that may be mapped at once");
    let mut loader = Loader {
        ctx: ctx.clone(),
        work: Catalog::default(),
        dirty: false,
        last_publish: Instant::now(),
        slice_start: Instant::now(),
        map_limit,
        map_limit_why,
        lease_limit: lease_limit(),
    };
    loader.pass().await;
    let mut hup_wait = Box::pin(crate::server::next_control_byte(hup));
    let mut io_wait = Box::pin(crate::server::next_control_byte(sigio));
    loop {
        let interval = ctx.config.reload_interval;
        let sleep_for = if interval.is_zero() {
            Duration::from_secs(86_400)
        } else {
            interval
        };
        monoio::select! {
            s = &mut hup_wait => {
                info!(loop_index = ctx.index, "reloading datasets (SIGHUP, or the fetcher installed a version)");
                hup_wait = Box::pin(crate::server::next_control_byte(s));
            },
            s = &mut io_wait => {
                debug!("SIGIO: checking read leases");
                io_wait = Box::pin(crate::server::next_control_byte(s));
                if !ctx.draining() {
                    loader.check_leases().await;
                }
                continue;
            },
            _ = monoio::time::sleep(sleep_for) => {
                if interval.is_zero() {
                    continue;
                }
            },
        }
        if ctx.draining() {
            continue;
        }
        crate::auth::reload_if_changed(&ctx);
        loader.pass().await;
    }
}

/// `<name>.qry` files of the directory (dot-files and others ignored), sorted by name.
async fn list_dir(loader: &mut Loader, dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        loader.maybe_yield().await;
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            warn!(file = ?entry.path(), "ignoring a file whose name is not UTF-8");
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        if let Some(name) = file_name.strip_suffix(".qry") {
            if !name.is_empty() {
                out.push((name.to_string(), entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Loader {
    /// Ends a slice of loader work once it has run for `SLICE_TIME`.
    async fn maybe_yield(&mut self) {
        if self.slice_start.elapsed() < SLICE_TIME {
            return;
        }
        if self.dirty && self.last_publish.elapsed() >= PUBLISH_EVERY {
            self.publish();
        }
        self.ctx.next_slice().await;
        self.slice_start = Instant::now();
    }

    /// Makes the working catalog the one every loop serves.
    fn publish(&mut self) {
        self.work.seal();
        self.ctx.shared_catalog.store(Arc::new(self.work.clone()));
        self.dirty = false;
        self.last_publish = Instant::now();
    }

    async fn pass(&mut self) {
        let ctx = self.ctx.clone();
        let dir = ctx.config.dataset_dir();
        self.slice_start = Instant::now();
        let files = match list_dir(self, dir).await {
            Ok(f) => f,
            Err(e) => {
                error!(data_dir = %dir.display(), error = %e, "cannot list the data directory; serving what is loaded");
                if self.work.readiness == Readiness::Starting {
                    self.work.readiness = Readiness::Failed;
                    self.publish();
                }
                return;
            }
        };
        // With --source the cache is empty until the first download; the fetcher holds
        // readiness meanwhile (fetch.rs).
        if files.is_empty()
            && self.work.readiness == Readiness::Starting
            && ctx.config.source.is_none()
        {
            warn!(data_dir = %dir.display(), "no *.qry files in the data directory: ready with zero datasets");
        }
        for (name, path) in &files {
            self.maybe_yield().await;
            if ctx.draining() {
                return;
            }
            self.consider(name, path).await;
        }
        // Removed files stop serving.
        // Both sorted by name: one merge walk, yielding like the rest of the pass.
        let known: Vec<Arc<str>> = self.work.states.keys().cloned().collect();
        let mut gone = Vec::new();
        let mut j = 0;
        for (i, name) in known.into_iter().enumerate() {
            while j < files.len() && files[j].0.as_str() < &*name {
                j += 1;
            }
            if files.get(j).is_none_or(|(f, _)| f.as_str() != &*name) {
                gone.push(name);
            }
            if i % 1024 == 1023 {
                self.maybe_yield().await;
            }
        }
        for name in gone {
            self.work.states.remove(&name);
            self.dirty = true;
            if let Some(old) = self.work.datasets.remove(&name) {
                info!(dataset = %name, version = %old.version_hex, "dataset file removed: no longer served");
                self.forget_metrics(&old);
            }
        }
        self.update_readiness();
        if self.dirty {
            self.publish();
        }
    }

    /// One listed file: unchanged, changed in place, or a new version to load.
    async fn consider(&mut self, name: &str, path: &Path) {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                let msg = format!("cannot stat {}: {e}", path.display());
                self.fail(name, None, msg);
                return;
            }
        };
        let identity = FileIdentity::of(&meta);
        let serving = self.work.datasets.get(name).cloned();
        if let Some(ds) = &serving {
            if ds.identity == identity {
                if ds.leased && ds.file.source().lease_broken() {
                    self.modified(name, ds, "was opened for writing or truncated");
                }
                return;
            }
            if ds.identity.same_inode(&identity) {
                let what = format!(
                    "changed in place (size {} -> {} bytes, or its mtime)",
                    ds.identity.len, identity.len
                );
                self.modified(name, ds, &what);
                return;
            }
        }
        // A failed file is retried once it changes; a file changed in place only once it is
        // another inode (a new version published by rename).
        let seen_before = match self.work.states.get(name) {
            Some(LoadState::Failed {
                identity: Some(id), ..
            }) => *id == identity,
            Some(LoadState::Modified {
                identity: Some(id), ..
            }) => id.same_inode(&identity),
            _ => false,
        };
        if seen_before {
            return;
        }
        if !meta.is_file() {
            // A FIFO or device would block open(2) and with it the loop.
            let msg = format!("{} is not a regular file", path.display());
            self.fail(name, Some(identity), msg);
            return;
        }
        if serving.is_none() && !self.work.states.contains_key(name) {
            self.work.states.insert(name.into(), LoadState::Loading);
            self.dirty = true;
        }
        match self.load(name, path, identity).await {
            Ok(ds) => self.publish_dataset(ds),
            Err(msg) => self.fail(name, Some(identity), msg),
        }
    }

    /// Stops serving `ds` (changed under its map): the process turns unready.
    fn modified(&mut self, name: &str, ds: &Arc<Dataset>, what: &str) {
        let error = format!(
            "{} {what} while served; no longer served, unready until a new file is published by rename",
            ds.path.display()
        );
        error!(dataset = %name, version = %ds.version_hex, error = %error, "served dataset file changed in place: unready");
        self.ctx
            .metrics
            .dataset_reload_failures
            .get_or_create(&DatasetLabel {
                dataset: name.to_string(),
            })
            .inc();
        self.work.datasets.remove(name);
        self.forget_metrics(ds);
        self.work.states.insert(
            name.into(),
            LoadState::Modified {
                error,
                identity: Some(ds.identity),
            },
        );
        self.dirty = true;
        self.update_readiness();
    }

    /// After SIGIO: drops every served version whose lease is being broken, at once.
    async fn check_leases(&mut self) {
        let leased: Vec<Arc<Dataset>> = self
            .work
            .datasets
            .values()
            .filter(|d| d.leased)
            .cloned()
            .collect();
        for ds in leased {
            if ds.file.source().lease_broken() {
                let name = ds.name.clone();
                self.modified(&name, &ds, "was opened for writing or truncated");
                // Published at once: the writer waits until every loop drops this version.
                self.publish();
            }
            self.maybe_yield().await;
        }
        if self.dirty {
            self.publish();
        }
    }

    fn update_readiness(&mut self) {
        let before = self.work.readiness;
        let failures = self.work.unserved_failures();
        let after = if self.work.modified() {
            Readiness::Failed
        } else if before == Readiness::Ready {
            Readiness::Ready
        } else if failures.is_empty() {
            info!(datasets = self.work.datasets.len(), "ready");
            Readiness::Ready
        } else {
            Readiness::Failed
        };
        if after != before {
            self.work.readiness = after;
            self.dirty = true;
        }
    }

    fn fail(&mut self, name: &str, identity: Option<FileIdentity>, error: String) {
        let serving = self.work.datasets.contains_key(name);
        error!(
            dataset = %name,
            error = %error,
            old_version_serving = serving,
            "dataset failed to load"
        );
        self.ctx
            .metrics
            .dataset_reload_failures
            .get_or_create(&DatasetLabel {
                dataset: name.to_string(),
            })
            .inc();
        let state = match self.work.states.get(name) {
            // Still unready: the changed file has not been replaced by a good one.
            Some(LoadState::Modified { error: first, .. }) => LoadState::Modified {
                error: format!("{first}; then: {error}"),
                identity,
            },
            _ => LoadState::Failed {
                error,
                identity,
                serving,
            },
        };
        self.work.states.insert(name.into(), state);
        self.dirty = true;
    }

    fn publish_dataset(&mut self, ds: Dataset) {
        let ds = Arc::new(ds);
        let name: Arc<str> = ds.name.as_str().into();
        self.work.states.insert(name.clone(), LoadState::Ready);
        let old = self.work.datasets.insert(name, ds.clone());
        self.dirty = true;
        if let Some(old) = &old {
            self.forget_metrics(old);
        }
        info!(
            dataset = %ds.name,
            version = %ds.version_hex,
            previous_version = old.as_ref().map(|o| o.version_hex.as_str()).unwrap_or("none"),
            rows = ds.file.num_rows(),
            bytes = ds.file.file_len(),
            leased = ds.leased,
            "dataset serving"
        );
        let m = &self.ctx.metrics;
        let label = DatasetLabel {
            dataset: ds.name.clone(),
        };
        m.dataset_rows
            .get_or_create(&label)
            .set(i64::try_from(ds.file.num_rows()).unwrap_or(i64::MAX));
        m.dataset_bytes
            .get_or_create(&label)
            .set(i64::try_from(ds.file.file_len()).unwrap_or(i64::MAX));
        m.dataset_version
            .get_or_create(&DatasetVersionLabel {
                dataset: ds.name.clone(),
                version: ds.version_hex.clone(),
            })
            .set(1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        m.dataset_last_reload.get_or_create(&label).set(now);
    }

    fn forget_metrics(&self, old: &Dataset) {
        let m = &self.ctx.metrics;
        m.dataset_version.remove(&DatasetVersionLabel {
            dataset: old.name.clone(),
            version: old.version_hex.clone(),
        });
        if !self.work.datasets.contains_key(old.name.as_str()) {
            let label = DatasetLabel {
                dataset: old.name.clone(),
            };
            m.dataset_rows.remove(&label);
            m.dataset_bytes.remove(&label);
            m.dataset_last_reload.remove(&label);
        }
    }

    /// Maps, opens, verifies and warms one file, yielding to the loop between slices.
    async fn load(
        &mut self,
        name: &str,
        path: &Path,
        identity: FileIdentity,
    ) -> Result<Dataset, String> {
        let mapped_now = MapCount::live();
        if mapped_now >= self.map_limit {
            return Err(format!(
                "{} not mapped: {mapped_now} dataset versions are mapped and the limit is {} ({}); \
                 serve fewer datasets per pod or raise vm.max_map_count",
                path.display(),
                self.map_limit,
                self.map_limit_why
            ));
        }
        let mut mapped =
            MappedFile::open(path).map_err(|e| format!("cannot map {}: {e}", path.display()))?;
        let mut count = MapCount::acquire();
        let leased = if self.ctx.config.no_read_leases {
            false
        } else if MapCount::live_leases() >= self.lease_limit {
            if !LEASE_LIMIT_LOGGED.swap(true, Ordering::Relaxed) {
                warn!(dataset = %name, limit = self.lease_limit, "read leases hold one file descriptor each and half of RLIMIT_NOFILE is in use by them: further datasets are served without a lease (in-place changes detected by polling only)");
            }
            false
        } else {
            match mapped.take_read_lease() {
                Ok(()) => true,
                Err(e) => {
                    if !LEASE_REFUSAL_LOGGED.swap(true, Ordering::Relaxed) {
                        warn!(dataset = %name, error = %e, "no read lease on a dataset file (not its owner and no CAP_LEASE, or no leases on this filesystem): files changed in place are detected by polling only, and a truncation can still end the process with SIGBUS");
                    }
                    false
                }
            }
        };
        if leased {
            count.leased();
        } else {
            mapped.release_descriptor();
        }
        let file = QuarryFile::open(mapped)
            .map_err(|e| format!("{} is not a valid Quarry file: {e}", path.display()))?;
        if self.ctx.config.verify == VerifyMode::Full {
            let mut verifier = file.verifier();
            loop {
                match verifier.step(&file, SLICE_BYTES as u64) {
                    Ok(Step::More { .. }) => {
                        self.ctx.next_slice().await;
                        self.slice_start = Instant::now();
                    }
                    Ok(Step::Done) => break,
                    Err(e) => return Err(format!("{} failed verification: {e}", path.display())),
                }
                if self.ctx.draining() {
                    return Err("startup interrupted by shutdown".to_string());
                }
            }
        }
        // Here rather than on the first lookup, which would pay for it (string keys only).
        file.prepare_key_search();
        if self.ctx.config.warm {
            if let Err(e) = file.source().advise_willneed() {
                warn!(dataset = %name, error = %e, "madvise(WILLNEED) failed; touching pages anyway");
            }
            let bytes = file.bytes();
            let mut sum = 0u8;
            for chunk in bytes.chunks(SLICE_BYTES) {
                for page in chunk.iter().step_by(PAGE_BYTES) {
                    sum = sum.wrapping_add(*page);
                }
                std::hint::black_box(sum);
                self.ctx.next_slice().await;
                self.slice_start = Instant::now();
            }
        }
        Ok(Dataset::new(
            name.to_string(),
            path.to_path_buf(),
            identity,
            file,
            count,
            leased,
        ))
    }
}
