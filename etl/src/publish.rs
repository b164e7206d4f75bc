//! Atomic publish and scratch space.
//!
//! The file is written to `<DATA_DIR>/.<name>.tmp-<host>-<pid>-<rand>`, fsynced, opened and
//! fully verified with quarry-format, renamed to `<DATA_DIR>/<name>.qry`, and the directory is
//! fsynced. A rename is atomic, so readers see the old file or the new one, never a partial
//! one; a published file is never modified (new versions replace it by rename). Killing the
//! job leaves at most a hidden temp file (and a spill directory), which the next run removes
//! when the process that made it (same host name, pid no longer alive) is gone. The host name
//! in the names keeps a run on a shared volume from deleting another machine's live files.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::{usage, Corrupt};

/// Rejects dataset names that are not one plain, visible file name.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.len() > 200
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c == '\0' || c.is_control());
    if bad {
        return Err(usage(format!(
            "invalid dataset name {name:?}: use a non-empty name of at most 200 bytes with no '/', '\\', \
             control characters or leading '.'"
        )));
    }
    Ok(())
}

fn host() -> String {
    let h = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let h: String = h
        .trim()
        .chars()
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

/// Removes temp files and spill directories left by dead processes of this host.
/// Returns how many were removed.
pub fn clean_stale(dir: &Path) -> usize {
    let me = host();
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with('.') {
            continue;
        }
        let suffix = [".tmp-", ".spill-"]
            .iter()
            .find_map(|k| name.rsplit_once(k).map(|(_, s)| s));
        let Some(suffix) = suffix else { continue };
        let mut parts = suffix.rsplitn(3, '-');
        let (Some(rand), Some(pid), Some(h)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if h != me || rand.len() != 16 || pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        let path = e.path();
        let ok = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        if ok.is_ok() {
            tracing::info!(path = %path.display(), "removed a stale file of a dead build");
            removed += 1;
        }
    }
    removed
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
    fn names_are_validated() {
        for ok in ["lineitem", "a.b", "x-1_2"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "..", "a\\b", "a\nb"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
