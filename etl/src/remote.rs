//! Publishing to object storage: `--out s3://bucket/prefix` (also `gs://`, `az://`,
//! `file:///dir`). URL parsing, the store and the credentials check come from `quarry-objects`.
//!
//! The build writes and verifies its file in a local staging directory exactly as a local
//! build does, then:
//! 1. uploads it as the immutable object `<prefix>/<name>/<version>.qry` (the version is the
//!    content hash of the file, so one key always holds one content; multipart past
//!    [`PART_SIZE`]);
//! 2. checks what was stored: the object's size, and the SHA-256 of the object read back
//!    against the SHA-256 of the local file;
//! 3. only then writes the small pointer object `<prefix>/<name>/CURRENT` (JSON: version, key,
//!    size, sha256). A single PUT replaces an object atomically, so a reader that follows the
//!    pointer sees the old version or the new one, never a partial one;
//! 4. updates the prefix manifest `<prefix>/MANIFEST.json` (see [`Manifest`]), the one object
//!    a serving fleet polls: every dataset's version, relative path, size and SHA-256;
//! 5. with `--keep-versions N`, removes the older data objects past the N newest, after the
//!    pointer moved (never the one it names).
//!
//! The per-dataset pointer stays authoritative. The manifest is a read-modify-write of one
//! object shared by every dataset of the prefix, so concurrent publishers of different datasets
//! must not lose each other's entries: where the store has conditional writes (S3 and
//! S3-compatible stores with `If-Match` (the default `aws_conditional_put=etag`), GCS, Azure)
//! the update is a `PutMode::Update` on the e-tag read, retried on conflict; where it has not
//! (`file://`, and S3-compatible servers that refuse conditional writes), the manifest is
//! rebuilt from a listing of every `<prefix>/*/CURRENT` pointer after this one was written,
//! then read back and rebuilt again while it differs from the pointers (the last writer always
//! checks after its own write, so racing publishers converge on a manifest naming both).
//!
//! The ETL is threaded std code: the object store's async calls run on a tokio
//! current-thread runtime created here, and only here (the server has no tokio).

use std::io::Read;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use quarry_objects::{describe, missing_bucket, missing_credentials, ObjectUrl, Service};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{usage, Corrupt};

/// Files larger than this go up as a multipart upload of parts of this size.
pub const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once during a multipart upload.
const PARTS_IN_FLIGHT: usize = 4;
/// The pointer object's name inside `<prefix>/<name>/`.
pub const POINTER: &str = "CURRENT";
/// The prefix manifest's name inside `<prefix>/`.
pub const MANIFEST: &str = "MANIFEST.json";
/// Conditional manifest updates tried before falling back to a rebuild from the pointers.
const MANIFEST_ATTEMPTS: usize = 16;
/// Services `--out` publishes to (not HTTP: it cannot be written).
const SERVICES: &[Service] = quarry_objects::STORES;

/// Where `--out` points when it is a URL.
#[derive(Debug, Clone)]
pub struct Target {
    /// `--out` as given (without a trailing `/`).
    pub url: String,
    /// The store's root and the key prefix as given.
    pub loc: ObjectUrl,
    /// Object key prefix (may be empty).
    pub prefix: Path,
    /// `file://`: the local directory (the store is rooted at `/`, `prefix` is this path).
    pub local_root: Option<PathBuf>,
}

/// The JSON of the pointer object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub version: String,
    /// Key of the data object inside the bucket.
    pub key: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the data object.
    pub sha256: String,
}

/// The prefix manifest `<prefix>/MANIFEST.json`: `{"format":1,"datasets":{name: entry}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub datasets: std::collections::BTreeMap<String, ManifestEntry>,
}

/// One dataset of the manifest; `path` is relative to the prefix, so the same manifest works
/// through an HTTP origin that serves the prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub version: String,
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What a remote publish did.
#[derive(Debug, Clone)]
pub struct Published {
    /// URL of the data object.
    pub data_url: String,
    pub pointer: Pointer,
    /// Keys of the older data objects removed by `--keep-versions`.
    pub removed: Vec<String>,
}

