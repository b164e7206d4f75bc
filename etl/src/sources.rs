//! Inputs given as object URLs: `s3://bucket/raw/*.csv.gz`, `gs://...`, `az://...`, a
//! `https://host/file.csv` (one object), and `file:///dir/*.csv` (a local path).
//!
//! Every matched object is downloaded into a local staging directory before the build, and the
//! build then runs the local pipeline on the copies: compression, Parquet/Arrow footers,
//! globs and Hive `key=value/` folders behave exactly as for local files. A download streams
//! to disk in the store's chunks with at most [`DOWNLOADS_IN_FLIGHT`] objects at once, so its
//! memory is bounded; the free space of the staging directory is checked against the listed
//! sizes first, and each copy must have its object's listed size.
//!
//! How a URL is matched:
//! - with a wildcard (`*`, `?`, `[`) in its key: the store is listed under the key's folders
//!   before the first wildcard, and each key is matched with the `glob` crate's pattern rules
//!   that the local path uses (`*` does not cross `/`, `**` does);
//! - else the key names one object; failing that, the objects under `key/` form a folder of
//!   Parquet/Arrow files (hidden and `_` entries skipped, as for a local folder).
//!
//! Messages name the objects by URL: the copies keep their key's path below the folder the
//! URL lists, and [`crate::cli::ReadArgs::origins`] maps them back.
//!
//! Credentials as for `--out`: each service's standard environment, checked by
//! `quarry_objects::missing_credentials` before any request.

use std::io::Write;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};

use crate::cli::ReadArgs;
use crate::error::usage;
use quarry_objects::{describe, missing_bucket, missing_credentials, ObjectUrl, Service};

/// Objects downloaded at once.
pub const DOWNLOADS_IN_FLIGHT: usize = 4;
/// The local copies of a build's URL inputs; removed on drop.
#[derive(Debug, Default)]
pub struct Staged {
    dir: Option<tempfile::TempDir>,
    /// Objects downloaded and their total size.
    pub objects: usize,
    pub bytes: u64,
}

impl Staged {
    /// The staging directory, when some input was a URL.
    pub fn path(&self) -> Option<&FsPath> {
        self.dir.as_ref().map(|d| d.path())
    }
}

/// One input URL.
#[derive(Debug, Clone)]
struct Source {
    /// As given.
    url: String,
    /// The store's root (`host[:port]` for HTTP) and the key, or key pattern, inside it.
    loc: ObjectUrl,
}

enum Parsed {
    /// Not a URL, or a `file://` URL: a local path.
    Local(PathBuf),
    Remote(Source),
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// A URL-looking input (`scheme://...`) with a supported scheme becomes a source; any other
/// scheme is a usage error rather than a missing local file named `scheme:`.
fn parse(p: &FsPath) -> Result<Parsed> {
    let Some(s) = p.to_str() else {
        return Ok(Parsed::Local(p.to_path_buf()));
    };
    let loc = match ObjectUrl::parse(s, quarry_objects::ALL) {
        Ok(Some(loc)) => loc,
        Ok(None) => return Ok(Parsed::Local(p.to_path_buf())),
        Err(e) => return Err(usage(format!("input {s}: {e}"))),
    };
    if loc.service == Service::File {
        return Ok(Parsed::Local(PathBuf::from(format!("/{}", loc.key))));
    }
    if loc.service == Service::Http {
        let key = &loc.key;
        if key.contains(['?', '#']) {
            return Err(usage(format!(
                "input {s}: an http(s) input is one object without a query string or fragment"
            )));
        }
        if has_wildcard(key) {
            return Err(usage(format!(
                "input {s}: an http(s) URL names one object; a glob needs a listing \
                 (s3://, gs://, az://)"
            )));
        }
        if key.is_empty() || key.ends_with('/') {
            return Err(usage(format!(
                "input {s}: an http(s) URL must name a file, not a folder"
            )));
        }
    }
    Ok(Parsed::Remote(Source {
        url: s.to_string(),
        loc,
    }))
}

impl Source {
    /// The URL of a key of this bucket.
    fn url_of(&self, key: &str) -> String {
        self.loc.url_of(key)
    }

    fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        if let Some(why) = missing_credentials(self.loc.service) {
            return Err(usage(why));
        }
        self.loc
            .store()
            .map_err(|e| anyhow::anyhow!("input {}: {e}", self.url))
    }

