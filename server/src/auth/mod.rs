//! Who may read what: static bearer tokens (`--auth-tokens`) and JWTs (`--jwt-*`), each
//! granting a list of dataset names or globs.
//!
//! Invariants:
//! - Auth is on when any of `--auth-tokens`, `--jwt-secret-file`, `--jwt-public-keys` is set;
//!   then every dataset route needs a credential, probes and `/openapi.json` never do.
//! - A dataset the caller may not read is answered exactly like one that does not exist (404).
//! - A credential is verified once, then found in a small per-loop cache keyed by a keyed hash
//!   of the token and confirmed by a constant-time comparison of the whole token; an entry
//!   never outlives its JWT's `exp` or the credentials files it was verified against.
//! - Files are loaded at startup (any problem refuses to start, naming file and line) and
//!   reloaded by the loader (loop 0: the reload poll or SIGHUP) when one of them changed, into
//!   the process's one [`SharedCredentials`]; a file that fails to load keeps the previous
//!   credentials serving and is logged and counted. Every loop's cache starts over when it
//!   sees a new generation.
//! - Secrets (tokens, JWTs) are never logged; the access log names a token by its `name` and
//!   a JWT by its `sub`.

mod header;
pub mod jwt;
pub mod tokens;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use subtle::ConstantTimeEq;
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::error::ApiError;
use crate::state::LoopCtx;

pub use header::{bearer_slice, bearer_token, check_token68, HeaderError, MAX_TOKEN_BYTES};

/// Verified credentials kept per loop; past this many the cache starts over.
const CACHE_ENTRIES: usize = 1024;

/// Dataset names or globs (`*`, `?`, `[a-z]`, `{a,b}`; globset syntax) a credential may read.
#[derive(Debug)]
pub struct DatasetGlobs {
    set: GlobSet,
    /// One of the patterns is `*`: every name matches without asking the set.
    all: bool,
    /// XXH3-128 of the patterns: two grants with the same patterns see the same datasets.
    digest: u128,
}

impl DatasetGlobs {
    /// Refuses what cannot be a dataset name pattern, with the reason.
    pub fn check(pattern: &str) -> Result<(), String> {
        if pattern.is_empty() {
            return Err("empty dataset pattern".into());
        }
        if pattern.len() > 256 {
            return Err(format!(
                "dataset pattern of {} bytes; the limit is 256",
                pattern.len()
            ));
        }
        if pattern.contains('/') || pattern.contains('\\') {
            return Err(format!(
                "dataset pattern {pattern:?} has '/' or '\\'; dataset names have neither"
            ));
        }
        glob(pattern).map(|_| ())
    }

    pub fn new(patterns: &[&str]) -> Result<DatasetGlobs, String> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            b.add(glob(p)?);
        }
        let set = b.build().map_err(|e| format!("bad glob: {e}"))?;
        let mut text = Vec::new();
        for p in patterns {
            text.extend_from_slice(p.as_bytes());
            text.push(0);
        }
        Ok(DatasetGlobs {
            set,
            all: patterns.contains(&"*"),
            digest: xxhash_rust::xxh3::xxh3_128(&text),
        })
    }

    pub fn allows(&self, dataset: &str) -> bool {
        self.all || self.set.is_match(dataset)
    }

    /// The grant's identity in ETags (hex).
    pub fn digest_hex(&self) -> String {
        format!("{:032x}", self.digest)
    }
}

fn glob(pattern: &str) -> Result<globset::Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(false)
        .build()
        .map_err(|e| format!("bad glob {pattern:?}: {}", e.kind()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    Token,
    Jwt,
}

/// Who made a request: a token's `name` or a JWT's `sub`, and what it may read.
#[derive(Debug)]
pub struct Principal {
    pub name: String,
    pub kind: PrincipalKind,
    pub datasets: DatasetGlobs,
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            PrincipalKind::Token => write!(f, "token:{}", self.name),
            PrincipalKind::Jwt => write!(f, "jwt:{}", self.name),
        }
    }
}

/// What one request may read.
#[derive(Clone, Debug)]
pub enum Access {
    /// Auth is off: everything.
    Open,
    Granted(Arc<Principal>),
}

impl Access {
    pub fn allows(&self, dataset: &str) -> bool {
        match self {
            Access::Open => true,
            Access::Granted(p) => p.datasets.allows(dataset),
        }
    }

    pub fn principal(&self) -> Option<&Arc<Principal>> {
        match self {
            Access::Open => None,
            Access::Granted(p) => Some(p),
        }
    }
}