impl Target {
    /// `Ok(None)` for a plain directory; a URL with a supported scheme becomes a target; any
    /// other URL-looking `--out` (`scheme://...`) is a usage error rather than a local folder
    /// named `scheme:`.
    pub fn parse(out: &FsPath) -> Result<Option<Target>> {
        let Some(s) = out.to_str() else {
            return Ok(None);
        };
        let loc = match ObjectUrl::parse(s, SERVICES) {
            Ok(Some(loc)) => loc,
            Ok(None) => return Ok(None),
            Err(e) => return Err(usage(format!("--out {s}: {e}"))),
        };
        let prefix = loc.prefix().map_err(|e| usage(format!("--out {s}: {e}")))?;
        let local_root =
            (loc.service == Service::File).then(|| PathBuf::from(format!("/{prefix}")));
        let rest = s.split_once("://").map_or("", |(_, r)| r);
        Ok(Some(Target {
            url: format!("{}://{}", loc.scheme, rest.trim_end_matches('/')),
            loc,
            prefix,
            local_root,
        }))
    }

    /// The key of `<prefix>/<name>/<file>`.
    fn key(&self, name: &str, file: &str) -> Path {
        self.dir(name).child(file)
    }

    fn dir(&self, name: &str) -> Path {
        self.prefix.child(name)
    }

    /// The URL of a key.
    pub fn url_of(&self, key: &Path) -> String {
        self.loc.url_of(key.as_ref())
    }

    /// The store, configured from the standard environment of its service (`AWS_*`,
    /// `GOOGLE_*`, `AZURE_*`); missing credentials are a usage error naming the variables.
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        if let Some(root) = &self.local_root {
            std::fs::create_dir_all(root)
                .with_context(|| format!("creating {}", root.display()))?;
        }
        if let Some(why) = missing_credentials(self.loc.service) {
            return Err(usage(why));
        }
        self.loc
            .store()
            .map_err(|e| anyhow::anyhow!("--out {}: {e}", self.url))
    }
}

/// Lists the dataset's folder before the build does its work, so that a missing bucket or
/// refused credentials fail at once, with one line naming the bucket.
pub fn preflight(store: &Arc<dyn ObjectStore>, target: &Target, name: &str) -> Result<()> {
    let dir = target.dir(name);
    let listed = runtime()?.block_on(store.list_with_delimiter(Some(&dir)));
    match listed {
        Ok(_) => Ok(()),
        Err(e) => {
            let bucket = target.loc.bucket_url();
            if matches!(e, object_store::Error::NotFound { .. }) || missing_bucket(&e) {
                anyhow::bail!(
                    "--out {}: the bucket {bucket} does not exist (create it first; the build \
                     does not create buckets)",
                    target.url
                );
            }
            anyhow::bail!(
                "--out {}: listing {} failed (credentials, endpoint or permissions?): {}",
                target.url,
                target.url_of(&dir),
                describe(&e)
            )
        }
    }
}

/// A tokio runtime on the calling thread, for the object store's async calls.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime for object storage")
}

/// Uploads the verified local file `file` of dataset `name` at `version`, checks it, moves
/// the pointer, and trims old versions past `keep_versions`.
pub fn publish(
    store: Arc<dyn ObjectStore>,
    target: &Target,
    name: &str,
    file: &FsPath,
    version: &str,
    keep_versions: Option<usize>,
) -> Result<Published> {
    runtime()?.block_on(publish_async(
        store,
        target,
        name,
        file,
        version,
        keep_versions,
    ))
}