    /// `key` as an object path; `what` names it in the message.
    fn path(&self, key: &str, what: &str) -> Result<Path> {
        quarry_objects::parse_path(key)
            .map_err(|e| usage(format!("input {}: {what}: {e}", self.url)))
    }
}

/// What one source resolved to.
struct Resolved {
    /// The folder (key prefix, may be empty) that the copies keep their path below.
    base: String,
    /// What the local pipeline reads, relative to the source's staging folder.
    local: String,
    objects: Vec<ObjectMeta>,
}

fn list_error(src: &Source, listed: &str, e: &object_store::Error) -> anyhow::Error {
    if missing_bucket(e) {
        return anyhow::anyhow!(
            "input {}: the bucket {} does not exist",
            src.url,
            src.loc.bucket_url()
        );
    }
    anyhow::anyhow!(
        "input {}: listing {listed} failed (credentials, endpoint or permissions?): {}",
        src.url,
        describe(e)
    )
}

async fn list(store: &Arc<dyn ObjectStore>, src: &Source, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let path = if prefix.is_empty() {
        None
    } else {
        Some(src.path(prefix, "key prefix")?)
    };
    let listed = src.url_of(&format!("{prefix}/"));
    store
        .list(path.as_ref())
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| list_error(src, &listed, &e))
}

/// Hidden and `_` entries are metadata or in-progress writes (Spark, Hive), skipped in a
/// folder of columnar files as the local walk skips them.
fn hidden(rel: &str) -> bool {
    rel.split('/')
        .any(|part| part.starts_with('.') || part.starts_with('_'))
}

fn columnar_name(rel: &str) -> bool {
    rel.rsplit_once('.')
        .is_some_and(|(_, ext)| crate::columnar::format_of(&ext.to_ascii_lowercase()).is_some())
}

