//! Publishing to object storage against a real S3 API: moto's standalone server (installed by
//! scripts/test.sh into the test venv, run through QUARRY_TEST_PYTHON), started on a free
//! 127.0.0.1 port per test and killed after. The CLI tests run the real binary.

use std::path::Path as FsPath;
use std::process::{Command, Output};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use quarry_etl::remote::{self, Pointer, Target};

mod servers;

use servers::{clear_env, Server, BIN};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn keys(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = rt().block_on(async {
        store
            .list(Some(&Path::from(prefix)))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .expect("list")
    });
    keys.sort();
    keys
}

fn get(store: &Arc<dyn ObjectStore>, key: &str) -> Vec<u8> {
    rt().block_on(async {
        store
            .get(&Path::from(key))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body")
            .to_vec()
    })
}

fn pointer(store: &Arc<dyn ObjectStore>, key: &str) -> Pointer {
    serde_json::from_slice(&get(store, key)).expect("pointer JSON")
}

fn csv(dir: &FsPath, file: &str, rows: usize) -> String {
    let p = dir.join(file);
    let mut s = String::from("id,name\n");
    for i in 0..rows {
        s.push_str(&format!("{i},name{i}\n"));
    }
    std::fs::write(&p, s).expect("write csv");
    p.to_string_lossy().into_owned()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The object read back opens and verifies as a Quarry file with `rows` rows.
fn assert_valid(bytes: Vec<u8>, rows: u64) {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("x.qry");
    std::fs::write(&p, bytes).expect("write");
    let f = quarry_format::read_file(&p).expect("stored object opens");
    f.verify().expect("stored object verifies");
    assert_eq!(f.num_rows(), rows);
}

#[test]
fn publish_then_republish_moves_the_pointer_and_keeps_versions() {
    let moto = Server::moto(None);
    moto.create_bucket("bkt");
    let store = moto.store("bkt");
    let dir = tempfile::tempdir().expect("tmp");
    let a = csv(dir.path(), "a.csv", 10);
    let out = "s3://bkt/team/data";
    let o = moto.etl(&[
        "build",
        &a,
        "--out",
        out,
        "--name",
        "ds",
        "--progress",
        "none",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let p1 = pointer(&store, "team/data/ds/CURRENT");
    assert_eq!(p1.key, format!("team/data/ds/{}.qry", p1.version));
    assert_eq!(
        keys(&store, "team/data/ds"),
        vec![p1.key.clone(), "team/data/ds/CURRENT".to_string()]
    );
    let bytes = get(&store, &p1.key);
    assert_eq!(bytes.len() as u64, p1.size);
    assert_valid(bytes, 10);
    // Nothing is left behind locally under a folder named after the scheme.
    assert!(!FsPath::new("s3:").exists());

    // A second, different build: the pointer moves, both data objects are there.
    let b = csv(dir.path(), "b.csv", 20);
    let o = moto.etl(&[
        "build",
        &b,
        "--out",
        out,
        "--name",
        "ds",
        "--progress",
        "none",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let p2 = pointer(&store, "team/data/ds/CURRENT");
    assert_ne!(p2.version, p1.version);
    assert_valid(get(&store, &p2.key), 20);
    let mut want = vec![
        p1.key.clone(),
        p2.key.clone(),
        "team/data/ds/CURRENT".to_string(),
    ];
    want.sort();
    assert_eq!(keys(&store, "team/data/ds"), want);

    // A third with --keep-versions 1: only the version the pointer names is kept.
    let c = csv(dir.path(), "c.csv", 30);
    let o = moto.etl(&[
        "build",
        &c,
        "--out",
        out,
        "--name",
        "ds",
        "--progress",
        "none",
        "--keep-versions",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let p3 = pointer(&store, "team/data/ds/CURRENT");
    let mut want = vec![p3.key.clone(), "team/data/ds/CURRENT".to_string()];
    want.sort();
    assert_eq!(keys(&store, "team/data/ds"), want);
    assert_valid(get(&store, &p3.key), 30);
}

#[test]
fn a_large_file_goes_up_in_parts_and_is_checked() {
    let moto = Server::moto(None);
    moto.create_bucket("big");
    let store = moto.store("big");
    let dir = tempfile::tempdir().expect("tmp");
    // Random-looking text that does not compress below a few parts.
    let p = dir.path().join("big.csv");
    let mut s = String::from("id,blob\n");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut i = 0u64;
    while s.len() < 3 * remote::PART_SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{i},{x:016x}{:016x}\n", x.rotate_left(29)));
        i += 1;
    }
    std::fs::write(&p, s).expect("write");
    let o = moto.etl(&[
        "build",
        p.to_str().expect("utf8"),
        "--out",
        "s3://big",
        "--name",
        "ds",
        "--progress",
        "none",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let ptr = pointer(&store, "ds/CURRENT");
    assert!(
        ptr.size > remote::PART_SIZE as u64,
        "the file ({} bytes) must span parts",
        ptr.size
    );
    assert_valid(get(&store, &ptr.key), i);
}

#[test]
fn missing_credentials_and_missing_bucket_are_clear_errors() {
    let moto = Server::moto(None);
    let dir = tempfile::tempdir().expect("tmp");
    let a = csv(dir.path(), "a.csv", 5);
    // No credentials at all: a usage error naming the variables, before any build work.
    let mut cmd = Command::new(BIN);
    clear_env(&mut cmd);
    let o = cmd
        .env("AWS_ENDPOINT", moto.endpoint())
        .env("AWS_ALLOW_HTTP", "true")
        .args(["build", &a, "--out", "s3://bkt/p", "--name", "ds"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no S3 credentials") && e.contains("AWS_ACCESS_KEY_ID"),
        "{e}"
    );

    // A bucket that does not exist: exit 1, the message names the bucket URL.
    let o = moto.etl(&["build", &a, "--out", "s3://nobucket/p", "--name", "ds"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("the bucket s3://nobucket does not exist"),
        "names the bucket: {e}"
    );
    assert_eq!(e.lines().count(), 1, "one line: {e}");

    // An unsupported URL scheme is a usage error, not a local folder named `http:`.
    let o = Command::new(BIN)
        .current_dir(dir.path())
        .args(["build", &a, "--out", "http://host/p", "--name", "ds"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unsupported URL scheme"),
        "{}",
        text(&o)
    );
    assert!(!dir.path().join("http:").exists());
}

/// GCS and Azure without any credential in the environment: a usage error naming each
/// cloud's variables, before any request (the clients would otherwise try the cloud's
/// metadata service).
#[test]
fn gcs_and_azure_without_credentials_name_their_variables() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = csv(dir.path(), "a.csv", 5);
    for (out, var) in [
        ("gs://bkt/p", "GOOGLE_SERVICE_ACCOUNT"),
        ("az://container/p", "AZURE_STORAGE_ACCOUNT_KEY"),
    ] {
        let mut cmd = Command::new(BIN);
        clear_env(&mut cmd);
        for (k, _) in std::env::vars_os() {
            if k.to_str()
                .is_some_and(|k| k.starts_with("GOOGLE_") || k.starts_with("AZURE_"))
            {
                cmd.env_remove(k);
            }
        }
        // No gcloud application-default credentials file either.
        let o = cmd
            .env("HOME", dir.path())
            .args(["build", &a, "--out", out, "--name", "ds"])
            .output()
            .expect("run");
        assert_eq!(o.status.code(), Some(2), "{out}: {}", text(&o));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("credentials") && e.contains(var), "{out}: {e}");
    }
}

/// A store whose writes of `*/CURRENT` fail, as if the connection dropped between the data
/// upload and the pointer.
#[derive(Debug)]
struct PointerFails(Arc<dyn ObjectStore>);

impl std::fmt::Display for PointerFails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PointerFails({})", self.0)
    }
}

#[async_trait::async_trait]
impl ObjectStore for PointerFails {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if location.as_ref().ends_with("/CURRENT") {
            return Err(object_store::Error::Generic {
                store: "test",
                source: "connection reset before the pointer".into(),
            });
        }
        self.0.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }
    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.0.delete(location).await
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.0.copy(from, to).await
    }
    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.0.copy_if_not_exists(from, to).await
    }
}

#[test]
fn a_failure_between_data_and_pointer_leaves_the_pointer_unchanged() {
    let moto = Server::moto(None);
    moto.create_bucket("bkt");
    let store = moto.store("bkt");
    let dir = tempfile::tempdir().expect("tmp");
    let a = csv(dir.path(), "a.csv", 10);
    let o = moto.etl(&["build", &a, "--out", "s3://bkt/p", "--name", "ds"]);
    assert!(o.status.success(), "{}", text(&o));
    let before = get(&store, "p/ds/CURRENT");

    // The next version, built locally, is published through a store that fails the pointer.
    let local = dir.path().join("local");
    let b = csv(dir.path(), "b.csv", 20);
    let o = Command::new(BIN)
        .args([
            "build",
            &b,
            "--out",
            local.to_str().expect("utf8"),
            "--name",
            "ds",
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", text(&o));
    let file = local.join("ds.qry");
    let version = quarry_format::read_file(&file)
        .expect("open")
        .version()
        .to_string();
    let target = Target::parse(FsPath::new("s3://bkt/p"))
        .expect("parse")
        .expect("url");
    let failing: Arc<dyn ObjectStore> = Arc::new(PointerFails(store.clone()));
    let err = remote::publish(failing, &target, "ds", &file, &version, Some(1))
        .expect_err("the pointer write fails");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("s3://bkt/p/ds/CURRENT") && msg.contains("previous version"),
        "{msg}"
    );
    // Readers still see the old version, complete; the new data object is there, and nothing
    // was trimmed (trimming runs only after the pointer moved).
    assert_eq!(get(&store, "p/ds/CURRENT"), before);
    let old: Pointer = serde_json::from_slice(&before).expect("json");
    assert_valid(get(&store, &old.key), 10);
    let listed = keys(&store, "p/ds");
    assert!(
        listed.contains(&format!("p/ds/{version}.qry")),
        "{listed:?}"
    );
    assert!(listed.contains(&old.key), "{listed:?}");
}

#[test]
fn file_urls_publish_the_same_layout_and_keep_versions_needs_a_url() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("store");
    let out = format!("file://{}/pre", root.display());
    let run = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        clear_env(&mut cmd);
        cmd.args(args).output().expect("run")
    };
    let mut versions = Vec::new();
    for (file, rows) in [("a.csv", 3), ("b.csv", 4)] {
        let input = csv(dir.path(), file, rows);
        let o = run(&[
            "build",
            &input,
            "--out",
            &out,
            "--name",
            "ds",
            "--keep-versions",
            "1",
            "--progress",
            "none",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let p: Pointer =
            serde_json::from_slice(&std::fs::read(root.join("pre/ds/CURRENT")).expect("pointer"))
                .expect("json");
        let rel = root.join("pre/ds").join(format!("{}.qry", p.version));
        assert_eq!(p.key, rel.to_str().expect("utf8").trim_start_matches('/'));
        assert_valid(std::fs::read(&rel).expect("data"), rows as u64);
        versions.push(p.version);
    }
    let mut names: Vec<String> = std::fs::read_dir(root.join("pre/ds"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want = vec!["CURRENT".to_string(), format!("{}.qry", versions[1])];
    want.sort();
    assert_eq!(names, want, "only the newest version is kept");

    // --keep-versions with a local data directory is a usage error.
    let input = csv(dir.path(), "c.csv", 2);
    let local = dir.path().join("local");
    let o = run(&[
        "build",
        &input,
        "--out",
        local.to_str().expect("utf8"),
        "--name",
        "ds",
        "--keep-versions",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!local.join("ds.qry").exists());
}

/// The prefix manifest names every dataset published there, also when several are published at
/// once (`file://` has no conditional writes: the rebuild-from-pointers path).
#[test]
fn the_prefix_manifest_names_every_dataset_published_concurrently() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("store");
    let out = format!("file://{}/pre", root.display());
    let names = ["a", "b", "c", "d"];
    let inputs: Vec<String> = names
        .iter()
        .map(|n| csv(dir.path(), &format!("{n}.csv"), 5))
        .collect();
    let children: Vec<_> = names
        .iter()
        .zip(&inputs)
        .map(|(name, input)| {
            let mut cmd = Command::new(BIN);
            clear_env(&mut cmd);
            cmd.args(["build", input, "--out", &out, "--name", name])
                .args(["--progress", "none"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", text(&o));
    }
    let m: remote::Manifest =
        serde_json::from_slice(&std::fs::read(root.join("pre/MANIFEST.json")).expect("manifest"))
            .expect("json");
    assert_eq!(m.format, 1);
    assert_eq!(
        m.datasets.keys().map(String::as_str).collect::<Vec<_>>(),
        names
    );
    for name in names {
        let p: Pointer = serde_json::from_slice(
            &std::fs::read(root.join(format!("pre/{name}/CURRENT"))).expect("pointer"),
        )
        .expect("json");
        let e = &m.datasets[name];
        assert_eq!(e.path, format!("{name}/{}.qry", p.version));
        assert_eq!(
            (e.size, &e.sha256, &e.version),
            (p.size, &p.sha256, &p.version)
        );
        let data = std::fs::read(root.join("pre").join(&e.path)).expect("data");
        assert_eq!(data.len() as u64, e.size);
    }
}

/// A prefix whose manifest is gone (deleted, expired by a lifecycle rule, or published before
/// there was one) gets it back from every pointer on the next publish, never from the one
/// dataset published: servers drop every dataset the manifest does not name.
#[test]
fn a_missing_manifest_is_rebuilt_with_every_dataset() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("store");
    let out = format!("file://{}/pre", root.display());
    let publish = |name: &str, rows: usize| {
        let input = csv(dir.path(), &format!("{name}-{rows}.csv"), rows);
        let mut cmd = Command::new(BIN);
        clear_env(&mut cmd);
        let o = cmd
            .args(["build", &input, "--out", &out, "--name", name])
            .args(["--progress", "none"])
            .output()
            .expect("run");
        assert!(o.status.success(), "{}", text(&o));
    };
    publish("a", 3);
    publish("b", 4);
    let manifest = root.join("pre/MANIFEST.json");
    std::fs::remove_file(&manifest).expect("remove the manifest");
    publish("a", 5);
    let m: remote::Manifest =
        serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("json");
    assert_eq!(
        m.datasets.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a", "b"]
    );
    for name in ["a", "b"] {
        let p: Pointer = serde_json::from_slice(
            &std::fs::read(root.join(format!("pre/{name}/CURRENT"))).expect("pointer"),
        )
        .expect("json");
        assert_eq!(m.datasets[name].version, p.version, "{name}");
    }
}

/// A name that object keys would percent-encode is refused before the build when `--out` is a
/// URL (servers would look for keys that do not exist); a local directory takes it.
#[test]
fn a_name_object_keys_would_encode_is_refused_for_urls() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = csv(dir.path(), "in.csv", 3);
    let out = format!("file://{}/pre", dir.path().join("store").display());
    let run = |out: &str| {
        let mut cmd = Command::new(BIN);
        clear_env(&mut cmd);
        cmd.args(["build", &input, "--out", out, "--name", "caf\u{e9}"])
            .args(["--progress", "none"])
            .output()
            .expect("run")
    };
    let o = run(&out);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("becomes \"caf%C3%A9\" in object keys"),
        "{}",
        text(&o)
    );
    assert!(!dir.path().join("store").exists(), "nothing is published");
    let local = dir.path().join("local");
    let o = run(local.to_str().expect("utf8"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(local.join("caf\u{e9}.qry").exists());
}
