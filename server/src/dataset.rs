//! One served version of one dataset: the mapped, opened (and verified) file plus what the
//! metadata endpoints answer. Immutable once built; shared by `Arc` so requests in flight keep
//! the version they started with, and the map is released when the last of them ends.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use quarry_format::{MappedFile, QuarryFile};
use quarry_query::RowJson;
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
}

pub struct Dataset {
    pub name: String,
    pub path: PathBuf,
    pub identity: FileIdentity,
    pub file: QuarryFile<MappedFile>,
    pub version_hex: String,
    /// `{name, rows, key, version, columns, row_groups, bytes}`.
    pub info: Json,
    /// Point-lookup rows as JSON, the column names encoded once.
    pub row_json: RowJson,
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
        Dataset {
            name,
            path,
            identity,
            file,
            version_hex,
            info,
            row_json,
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