/// One version of the credentials files.
#[derive(Debug)]
pub struct Credentials {
    tokens: Option<tokens::TokenSet>,
    jwt: Option<jwt::JwtKeys>,
}

impl Credentials {
    /// `None` when no auth flag is set.
    pub fn load(config: &Config) -> anyhow::Result<Option<Arc<Credentials>>> {
        if !enabled(config) {
            return Ok(None);
        }
        let tokens = match &config.auth_tokens {
            Some(path) => Some(tokens::TokenSet::load(path)?),
            None => None,
        };
        let jwt = if config.jwt_secret_file.is_some() || config.jwt_public_keys.is_some() {
            let rules = jwt::Rules {
                audience: config.jwt_audience.clone(),
                issuer: config.jwt_issuer.clone(),
                datasets_claim: config.jwt_datasets_claim.clone(),
                leeway: config.jwt_leeway,
            };
            Some(jwt::JwtKeys::load(
                config.jwt_secret_file.as_deref(),
                config.jwt_public_keys.as_deref(),
                &rules,
            )?)
        } else {
            None
        };
        Ok(Some(Arc::new(Credentials { tokens, jwt })))
    }

    fn summary(&self) -> (usize, usize) {
        (
            self.tokens.as_ref().map_or(0, |t| t.len()),
            self.jwt.as_ref().map_or(0, |j| j.len()),
        )
    }
}

pub fn enabled(config: &Config) -> bool {
    config.auth_tokens.is_some()
        || config.jwt_secret_file.is_some()
        || config.jwt_public_keys.is_some()
}

/// The process's credentials, shared by every loop; replaced whole on reload.
#[derive(Debug, Default)]
pub struct SharedCredentials {
    current: arc_swap::ArcSwapOption<Credentials>,
    /// Bumped after every replacement: a loop that sees a new value empties its cache.
    generation: AtomicU64,
    /// Identities of the files when last loaded (or last tried and refused).
    ids: Mutex<FileIds>,
}

/// Loads the credentials at startup and says once whether auth is on.
pub fn startup(
    config: &Config,
    metrics: &crate::metrics::Metrics,
) -> anyhow::Result<Arc<SharedCredentials>> {
    // Identities first: a file replaced while it is read is read again at the next poll.
    let ids = file_ids(&auth_paths(config));
    let creds = Credentials::load(config)?;
    match &creds {
        None => {
            warn!("authentication is off: every client that reaches the API port reads every dataset (set --auth-tokens, --jwt-secret-file or --jwt-public-keys)");
            metrics.auth.enabled.set(0);
        }
        Some(c) => {
            let (tokens, keys) = c.summary();
            info!(tokens, jwt_keys = keys, "authentication is on");
            metrics.auth.enabled.set(1);
        }
    }
    Ok(Arc::new(SharedCredentials {
        current: arc_swap::ArcSwapOption::new(creds),
        generation: AtomicU64::new(0),
        ids: Mutex::new(ids),
    }))
}

fn auth_paths(config: &Config) -> Vec<PathBuf> {
    [
        &config.auth_tokens,
        &config.jwt_secret_file,
        &config.jwt_public_keys,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect()
}

/// (device, inode, size, mtime ns) of each credentials file, or None when it cannot be read.
type FileIds = Vec<Option<(u64, u64, u64, i128)>>;

fn file_ids(paths: &[PathBuf]) -> FileIds {
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p).ok().map(|m| {
                (
                    m.dev(),
                    m.ino(),
                    m.size(),
                    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
                )
            })
        })
        .collect()
}

struct CacheEntry {
    token: Box<[u8]>,
    access: Access,
    /// Unix seconds from which the entry is no longer used (`u64::MAX`: static token).
    until: u64,
}

/// One loop's authenticator: the shared credentials and this loop's cache of verified ones.
pub struct Auth {
    enabled: bool,
    paths: Vec<PathBuf>,
    shared: RefCell<Arc<SharedCredentials>>,
    /// The shared generation the cache was filled under.
    generation: Cell<u64>,
    cache: RefCell<HashMap<u64, CacheEntry>>,
    /// Random seed of the cache's token hash (a collision only costs a re-verification: every
    /// hit is confirmed by comparing the whole token).
    seed: u64,
    /// `--cache-control` with `public` turned into `private`, for authenticated answers.
    private_cache_control: Option<HeaderValue>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("enabled", &self.enabled)
            .field("paths", &self.paths)
            .field("cached", &self.cache.borrow().len())
            .finish()
    }
}

