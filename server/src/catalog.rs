//! The datasets one loop serves, and the load state of every file it has seen.

use std::collections::BTreeMap;
use std::sync::Arc;

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
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub datasets: BTreeMap<String, Arc<Dataset>>,
    pub states: BTreeMap<String, LoadState>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<Arc<Dataset>> {
        self.datasets.get(name).cloned()
    }

    /// Files that failed and have no version serving.
    pub fn unserved_failures(&self) -> Vec<(&str, &str)> {
        self.states
            .iter()
            .filter_map(|(name, s)| match s {
                LoadState::Failed {
                    error,
                    serving: false,
                    ..
                } => Some((name.as_str(), error.as_str())),
                _ => None,
            })
            .collect()
    }
}
