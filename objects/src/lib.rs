//! Object URLs and their stores, shared by `quarry-etl` (`--out URL`, URL inputs) and
//! `quarry-server` (`--source URL`):
//! - [`ObjectUrl::parse`] splits `s3://bucket/key` (also `s3a://`), `gs://bucket/key`,
//!   `az://container/key` (also `adl://`, `azure://`, `abfs://`, `abfss://`, including the
//!   Hadoop spelling `abfss://container@account.dfs.core.windows.net/key`), `file:///path` and
//!   `http(s)://host[:port]/path` into the store's root ([`ObjectUrl::bucket_url`]) and the key
//!   below it; the caller says which services it accepts, and names its flag in the message;
//! - [`ObjectUrl::store`] builds the `object_store` client from the service's standard
//!   environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`); [`missing_credentials`] says, naming the
//!   variables, when that environment has no credentials;
//! - [`join`] puts a relative path (from a manifest) under a prefix, refusing any path that
//!   could leave it;
//! - [`classify`] and [`describe`] turn an `object_store` error into a reason label and one
//!   line that keeps the cause (a TLS failure's cause is only in the error's source chain).
//!
//! The store of every URL is rooted at its bucket (`file://`: at `/`; HTTP: at
//! `scheme://host[:port]`), so that one object's key is the same path in every service and
//! [`ObjectUrl::url_of`] turns any key back into the URL a message shows.
#![forbid(unsafe_code)]

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;

/// The services an object URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    S3,
    Gcs,
    Azure,
    File,
    /// A static HTTP(S) origin: reads of named objects only, no listing, no writes.
    Http,
}

/// Every service.
pub const ALL: &[Service] = &[
    Service::S3,
    Service::Gcs,
    Service::Azure,
    Service::File,
    Service::Http,
];
/// The services that list and write (everything but HTTP).
pub const STORES: &[Service] = &[Service::S3, Service::Gcs, Service::Azure, Service::File];

impl Service {
    /// The service of a lowercase URL scheme.
    pub fn of(scheme: &str) -> Option<Service> {
        Some(match scheme {
            "s3" | "s3a" => Service::S3,
            "gs" => Service::Gcs,
            "az" | "adl" | "azure" | "abfs" | "abfss" => Service::Azure,
            "file" => Service::File,
            "http" | "https" => Service::Http,
            _ => return None,
        })
    }

    /// The service's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Service::S3 => "S3",
            Service::Gcs => "Google Cloud Storage",
            Service::Azure => "Azure Blob Storage",
            Service::File => "the local file system",
            Service::Http => "the HTTP origin",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Service::S3 => "s3://bucket/prefix",
            Service::Gcs => "gs://bucket/prefix",
            Service::Azure => "az://container/prefix",
            Service::File => "file:///dir",
            Service::Http => "https://host/path",
        }
    }

    /// What the part after `scheme://` starts with.
    fn root_word(self) -> &'static str {
        match self {
            Service::Azure => "container",
            Service::Http => "host",
            _ => "bucket",
        }
    }
}

/// `Some((scheme, rest))` when `s` has the shape `scheme://rest` with an RFC 3986 scheme
/// (a letter, then letters, digits, `+`, `-`, `.`); the scheme is lowercased. Anything else
/// (`./s3:/x`, `C:\data`) is a local path to the callers.
pub fn split_scheme(s: &str) -> Option<(String, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    let ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then(|| (scheme.to_ascii_lowercase(), rest))
}

