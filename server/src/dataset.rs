//! One served version of one dataset: the mapped, opened (and verified) file plus what the
//! metadata endpoints answer. Immutable once built; shared by `Arc` so requests in flight keep
//! the version they started with, and the map is released when the last of them ends.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use quarry_format::{MappedFile, QuarryFile};
use quarry_query::RowJson;

use crate::reaper::Reaped;
use serde_json::{json, Value as Json};

/// What identifies a file on disk: a rename over `<name>.qry` changes the inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
}

impl FileIdentity {
    pub fn of(meta: &std::fs::Metadata) -> FileIdentity {
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }

    /// The same file (device and inode), whatever its size and mtime.
    pub fn same_inode(&self, other: &FileIdentity) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// Dataset versions mapped in this process (all loops, old versions still held by requests).
static LIVE_MAPS: AtomicUsize = AtomicUsize::new(0);
/// Of those, the ones holding a file descriptor (and a read lease).
static LIVE_LEASES: AtomicUsize = AtomicUsize::new(0);

/// One mapped dataset version, counted from its mapping until its drop (and its lease).
#[derive(Debug)]
pub struct MapCount {
    leased: bool,
}

impl MapCount {
    pub fn acquire() -> MapCount {
        LIVE_MAPS.fetch_add(1, Ordering::Relaxed);
        MapCount { leased: false }
    }

    /// Counts this version's descriptor and lease too.
    pub fn leased(&mut self) {
        if !self.leased {
            self.leased = true;
            LIVE_LEASES.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn live() -> usize {
        LIVE_MAPS.load(Ordering::Relaxed)
    }

    pub fn live_leases() -> usize {
        LIVE_LEASES.load(Ordering::Relaxed)
    }
}

impl Drop for MapCount {
    fn drop(&mut self) {
        LIVE_MAPS.fetch_sub(1, Ordering::Relaxed);
        if self.leased {
            LIVE_LEASES.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

pub struct Dataset {
    pub name: String,
    pub path: PathBuf,
    pub identity: FileIdentity,
    /// Dropped on the reaper thread: unmapping, and closing a file renamed over by its next
    /// version, frees the whole mapping and inode inside the call.
    pub file: Reaped<QuarryFile<MappedFile>>,
    pub version_hex: String,
    /// `{name, rows, key, version, columns, row_groups, bytes}` serialized once (no trailing
    /// newline): the detail body and a list entry.
    pub info_json: Bytes,
    /// A read lease is held on the file (see `loader`).
    pub leased: bool,
    /// Point-lookup rows as JSON, the column names encoded once.
    pub row_json: RowJson,
    /// Declared after `file`: counts the mapping until it is gone.
    _map_count: MapCount,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("name", &self.name)
            .field("version", &self.version_hex)
            .field("path", &self.path)
            .finish()
    }
}

impl Dataset {
    pub fn new(
        name: String,
        path: PathBuf,
        identity: FileIdentity,
        file: QuarryFile<MappedFile>,
        map_count: MapCount,
        leased: bool,
    ) -> Dataset {
        let version_hex = file.version().to_string();
        let schema = file.schema();
        let row_json = RowJson::new(schema);
        let columns: Vec<Json> = schema
            .fields()
            .iter()
            .map(|f| json!({"name": f.name, "type": f.data_type.name(), "nullable": f.nullable}))
            .collect();
        let key = schema.key().map(|k| schema.fields()[k].name.clone());
        let info = json!({
            "name": name,
            "rows": file.num_rows(),
            "key": key,
            "version": version_hex,
            "columns": columns,
            "row_groups": file.row_groups().len(),
            "bytes": file.file_len(),
        });
        let info_json = Bytes::from(info.to_string());
        Dataset {
            name,
            path,
            identity,
            file: Reaped::new(file),
            version_hex,
            info_json,
            leased,
            row_json,
            _map_count: map_count,
        }
    }
}

/// Owner handed to `Bytes::from_owner`: keeps the dataset (and so the map) alive while hyper
/// still holds slices of it. `Arc` because `Bytes` owners must be `Send`.
struct MapOwner(Arc<Dataset>);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        self.0.file.bytes()
    }
}

/// The whole mapped file as `Bytes`, no copy; `.slice(range)` it per response.
pub fn mapped_bytes(ds: &Arc<Dataset>) -> Bytes {
    Bytes::from_owner(MapOwner(ds.clone()))
}

/// A byte range of the mapping as `Bytes` (no copy); `None` when `range` is reversed or does
/// not lie inside the file (offsets read from an unverified file may say anything).
pub fn map_slice(ds: &Arc<Dataset>, range: Range<usize>) -> Option<Bytes> {
    if range.start > range.end || range.end > ds.file.bytes().len() {
        return None;
    }
    Some(mapped_bytes(ds).slice(range))
}
