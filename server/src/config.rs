//! Command-line and environment configuration (every flag also from
//! `QUARRY_<FLAG>`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};

/// How much of each dataset file is checked before the server reports ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VerifyMode {
    /// Every chunk checksum (sliced, the loop keeps answering).
    Full,
    /// Header, footer and offsets only (`QuarryFile::open`).
    Cheap,
}

/// A piece of the runtime glue `--plain-runtime` replaces by plain hyper + monoio.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlainPiece {
    /// Every piece below.
    #[value(alias = "1")]
    All,
    /// No turn-end write batching: each response is written at once.
    Batching,
    /// monoio's timer for hyper instead of the coarse deadline list.
    Timer,
    /// A bare re-wake between slices of long work instead of a yield through the I/O driver.
    Yield,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, text otherwise.
    Auto,
    Json,
    Text,
}

/// The server's configuration. `main` builds it with [`Config::load`]; tests with
/// `Config::parse_from`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "quarry-server",
    version,
    about = "Serves Quarry dataset files over HTTP"
)]
pub struct Config {
    /// Directory of dataset files: DIR/<name>.qry (other files and dot-files are ignored).
    /// Not with --source on the command line; from the environment it gives way to --source
    /// (an image's default data directory does not block a --source deployment).
    #[arg(long, env = "QUARRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Object storage prefix or HTTP(S) origin to fetch datasets from (s3://bucket/prefix,
    /// gs://, az://, abfs(s)://, file:///dir, https://host/prefix): its MANIFEST.json is polled
    /// every --reload-interval; datasets are downloaded into --cache-dir, verified, then served.
    #[arg(long, env = "QUARRY_SOURCE", requires = "cache_dir")]
    pub source: Option<String>,
    /// Local directory the datasets of --source are downloaded into (created if missing; the
    /// server owns it: files of datasets not in the manifest are removed).
    #[arg(long, env = "QUARRY_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Most bytes of dataset files the cache may hold, old and new version of a swap included
    /// (default: the cache volume's free space at startup plus the files already cached).
    #[arg(long, env = "QUARRY_CACHE_MAX_BYTES", value_parser = crate::memory::parse_size)]
    pub cache_max_bytes: Option<u64>,
    /// Address to listen on.
    #[arg(long, env = "QUARRY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// full: every chunk checksum before ready; cheap: structure only.
    #[arg(long, env = "QUARRY_VERIFY", value_enum, default_value = "full")]
    pub verify: VerifyMode,
    /// Touch every page of each dataset before ready.
    #[arg(long, env = "QUARRY_WARM", value_parser = BoolishValueParser::new())]
    pub warm: bool,
    /// Single-threaded event loops on one port (SO_REUSEPORT), serving one shared catalog; the
    /// start fails when another process already listens on the address.
    #[arg(long, env = "QUARRY_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: u16,
    /// Pin loop i to core i.
    #[arg(long, env = "QUARRY_PIN_CORES", value_parser = BoolishValueParser::new())]
    pub pin_cores: bool,
    /// After SIGTERM: keep serving this long (readiness already 503) before closing the listener.
    #[arg(long, env = "QUARRY_DRAIN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub drain_delay: Duration,
    /// After the drain delay: time allowed for in-flight requests to finish.
    #[arg(long, env = "QUARRY_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Poll the data directory for new, replaced or removed datasets this often (0s: never; SIGHUP still reloads).
    #[arg(long, env = "QUARRY_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub reload_interval: Duration,
    /// Dataset versions mapped at once, at most (0: vm.max_map_count minus the process's other
    /// mappings and a reserve). A file past the limit fails to load, named; the process never aborts.
    #[arg(long, env = "QUARRY_MAX_MAPPED_DATASETS", default_value_t = 0)]
    pub max_mapped_datasets: usize,
    /// Do not take read leases on dataset files (then files changed in place are found by
    /// polling only, and a truncation racing a request can end the process with SIGBUS).
    #[arg(long, env = "QUARRY_NO_READ_LEASES", value_parser = BoolishValueParser::new())]
    pub no_read_leases: bool,
    /// Rows returned when the request has no `limit`.
    #[arg(long, env = "QUARRY_DEFAULT_LIMIT", default_value_t = 100)]
    pub default_limit: usize,
    /// Largest accepted `limit`.
    #[arg(long, env = "QUARRY_MAX_LIMIT", default_value_t = 10_000)]
    pub max_limit: usize,
    /// Rows one request may examine before it is ended with 422.
    #[arg(long, env = "QUARRY_MAX_SCAN_ROWS", default_value_t = 100_000_000)]
    pub max_scan_rows: u64,
    /// Open connections per loop; more are accepted and closed at once.
    #[arg(long, env = "QUARRY_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Time allowed to receive a request head (slowloris bound).
    #[arg(long, env = "QUARRY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Close keep-alive connections idle this long.
    #[arg(long, env = "QUARRY_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Longest request target; longer gets 414.
    #[arg(long, env = "QUARRY_MAX_URI_BYTES", default_value_t = 8192)]
    pub max_uri_bytes: usize,
    /// Largest request head; larger gets 431.
    #[arg(long, env = "QUARRY_MAX_HEADER_BYTES", default_value_t = 16384)]
    pub max_header_bytes: usize,
    /// Cache-Control header on dataset responses ("" for none).
    #[arg(
        long,
        env = "QUARRY_CACHE_CONTROL",
        default_value = "public, max-age=60"
    )]
    pub cache_control: String,
    /// auto: JSON when stdout is not a terminal.
    #[arg(long, env = "QUARRY_LOG_FORMAT", value_enum, default_value = "auto")]
    pub log_format: LogFormat,
    /// Use epoll even where io_uring is allowed (same as MONOIO_FORCE_LEGACY_DRIVER=1).
    #[arg(long, env = "QUARRY_FORCE_EPOLL", value_parser = BoolishValueParser::new())]
    pub force_epoll: bool,
    /// Benchmarks only: plain hyper + monoio in place of Quarry's runtime glue (quarry-runtime).
    /// Bare or `all`: every piece; else a comma-separated list of `batching`, `timer`, `yield`.
    #[arg(long, env = "QUARRY_PLAIN_RUNTIME", value_enum, value_delimiter = ',', num_args = 0..=1, default_missing_value = "all")]
    pub plain_runtime: Vec<PlainPiece>,
    /// Load shedding: requests in flight per loop above which new requests get 503 + Retry-After.
    #[arg(long, env = "QUARRY_SHED_IN_FLIGHT", default_value_t = 1024)]
    pub shed_in_flight: usize,
    /// Load shedding: event-loop lag above which new requests get 503 + Retry-After (0s: off).
    #[arg(long, env = "QUARRY_SHED_LAG", default_value = "250ms", value_parser = parse_duration)]
    pub shed_lag: Duration,
    /// Admin listener: `/metrics`, `/livez`, `/healthz` (never exposed by the Service/Ingress).
    #[arg(long, env = "QUARRY_ADMIN_LISTEN", default_value = "0.0.0.0:9090")]
    pub admin_listen: SocketAddr,
    /// Static bearer tokens: a TOML file of `[[token]]` name, sha256, datasets (reloaded when it changes).
    #[arg(long, env = "QUARRY_AUTH_TOKENS")]
    pub auth_tokens: Option<PathBuf>,
    /// HMAC secret for HS256/384/512 JWTs (at least 32 bytes; trailing newlines ignored).
    #[arg(long, env = "QUARRY_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Public keys for RS*/PS*/ES256/ES384/EdDSA JWTs: PEM blocks or a JWKS document.
    #[arg(long, env = "QUARRY_JWT_PUBLIC_KEYS")]
    pub jwt_public_keys: Option<PathBuf>,
    /// Required JWT `aud` (unchecked when unset).
    #[arg(long, env = "QUARRY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Required JWT `iss` (unchecked when unset).
    #[arg(long, env = "QUARRY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// JWT claim listing the dataset names or globs the bearer may read.
    #[arg(
        long,
        env = "QUARRY_JWT_DATASETS_CLAIM",
        default_value = "quarry_datasets"
    )]
    pub jwt_datasets_claim: String,
    /// Clock skew allowed on JWT `exp` and `nbf` (whole seconds).
    #[arg(long, env = "QUARRY_JWT_LEEWAY", default_value = "5s", value_parser = parse_duration)]
    pub jwt_leeway: Duration,
    /// Log one line per request (target `quarry::access`) naming the token or JWT subject.
    #[arg(long, env = "QUARRY_ACCESS_LOG", value_parser = BoolishValueParser::new())]
    pub access_log: bool,
    /// Abort a response whose writes made no progress for this long (a client that stopped
    /// reading): its buffers, encoder and dataset version are released.
    #[arg(long, env = "QUARRY_WRITE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub write_timeout: Duration,
    /// Abort a response not finished this long after its request arrived, whatever its progress.
    #[arg(long, env = "QUARRY_RESPONSE_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    pub response_timeout: Duration,
    /// Most memory one request may hold that grows with the data (group keys and states,
    /// top-k rows, collected rows); past it, 422 too_much_memory.
    #[arg(long, env = "QUARRY_MAX_REQUEST_MEMORY", default_value = "64MiB", value_parser = crate::memory::parse_size)]
    pub max_request_memory: u64,
    /// Memory all requests in flight may hold together; past it, 503 + Retry-After. Default:
    /// half the cgroup memory limit (memory.max / memory.limit_in_bytes), or 1GiB without one.
    #[arg(long, env = "QUARRY_MEMORY_BUDGET", value_parser = crate::memory::parse_size)]
    pub memory_budget: Option<u64>,
    /// Install handlers for SIGTERM/SIGINT/SIGHUP (off only for in-process tests).
    #[arg(skip = true)]
    pub handle_signals: bool,
}