impl Auth {
    /// Refuses everything until [`Auth::install`] when auth is configured.
    pub fn new(config: &Config) -> Auth {
        Auth {
            enabled: enabled(config),
            paths: auth_paths(config),
            shared: RefCell::new(Arc::default()),
            generation: Cell::new(0),
            cache: RefCell::new(HashMap::new()),
            seed: std::collections::hash_map::RandomState::new().hash_one(0u64),
            private_cache_control: private_cache_control(&config.cache_control),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The process's credentials, loaded at startup by [`startup`].
    pub fn install(&self, shared: Arc<SharedCredentials>) {
        self.generation
            .set(shared.generation.load(Ordering::Acquire));
        *self.shared.borrow_mut() = shared;
        self.cache.borrow_mut().clear();
    }

    /// The Cache-Control of a dataset answer: `--cache-control`, made private under auth.
    pub fn cache_control<'a>(
        &'a self,
        configured: &'a Option<HeaderValue>,
    ) -> &'a Option<HeaderValue> {
        if self.enabled {
            &self.private_cache_control
        } else {
            configured
        }
    }

    fn credentials(&self) -> Option<Arc<Credentials>> {
        self.shared.borrow().current.load_full()
    }

    /// Empties the cache when the shared credentials were replaced since it was filled.
    fn sync_generation(&self) {
        let now = self.shared.borrow().generation.load(Ordering::Acquire);
        if now != self.generation.get() {
            self.generation.set(now);
            self.cache.borrow_mut().clear();
        }
    }
}

/// `public` -> `private`; `private` added unless already private or `no-store`.
fn private_cache_control(configured: &str) -> Option<HeaderValue> {
    let mut parts: Vec<&str> = configured
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("public"))
        .collect();
    if !parts
        .iter()
        .any(|p| p.eq_ignore_ascii_case("private") || p.eq_ignore_ascii_case("no-store"))
    {
        parts.insert(0, "private");
    }
    HeaderValue::from_str(&parts.join(", ")).ok()
}

