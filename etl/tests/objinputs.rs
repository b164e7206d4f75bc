//! Inputs given as object URLs, against real servers: moto's standalone S3 server (installed by
//! scripts/test.sh into the test venv, run through QUARRY_TEST_PYTHON) and Python's
//! `http.server` as a plain HTTP origin, each on a free 127.0.0.1 port per test and killed
//! after. The tests run the real binary.

use std::io::Write;
use std::path::Path as FsPath;
use std::process::{Command, Output};
use std::sync::Arc;

use flate2::write::GzEncoder;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

mod servers;

use servers::{clear_env, free_port, python, Server, BIN};

fn put(store: &Arc<dyn ObjectStore>, key: &str, bytes: Vec<u8>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(store.put(&Path::from(key), PutPayload::from(bytes)))
        .expect("put");
}

/// CSV rows `from..to` of `id,name`.
fn csv(from: usize, to: usize) -> Vec<u8> {
    let mut s = String::from("id,name\n");
    for i in from..to {
        s.push_str(&format!("{i},name{i}\n"));
    }
    s.into_bytes()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The ids stored in a built file, in file order (column 0 is `id`).
fn ids(file: &FsPath) -> Vec<i64> {
    let f = quarry_format::read_file(file).expect("opens");
    f.verify().expect("verifies");
    (0..f.num_rows())
        .map(|r| match f.value(r, 0) {
            quarry_format::Value::Int64(i) => i,
            v => panic!("row {r}: id {v:?}"),
        })
        .collect()
}

#[test]
fn a_glob_of_gzipped_csvs_in_a_bucket_builds_like_local_files() {
    let s3 = Server::moto(None);
    s3.create_bucket("bkt");
    let store = s3.store("bkt");
    put(&store, "raw/2024-01.csv.gz", gz(&csv(0, 10)));
    put(&store, "raw/2024-02.csv.gz", gz(&csv(10, 25)));
    put(&store, "raw/2024-03.csv.gz", gz(&csv(25, 27)));
    // Not matched: another extension, and a deeper folder (`*` does not cross `/`).
    put(&store, "raw/notes.txt", b"not csv".to_vec());
    put(&store, "raw/old/2023-12.csv.gz", gz(&csv(100, 200)));
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("data");
    let spill = dir.path().join("spill");
    let o = s3.etl(&[
        "build",
        "s3://bkt/raw/*.csv.gz",
        "--out",
        out.to_str().expect("utf8"),
        "--spill-dir",
        spill.to_str().expect("utf8"),
        "--name",
        "ds",
        "--key",
        "id",
        "--progress",
        "none",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(ids(&out.join("ds.qry")), (0..27).collect::<Vec<_>>());
    // The copies are gone with the build.
    let left: Vec<_> = std::fs::read_dir(&spill)
        .expect("spill dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "left in the spill dir: {left:?}");

    // `**` crosses folders; `infer` reads URLs too; inputs keep their order with local ones.
    let local = dir.path().join("local.csv");
    std::fs::write(&local, csv(300, 301)).expect("write");
    let o = s3.etl(&[
        "build",
        "s3://bkt/raw/**/*.csv.gz",
        local.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--name",
        "all",
        "--progress",
        "none",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let got = ids(&out.join("all.qry"));
    let mut want: Vec<i64> = (0..27).collect();
    want.extend(100..200);
    want.push(300);
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, {
        let mut w = want.clone();
        w.sort_unstable();
        w
    });
    assert_eq!(got.last(), Some(&300), "the local input comes last");
    let o = s3.etl(&["infer", "s3://bkt/raw/2024-01.csv.gz"]);
    assert!(o.status.success(), "{}", text(&o));
    let schema = String::from_utf8_lossy(&o.stdout);
    assert!(
        schema.contains("\"id\"") && schema.contains("\"name\""),
        "{schema}"
    );
}

#[test]
fn bad_rows_in_an_object_are_reported_by_its_url() {
    let s3 = Server::moto(None);
    s3.create_bucket("bkt");
    let store = s3.store("bkt");
    put(&store, "raw/a.csv", csv(0, 3));
    put(
        &store,
        "raw/b.csv",
        b"id,name\n1,x\nnot-a-number,y\n".to_vec(),
    );
    let dir = tempfile::tempdir().expect("tmp");
    let schema = dir.path().join("schema.json");
    std::fs::write(
        &schema,
        r#"{"fields":[{"name":"id","type":"int64","nullable":false},{"name":"name","type":"utf8","nullable":false}]}"#,
    )
    .expect("schema");
    let out = dir.path().join("data");
    let o = s3.etl(&[
        "build",
        "s3://bkt/raw/*.csv",
        "--schema",
        schema.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--name",
        "ds",
        "--progress",
        "none",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let e = stderr(&o);
    assert!(e.contains("s3://bkt/raw/b.csv"), "names the object: {e}");
    let error = e
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("error line");
    assert!(
        !error.contains(".quarry-inputs-"),
        "not the local copy: {error}"
    );
    assert!(!out.join("ds.qry").exists());
}

#[test]
fn missing_objects_and_empty_globs_are_clear_errors_naming_the_url() {
    let s3 = Server::moto(None);
    s3.create_bucket("bkt");
    let store = s3.store("bkt");
    put(&store, "raw/a.csv.gz", gz(&csv(0, 3)));
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("data");
    let run = |input: &str| {
        s3.etl(&[
            "build",
            input,
            "--out",
            out.to_str().expect("utf8"),
            "--name",
            "ds",
            "--progress",
            "none",
        ])
    };

    let o = run("s3://bkt/raw/missing.csv.gz");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = stderr(&o);
    assert!(
        e.contains("input s3://bkt/raw/missing.csv.gz: no such object"),
        "{e}"
    );

    let o = run("s3://bkt/raw/*.jsonl");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = stderr(&o);
    assert!(
        e.contains("input s3://bkt/raw/*.jsonl matches no object (listed s3://bkt/raw/)"),
        "{e}"
    );

    let o = run("s3://nobucket/raw/*.csv.gz");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = stderr(&o);
    assert!(e.contains("the bucket s3://nobucket does not exist"), "{e}");

    let o = run("ftp://host/a.csv");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("unsupported URL scheme"),
        "{}",
        text(&o)
    );
    assert!(!out.join("ds.qry").exists());
}

#[test]
fn missing_or_refused_credentials_fail_before_any_download() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("data");
    // Two unauthenticated actions (the bucket, the object), then IAM checks every request:
    // the test's keys are unknown to it.
    let s3 = Server::moto(Some(2));
    s3.create_bucket("bkt");
    put(&s3.store("bkt"), "raw/a.csv", csv(0, 3));

    let mut cmd = Command::new(BIN);
    clear_env(&mut cmd);
    let o = cmd
        .env("AWS_ENDPOINT", s3.endpoint())
        .env("AWS_ALLOW_HTTP", "true")
        .args([
            "build",
            "s3://bkt/raw/a.csv",
            "--out",
            out.to_str().expect("utf8"),
            "--name",
            "ds",
        ])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = stderr(&o);
    assert!(
        e.contains("no S3 credentials") && e.contains("AWS_ACCESS_KEY_ID"),
        "{e}"
    );

    for input in ["s3://bkt/raw/a.csv", "s3://bkt/raw/*.csv"] {
        let o = s3.etl(&[
            "build",
            input,
            "--out",
            out.to_str().expect("utf8"),
            "--name",
            "ds",
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let e = stderr(&o);
        assert!(
            e.contains(&format!("input {input}:")) && e.contains("credentials"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }
    assert!(!out.join("ds.qry").exists());
}

#[test]
fn one_object_over_plain_http_and_a_missing_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("exports")).expect("mkdir");
    std::fs::write(site.join("exports/a.csv.gz"), gz(&csv(0, 7))).expect("write");
    let origin = Server::http(&site);
    let out = dir.path().join("data");
    let run = |url: &str| {
        let mut cmd = Command::new(BIN);
        clear_env(&mut cmd);
        cmd.args([
            "build",
            url,
            "--out",
            out.to_str().expect("utf8"),
            "--name",
            "ds",
            "--progress",
            "none",
        ])
        .output()
        .expect("run")
    };
    let url = format!("{}/exports/a.csv.gz", origin.endpoint());
    let o = run(&url);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(ids(&out.join("ds.qry")), (0..7).collect::<Vec<_>>());

    let url = format!("{}/exports/missing.csv", origin.endpoint());
    let o = run(&url);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = stderr(&o);
    assert!(e.contains(&format!("input {url}: no such object")), "{e}");
}

#[test]
fn from_a_bucket_to_a_bucket() {
    let s3 = Server::moto(None);
    s3.create_bucket("raw");
    s3.create_bucket("pub");
    put(&s3.store("raw"), "in/a.csv.gz", gz(&csv(0, 5)));
    put(&s3.store("raw"), "in/b.csv.gz", gz(&csv(5, 9)));
    let o = s3.etl(&[
        "build",
        "s3://raw/in/*.csv.gz",
        "--out",
        "s3://pub/datasets",
        "--name",
        "ds",
        "--progress",
        "none",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let store = s3.store("pub");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pointer: serde_json::Value = serde_json::from_slice(&rt.block_on(async {
        store
            .get(&Path::from("datasets/ds/CURRENT"))
            .await
            .expect("pointer")
            .bytes()
            .await
            .expect("body")
    }))
    .expect("json");
    let key = pointer["key"].as_str().expect("key").to_string();
    let bytes = rt.block_on(async {
        store
            .get(&Path::from(key.as_str()))
            .await
            .expect("data")
            .bytes()
            .await
            .expect("body")
    });
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("ds.qry");
    std::fs::write(&f, &bytes).expect("write");
    assert_eq!(ids(&f), (0..9).collect::<Vec<_>>());
}

/// An origin whose object changed between the metadata and the download: HEAD says argv[2]
/// bytes, GET sends 12.
const SHRINKING_ORIGIN: &str = r#"
import http.server, sys
BODY = b"id,name\n1,a\n"
class H(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", sys.argv[2])
        self.end_headers()
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

/// Builds from the one object of an origin that claims `size` bytes in its HEAD answer.
fn build_from_shrinking_origin(size: u64, spill: &FsPath) -> (String, Output) {
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.args(["-c", SHRINKING_ORIGIN, &port.to_string(), &size.to_string()]);
    let origin = Server::start(cmd, port, "python shrinking origin");
    let url = format!("{}/a.csv", origin.endpoint());
    let mut cmd = Command::new(BIN);
    clear_env(&mut cmd);
    let o = cmd
        .args([
            "build",
            &url,
            "--out",
            spill.join("data").to_str().expect("utf8"),
            "--spill-dir",
            spill.to_str().expect("utf8"),
            "--name",
            "ds",
            "--progress",
            "none",
        ])
        .output()
        .expect("run");
    (url, o)
}

#[test]
fn a_copy_shorter_than_its_object_fails_the_build() {
    let dir = tempfile::tempdir().expect("tmp");
    let (url, o) = build_from_shrinking_origin(1000, dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "downloading {url}: got 12 bytes, the object has 1000"
        )),
        "{e}"
    );
    assert!(!dir.path().join("data/ds.qry").exists());
}

#[test]
fn inputs_larger_than_the_free_space_fail_before_downloading() {
    let dir = tempfile::tempdir().expect("tmp");
    // 1 EiB: more than any disk this runs on.
    let (url, o) = build_from_shrinking_origin(1 << 60, dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("the inputs {url} (1 objects, "))
            && e.contains("are downloaded before the build")
            && e.contains("pass --spill-dir"),
        "{e}"
    );
    assert!(!e.contains("got 12 bytes"), "nothing was downloaded: {e}");
    // No staging directory is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().starts_with(".quarry-inputs-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Writes `<dir>/part-0.parquet` with ids `from..to` (pyarrow from the test venv).
fn parquet(dir: &FsPath, from: usize, to: usize) -> Vec<u8> {
    let file = dir.join(format!("p{from}.parquet"));
    let script = "import sys, pyarrow as pa, pyarrow.parquet as pq\n\
                  a, b = int(sys.argv[2]), int(sys.argv[3])\n\
                  pq.write_table(pa.table({'id': list(range(a, b))}), sys.argv[1])\n";
    let o = Command::new(python())
        .args([
            "-c",
            script,
            file.to_str().expect("utf8"),
            &from.to_string(),
            &to.to_string(),
        ])
        .output()
        .expect("run python");
    assert!(
        o.status.success(),
        "writing Parquet with pyarrow (scripts/test.sh installs it): {}",
        text(&o)
    );
    std::fs::read(&file).expect("read parquet")
}

#[test]
fn a_folder_of_hive_partitioned_parquet_in_a_bucket() {
    let s3 = Server::moto(None);
    s3.create_bucket("lake");
    let store = s3.store("lake");
    let dir = tempfile::tempdir().expect("tmp");
    put(
        &store,
        "events/year=2024/part-0.parquet",
        parquet(dir.path(), 0, 4),
    );
    put(
        &store,
        "events/year=2025/part-0.parquet",
        parquet(dir.path(), 4, 6),
    );
    // Skipped as a local folder's are: markers and hidden files.
    put(&store, "events/_SUCCESS", Vec::new());
    put(
        &store,
        "events/year=2025/.part-0.parquet.crc",
        b"crc".to_vec(),
    );
    let out = dir.path().join("data");
    let o = s3.etl(&[
        "build",
        "s3://lake/events",
        "--out",
        out.to_str().expect("utf8"),
        "--name",
        "ev",
        "--key",
        "id",
        "--progress",
        "none",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let f = quarry_format::read_file(&out.join("ev.qry")).expect("opens");
    f.verify().expect("verifies");
    let names: Vec<_> = f.schema().fields().iter().map(|x| x.name.clone()).collect();
    assert_eq!(names, ["id", "year"]);
    let years: Vec<_> = (0..f.num_rows())
        .map(|r| format!("{:?}", f.value(r, 1)))
        .collect();
    assert_eq!(years.iter().filter(|y| y.contains("2024")).count(), 4);
    assert_eq!(years.iter().filter(|y| y.contains("2025")).count(), 2);
    assert_eq!(ids(&out.join("ev.qry")), (0..6).collect::<Vec<_>>());

    // A folder of text files is not a Parquet folder: the message says what to do.
    put(&store, "csvs/a.csv", csv(0, 2));
    let o = s3.etl(&[
        "build",
        "s3://lake/csvs",
        "--out",
        out.to_str().expect("utf8"),
        "--name",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("include no .parquet, .arrow, .arrows or .feather file"),
        "{}",
        text(&o)
    );
}