async fn publish_async(
    store: Arc<dyn ObjectStore>,
    target: &Target,
    name: &str,
    file: &FsPath,
    version: &str,
    keep_versions: Option<usize>,
) -> Result<Published> {
    let key = target.key(name, &format!("{version}.qry"));
    let url = target.url_of(&key);
    let (size, sha256) = upload(&store, &key, file)
        .await
        .with_context(|| format!("uploading {} to {url}", file.display()))?;
    check_stored(&store, &key, size, &sha256)
        .await
        .with_context(|| format!("checking the uploaded object {url}"))?;

    let pointer = Pointer {
        version: version.to_string(),
        key: key.to_string(),
        size,
        sha256,
    };
    let pointer_key = target.key(name, POINTER);
    let json = serde_json::to_vec_pretty(&pointer).context("encoding the pointer")?;
    store
        .put(&pointer_key, PutPayload::from(json))
        .await
        .with_context(|| {
            format!(
                "writing the pointer {} (the data object {url} is uploaded; the pointer still \
                 names the previous version)",
                target.url_of(&pointer_key)
            )
        })?;

    update_manifest(&store, target, name, &pointer)
        .await
        .with_context(|| {
            format!(
                "updating the manifest {} (the pointer {} already names {url})",
                target.url_of(&target.prefix.child(MANIFEST)),
                target.url_of(&pointer_key)
            )
        })?;

    let removed = match keep_versions {
        Some(n) => trim_versions(&store, target, name, &key, n)
            .await
            .with_context(|| {
                format!(
                    "removing versions past --keep-versions {n} under {} (the pointer already \
                     names {url})",
                    target.url_of(&target.dir(name))
                )
            })?,
        None => Vec::new(),
    };
    Ok(Published {
        data_url: url,
        pointer,
        removed,
    })
}

/// The manifest entry of a pointer (its key made relative to the prefix).
fn entry_of(target: &Target, name: &str, pointer: &Pointer) -> ManifestEntry {
    let prefix = target.prefix.as_ref();
    let path = if prefix.is_empty() {
        pointer.key.clone()
    } else {
        pointer
            .key
            .strip_prefix(prefix)
            .and_then(|k| k.strip_prefix('/'))
            .map_or_else(|| format!("{name}/{}.qry", pointer.version), str::to_string)
    };
    ManifestEntry {
        version: pointer.version.clone(),
        path,
        size: pointer.size,
        sha256: pointer.sha256.clone(),
    }
}

/// Puts this dataset's entry into the prefix manifest: a conditional update retried on
/// conflict, or a rebuild from every pointer where the store has no conditional writes.
async fn update_manifest(
    store: &Arc<dyn ObjectStore>,
    target: &Target,
    name: &str,
    pointer: &Pointer,
) -> Result<()> {
    use object_store::{PutMode, PutOptions, UpdateVersion};
    let key = target.prefix.child(MANIFEST);
    let entry = entry_of(target, name, pointer);
    for attempt in 0..MANIFEST_ATTEMPTS {
        let (mut manifest, mode) = match store.get(&key).await {
            Ok(r) => {
                let version = UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                let bytes = r.bytes().await?;
                match serde_json::from_slice::<Manifest>(&bytes) {
                    Ok(m) if m.format == 1 => (m, PutMode::Update(version)),
                    _ => {
                        tracing::warn!(manifest = %target.url_of(&key), "the manifest is not a format-1 manifest: rebuilding it from the pointers");
                        return rebuild_manifest(store, target).await;
                    }
                }
            }
            // No manifest (deleted, expired, or a prefix published before there was one):
            // it starts from every pointer, never from this dataset alone, which would make
            // every server drop the other datasets.
            Err(object_store::Error::NotFound { .. }) => (
                manifest_from_pointers(store, target).await?,
                PutMode::Create,
            ),
            Err(e) => return Err(e.into()),
        };
        if matches!(mode, PutMode::Update(_)) && manifest.datasets.get(name) == Some(&entry) {
            return Ok(());
        }
        manifest.datasets.insert(name.to_string(), entry.clone());
        let json = serde_json::to_vec_pretty(&manifest).context("encoding the manifest")?;
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match store.put_opts(&key, PutPayload::from(json), opts).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => {
                // Another publisher updated it in between: read it again. Jittered backoff
                // so racing publishers do not collide in lockstep.
                let ms = 10u64 << attempt.min(6);
                let jitter = u64::from(std::process::id()) % ms.max(1);
                tokio::time::sleep(std::time::Duration::from_millis(ms + jitter)).await;
            }
            Err(object_store::Error::NotImplemented)
            | Err(object_store::Error::NotSupported { .. }) => {
                return rebuild_manifest(store, target).await;
            }
            Err(e) => {
                let text = e.to_string();
                // S3-compatible servers without conditional writes answer 501 NotImplemented.
                if text.contains("NotImplemented") || text.contains("501") {
                    return rebuild_manifest(store, target).await;
                }
                return Err(e.into());
            }
        }
    }
    rebuild_manifest(store, target).await
}

