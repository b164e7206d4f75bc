//! Atomic publish and scratch space.
//!
//! The file is written to `<DATA_DIR>/.<name>.tmp-<host>-<pid>-<rand>`, fsynced, opened and
//! fully verified with quarry-format, renamed to `<DATA_DIR>/<name>.qry`, and the directory is
//! fsynced. A rename is atomic, so readers see the old file or the new one, never a partial
//! one; a published file is never modified (new versions replace it by rename). Killing the
//! job leaves at most a hidden temp file (and a spill directory). Their names carry the build's
//! id (`<host>-<pid>-<rand>`), and a live build holds a lease on them: a [`Lease`] thread
//! refreshes their mtime every [`LEASE_REFRESH`]. A build (and `quarry-etl clean`) removes
//! leftovers of any host whose lease is older than `--stale-after` (at least
//! [`MIN_STALE_AFTER`], many refresh periods), and at once those of a dead process of its own
//! host. A live build's files are never older than a refresh period, so they are never removed.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::error::{usage, Corrupt};

/// How often a live build refreshes the mtime of its temporary files.
pub const LEASE_REFRESH: Duration = Duration::from_secs(5);
/// The smallest `--stale-after`: a dozen refresh periods, so a live build's lease never looks
/// stale even when the machine is slow.
pub const MIN_STALE_AFTER: Duration = Duration::from_secs(60);
/// Host names are cut to this many bytes in temporary names.
const MAX_HOST: usize = 32;
/// A file name holds 255 bytes; `.<name>.spill-<host>-<pid>-<rand>` adds up to
/// 1 + 7 + 32 + 1 + 10 + 1 + 16 = 68 of them.
pub const MAX_NAME_BYTES: usize = 255 - 68;

/// Rejects dataset names that are not one plain, visible file name, or too long to carry the
/// temporary suffix.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.len() > MAX_NAME_BYTES
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c == '\0' || c.is_control());
    if bad {
        return Err(usage(format!(
            "invalid dataset name {name:?} ({} bytes): use a non-empty name of at most \
             {MAX_NAME_BYTES} bytes (a file name holds 255, and the temporary file's name adds \
             68) with no '/', '\\', control characters or leading '.'",
            name.len()
        )));
    }
    Ok(())
}

/// Parses `90`, `90s`, `15m`, `1h`, `2d` (a number and a unit; seconds by default).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match num.parse::<u64>() {
        Ok(n) if mult > 0 => Ok(Duration::from_secs(n.saturating_mul(mult))),
        _ => Err(usage(format!(
            "invalid duration {s:?}: use e.g. 90s, 15m, 1h or 2d"
        ))),
    }
}

/// `--stale-after`, checked against [`MIN_STALE_AFTER`].
pub fn stale_after(s: &str) -> Result<Duration> {
    let d = parse_duration(s)?;
    if d < MIN_STALE_AFTER {
        return Err(usage(format!(
            "--stale-after {s} is shorter than {} s: a live build refreshes its lease every {} s",
            MIN_STALE_AFTER.as_secs(),
            LEASE_REFRESH.as_secs()
        )));
    }
    Ok(d)
}

fn host() -> String {
    let h = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let h: String = h
        .trim()
        .chars()
        .take(MAX_HOST)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if h.is_empty() {
        "host".into()
    } else {
        h
    }
}

fn random_hex() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

/// `.<name>.<kind>-<host>-<pid>-<rand>`
fn scratch_name(name: &str, kind: &str) -> String {
    format!(
        ".{name}.{kind}-{}-{}-{}",
        host(),
        std::process::id(),
        random_hex()
    )
}

fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The build id (`host`, `pid`) of a temporary file or spill directory name of ours.
fn parse_scratch(name: &str) -> Option<(&str, u32)> {
    if !name.starts_with('.') {
        return None;
    }
    let suffix = [".tmp-", ".spill-"]
        .iter()
        .find_map(|k| name.rsplit_once(k).map(|(_, s)| s))?;
    let mut parts = suffix.rsplitn(3, '-');
    let (rand, pid, host) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = rand.len() == 16 && rand.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && !host.is_empty()).then_some(())?;
    Some((host, pid.parse().ok()?))
}

/// The newest mtime of a path and, for a directory, of the files in it.
fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = fs::symlink_metadata(path).ok()?;
    let mut newest = meta.modified().ok()?;
    if meta.is_dir() {
        for e in fs::read_dir(path).ok()?.flatten() {
            if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
                newest = newest.max(m);
            }
        }
    }
    Some(newest)
}

/// Removes temporary files and spill directories of builds that are gone: any host's whose
/// lease (newest mtime) is older than `stale_after`, and at once those of a dead process of
/// this host. Never this process's own. Returns the paths removed.
pub fn clean_stale(dir: &Path, stale_after: Duration) -> Vec<PathBuf> {
    let me = host();
    let my_pid = std::process::id();
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((h, pid)) = parse_scratch(name) else {
            continue;
        };
        let path = e.path();
        if h == me && pid == my_pid {
            continue;
        }
        let dead_here = h == me && !pid_alive(pid);
        let expired = newest_mtime(&path)
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > stale_after);
        if !dead_here && !expired {
            continue;
        }
        let ok = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        if ok.is_ok() {
            tracing::info!(path = %path.display(), "removed a stale file of a build that is gone");
            removed.push(path);
        }
    }
    removed
}