/// Why a URL was refused. The caller prefixes its flag and the URL (`--out s3:///x: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// A scheme of no accepted service.
    UnsupportedScheme {
        scheme: String,
        accepted: Vec<Service>,
    },
    /// `file://relative`.
    FileNotAbsolute,
    /// `s3:///key`, `https:///x`.
    NoBucket { scheme: String, service: Service },
    /// A key or prefix with an empty, `.` or `..` segment (or otherwise not an object path).
    InvalidPath { path: String, reason: String },
    /// `s3:/bucket`, `file:/dir`: a known scheme without its `//`, which would otherwise be
    /// taken for a local folder named `s3:`.
    MissingSlashes { scheme: String },
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::UnsupportedScheme { scheme, accepted } => {
                let examples: Vec<&str> = accepted.iter().map(|s| s.example()).collect();
                write!(
                    f,
                    "unsupported URL scheme {scheme:?}; use one of {}",
                    examples.join(", ")
                )
            }
            UrlError::FileNotAbsolute => {
                f.write_str("a file:// URL takes an absolute path (file:///dir)")
            }
            UrlError::NoBucket { scheme, service } => {
                let word = service.root_word();
                write!(
                    f,
                    "the URL names no {word} ({scheme}://{}/...)",
                    word.to_ascii_uppercase()
                )
            }
            UrlError::InvalidPath { path, reason } => write!(
                f,
                "invalid path {path:?}: {reason} (no empty, `.` or `..` segments)"
            ),
            UrlError::MissingSlashes { scheme } => write!(
                f,
                "a {scheme}: URL needs // after the scheme ({scheme}://...); a local path \
                 cannot start with {scheme}:"
            ),
        }
    }
}

impl StdError for UrlError {}

/// An object URL split into its store and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    /// Lowercase, as given (`s3a`, `abfss`, ...).
    pub scheme: String,
    pub service: Service,
    /// Bucket or container (`container@account.dfs.core.windows.net` in the Hadoop `abfs`
    /// spelling); `host[:port]` for HTTP; empty for `file://`.
    pub bucket: String,
    /// What follows the bucket and its `/`, as given: a key, a prefix or a pattern; may be
    /// empty or end with `/`. For `file://`, the absolute path without its leading `/` (the
    /// store is rooted at `/`).
    pub key: String,
}

impl ObjectUrl {
    /// `Ok(None)` when `s` is not URL-shaped ([`split_scheme`]); a URL of a service not in
    /// `accepted` is an error rather than a local path named `scheme:`.
    pub fn parse(s: &str, accepted: &[Service]) -> Result<Option<ObjectUrl>, UrlError> {
        let Some((scheme, rest)) = split_scheme(s) else {
            if let Some((scheme, _)) = s.split_once(':') {
                let scheme = scheme.to_ascii_lowercase();
                if Service::of(&scheme).is_some() {
                    return Err(UrlError::MissingSlashes { scheme });
                }
            }
            return Ok(None);
        };
        let service = Service::of(&scheme)
            .filter(|s| accepted.contains(s))
            .ok_or_else(|| UrlError::UnsupportedScheme {
                scheme: scheme.clone(),
                accepted: accepted.to_vec(),
            })?;
        if service == Service::File {
            let Some(path) = rest.strip_prefix('/') else {
                return Err(UrlError::FileNotAbsolute);
            };
            return Ok(Some(ObjectUrl {
                scheme,
                service,
                bucket: String::new(),
                key: path.to_string(),
            }));
        }
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(UrlError::NoBucket { scheme, service });
        }
        Ok(Some(ObjectUrl {
            scheme,
            service,
            bucket: bucket.to_string(),
            key: key.to_string(),
        }))
    }

    /// The root of the store: `scheme://bucket` (`file://` for the local file system).
    pub fn bucket_url(&self) -> String {
        format!("{}://{}", self.scheme, self.bucket)
    }

    /// The URL of a key of this store (an empty key: the bucket itself).
    pub fn url_of(&self, key: &str) -> String {
        match self.service {
            Service::File => format!("file:///{key}"),
            _ if key.is_empty() => self.bucket_url(),
            _ => format!("{}/{key}", self.bucket_url()),
        }
    }

    /// [`Self::key`] without trailing `/`s as an object path: the prefix everything of a
    /// published tree lives under.
    pub fn prefix(&self) -> Result<Path, UrlError> {
        parse_path(self.key.trim_end_matches('/'))
    }

    /// The `object_store` client of this URL's store, configured from the service's standard
    /// environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`). It does not check for credentials: call
    /// [`missing_credentials`] first (without any, a client would try the cloud's metadata
    /// service). An `http://` URL allows plain HTTP, which the client otherwise refuses;
    /// `https://` trusts the system's roots, or instead the PEM certificates of
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` when set (rustls-native-certs).
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>, StoreError> {
        self.store_with_retry(object_store::RetryConfig::default())
    }

    /// [`ObjectUrl::store`] with `retry` as the client's budget of retries per request
    /// (object_store's default: 10 retries within 3 minutes).
    pub fn store_with_retry(
        &self,
        retry: object_store::RetryConfig,
    ) -> Result<Arc<dyn ObjectStore>, StoreError> {
        let config = |source| StoreError {
            service: self.service,
            source,
        };
        let url = self.bucket_url();
        Ok(match self.service {
            Service::File => Arc::new(object_store::local::LocalFileSystem::new()),
            Service::Http => Arc::new(
                object_store::http::HttpBuilder::new()
                    .with_url(url)
                    .with_client_options(
                        object_store::ClientOptions::new().with_allow_http(self.scheme == "http"),
                    )
                    .with_retry(retry)
                    .build()
                    .map_err(config)?,
            ),
            Service::S3 => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_retry(retry.clone())
                    .build()
                    .map_err(config)?,
            ),
            Service::Gcs => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry.clone())
                    .build()
                    .map_err(config)?,
            ),
            Service::Azure => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry.clone())
                    .build()
                    .map_err(config)?,
            ),
        })
    }
}

/// `p` as an object path: no empty, `.` or `..` segment.
pub fn parse_path(p: &str) -> Result<Path, UrlError> {
    Path::parse(p).map_err(|e| UrlError::InvalidPath {
        path: p.to_string(),
        reason: e.to_string(),
    })
}

/// A store's builder refused its configuration.
#[derive(Debug)]
pub struct StoreError {
    pub service: Service,
    pub source: object_store::Error,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "configuring {}: {}",
            self.service.name(),
            first_line(&self.source.to_string())
        )
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// Why `name` cannot name a dataset in object storage: object paths percent-encode some
/// characters (non-ASCII ones, `%`, `#`, `?`, `[`, `]` and others), so its keys would not read
/// back as the name, and servers would look for objects that do not exist.
pub fn unpublishable_name(name: &str) -> Option<String> {
    let encoded = object_store::path::PathPart::from(name);
    (encoded.as_ref() != name).then(|| {
        format!(
            "dataset name {name:?} becomes {:?} in object keys, which percent-encode non-ASCII \
             characters and % # ? [ ] {{ }} | < > ^ ` \" \\ ~ *; use ASCII letters, digits, \
             spaces and punctuation such as - _ . + ( )",
            encoded.as_ref()
        )
    })
}