impl Config {
    /// Parses the command line and the environment; a usage error exits 2 with clap's message.
    pub fn load() -> Config {
        Self::try_load_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// [`Config::load`] from `args`: clap's parse plus the rule between `--data-dir` and
    /// `--source` (one of them; a `QUARRY_DATA_DIR` from the environment gives way to
    /// `--source`, a `--data-dir` on the command line conflicts with it).
    pub fn try_load_from<I, T>(args: I) -> Result<Config, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut cmd = Config::command();
        let matches = cmd.try_get_matches_from_mut(args)?;
        let mut config = Config::from_arg_matches(&matches)?;
        let data_dir_source = matches.value_source("data_dir");
        match (&config.source, &config.data_dir) {
            (Some(_), Some(_)) if data_dir_source == Some(ValueSource::EnvVariable) => {
                config.data_dir = None;
            }
            (Some(_), Some(_)) => {
                return Err(cmd.error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "the argument '--data-dir' cannot be used with '--source' (--source \
                     serves what it downloads into --cache-dir)",
                ));
            }
            (None, None) => {
                return Err(cmd.error(
                    clap::error::ErrorKind::MissingRequiredArgument,
                    "one of '--data-dir <DATA_DIR>' (QUARRY_DATA_DIR) or '--source <SOURCE>' \
                     (QUARRY_SOURCE) is required",
                ));
            }
            _ => {}
        }
        Ok(config)
    }

    /// The directory the loader maps datasets from: `--data-dir`, or `--cache-dir` with
    /// `--source`.
    pub fn dataset_dir(&self) -> &std::path::Path {
        match (&self.source, &self.cache_dir, &self.data_dir) {
            (Some(_), Some(c), _) => c,
            (_, _, Some(d)) => d,
            (_, Some(c), None) => c,
            (_, None, None) => std::path::Path::new("."),
        }
    }

    /// Whether epoll is forced by flag or by monoio's own environment variable.
    pub fn epoll_forced(&self) -> bool {
        self.force_epoll
            || std::env::var("MONOIO_FORCE_LEGACY_DRIVER").is_ok_and(|v| v == "1" || v == "true")
    }

    /// The runtime glue each loop runs: all of it, less what `--plain-runtime` names.
    pub fn plumbing(&self) -> quarry_runtime::Plumbing {
        let mut p = quarry_runtime::Plumbing::FULL;
        for piece in &self.plain_runtime {
            match piece {
                PlainPiece::All => p = quarry_runtime::Plumbing::PLAIN,
                PlainPiece::Batching => p.turn_batching = false,
                PlainPiece::Timer => p.coarse_timer = false,
                PlainPiece::Yield => p.io_yield = false,
            }
        }
        p
    }
}