/// Keeps a build's temporary files fresh: a thread sets their mtime (and, for a directory,
/// its files') to now every [`LEASE_REFRESH`] until dropped.
#[derive(Debug)]
pub struct Lease {
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn touch(path: &Path, now: SystemTime) {
    // Missing files are fine (not created yet, or already published).
    if let Ok(f) = File::open(path) {
        let _ = f.set_modified(now);
    }
}

impl Lease {
    pub fn start(paths: Vec<PathBuf>) -> Result<Lease> {
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("quarry-lease".into())
            .spawn(move || loop {
                match rx.recv_timeout(LEASE_REFRESH) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let now = SystemTime::now();
                for p in &paths {
                    touch(p, now);
                    if let Ok(entries) = fs::read_dir(p) {
                        for e in entries.flatten() {
                            touch(&e.path(), now);
                        }
                    }
                }
            })
            .context("spawning the lease thread")?;
        Ok(Lease {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The temp file a build writes; removed on drop unless published.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    published: bool,
}

impl TempFile {
    pub fn create(dir: &Path, name: &str) -> Result<(TempFile, File)> {
        let path = dir.join(scratch_name(name, "tmp"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok((
            TempFile {
                path,
                published: false,
            },
            file,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// fsync, verify, rename over `<dir>/<name>.qry`, fsync the directory.
    /// Verification runs on `threads` threads.
    pub fn publish(
        mut self,
        file: File,
        dir: &Path,
        name: &str,
        threads: usize,
    ) -> Result<PathBuf> {
        // The fsync waits on the disk and verification reads the page cache: run them at once.
        // Both must succeed before the rename.
        let (synced, verified) = std::thread::scope(|s| {
            let sync = s.spawn(|| file.sync_all());
            let verified = quarry_format::read_file(&self.path)
                .map_err(|e| {
                    anyhow::Error::new(Corrupt(format!("the written file does not open: {e}")))
                })
                .and_then(|qf| {
                    verify_in_parallel(&qf, threads).map_err(|e| {
                        anyhow::Error::new(Corrupt(format!(
                            "the written file fails verification: {e}"
                        )))
                    })
                });
            let synced = sync.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (synced, verified)
        });
        synced.with_context(|| format!("fsync {}", self.path.display()))?;
        verified?;
        drop(file);
        let target = dir.join(format!("{name}.qry"));
        fs::rename(&self.path, &target)
            .with_context(|| format!("renaming {} to {}", self.path.display(), target.display()))?;
        self.published = true;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("fsync directory {}", dir.display()))?;
        Ok(target)
    }
}

/// `verify` with the chunks split into `threads` contiguous ranges checked at once.
fn verify_in_parallel<B: AsRef<[u8]> + Sync>(
    qf: &quarry_format::QuarryFile<B>,
    threads: usize,
) -> quarry_format::Result<()> {
    let n = qf.chunk_count();
    let per = n.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..n)
            .step_by(per)
            .skip(1)
            .map(|start| s.spawn(move || qf.verify_chunks(start..start + per)))
            .collect();
        let first = qf.verify_chunks(0..per);
        // Report the first failure in file order.
        parts.into_iter().fold(first, |acc, h| {
            let r = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            acc.and(r)
        })
    })?;
    qf.verify_layout()
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A private scratch directory (spilled runs), created on first use, removed on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    created: std::sync::atomic::AtomicBool,
}

impl ScratchDir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn new(parent: &Path, name: &str) -> ScratchDir {
        ScratchDir {
            path: parent.join(scratch_name(name, "spill")),
            created: Default::default(),
        }
    }

    /// Path of a file in the directory (creating the directory if needed).
    pub fn file(&self, file: &str) -> Result<PathBuf> {
        if !self.created.load(std::sync::atomic::Ordering::Relaxed) {
            fs::create_dir_all(&self.path)
                .with_context(|| format!("creating {}", self.path.display()))?;
            self.created
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(self.path.join(file))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if self.created.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_parse() {
        let n = scratch_name("a.b-c", "tmp");
        let (h, pid) = parse_scratch(&n).expect(&n);
        assert_eq!((h, pid), (host().as_str(), std::process::id()));
        assert_eq!(
            parse_scratch(".x.spill-my-host-7-0123456789abcdef"),
            Some(("my-host", 7))
        );
        for no in [
            "x.tmp-h-1-0123456789abcdef",
            ".x.tmp-h-1-012",
            ".x.tmp-1-0123456789abcdef",
            ".x.qry",
        ] {
            assert_eq!(parse_scratch(no), None, "{no}");
        }
        assert!(parse_duration("1h").unwrap() == Duration::from_secs(3600));
        assert!(parse_duration("90").unwrap() == Duration::from_secs(90));
        assert!(parse_duration("1x").is_err() && parse_duration("").is_err());
        assert!(stale_after("59s").is_err() && stale_after("1m").is_ok());
    }

    #[test]
    fn names_are_validated() {
        for ok in ["lineitem", "a.b", "x-1_2"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        let longest = "n".repeat(MAX_NAME_BYTES);
        assert!(validate_name(&longest).is_ok());
        let tmp = scratch_name(&longest, "spill");
        assert!(tmp.len() <= 255, "{}", tmp.len());
        for bad in [
            "",
            ".hidden",
            "a/b",
            "..",
            "a\\b",
            "a\nb",
            &"n".repeat(MAX_NAME_BYTES + 1),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