/// `prefix/rel` for a relative path `rel` (a manifest's entry): refused when a segment is
/// empty, `.` or `..`, so that no key leaves the prefix. Other characters are kept (encoded
/// as object paths encode them).
pub fn join(prefix: &Path, rel: &str) -> Result<Path, String> {
    let mut key = prefix.clone();
    for part in rel.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(format!("path {rel:?} has an empty, `.` or `..` segment"));
        }
        key = key.child(part);
    }
    Ok(key)
}

/// Why the store of `service` would have no credentials, naming the variables to set; `None`
/// when some are set (or the service needs none).
///
/// Without any, the S3 and Azure clients fall back to the cloud's instance metadata service,
/// which outside that cloud fails only after minutes of retries, and the GCS client to the
/// GCE metadata server. That fallback is taken only when asked for
/// (`QUARRY_S3_INSTANCE_METADATA`, `QUARRY_GCS_INSTANCE_METADATA`,
/// `QUARRY_AZURE_INSTANCE_METADATA` = `true`).
pub fn missing_credentials(service: Service) -> Option<String> {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    let truthy = |k: &str| {
        std::env::var(k).is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"))
    };
    match service {
        Service::File | Service::Http => None,
        Service::S3 => {
            let has = (set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY"))
                || set("AWS_WEB_IDENTITY_TOKEN_FILE")
                || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
                || truthy("AWS_SKIP_SIGNATURE")
                || truthy("QUARRY_S3_INSTANCE_METADATA");
            if has {
                return None;
            }
            let half = if set("AWS_ACCESS_KEY_ID") {
                " (AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not)"
            } else if set("AWS_SECRET_ACCESS_KEY") {
                " (AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not)"
            } else {
                ""
            };
            Some(format!(
                "no S3 credentials in the environment{half}: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or \
                 AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN (EKS), or AWS_SKIP_SIGNATURE=true for \
                 a public bucket, or QUARRY_S3_INSTANCE_METADATA=true to use the EC2 instance \
                 metadata service"
            ))
        }
        Service::Gcs => {
            let adc = std::env::var_os("HOME").is_some_and(|h| {
                std::path::Path::new(&h)
                    .join(".config/gcloud/application_default_credentials.json")
                    .is_file()
            });
            let has = set("GOOGLE_SERVICE_ACCOUNT")
                || set("GOOGLE_SERVICE_ACCOUNT_PATH")
                || set("GOOGLE_SERVICE_ACCOUNT_KEY")
                || set("GOOGLE_APPLICATION_CREDENTIALS")
                || adc
                || truthy("GOOGLE_SKIP_SIGNATURE")
                || truthy("QUARRY_GCS_INSTANCE_METADATA");
            (!has).then(|| {
                "no Google Cloud Storage credentials in the environment: set \
                 GOOGLE_SERVICE_ACCOUNT (a service account key file) or \
                 GOOGLE_SERVICE_ACCOUNT_KEY (its JSON), or GOOGLE_APPLICATION_CREDENTIALS (or \
                 run `gcloud auth application-default login`), or GOOGLE_SKIP_SIGNATURE=true for \
                 a public bucket, or QUARRY_GCS_INSTANCE_METADATA=true to use the GCE metadata \
                 server (GKE workload identity)"
                    .to_string()
            })
        }
        Service::Azure => {
            // Every spelling object_store's `from_env` reads for a credential, or for an
            // explicitly configured managed identity endpoint.
            let has = [
                "AZURE_STORAGE_ACCOUNT_KEY",
                "AZURE_STORAGE_ACCESS_KEY",
                "AZURE_STORAGE_MASTER_KEY",
                "AZURE_STORAGE_SAS_KEY",
                "AZURE_STORAGE_SAS_TOKEN",
                "AZURE_STORAGE_TOKEN",
                "AZURE_CLIENT_SECRET",
                "AZURE_STORAGE_CLIENT_SECRET",
                "AZURE_FEDERATED_TOKEN_FILE",
                "AZURE_MSI_ENDPOINT",
                "AZURE_IDENTITY_ENDPOINT",
                "AZURE_FABRIC_TOKEN_SERVICE_URL",
            ]
            .iter()
            .any(|k| set(k))
                || truthy("AZURE_STORAGE_USE_EMULATOR")
                || truthy("AZURE_USE_AZURE_CLI")
                || truthy("AZURE_SKIP_SIGNATURE")
                || truthy("QUARRY_AZURE_INSTANCE_METADATA");
            (!has).then(|| {
                "no Azure credentials in the environment: set AZURE_STORAGE_ACCOUNT_NAME and \
                 AZURE_STORAGE_ACCOUNT_KEY, or AZURE_STORAGE_SAS_TOKEN, or \
                 AZURE_CLIENT_ID/AZURE_TENANT_ID with AZURE_CLIENT_SECRET or \
                 AZURE_FEDERATED_TOKEN_FILE (AKS workload identity), or AZURE_SKIP_SIGNATURE=true \
                 for a public container, or QUARRY_AZURE_INSTANCE_METADATA=true to use the \
                 Azure instance metadata service (managed identity)"
                    .to_string()
            })
        }
    }
}

/// The first line of a message (object stores append whole XML bodies and repeat them).
pub fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

/// The first line of `e`, followed by each cause in its source chain that the text so far does
/// not already contain: a refused certificate or a refused connection is only named there.
pub fn describe(e: &(dyn StdError + 'static)) -> String {
    let mut text = first_line(&e.to_string());
    let mut cause = e.source();
    while let Some(c) = cause {
        let line = first_line(&c.to_string());
        if !line.is_empty() && !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = c.source();
    }
    text
}

/// The reason label of an object store error: `missing_object` (404), `credentials` (refused
/// as unauthenticated or unauthorised), `tls` (the origin's certificate is not trusted, or the
/// TLS handshake failed), else `origin` (5xx, resets, timeouts, refused connections).
pub fn classify(e: &object_store::Error) -> &'static str {
    if matches!(e, object_store::Error::NotFound { .. }) {
        return "missing_object";
    }
    let t = describe(e);
    if [
        "403",
        "401",
        "Forbidden",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "Unauthorized",
    ]
    .iter()
    .any(|w| t.contains(w))
    {
        "credentials"
    } else if ["certificate", "TLS", "tls handshake", "HandshakeFailure"]
        .iter()
        .any(|w| t.contains(w))
    {
        "tls"
    } else {
        "origin"
    }
}

/// The store says the bucket or container does not exist (S3 `NoSuchBucket`, Azure
/// `ContainerNotFound`, GCS's "bucket does not exist").
pub fn missing_bucket(e: &object_store::Error) -> bool {
    let t = e.to_string();
    t.contains("NoSuchBucket")
        || t.contains("ContainerNotFound")
        || t.contains("The specified bucket does not exist")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_scheme_without_its_slashes_is_refused_not_taken_for_a_folder() {
        for s in ["s3:/bucket/x", "file:/tmp/x", "GS:bucket", "https:/host/p"] {
            let e = bad(s, ALL);
            assert!(e.contains("needs // after the scheme"), "{s}: {e}");
        }
        for local in ["data", "./s3", "backup:2024/x", "/tmp/a:b"] {
            assert_eq!(ObjectUrl::parse(local, ALL), Ok(None), "{local}");
        }
    }

    #[test]
    fn names_that_object_keys_would_encode_are_unpublishable() {
        for name in ["orders", "Orders 2024", "a.b-c_d+e,f;g=h@i!j$k&l'm(n)o:p"] {
            assert_eq!(unpublishable_name(name), None, "{name}");
        }
        for name in [
            "caf\u{e9}",
            "100%",
            "a#b",
            "what?",
            "[x]",
            "a~b",
            "a*b",
            "a|b",
        ] {
            let why = unpublishable_name(name).unwrap_or_else(|| panic!("{name} accepted"));
            assert!(why.contains("becomes"), "{why}");
        }
    }

    fn ok(s: &str, accepted: &[Service]) -> ObjectUrl {
        ObjectUrl::parse(s, accepted)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .unwrap_or_else(|| panic!("{s} is not a URL"))
    }

    fn bad(s: &str, accepted: &[Service]) -> String {
        match ObjectUrl::parse(s, accepted) {
            Err(e) => e.to_string(),
            Ok(u) => panic!("{s} accepted as {u:?}"),
        }
    }

    #[test]
    fn paths_are_not_urls() {
        for s in [
            "data",
            "/srv/data",
            "./s3:/x",
            "a:b/c",
            "C:\\data",
            "1x://y",
            "://x",
        ] {
            assert_eq!(ObjectUrl::parse(s, ALL), Ok(None), "{s}");
        }
    }

    #[test]
    fn urls_split_into_store_and_key() {
        let u = ok("S3://bkt/a/b/", ALL);
        assert_eq!(
            (
                u.scheme.as_str(),
                u.service,
                u.bucket.as_str(),
                u.key.as_str()
            ),
            ("s3", Service::S3, "bkt", "a/b/")
        );
        assert_eq!(u.prefix().unwrap().as_ref(), "a/b");
        assert_eq!(u.bucket_url(), "s3://bkt");
        assert_eq!(u.url_of("a/b/x"), "s3://bkt/a/b/x");
        assert_eq!(u.url_of(""), "s3://bkt");

        let u = ok("gs://bkt", ALL);
        assert_eq!((u.bucket.as_str(), u.key.as_str()), ("bkt", ""));
        assert_eq!(u.prefix().unwrap().as_ref(), "");

        let u = ok("https://127.0.0.1:8443/pub/x", ALL);
        assert_eq!(
            (u.service, u.bucket.as_str(), u.key.as_str()),
            (Service::Http, "127.0.0.1:8443", "pub/x")
        );
        assert_eq!(
            u.url_of("pub/x/MANIFEST.json"),
            "https://127.0.0.1:8443/pub/x/MANIFEST.json"
        );

        let u = ok("file:///tmp/x", ALL);
        assert_eq!(
            (u.service, u.bucket.as_str(), u.key.as_str()),
            (Service::File, "", "tmp/x")
        );
        assert_eq!(u.url_of("tmp/x/ds/CURRENT"), "file:///tmp/x/ds/CURRENT");
        let u = ok("file:///", ALL);
        assert_eq!(u.prefix().unwrap().as_ref(), "");
    }

    #[test]
    fn every_azure_spelling_is_azure() {
        for s in [
            "az://c/p",
            "adl://c/p",
            "azure://c/p",
            "abfs://c/p",
            "abfss://c@acct.dfs.core.windows.net/p",
        ] {
            let u = ok(s, ALL);
            assert_eq!(u.service, Service::Azure, "{s}");
            assert_eq!(u.key, "p", "{s}");
        }
        assert_eq!(
            ok("abfss://c@acct.dfs.core.windows.net/p", ALL).bucket_url(),
            "abfss://c@acct.dfs.core.windows.net"
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert_eq!(
            bad("ftp://h/x", STORES),
            "unsupported URL scheme \"ftp\"; use one of s3://bucket/prefix, gs://bucket/prefix, \
             az://container/prefix, file:///dir"
        );
        assert_eq!(
            bad("https://h/x", &[Service::S3, Service::File]),
            "unsupported URL scheme \"https\"; use one of s3://bucket/prefix, file:///dir"
        );
        assert_eq!(
            bad("file://relative/x", ALL),
            "a file:// URL takes an absolute path (file:///dir)"
        );
        assert_eq!(
            bad("s3:///x", ALL),
            "the URL names no bucket (s3://BUCKET/...)"
        );
        assert_eq!(
            bad("s3://", ALL),
            "the URL names no bucket (s3://BUCKET/...)"
        );
        assert_eq!(
            bad("az:///x", ALL),
            "the URL names no container (az://CONTAINER/...)"
        );
        assert_eq!(
            bad("https:///x", ALL),
            "the URL names no host (https://HOST/...)"
        );
    }

    #[test]
    fn bad_prefixes_say_which_path() {
        for (s, path) in [
            ("s3://b/a//c", "a//c"),
            ("s3://b/../c", "../c"),
            ("gs://b/a/./c/", "a/./c"),
            ("file:///tmp/../etc", "tmp/../etc"),
        ] {
            let e = ok(s, ALL).prefix().expect_err(s).to_string();
            assert!(
                e.starts_with(&format!("invalid path {path:?}: "))
                    && e.ends_with("(no empty, `.` or `..` segments)"),
                "{s}: {e}"
            );
        }
    }

    #[test]
    fn joined_keys_stay_under_the_prefix() {
        let prefix = Path::from("pub/data");
        assert_eq!(
            join(&prefix, "people/v1.qry").unwrap().as_ref(),
            "pub/data/people/v1.qry"
        );
        assert_eq!(
            join(&Path::default(), "MANIFEST.json").unwrap().as_ref(),
            "MANIFEST.json"
        );
        for rel in ["../x", "a/../../x", "a//b", "/abs", "a/./b", "", "a/"] {
            assert_eq!(
                join(&prefix, rel).expect_err(rel),
                format!("path {rel:?} has an empty, `.` or `..` segment")
            );
        }
    }

    #[test]
    fn first_line_and_describe_keep_the_cause() {
        assert_eq!(first_line("a\nb"), "a");
        assert_eq!(first_line(""), "");
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl fmt::Display for E {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl StdError for E {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "Error performing GET https://h/x\n<xml/>",
            Some(Box::new(E(
                "error sending request",
                Some(Box::new(E("invalid peer certificate: UnknownIssuer", None))),
            ))),
        );
        assert_eq!(
            describe(&e),
            "Error performing GET https://h/x: error sending request: invalid peer \
             certificate: UnknownIssuer"
        );
        let e = E(
            "HTTP error: error sending request",
            Some(Box::new(E("error sending request", None))),
        );
        assert_eq!(describe(&e), "HTTP error: error sending request");
    }

    #[test]
    fn errors_are_classified() {
        let generic = |msg: &str| object_store::Error::Generic {
            store: "S3",
            source: msg.to_string().into(),
        };
        let nf = object_store::Error::NotFound {
            path: "x".into(),
            source: "404".into(),
        };
        assert_eq!(classify(&nf), "missing_object");
        assert_eq!(
            classify(&generic("403 Forbidden: AccessDenied")),
            "credentials"
        );
        assert_eq!(
            classify(&generic(
                "error sending request: invalid peer certificate: UnknownIssuer"
            )),
            "tls"
        );
        assert_eq!(classify(&generic("503 Service Unavailable")), "origin");
        assert!(missing_bucket(&generic("<Code>NoSuchBucket</Code>")));
        assert!(!missing_bucket(&generic("503")));
    }
}