/// Writes the manifest from every `<prefix>/*/CURRENT` pointer (unconditionally), then reads
/// back the pointers and the manifest and writes again while they differ: a racing publisher
/// that listed before this one's pointer existed may have overwritten the manifest, and the
/// last writer always checks after its own write, so the manifest converges.
async fn rebuild_manifest(store: &Arc<dyn ObjectStore>, target: &Target) -> Result<()> {
    let key = target.prefix.child(MANIFEST);
    for _ in 0..MANIFEST_ATTEMPTS {
        let manifest = manifest_from_pointers(store, target).await?;
        let json = serde_json::to_vec_pretty(&manifest).context("encoding the manifest")?;
        store.put(&key, PutPayload::from(json)).await?;
        let again = manifest_from_pointers(store, target).await?;
        let stored: Option<Manifest> = match store.get(&key).await {
            Ok(r) => serde_json::from_slice(&r.bytes().await?).ok(),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if stored.as_ref() == Some(&again) {
            return Ok(());
        }
    }
    anyhow::bail!(
        "the manifest kept changing under {MANIFEST_ATTEMPTS} rebuilds (other publishers?)"
    )
}

/// The manifest every `<prefix>/*/CURRENT` pointer describes.
async fn manifest_from_pointers(store: &Arc<dyn ObjectStore>, target: &Target) -> Result<Manifest> {
    let listed = store.list_with_delimiter(Some(&target.prefix)).await?;
    let mut manifest = Manifest {
        format: 1,
        datasets: Default::default(),
    };
    for dir in listed.common_prefixes {
        let Some(name) = dir.filename().map(str::to_string) else {
            continue;
        };
        let key = dir.child(POINTER);
        let bytes = match store.get(&key).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let pointer: Pointer = serde_json::from_slice(&bytes)
            .with_context(|| format!("decoding {}", target.url_of(&key)))?;
        let entry = entry_of(target, &name, &pointer);
        manifest.datasets.insert(name, entry);
    }
    Ok(manifest)
}

/// Streams the file up (one PUT, or a multipart upload past [`PART_SIZE`]); returns its size
/// and SHA-256 as read while uploading.
async fn upload(store: &Arc<dyn ObjectStore>, key: &Path, file: &FsPath) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let len = f
        .metadata()
        .with_context(|| format!("stat {}", file.display()))?
        .len();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; PART_SIZE];
    if len <= PART_SIZE as u64 {
        let mut bytes = Vec::with_capacity(len as usize);
        f.read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", file.display()))?;
        hasher.update(&bytes);
        size = bytes.len() as u64;
        store.put(key, PutPayload::from(bytes)).await?;
        return Ok((size, hex(&hasher.finalize())));
    }
    let mut upload =
        WriteMultipart::new_with_chunk_size(store.put_multipart(key).await?, PART_SIZE);
    let sent: Result<()> = async {
        loop {
            let n = read_full(&mut f, &mut buf)
                .with_context(|| format!("reading {}", file.display()))?;
            if n == 0 {
                // Every part stored, so that a failed part is aborted below; `finish` aborts
                // a failed completion itself.
                upload.wait_for_capacity(0).await?;
                return Ok(());
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            upload.write(&buf[..n]);
        }
    }
    .await;
    match sent {
        Ok(()) => {
            upload.finish().await?;
        }
        Err(e) => {
            // Best effort: an unfinished multipart upload is otherwise kept (and billed) until
            // a lifecycle rule removes it.
            let _ = upload.abort().await;
            return Err(e);
        }
    }
    Ok((size, hex(&hasher.finalize())))
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The stored object must have the local file's size and, read back, its SHA-256.
async fn check_stored(
    store: &Arc<dyn ObjectStore>,
    key: &Path,
    size: u64,
    sha256: &str,
) -> Result<()> {
    let meta = store.head(key).await?;
    if meta.size != size {
        return Err(anyhow::Error::new(Corrupt(format!(
            "the stored object has {} bytes, the local file {size}",
            meta.size
        ))));
    }
    let mut stream = store.get(key).await?.into_stream();
    let mut hasher = Sha256::new();
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        read += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let got = hex(&hasher.finalize());
    if read != size || got != sha256 {
        return Err(anyhow::Error::new(Corrupt(format!(
            "the stored object read back ({read} bytes, sha256 {got}) differs from the local \
             file ({size} bytes, sha256 {sha256})"
        ))));
    }
    Ok(())
}

/// Removes the data objects of `<prefix>/<name>/` past the `keep` newest (by last
/// modification, then key); `current` is always kept.
async fn trim_versions(
    store: &Arc<dyn ObjectStore>,
    target: &Target,
    name: &str,
    current: &Path,
    keep: usize,
) -> Result<Vec<String>> {
    let dir = target.dir(name);
    let listed = store.list_with_delimiter(Some(&dir)).await?;
    let mut older: Vec<_> = listed
        .objects
        .into_iter()
        .filter(|o| o.location != *current && o.location.as_ref().ends_with(".qry"))
        .collect();
    older.sort_by(|a, b| {
        b.last_modified
            .cmp(&a.last_modified)
            .then_with(|| b.location.as_ref().cmp(a.location.as_ref()))
    });
    let mut removed = Vec::new();
    for o in older.into_iter().skip(keep.saturating_sub(1)) {
        store.delete(&o.location).await?;
        removed.push(o.location.to_string());
    }
    Ok(removed)
}

/// Reads and decodes the pointer of dataset `name`, if there is one.
pub fn read_pointer(
    store: Arc<dyn ObjectStore>,
    target: &Target,
    name: &str,
) -> Result<Option<Pointer>> {
    runtime()?.block_on(async {
        let key = target.key(name, POINTER);
        match store.get(&key).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                let p = serde_json::from_slice(&bytes)
                    .with_context(|| format!("decoding {}", target.url_of(&key)))?;
                Ok(Some(p))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The local staging directory of a remote build: in `--spill-dir` when given, else in the
/// system temporary directory (`TMPDIR`). Removed on drop.
pub fn staging_dir(spill_dir: Option<&FsPath>) -> Result<tempfile::TempDir> {
    let base = spill_dir.map_or_else(std::env::temp_dir, FsPath::to_path_buf);
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    tempfile::Builder::new()
        .prefix(".quarry-publish-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a staging directory in {}", base.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<Target>> {
        Target::parse(FsPath::new(s))
    }

    #[test]
    fn plain_directories_are_not_urls() {
        for s in ["data", "/srv/data", "./s3:/x", "a:b/c", "C:\\data"] {
            assert!(parse(s).expect(s).is_none(), "{s}");
        }
    }

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        let t = parse("s3://bkt/a/b/").expect("ok").expect("url");
        assert_eq!(
            (t.loc.scheme.as_str(), t.loc.bucket.as_str()),
            ("s3", "bkt")
        );
        assert_eq!(t.key("ds", "v.qry").as_ref(), "a/b/ds/v.qry");
        assert_eq!(t.url_of(&t.key("ds", "CURRENT")), "s3://bkt/a/b/ds/CURRENT");
        let t = parse("gs://bkt").expect("ok").expect("url");
        assert_eq!(t.key("ds", "CURRENT").as_ref(), "ds/CURRENT");
        let t = parse("file:///tmp/x").expect("ok").expect("url");
        assert_eq!(t.local_root.as_deref(), Some(FsPath::new("/tmp/x")));
        assert_eq!(t.key("ds", "CURRENT").as_ref(), "tmp/x/ds/CURRENT");
        assert_eq!(
            t.url_of(&t.key("ds", "CURRENT")),
            "file:///tmp/x/ds/CURRENT"
        );
    }

    #[test]
    fn unsupported_or_malformed_urls_are_usage_errors() {
        for s in [
            "http://host/x",
            "ftp://h/x",
            "s3://",
            "s3:///x",
            "s3://b/a//c",
            "s3://b/../c",
            "file://relative",
        ] {
            let e = parse(s).expect_err(s);
            assert_eq!(crate::error::exit_code(&e), crate::error::EXIT_USAGE, "{s}");
            assert!(e.to_string().contains(s.trim_end_matches('/')), "{s}: {e}");
        }
    }
}
