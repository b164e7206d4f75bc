//! Loading and reloading datasets on the loop, in slices that never stall it.
//!
//! A pass lists `--data-dir`, and for every `<name>.qry` whose identity (device, inode, size,
//! mtime) differs from the version being served, maps it, opens it, verifies it (`--verify
//! full`: 8 MiB of checksums per step, yielding between steps), warms it (`--warm`), then swaps
//! it in with one `BTreeMap::insert`. Requests in flight hold an `Arc` of the old version and
//! finish on it. A file that fails leaves the old version serving. Removed files stop serving.
//! The first pass decides readiness; see `Phase`.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use monoio::net::UnixStream;
use quarry_format::{MappedFile, QuarryFile, Step};
use tracing::{error, info, warn};

use crate::catalog::LoadState;
use crate::config::VerifyMode;
use crate::dataset::{Dataset, FileIdentity};
use crate::metrics::{DatasetLabel, DatasetVersionLabel};
use crate::state::{LoopCtx, Phase};

/// Bytes verified or warmed per loop turn.
const SLICE_BYTES: usize = 8 << 20;
const PAGE_BYTES: usize = 4096;

/// Initial load, then a pass every `--reload-interval` and on every SIGHUP.
pub async fn run(ctx: Rc<LoopCtx>, hup: UnixStream) {
    pass(&ctx).await;
    let mut hup_wait = Box::pin(crate::server::next_control_byte(hup));
    loop {
        let interval = ctx.config.reload_interval;
        let by_signal = if interval.is_zero() {
            Some((&mut hup_wait).await)
        } else {
            monoio::select! {
                s = &mut hup_wait => Some(s),
                _ = monoio::time::sleep(interval) => None,
            }
        };
        if let Some(stream) = by_signal {
            info!(loop_index = ctx.index, "SIGHUP: reloading datasets");
            hup_wait = Box::pin(crate::server::next_control_byte(stream));
        }
        if ctx.draining() {
            continue;
        }
        crate::auth::reload_if_changed(&ctx);
        pass(&ctx).await;
    }
}

/// `<name>.qry` files of the directory (dot-files and others ignored), sorted by name.
fn list_dir(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
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

async fn pass(ctx: &Rc<LoopCtx>) {
    let dir = &ctx.config.data_dir;
    let files = match list_dir(dir) {
        Ok(f) => f,
        Err(e) => {
            error!(data_dir = %dir.display(), error = %e, "cannot list the data directory; serving what is loaded");
            if ctx.phase.get() == Phase::Starting {
                ctx.phase.set(Phase::Failed);
            }
            return;
        }
    };
    if files.is_empty() && ctx.phase.get() == Phase::Starting {
        warn!(data_dir = %dir.display(), "no *.qry files in the data directory: ready with zero datasets");
    }
    for (name, path) in &files {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                fail(
                    ctx,
                    name,
                    None,
                    format!("cannot stat {}: {e}", path.display()),
                );
                continue;
            }
        };
        let identity = FileIdentity::of(&meta);
        let unchanged = {
            let cat = ctx.catalog.borrow();
            let serving = cat
                .datasets
                .get(name)
                .is_some_and(|d| d.identity == identity);
            let failed_before = matches!(
                cat.states.get(name),
                Some(LoadState::Failed { identity: Some(id), .. }) if *id == identity
            );
            serving || failed_before
        };
        if unchanged {
            continue;
        }
        if !meta.is_file() {
            // A FIFO or device would block open(2) and with it the loop.
            let msg = format!("{} is not a regular file", path.display());
            fail(ctx, name, Some(identity), msg);
            continue;
        }
        {
            let mut cat = ctx.catalog.borrow_mut();
            if !cat.datasets.contains_key(name) {
                cat.states.insert(name.clone(), LoadState::Loading);
            }
        }
        match load(ctx, name, path, identity).await {
            Ok(ds) => publish(ctx, ds),
            Err(msg) => fail(ctx, name, Some(identity), msg),
        }
        if ctx.draining() {
            return;
        }
    }
    // Removed files stop serving.
    let gone: Vec<String> = {
        let cat = ctx.catalog.borrow();
        cat.states
            .keys()
            .filter(|n| !files.iter().any(|(f, _)| f == *n))
            .cloned()
            .collect()
    };
    for name in gone {
        let old = {
            let mut cat = ctx.catalog.borrow_mut();
            cat.states.remove(&name);
            cat.datasets.remove(&name)
        };
        if let Some(old) = old {
            info!(loop_index = ctx.index, dataset = %name, version = %old.version_hex, "dataset file removed: no longer served");
            forget_metrics(ctx, &old);
        }
    }
    update_phase(ctx);
}