/// Drops folder markers: objects (often empty, written by consoles as `dir/`) whose key is a
/// folder of another object's key. A local copy cannot be both a file and a folder.
fn drop_folder_markers(mut objects: Vec<ObjectMeta>) -> Vec<ObjectMeta> {
    objects.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
    let folders: std::collections::HashSet<String> = objects
        .iter()
        .flat_map(|o| {
            let key = o.location.as_ref();
            key.match_indices('/')
                .map(|(i, _)| key[..i].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    objects.retain(|o| !folders.contains(o.location.as_ref()));
    objects
}

async fn resolve(store: &Arc<dyn ObjectStore>, src: &Source) -> Result<Resolved> {
    let key = src.loc.key.trim_start_matches('/');
    if has_wildcard(key) {
        let first = key.find(['*', '?', '[']).unwrap_or(key.len());
        let base = key[..first].rsplit_once('/').map_or("", |(b, _)| b);
        let pattern = glob::Pattern::new(key)
            .map_err(|e| usage(format!("input {}: bad glob: {e}", src.url)))?;
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let objects: Vec<_> = drop_folder_markers(list(store, src, base).await?)
            .into_iter()
            .filter(|o| pattern.matches_with(o.location.as_ref(), opts))
            .collect();
        if objects.is_empty() {
            return Err(usage(format!(
                "input {} matches no object (listed {})",
                src.url,
                src.url_of(&format!("{base}/"))
            )));
        }
        let local = if base.is_empty() {
            key.to_string()
        } else {
            key[base.len() + 1..].to_string()
        };
        return Ok(Resolved {
            base: base.to_string(),
            local,
            objects,
        });
    }
    let key = key.trim_end_matches('/');
    if !key.is_empty() && !src.loc.key.ends_with('/') {
        let path = src.path(key, "object key")?;
        match store.head(&path).await {
            Ok(meta) => {
                let (base, name) = key.rsplit_once('/').unwrap_or(("", key));
                return Ok(Resolved {
                    base: base.to_string(),
                    local: name.to_string(),
                    objects: vec![meta],
                });
            }
            Err(object_store::Error::NotFound { .. }) if src.loc.service != Service::Http => {}
            Err(object_store::Error::NotFound { .. }) => {
                return Err(anyhow::anyhow!(
                    "input {}: no such object (404 Not Found)",
                    src.url
                ))
            }
            Err(e) => {
                if missing_bucket(&e) {
                    return Err(list_error(src, "", &e));
                }
                return Err(anyhow::anyhow!(
                    "input {}: reading the object's metadata failed (credentials, endpoint or \
                     permissions?): {}",
                    src.url,
                    describe(&e)
                ));
            }
        }
    }
    // A folder of Parquet/Arrow files.
    let all = list(store, src, key).await?;
    let strip = |o: &ObjectMeta| -> String {
        let loc = o.location.as_ref();
        if key.is_empty() {
            loc.to_string()
        } else {
            loc.strip_prefix(key)
                .map_or(loc, |r| r.trim_start_matches('/'))
                .to_string()
        }
    };
    let any = !all.is_empty();
    let objects: Vec<_> = drop_folder_markers(all)
        .into_iter()
        .filter(|o| {
            let rel = strip(o);
            !hidden(&rel) && columnar_name(&rel)
        })
        .collect();
    if objects.is_empty() {
        return Err(if any {
            usage(format!(
                "input {}: the objects under {} include no .parquet, .arrow, .arrows or \
                 .feather file (a folder is read as Parquet/Arrow; name text inputs one by one \
                 or with a glob)",
                src.url,
                src.url_of(&format!("{key}/"))
            ))
        } else if key.is_empty() {
            anyhow::anyhow!("input {}: the bucket holds no object", src.url)
        } else {
            anyhow::anyhow!(
                "input {}: no such object, and no objects under {}",
                src.url,
                src.url_of(&format!("{key}/"))
            )
        });
    }
    Ok(Resolved {
        base: key.to_string(),
        local: String::new(),
        objects,
    })
}

/// Free bytes for an unprivileged writer on the file system of `dir`.
fn free_space(dir: &FsPath) -> Result<u64> {
    let st = rustix::fs::statvfs(dir)
        .with_context(|| format!("checking the free space of {}", dir.display()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

/// One object to download: from where, to where.
struct Job {
    store: Arc<dyn ObjectStore>,
    url: String,
    meta: ObjectMeta,
    dest: PathBuf,
}

async fn download(job: Job) -> Result<()> {
    let Job {
        store,
        url,
        meta,
        dest,
    } = job;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = std::fs::File::create(&dest)
        .with_context(|| format!("creating {} (the copy of {url})", dest.display()))?;
    let mut stream = store
        .get(&meta.location)
        .await
        .with_context(|| format!("downloading {url}"))?
        .into_stream();
    let mut got = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("downloading {url} (after {got} bytes)"))?;
        got += chunk.len() as u64;
        file.write_all(&chunk)
            .with_context(|| format!("writing {} (the copy of {url})", dest.display()))?;
    }
    if got != meta.size {
        anyhow::bail!(
            "downloading {url}: got {got} bytes, the object has {} (changed or truncated while \
             downloading)",
            meta.size
        );
    }
    Ok(())
}

/// Replaces every URL input of `read` with its local copy, downloaded into a staging directory
/// inside `staging_base` (else the system temporary directory); the returned [`Staged`] owns
/// the copies. Inputs keep their order. Without URL inputs nothing is created.
pub fn stage(read: &ReadArgs, staging_base: Option<&FsPath>) -> Result<(ReadArgs, Staged)> {
    let parsed = read
        .inputs
        .iter()
        .map(|p| parse(p))
        .collect::<Result<Vec<_>>>()?;
    let mut out = read.clone();
    if !parsed.iter().any(|p| matches!(p, Parsed::Remote(_))) {
        out.inputs = parsed
            .into_iter()
            .map(|p| match p {
                Parsed::Local(p) => p,
                Parsed::Remote(_) => unreachable!("no remote input"),
            })
            .collect();
        return Ok((out, Staged::default()));
    }
    let base = staging_base.map_or_else(std::env::temp_dir, FsPath::to_path_buf);
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let dir = tempfile::Builder::new()
        .prefix(".quarry-inputs-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a staging directory in {}", base.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime for object storage")?;

    let mut inputs = Vec::with_capacity(parsed.len());
    let mut jobs = Vec::new();
    let mut bytes = 0u64;
    let mut urls = Vec::new();
    for (i, p) in parsed.into_iter().enumerate() {
        let src = match p {
            Parsed::Local(p) => {
                inputs.push(p);
                continue;
            }
            Parsed::Remote(src) => src,
        };
        let store = src.store()?;
        let resolved = rt.block_on(resolve(&store, &src))?;
        let local_dir = dir.path().join(i.to_string());
        for meta in resolved.objects {
            let key = meta.location.as_ref();
            let rel = if resolved.base.is_empty() {
                key
            } else {
                key.strip_prefix(resolved.base.as_str())
                    .map_or(key, |r| r.trim_start_matches('/'))
            };
            bytes += meta.size;
            jobs.push(Job {
                store: store.clone(),
                url: src.url_of(key),
                dest: local_dir.join(rel),
                meta,
            });
        }
        let local = if resolved.local.is_empty() {
            local_dir.clone()
        } else {
            local_dir.join(&resolved.local)
        };
        out.origins.push((local_dir, src.url_of(&resolved.base)));
        urls.push(src.url);
        inputs.push(local);
    }
    let free = free_space(dir.path())?;
    if bytes > free {
        anyhow::bail!(
            "the inputs {} ({} objects, {}) are downloaded before the build, but {} has only {} \
             free: pass --spill-dir on a volume with room for them (and for the build)",
            urls.join(", "),
            jobs.len(),
            mb(bytes),
            dir.path().display(),
            mb(free)
        );
    }
    let objects = jobs.len();
    tracing::info!(
        objects,
        bytes,
        staging = %dir.path().display(),
        "downloading the inputs from object storage"
    );
    rt.block_on(
        futures::stream::iter(jobs.into_iter().map(download))
            .buffer_unordered(DOWNLOADS_IN_FLIGHT)
            .try_collect::<Vec<()>>(),
    )?;
    out.inputs = inputs;
    Ok((
        out,
        Staged {
            dir: Some(dir),
            objects,
            bytes,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{exit_code, EXIT_USAGE};

    fn remote(s: &str) -> Source {
        match parse(FsPath::new(s)).expect(s) {
            Parsed::Remote(src) => src,
            Parsed::Local(p) => panic!("{s} parsed as local {}", p.display()),
        }
    }

    #[test]
    fn paths_and_file_urls_are_local() {
        for (s, want) in [
            ("data/a.csv", "data/a.csv"),
            ("/abs/*.csv", "/abs/*.csv"),
            ("./s3:/x", "./s3:/x"),
            ("file:///srv/raw/*.csv.gz", "/srv/raw/*.csv.gz"),
        ] {
            match parse(FsPath::new(s)).expect(s) {
                Parsed::Local(p) => assert_eq!(p, PathBuf::from(want), "{s}"),
                Parsed::Remote(_) => panic!("{s} is local"),
            }
        }
    }

    #[test]
    fn urls_split_into_bucket_and_key() {
        let s = remote("s3://bkt/raw/2024/*.csv.gz");
        assert_eq!(
            (
                s.loc.scheme.as_str(),
                s.loc.bucket.as_str(),
                s.loc.key.as_str()
            ),
            ("s3", "bkt", "raw/2024/*.csv.gz")
        );
        assert_eq!(s.url_of("raw/x"), "s3://bkt/raw/x");
        assert_eq!(s.url_of(""), "s3://bkt");
        let s = remote("https://127.0.0.1:8080/d/a.csv");
        assert_eq!(
            (s.loc.bucket.as_str(), s.loc.key.as_str()),
            ("127.0.0.1:8080", "d/a.csv")
        );
    }

    #[test]
    fn bad_urls_are_usage_errors_naming_the_input() {
        for s in [
            "ftp://h/x.csv",
            "s3:///x.csv",
            "file://relative/x.csv",
            "https://h/*.csv",
            "https://h/a.csv?sig=1",
            "https://h/",
        ] {
            let e = match parse(FsPath::new(s)) {
                Err(e) => e,
                Ok(_) => panic!("{s} accepted"),
            };
            assert_eq!(exit_code(&e), EXIT_USAGE, "{s}");
            assert!(e.to_string().contains(s), "{s}: {e}");
        }
    }

    #[test]
    fn folder_markers_are_dropped() {
        let meta = |k: &str| ObjectMeta {
            location: Path::from(k),
            last_modified: Default::default(),
            size: 0,
            e_tag: None,
            version: None,
        };
        let kept = drop_folder_markers(vec![
            meta("raw/sub/x.csv"),
            meta("raw/sub"),
            meta("raw"),
            meta("raw/subx.csv"),
        ]);
        let keys: Vec<_> = kept.iter().map(|o| o.location.to_string()).collect();
        assert_eq!(keys, ["raw/sub/x.csv", "raw/subx.csv"]);
    }

    #[test]
    fn folder_filters_match_the_local_walk() {
        assert!(hidden("_SUCCESS"));
        assert!(hidden("y=1/.part.parquet.crc"));
        assert!(!hidden("y=1/part-0.parquet"));
        assert!(columnar_name("y=1/part-0.PARQUET"));
        assert!(!columnar_name("y=1/part-0.csv"));
    }
}