/// Reloads the credentials files if one of them changed since the last attempt (the loader
/// calls it before each pass, on one loop).
pub fn reload_if_changed(ctx: &LoopCtx) {
    let auth = &ctx.auth;
    if !auth.enabled {
        return;
    }
    let shared = auth.shared.borrow().clone();
    let now = file_ids(&auth.paths);
    {
        let mut ids = shared.ids.lock().unwrap_or_else(|p| p.into_inner());
        if *ids == now {
            return;
        }
        *ids = now;
    }
    match Credentials::load(&ctx.config) {
        Ok(creds) => {
            if let Some(c) = &creds {
                let (tokens, keys) = c.summary();
                info!(tokens, jwt_keys = keys, "credentials reloaded");
            }
            shared.current.store(creds);
            shared.generation.fetch_add(1, Ordering::AcqRel);
            ctx.metrics.auth.reloads.inc();
        }
        Err(e) => {
            error!(
                error = format!("{e:#}"),
                "credentials file refused; the previous credentials stay in use"
            );
            ctx.metrics.auth.reload_failures.inc();
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who the request is from, or the 401 to answer.
pub fn authenticate(ctx: &LoopCtx, headers: &HeaderMap) -> Result<Access, ApiError> {
    let auth = &ctx.auth;
    if !auth.enabled {
        return Ok(Access::Open);
    }
    let result = check(auth, headers);
    if let Err(e) = &result {
        let reason = match e {
            ApiError::Unauthorized { reason: None } => "missing",
            _ => "invalid",
        };
        ctx.metrics
            .auth
            .refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
        debug!(reason = %e.message(), "authentication refused");
    }
    result
}

fn invalid(reason: impl Into<String>) -> ApiError {
    ApiError::Unauthorized {
        reason: Some(reason.into()),
    }
}

fn check(auth: &Auth, headers: &HeaderMap) -> Result<Access, ApiError> {
    auth.sync_generation();
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::Unauthorized { reason: None });
    };
    if values.next().is_some() {
        return Err(invalid(HeaderError::Repeated.message()));
    }
    let (start, token) = bearer_slice(value.as_bytes()).map_err(|e| invalid(e.message()))?;
    let key = xxhash_rust::xxh3::xxh3_64_with_seed(token, auth.seed);
    if let Some(hit) = auth.cache.borrow().get(&key) {
        if same_token(&hit.token, token) && (hit.until == u64::MAX || now_secs() < hit.until) {
            return Ok(hit.access.clone());
        }
    }
    check_token68(token, start).map_err(|e| invalid(e.message()))?;
    let Some(creds) = auth.credentials() else {
        return Err(invalid("no credentials are loaded on this server"));
    };
    let (principal, until) = if let Some(p) = creds.tokens.as_ref().and_then(|t| t.find(token)) {
        (p.clone(), u64::MAX)
    } else if let Some(keys) = creds.jwt.as_ref().filter(|_| looks_like_jwt(token)) {
        let v = keys.verify(token).map_err(invalid)?;
        (v.principal, v.exp)
    } else {
        return Err(invalid("unknown token"));
    };
    let access = Access::Granted(principal);
    if now_secs() < until {
        let mut cache = auth.cache.borrow_mut();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(
            key,
            CacheEntry {
                token: token.into(),
                access: access.clone(),
                until,
            },
        );
    }
    Ok(access)
}

/// Equal bytes, in time that depends only on the lengths: 8 bytes at a time XORed into one
/// word without branching on their values (a byte-at-a-time constant-time compare costs more
/// than the rest of a lookup for a JWT of a few hundred bytes).
fn same_token(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u64;
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in a8.remainder().iter().zip(b8.remainder()) {
        diff |= u64::from(x ^ y);
    }
    for (x, y) in a8.zip(b8) {
        let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
        diff |= word(x) ^ word(y);
    }
    bool::from(std::hint::black_box(diff).ct_eq(&0))
}

/// Three base64url parts, the header JSON's `{"` encoded as `eyJ`.
fn looks_like_jwt(token: &[u8]) -> bool {
    token.starts_with(b"eyJ") && token.iter().filter(|&&b| b == b'.').count() == 2
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// The auth series of `/metrics`.
#[derive(Debug, Default)]
pub struct AuthMetrics {
    pub enabled: Gauge,
    pub refused: Family<ReasonLabel, Counter>,
    pub reloads: Counter,
    pub reload_failures: Counter,
}

impl AuthMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "auth_enabled",
            "1 when bearer tokens or JWTs are required on the API port, 0 when anyone may read every dataset",
            self.enabled.clone(),
        );
        registry.register(
            "auth_refused",
            "Requests answered 401 (reason: missing or invalid credentials)",
            self.refused.clone(),
        );
        registry.register(
            "auth_reloads",
            "Credentials files reloaded after a change",
            self.reloads.clone(),
        );
        registry.register(
            "auth_reload_failures",
            "Changed credentials files refused (the previous credentials stay in use)",
            self.reload_failures.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticated_answers_are_never_publicly_cacheable() {
        let v = |s: &str| private_cache_control(s).map(|h| h.to_str().unwrap_or("").to_string());
        assert_eq!(
            v("public, max-age=60").as_deref(),
            Some("private, max-age=60")
        );
        assert_eq!(v("").as_deref(), Some("private"));
        assert_eq!(v("no-store").as_deref(), Some("no-store"));
        assert_eq!(
            v("max-age=5, private").as_deref(),
            Some("max-age=5, private")
        );
        assert_eq!(v("PUBLIC").as_deref(), Some("private"));
    }

    #[test]
    fn globs_match_whole_dataset_names() {
        let g =
            DatasetGlobs::new(&["orders_*", "flights", "t?", "[ab]x", "{p,q}z"]).expect("globs");
        for yes in [
            "orders_",
            "orders_2024",
            "flights",
            "t1",
            "ax",
            "bx",
            "pz",
            "qz",
        ] {
            assert!(g.allows(yes), "{yes}");
        }
        for no in ["orders", "xorders_1", "flights_", "t12", "cx", "rz", ""] {
            assert!(!g.allows(no), "{no}");
        }
        assert!(DatasetGlobs::new(&["*"])
            .expect("star")
            .allows("anything.at-all"));
        assert!(!DatasetGlobs::new(&[]).expect("none").allows("x"));
        assert!(DatasetGlobs::check("a[").is_err());
        assert!(DatasetGlobs::check("{a").is_err());
        assert!(DatasetGlobs::check("").is_err());
        assert!(DatasetGlobs::check("a/b").is_err());
    }

    #[test]
    fn tokens_compare_equal_only_when_every_byte_is() {
        let t: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 700] {
            let a = &t[..len];
            assert!(same_token(a, a), "{len}");
            for i in 0..len {
                let mut b = a.to_vec();
                b[i] ^= 0x01;
                assert!(!same_token(a, &b), "{len} {i}");
            }
            if len > 0 {
                assert!(!same_token(a, &a[..len - 1]));
            }
        }
    }
}