fn update_phase(ctx: &LoopCtx) {
    let phase = ctx.phase.get();
    if !matches!(phase, Phase::Starting | Phase::Failed) {
        return;
    }
    let cat = ctx.catalog.borrow();
    let failures = cat.unserved_failures();
    if failures.is_empty() {
        info!(
            loop_index = ctx.index,
            datasets = cat.datasets.len(),
            "ready"
        );
        ctx.phase.set(Phase::Ready);
    } else {
        ctx.phase.set(Phase::Failed);
    }
}

fn fail(ctx: &LoopCtx, name: &str, identity: Option<FileIdentity>, error: String) {
    let mut cat = ctx.catalog.borrow_mut();
    let serving = cat.datasets.contains_key(name);
    error!(
        loop_index = ctx.index,
        dataset = %name,
        error = %error,
        old_version_serving = serving,
        "dataset failed to load"
    );
    ctx.metrics
        .dataset_reload_failures
        .get_or_create(&DatasetLabel {
            dataset: name.to_string(),
        })
        .inc();
    cat.states.insert(
        name.to_string(),
        LoadState::Failed {
            error,
            identity,
            serving,
        },
    );
}

fn publish(ctx: &LoopCtx, ds: Dataset) {
    let ds = Arc::new(ds);
    let old = {
        let mut cat = ctx.catalog.borrow_mut();
        cat.states.insert(ds.name.clone(), LoadState::Ready);
        cat.datasets.insert(ds.name.clone(), ds.clone())
    };
    if let Some(old) = &old {
        forget_metrics(ctx, old);
    }
    info!(
        loop_index = ctx.index,
        dataset = %ds.name,
        version = %ds.version_hex,
        previous_version = old.as_ref().map(|o| o.version_hex.as_str()).unwrap_or("none"),
        rows = ds.file.num_rows(),
        bytes = ds.file.file_len(),
        "dataset serving"
    );
    let m = &ctx.metrics;
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

fn forget_metrics(ctx: &LoopCtx, old: &Dataset) {
    let m = &ctx.metrics;
    m.dataset_version.remove(&DatasetVersionLabel {
        dataset: old.name.clone(),
        version: old.version_hex.clone(),
    });
    if !ctx.catalog.borrow().datasets.contains_key(&old.name) {
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
    ctx: &LoopCtx,
    name: &str,
    path: &Path,
    identity: FileIdentity,
) -> Result<Dataset, String> {
    let mapped =
        MappedFile::open(path).map_err(|e| format!("cannot map {}: {e}", path.display()))?;
    let file = QuarryFile::open(mapped)
        .map_err(|e| format!("{} is not a valid Quarry file: {e}", path.display()))?;
    if ctx.config.verify == VerifyMode::Full {
        let mut verifier = file.verifier();
        loop {
            match verifier.step(&file, SLICE_BYTES as u64) {
                Ok(Step::More { .. }) => ctx.next_slice().await,
                Ok(Step::Done) => break,
                Err(e) => return Err(format!("{} failed verification: {e}", path.display())),
            }
            if ctx.draining() {
                return Err("startup interrupted by shutdown".to_string());
            }
        }
    }
    // Here rather than on the first lookup, which would pay for it (string keys only).
    file.prepare_key_search();
    if ctx.config.warm {
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
            ctx.next_slice().await;
        }
    }
    Ok(Dataset::new(
        name.to_string(),
        path.to_path_buf(),
        identity,
        file,
    ))
}