/// A duration as humantime reads it (`250ms`, `5s`, `2m`, `1h 30m`), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| format!("invalid duration {s:?}: {e}"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?}: {e} (e.g. 250ms, 5s, 2m, 1h 30m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 10s "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn flags_have_contract_defaults() {
        let c = Config::parse_from(["quarry-server", "--data-dir", "/d"]);
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.verify, VerifyMode::Full);
        assert_eq!(c.threads, 1);
        assert_eq!(c.drain_delay, Duration::from_secs(5));
        assert_eq!(c.max_uri_bytes, 8192);
        assert_eq!(c.write_timeout, Duration::from_secs(30));
        assert_eq!(c.max_request_memory, 64 << 20);
        assert_eq!(c.memory_budget, None);
        assert_eq!(c.response_timeout, Duration::from_secs(300));
        assert!(c.handle_signals);
        assert_eq!(c.admin_listen.port(), 9090);
        assert_eq!(c.jwt_datasets_claim, "quarry_datasets");
        assert!(c.auth_tokens.is_none() && !c.access_log);
        assert_eq!(c.plumbing(), quarry_runtime::Plumbing::FULL);
    }

    #[test]
    fn plain_runtime_names_the_pieces_it_turns_off() {
        let plumbing = |args: &[&str]| {
            let mut all = vec!["quarry-server", "--data-dir", "/d"];
            all.extend_from_slice(args);
            Config::parse_from(all).plumbing()
        };
        assert_eq!(
            plumbing(&["--plain-runtime"]),
            quarry_runtime::Plumbing::PLAIN
        );
        assert_eq!(
            plumbing(&["--plain-runtime=all"]),
            quarry_runtime::Plumbing::PLAIN
        );
        assert_eq!(
            plumbing(&["--plain-runtime=1"]),
            quarry_runtime::Plumbing::PLAIN
        );
        let p = plumbing(&["--plain-runtime=batching,yield"]);
        assert!(!p.turn_batching && p.coarse_timer && !p.io_yield);
        let p = plumbing(&["--plain-runtime=timer"]);
        assert!(p.turn_batching && !p.coarse_timer && p.io_yield);
        let err =
            Config::try_parse_from(["quarry-server", "--data-dir", "/d", "--plain-runtime=fast"])
                .expect_err("an unknown piece is refused");
        assert!(err.to_string().contains("fast"), "{err}");
    }

    #[test]
    fn dataset_dir_is_data_dir() {
        let c = Config::parse_from(["quarry-server", "--data-dir", "/d"]);
        assert_eq!(c.dataset_dir(), std::path::Path::new("/d"));
    }

    #[test]
    fn source_takes_the_place_of_data_dir() {
        let c = Config::parse_from(["quarry-server", "--source", "s3://b/p", "--cache-dir", "/c"]);
        assert_eq!(c.dataset_dir(), std::path::Path::new("/c"));
        assert!(c.data_dir.is_none());
        // --source needs --cache-dir, excludes --data-dir; one of them is required.
        let err = |args: &[&str]| Config::try_load_from(args).err().map(|e| e.to_string());
        assert!(err(&["quarry-server", "--source", "s3://b/p", "--cache-dir", "/c"]).is_none());
        assert!(err(&["quarry-server", "--data-dir", "/d"]).is_none());
        assert!(err(&[
            "quarry-server",
            "--source",
            "s3://b/p",
            "--cache-dir",
            "/c",
            "--data-dir",
            "/d"
        ])
        .is_some_and(|e| e.contains("'--data-dir' cannot be used with '--source'")));
        assert!(err(&["quarry-server"]).is_some_and(|e| e.contains("'--source <SOURCE>'")));
        assert!(err(&["quarry-server", "--source", "s3://b/p"]).is_some());
    }
}
