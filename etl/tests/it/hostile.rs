//! Hostile and careless inputs (issue 21): leftovers of dead builds, a live build's lease, and
//! the small lies (deep JSON, duplicate or empty keys, out-of-range floats, long names, an
//! `--out` that is a file).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;

fn set_age(path: &std::path::Path, age: Duration) {
    let f = std::fs::File::open(path).expect("open for set_modified");
    f.set_modified(SystemTime::now() - age)
        .expect("set_modified");
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

const OLD_TMP: &str = ".t.tmp-otherhost-123-0123456789abcdef";
const OLD_SPILL: &str = ".t.spill-otherhost-124-0123456789abcdef";
const FRESH_TMP: &str = ".t.tmp-otherhost-125-0123456789abcdef";

#[test]
fn builds_and_clean_remove_stale_leftovers_of_any_host() {
    let env = Env::new();
    let data = env.data();
    std::fs::create_dir_all(data.join(OLD_SPILL)).unwrap();
    std::fs::write(data.join(OLD_SPILL).join("run-0"), b"x").unwrap();
    std::fs::write(data.join(OLD_TMP), b"x").unwrap();
    std::fs::write(data.join(FRESH_TMP), b"x").unwrap();
    std::fs::write(data.join(".unrelated.tmp-file"), b"x").unwrap();
    let two_hours = Duration::from_secs(7200);
    set_age(&data.join(OLD_SPILL).join("run-0"), two_hours);
    set_age(&data.join(OLD_SPILL), two_hours);
    set_age(&data.join(OLD_TMP), two_hours);

    let input = env.write("in.csv", simple_csv(10));
    build_in(&env, "other", &[&input], &[]).unwrap();
    assert_eq!(
        names_in(&data),
        [FRESH_TMP, ".unrelated.tmp-file", "other.qry"],
        "stale leftovers of another host are removed, the fresh one and other files stay"
    );

    // `clean` does the same on demand; --stale-after is bounded below.
    set_age(&data.join(FRESH_TMP), Duration::from_secs(120));
    let out = bin(&["clean", data.to_str().unwrap(), "--stale-after", "10s"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--stale-after"), "{}", stderr(&out));
    let out = bin(&["clean", data.to_str().unwrap(), "--stale-after", "1h"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(data.join(FRESH_TMP).exists(), "younger than 1h: kept");
    let out = bin(&["clean", data.to_str().unwrap(), "--stale-after", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("removed 1 stale files") && text.contains(FRESH_TMP),
        "{text}"
    );
    assert_eq!(names_in(&data), [".unrelated.tmp-file", "other.qry"]);
}

#[test]
fn a_live_build_keeps_its_lease_and_clean_never_removes_its_files() {
    let env = Env::new();
    let data = env.data();
    std::fs::create_dir_all(&data).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry-etl"))
        .args(["build", "-", "--input-format", "csv", "--out"])
        .arg(&data)
        .args(["--name", "live", "--progress", "none"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    // More than the 8 MiB that inference samples before the build starts writing.
    stdin.write_all(simple_csv(400_000).as_bytes()).unwrap();
    stdin.flush().unwrap();
    let start = Instant::now();
    let temp = loop {
        let found = names_in(&data)
            .into_iter()
            .find(|n| n.starts_with(".live.tmp-"));
        if let Some(t) = found {
            break data.join(t);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no temp file appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Pretend the lease is two hours old; the build refreshes it within 5 s.
    set_age(&temp, Duration::from_secs(7200));
    let start = Instant::now();
    loop {
        let m = std::fs::metadata(&temp).unwrap().modified().unwrap();
        let age = SystemTime::now().duration_since(m).unwrap_or_default();
        if age < Duration::from_secs(60) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the lease was not refreshed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = bin(&["clean", data.to_str().unwrap(), "--stale-after", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(temp.exists(), "clean removed a live build's file");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_rows(&data.join("live.qry")).len(), 400_000);
}

#[test]
fn deep_json_nesting_says_so() {
    let env = Env::new();
    let deep = format!("{{\"a\":{}1{}}}\n", "[".repeat(200), "]".repeat(200));
    let input = env.write("in.jsonl", deep.repeat(3));
    let err = build_in(&env, "t", &[&input], &[]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("in.jsonl:1:") && msg.contains("nested more than 128 levels"),
        "{msg}"
    );
    assert!(!msg.contains("empty input"), "{msg}");
}

#[test]
fn duplicate_and_empty_json_keys_are_errors() {
    let env = Env::new();
    let dup = env.write("dup.jsonl", "{\"id\":1}\n{\"id\":3,\"id\":4}\n");
    let err = build_in(&env, "t", &[&dup], &[]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("dup.jsonl:2: key \"id\" appears twice"),
        "{msg}"
    );
    assert_eq!(quarry_etl::error::exit_code(&err), 3);

    let empty = env.write("empty.jsonl", "{\"id\":1,\"\":2}\n");
    let err = build_in(&env, "t", &[&empty], &[]).unwrap_err();
    assert!(
        format!("{err:#}").contains("empty.jsonl:1: an empty key"),
        "{err:#}"
    );

    // With a schema, the same lines are bad rows (duplicates even when the key is known, empty
    // keys even with --ignore-extra-keys).
    let schema = env.write("s.json", r#"{"fields":[{"name":"id","type":"int64"}]}"#);
    let schema = schema.display().to_string();
    let both = env.write(
        "both.jsonl",
        "{\"id\":1}\n{\"id\":3,\"id\":4}\n{\"id\":5,\"\":6}\n{\"id\":7}\n",
    );
    let r = build_in(
        &env,
        "t",
        &[&both],
        &[
            "--schema",
            &schema,
            "--ignore-extra-keys",
            "--on-bad-row",
            "skip",
            "--max-bad-fraction",
            "1",
        ],
    )
    .unwrap();
    assert_eq!((r.rows, r.bad_rows), (2, 2), "{:?}", r.bad_row_samples);
    assert!(
        r.bad_row_samples[0].contains(":2: key \"id\" appears twice"),
        "{:?}",
        r.bad_row_samples
    );
    assert!(
        r.bad_row_samples[1].contains(":3: an empty key"),
        "{:?}",
        r.bad_row_samples
    );
    assert_eq!(read_rows(&env.qry("t")), [[V::Int(1)], [V::Int(7)]]);
}

#[test]
fn out_of_range_floats_are_refused_with_line_and_value() {
    let env = Env::new();
    let input = env.write("in.csv", "id,x\n1,1.5\n2,1e400\n3,2\n");
    let err = build_in(&env, "t", &[&input], &[]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("in.csv:3:") && msg.contains("\"1e400\"") && msg.contains("out of the range"),
        "{msg}"
    );
    // Spelled-out infinities stay values.
    let input = env.write("inf.csv", "id,x\n1,1.5\n3,-inf\n");
    let schema = env.write(
        "s.json",
        r#"{"fields":[{"name":"id","type":"int64"},{"name":"x","type":"float64"}]}"#,
    );
    build_in(
        &env,
        "t",
        &[&input],
        &["--schema", schema.to_str().unwrap()],
    )
    .unwrap();
    assert_eq!(read_rows(&env.qry("t"))[1][1], V::Float(f64::NEG_INFINITY));
}

#[test]
fn long_names_and_an_out_file_are_usage_errors() {
    let env = Env::new();
    let input = env.write("in.csv", simple_csv(3));
    let long = "n".repeat(200);
    let err = build_in(&env, &long, &[&input], &[]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("at most 187 bytes"), "{msg}");
    assert_eq!(quarry_etl::error::exit_code(&err), 2);
    // The longest name allowed builds.
    let longest = "n".repeat(187);
    build_in(&env, &longest, &[&input], &[]).unwrap();
    assert_eq!(read_rows(&env.qry(&longest)).len(), 3);

    let file = env.write("afile", "x");
    let out = bin(&[
        "build",
        input.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
        "--name",
        "t",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a directory (it names a file)"),
        "{}",
        stderr(&out)
    );
}

/// A header of 100k columns over 3 rows costs about what 300k cells cost (it was quadratic in
/// the column count: name lookups by linear search). The bound is a generous liveness bound.
#[test]
fn a_hundred_thousand_columns_build_in_linear_time() {
    let env = Env::new();
    let n = 100_000;
    let mut text = (0..n)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for r in 0..3 {
        text.push_str(
            &(0..n)
                .map(|i| (i + r).to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
        text.push('\n');
    }
    let input = env.write("wide.csv", text);
    let start = Instant::now();
    let r = build_in(&env, "wide", &[&input], &[]).unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(60), "100k columns took {took:?}");
    assert_eq!(r.rows, 3);
    let f = quarry_format::read_file(&env.qry("wide")).unwrap();
    assert_eq!(f.schema().len(), n);
    assert_eq!(V::from(f.value(2, n - 1)), V::Int((n - 1 + 2) as i64));
}
