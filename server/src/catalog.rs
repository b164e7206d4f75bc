//! The datasets the process serves, and the load state of every file it has seen: one immutable
//! snapshot shared by every loop, replaced as a whole by the loader (loop 0) when the set
//! changes. Every loop answers `/healthz` and every dataset from the same snapshot, so readiness
//! and lookups cannot differ by connection.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::dataset::{Dataset, FileIdentity};

/// Load state of one `<name>.qry` as `/healthz` reports it.
#[derive(Clone, Debug)]
pub enum LoadState {
    /// Being mapped / verified / warmed (first version).
    Loading,
    /// Serving `Catalog::datasets[name]`.
    Ready,
    /// The newest file failed; `serving` says whether an older version still answers.
    Failed {
        error: String,
        identity: Option<FileIdentity>,
        serving: bool,
    },
    /// The served file was opened for writing, truncated or rewritten in place: its version is
    /// no longer served and the process is unready until a file with another identity (a new
    /// version published by rename) loads under that name.
    Modified {
        error: String,
        identity: Option<FileIdentity>,
    },
}

/// Readiness decided by the loader (draining is per loop, on top of this).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The first pass has not finished.
    Starting,
    Ready,
    /// A dataset found at startup failed, a served file changed in place, or the directory
    /// cannot be listed.
    Failed,
}

#[derive(Clone, Debug)]
pub struct Catalog {
    pub datasets: BTreeMap<Arc<str>, Arc<Dataset>>,
    pub states: BTreeMap<Arc<str>, LoadState>,
    pub readiness: Readiness,
    /// XXH3-128 of every served (name, version): the `/v1/datasets` ETags depend on it alone.
    pub list_digest: u128,
    /// `/healthz`'s body for this snapshot, made by the first probe that needs it.
    pub health_body: OnceLock<Bytes>,
}

impl Default for Catalog {
    fn default() -> Catalog {
        Catalog {
            datasets: BTreeMap::new(),
            states: BTreeMap::new(),
            readiness: Readiness::Starting,
            list_digest: 0,
            health_body: OnceLock::new(),
        }
    }
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<Arc<Dataset>> {
        self.datasets.get(name).cloned()
    }

    /// Files that failed and have no version serving, and files changed in place.
    pub fn unserved_failures(&self) -> Vec<(&str, &str)> {
        self.states
            .iter()
            .filter_map(|(name, s)| match s {
                LoadState::Failed {
                    error,
                    serving: false,
                    ..
                }
                | LoadState::Modified { error, .. } => Some((&**name, error.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Files changed in place (these keep the process unready even after it was ready).
    pub fn modified(&self) -> bool {
        self.states
            .values()
            .any(|s| matches!(s, LoadState::Modified { .. }))
    }

    /// Recomputes `list_digest` from the served versions and forgets the cached `/healthz`.
    pub fn seal(&mut self) {
        self.health_body = OnceLock::new();
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for (name, ds) in &self.datasets {
            h.update(name.as_bytes());
            h.update(b"\0");
            h.update(ds.version_hex.as_bytes());
            h.update(b"\0");
        }
        self.list_digest = h.digest128();
    }
}

/// The process's current catalog; loops read it through a per-loop [`arc_swap::Cache`].
pub type SharedCatalog = Arc<ArcSwap<Catalog>>;

pub fn shared() -> SharedCatalog {
    Arc::new(ArcSwap::from_pointee(Catalog::default()))
}
