//! Parquet and Arrow IPC inputs written by DuckDB and pyarrow (etl/tests/columnar/
//! make_fixtures.py, run once per test binary): every variant builds the very file the CSV of
//! the same rows builds; bad inputs fail naming file, row group, column and row, and publish
//! nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::*;

/// The fixtures directory, written once per run. Missing Python packages are a failure.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("columnar-fixtures");
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/columnar/make_fixtures.py");
        let out = Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("python3 must be installed to write the Parquet fixtures");
        assert!(
            out.status.success(),
            "make_fixtures.py failed (install its packages: python3 -m pip install duckdb pyarrow):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn fx(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

fn out_args(env: &Env, name: &str) -> Vec<String> {
    vec![
        "--out".into(),
        env.data().display().to_string(),
        "--name".into(),
        name.into(),
        "--progress".into(),
        "none".into(),
    ]
}

fn build_ok(env: &Env, name: &str, args: &[&str]) -> Vec<u8> {
    let mut a: Vec<String> = vec!["build".into()];
    a.extend(args.iter().map(|s| s.to_string()));
    a.extend(out_args(env, name));
    let o = bin(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "build {args:?} failed: {}", stderr(&o));
    std::fs::read(env.qry(name)).expect("read the built file")
}

/// Runs a build that must fail with exit 3 and publish nothing; returns its stderr.
fn build_bad(env: &Env, args: &[&str]) -> String {
    let mut a: Vec<String> = vec!["build".into()];
    a.extend(args.iter().map(|s| s.to_string()));
    a.extend(out_args(env, "bad"));
    let o = bin(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
    assert!(!env.qry("bad").exists(), "{args:?} published a file");
    if let Ok(entries) = std::fs::read_dir(env.data()) {
        let left: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    err
}

fn variants() -> Vec<String> {
    std::fs::read_to_string(fixtures().join("variants.txt"))
        .expect("variants.txt")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_parquet_and_arrow_variant_builds_the_csv_file_byte_for_byte() {
    let env = Env::new();
    let (csv, schema) = (fx("all.csv"), fx("all.schema.json"));
    let want = build_ok(&env, "csv", &[&csv, "--schema", &schema]);
    let vs = variants();
    assert!(vs.len() >= 20, "{vs:?}");
    for v in &vs {
        // Inferred types (the key given), as a user would run it.
        let got = build_ok(&env, "x", &[&fx(v), "--key", "id", "--threads", "2"]);
        assert!(got == want, "{v}: differs from the CSV build");
    }
    // The schema file path and thread counts change nothing; a memory limit small enough to
    // cap row groups by bytes cuts them where the CSV build under the same limit does.
    for (threads, mem) in [("1", "1G"), ("3", "1M")] {
        let want = build_ok(
            &env,
            "csv",
            &[&csv, "--schema", &schema, "--memory-limit", mem],
        );
        for v in ["duckdb_zstd_dict_1000.parquet", "all_zstd.arrow"] {
            let got = build_ok(
                &env,
                "x",
                &[
                    &fx(v),
                    "--schema",
                    &schema,
                    "--threads",
                    threads,
                    "--memory-limit",
                    mem,
                ],
            );
            assert!(got == want, "{v} --threads {threads} --memory-limit {mem}");
        }
    }
    // Several files of one build: their rows in order.
    let a = build_ok(
        &env,
        "x",
        &[
            &fx("duckdb_snappy_dict_1000.parquet"),
            &fx("all.arrows"),
            "--key",
            "id",
            "--on-duplicate-key",
            "first",
        ],
    );
    assert!(a == want);
}

#[test]
fn keyless_builds_keep_file_order_at_any_thread_count() {
    let env = Env::new();
    let csv = build_ok(&env, "csv", &[&fx("all.csv"), "--row-group-rows", "999"]);
    // CSV infers f32 as float64 from its text and the timestamp-with-zone column as a
    // timestamp; the schema written from the CSV build is then used for the Parquet one.
    let schema = env.path("inferred.json");
    build_ok(
        &env,
        "csv2",
        &[
            &fx("all.csv"),
            "--row-group-rows",
            "999",
            "--schema-out",
            schema.to_str().unwrap(),
        ],
    );
    for threads in ["1", "2", "4"] {
        let got = build_ok(
            &env,
            "x",
            &[
                &fx("duckdb_gzip_plain_1000.parquet"),
                "--schema",
                schema.to_str().unwrap(),
                "--row-group-rows",
                "999",
                "--threads",
                threads,
            ],
        );
        assert!(got == csv, "--threads {threads}");
    }
}

#[test]
fn hive_directories_and_globs_become_columns() {
    let env = Env::new();
    let want = build_ok(&env, "csv", &[&fx("hive.csv"), "--key", "id"]);
    let dir = build_ok(&env, "x", &[&fx("hive"), "--key", "id"]);
    assert!(dir == want, "directory differs from the CSV");
    let glob = build_ok(&env, "x", &[&fx("hive/part=*/*/*.parquet"), "--key", "id"]);
    assert!(glob == want, "glob differs from the CSV");
    let schema = schema_of(&env.qry("x"));
    assert_eq!(
        schema[schema.len() - 2..],
        [
            ("part".to_string(), "int64".to_string(), true),
            ("tag".to_string(), "utf8".to_string(), true)
        ]
    );
    let rows = read_rows(&env.qry("x"));
    assert_eq!(rows[3][4], V::Str("a b/c".into()));
    assert_eq!(rows[4][4], V::Str("x=y%".into()));
}

#[test]
fn refused_values_name_file_row_group_column_row_and_value() {
    let env = Env::new();
    let e = build_bad(&env, &[&fx("u64_overflow.parquet")]);
    assert!(
        e.contains("u64_overflow.parquet: row group 1")
            && e.contains("column \"big\", row 2346")
            && e.contains("18446744073709551615"),
        "{e}"
    );
    let e = build_bad(&env, &[&fx("null_key.parquet"), "--key", "k"]);
    assert!(
        e.contains("null_key.parquet: row group 0")
            && e.contains("column \"k\", row 1501: null in the key column"),
        "{e}"
    );
    let e = build_bad(&env, &[&fx("dup_key.parquet"), "--key", "k"]);
    assert!(
        e.contains("duplicate key 17") && e.contains("dup_key.parquet:18") && e.contains(":3000"),
        "{e}"
    );
    let e = build_bad(&env, &[&fx("nested.parquet")]);
    assert!(e.contains("column \"xs\": nested type"), "{e}");
    let e = build_bad(&env, &[&fx("schema_a.parquet"), &fx("schema_b.parquet")]);
    assert!(
        e.contains("schema_b.parquet: column \"v\"") && e.contains("same schema"),
        "{e}"
    );
    let e = build_bad(&env, &[&fx("decimal_wide.parquet"), "--strict-decimals"]);
    assert!(
        e.contains("column \"amount\", row 8")
            && e.contains("12345678901234567890.1234567891")
            && e.contains("--strict-decimals"),
        "{e}"
    );
}

#[test]
fn decimals_become_the_nearest_float64_and_schema_projection_drops_columns() {
    let env = Env::new();
    build_ok(&env, "d", &[&fx("decimal_wide.parquet")]);
    let rows = read_rows(&env.qry("d"));
    assert_eq!(rows[7][1], V::Float(12345678901234567890.1234567891_f64));
    assert_eq!(rows[3][1], V::Float(3.0));
    // A schema naming only `id` reads only it: the nested column is never decoded.
    let schema = env.write(
        "id.json",
        r#"{"fields":[{"name":"id","type":"int64","nullable":false}],"key":"id"}"#,
    );
    build_ok(
        &env,
        "n",
        &[&fx("nested.parquet"), "--schema", schema.to_str().unwrap()],
    );
    let rows = read_rows(&env.qry("n"));
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[9], vec![V::Int(9)]);
}

#[test]
fn broken_files_fail_cleanly() {
    let env = Env::new();
    let good = std::fs::read(fixtures().join("duckdb_zstd_plain_1000.parquet")).unwrap();
    // Not Parquet despite the name.
    let fake = env.write(
        "fake.parquet",
        std::fs::read(fixtures().join("all.csv")).unwrap(),
    );
    let e = build_bad(&env, &[fake.to_str().unwrap()]);
    assert!(
        e.contains("fake.parquet: not a readable Parquet file"),
        "{e}"
    );
    // Truncated: the footer is gone.
    let t = env.write("trunc.parquet", &good[..good.len() / 2]);
    let e = build_bad(&env, &[t.to_str().unwrap()]);
    assert!(
        e.contains("trunc.parquet: not a readable Parquet file"),
        "{e}"
    );
    // The footer kept, a page's bytes flipped: row group and column named.
    let (off, len) = column_chunk(&good, 1, "s_uniq");
    let mut bad = good.clone();
    for b in &mut bad[off + len / 2..off + len / 2 + 64] {
        *b ^= 0x5a;
    }
    let c = env.write("corrupt.parquet", &bad);
    let e = build_bad(&env, &[c.to_str().unwrap()]);
    assert!(
        e.contains("corrupt.parquet: row group 1") && e.contains("column \"s_uniq\""),
        "{e}"
    );
    // An Arrow IPC file cut short.
    let arrow = std::fs::read(fixtures().join("all_zstd.arrow")).unwrap();
    let t = env.write("trunc.arrow", &arrow[..arrow.len() / 2]);
    let e = build_bad(&env, &[t.to_str().unwrap()]);
    assert!(e.contains("trunc.arrow"), "{e}");
    // Stdin cannot be Parquet.
    let o = bin(&[
        "build",
        "-",
        "--input-format",
        "parquet",
        "--out",
        "x",
        "--name",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// (offset, length) of a column chunk, from the footer as pyarrow reads it.
fn column_chunk(_file: &[u8], group: usize, column: &str) -> (usize, usize) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, pyarrow.parquet as pq\n\
             md = pq.ParquetFile(sys.argv[1]).metadata.row_group(int(sys.argv[2]))\n\
             c = [md.column(i) for i in range(md.num_columns) if md.column(i).path_in_schema == sys.argv[3]][0]\n\
             print(c.data_page_offset, c.total_compressed_size)",
            &fx("duckdb_zstd_plain_1000.parquet"),
            &group.to_string(),
            column,
        ])
        .output()
        .expect("python3");
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s
        .split_whitespace()
        .map(|x| x.parse::<usize>().expect("number"));
    (it.next().expect("offset"), it.next().expect("length"))
}

/// Bytes flipped anywhere in a Parquet and an Arrow IPC file: each build succeeds or fails
/// with exit 3 (bad input) naming the file, and a failed one publishes nothing; never a crash.
#[test]
fn flipped_bytes_never_crash_the_build() {
    let env = Env::new();
    let mut rng = Rng(17);
    for (fixture, name) in [
        ("duckdb_snappy_dict_1000.parquet", "flip.parquet"),
        ("all.arrows", "flip.arrows"),
    ] {
        let good = std::fs::read(fixtures().join(fixture)).unwrap();
        for _ in 0..25 {
            let mut bad = good.clone();
            let at = rng.below(bad.len() as u64) as usize;
            for b in bad.iter_mut().skip(at).take(1 + rng.below(16) as usize) {
                *b ^= 1 + rng.below(255) as u8;
            }
            let p = env.write(name, &bad);
            let _ = std::fs::remove_dir_all(env.data());
            let mut args = vec!["build", p.to_str().unwrap()];
            let out = out_args(&env, "flip");
            args.extend(out.iter().map(String::as_str));
            let o = bin(&args);
            let err = stderr(&o);
            match o.status.code() {
                Some(0) => assert!(env.qry("flip").exists()),
                Some(3) => {
                    assert!(err.contains(name), "flip at {at}: {err}");
                    assert!(!env.qry("flip").exists(), "flip at {at} published");
                }
                c => panic!("{fixture} flipped at {at}: exit {c:?}: {err}"),
            }
        }
    }
}

/// A `--schema` file flattens nested columns: `"from": "a.c.d"` takes a struct leaf (null where
/// any level above it is null) and `"json": true` stores a list, map or struct as JSON text;
/// Parquet written by DuckDB and the same rows as Arrow IPC written by pyarrow build the same
/// rows. A nested column named without either stays refused, naming it; a wrong path is
/// refused naming the schema column and the missing field.
#[test]
fn schema_file_flattens_structs_and_stores_lists_and_maps_as_json() {
    let env = Env::new();
    let schema = env.write(
        "nested.schema.json",
        r#"{"fields":[
            {"name":"id","type":"int64"},
            {"name":"a_b","type":"int64","from":"a.b"},
            {"name":"a_c_d","type":"utf8","from":"a.c.d"},
            {"name":"xs","type":"utf8","json":true},
            {"name":"m","type":"utf8","json":true},
            {"name":"a_json","type":"utf8","from":"a","json":true}
        ]}"#,
    );
    let s = |v: String| V::Str(v);
    let expected: Vec<Vec<V>> = (0..20i64)
        .map(|i| {
            let a_null = i % 5 == 0;
            let c_null = a_null || i % 4 == 1;
            let b = (!a_null && i % 3 != 0).then_some(i * 10);
            let d = (!c_null && i % 4 != 0).then(|| format!("x{i}"));
            let json_d = d.clone().map_or("null".into(), |d| format!("{d:?}"));
            vec![
                V::Int(i),
                b.map_or(V::Null, V::Int),
                d.clone().map_or(V::Null, s),
                match i % 6 {
                    0 => V::Null,
                    1 => s("[]".into()),
                    _ => s(format!("[{i},null,{}]", i + 1)),
                },
                if i % 7 == 0 {
                    V::Null
                } else {
                    s(format!("{{\"k\":{i},\"n\":null}}"))
                },
                if a_null {
                    V::Null
                } else {
                    let c = if c_null {
                        "null".to_string()
                    } else {
                        format!("{{\"d\":{json_d}}}")
                    };
                    let b = b.map_or("null".into(), |b| b.to_string());
                    s(format!("{{\"b\":{b},\"c\":{c}}}"))
                },
            ]
        })
        .collect();
    for (n, input) in ["nested_nulls.parquet", "nested_nulls.arrow"]
        .iter()
        .enumerate()
    {
        let name = format!("n{n}");
        let src = fixtures().join(input);
        build_in(
            &env,
            &name,
            &[&src],
            &["--schema", schema.to_str().unwrap()],
        )
        .unwrap_or_else(|e| panic!("{input}: {e:#}"));
        assert_eq!(read_rows(&env.qry(&name)), expected, "{input}");
    }

    // Without "from"/"json", the nested column is refused naming it.
    let env = Env::new();
    let plain = env.write(
        "plain.schema.json",
        r#"{"fields":[{"name":"id","type":"int64"},{"name":"xs","type":"utf8"}]}"#,
    );
    let e = build_bad(
        &env,
        &[
            &fx("nested_nulls.parquet"),
            "--schema",
            plain.to_str().unwrap(),
        ],
    );
    assert!(e.contains("column \"xs\": nested type"), "{e}");
    // A path through a missing field names the schema column and the field.
    let wrong = env.write(
        "wrong.schema.json",
        r#"{"fields":[{"name":"id","type":"int64"},{"name":"a_z","type":"int64","from":"a.z"}]}"#,
    );
    let e = build_bad(
        &env,
        &[
            &fx("nested_nulls.parquet"),
            "--schema",
            wrong.to_str().unwrap(),
        ],
    );
    assert!(
        e.contains("nested_nulls.parquet") && e.contains("\"a_z\"") && e.contains("no field \"z\""),
        "{e}"
    );
}

/// Every single-byte flip of small LZ4/ZSTD Arrow IPC files and zstd/snappy Parquet files
/// (written by pyarrow) either builds or fails with the data-error exit code 3 naming the file
/// and publishing nothing: never a signal (a corrupted declared length must not reach an
/// allocation that aborts) nor a panic's exit code. Builds run as separate processes, several
/// at once (each is mostly waiting on the file system).
#[test]
fn every_byte_flip_of_small_compressed_files_exits_cleanly() {
    const WORKERS: usize = 8;
    for fixture in [
        "flip_lz4.arrow",
        "flip_zstd.arrow",
        "flip_lz4.arrows",
        "flip_zstd.arrows",
        "flip_zstd.parquet",
        "flip_snappy.parquet",
    ] {
        let good = std::fs::read(fixtures().join(fixture)).unwrap();
        let name = format!("sweep_{fixture}");
        let failures: Vec<String> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..WORKERS)
                .map(|w| {
                    let (good, name) = (&good, &name);
                    s.spawn(move || {
                        let env = Env::new();
                        let mut failures = Vec::new();
                        for at in (w..good.len()).step_by(WORKERS) {
                            // A different mask per position, so that high and low bits of
                            // every length field get hit.
                            let mask = [0x40u8, 0x01, 0x80, 0x7f, 0x10, 0xff][at % 6];
                            let mut bad = good.clone();
                            bad[at] ^= mask;
                            let p = env.write(name, &bad);
                            let _ = std::fs::remove_dir_all(env.data());
                            let mut args = vec!["build", p.to_str().unwrap()];
                            let out = out_args(&env, "sweep");
                            args.extend(out.iter().map(String::as_str));
                            let o = bin(&args);
                            let err = stderr(&o);
                            let ok = match o.status.code() {
                                Some(0) => env.qry("sweep").exists(),
                                Some(3) => {
                                    err.contains(name.as_str()) && !env.qry("sweep").exists()
                                }
                                _ => false,
                            };
                            if !ok {
                                failures.push(format!(
                                    "byte {at} ^ {mask:#04x}: {:?}: {}",
                                    o.status,
                                    err.lines()
                                        .find(|l| l.contains("panicked") || l.starts_with("error"))
                                        .unwrap_or("")
                                ));
                            }
                        }
                        failures
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|h| h.join().expect("sweep worker"))
                .collect()
        });
        assert!(
            failures.is_empty(),
            "{fixture} ({} bytes): {} bad flips:\n{}",
            good.len(),
            failures.len(),
            failures.join("\n")
        );
    }
}

/// With `--on-bad-row skip`, a refused value drops its row and is reported as `file:row`
/// with its row group and column; `--max-bad-rows` still stops the build.
#[test]
fn refused_values_are_skipped_rows_under_on_bad_row_skip() {
    let env = Env::new();
    let src = fixtures().join("u64_overflow.parquet");
    let r = build_in(
        &env,
        "u",
        &[&src],
        &["--on-bad-row", "skip", "--threads", "2"],
    )
    .expect("skip build");
    assert_eq!((r.rows, r.bad_rows), (2999, 1));
    assert!(
        r.bad_row_samples[0].ends_with(
            "u64_overflow.parquet:2346: row group 1, column \"big\": value 18446744073709551615 (uint64) does not fit int64 (at most 9223372036854775807)"
        ),
        "{:?}",
        r.bad_row_samples
    );
    let rows = read_rows(&env.qry("u"));
    assert_eq!(rows.len(), 2999);
    assert_eq!(rows[2344], vec![V::Int(2344), V::Int(2344)]);
    assert_eq!(rows[2345], vec![V::Int(2346), V::Int(2346)]);

    let src = fixtures().join("null_key.parquet");
    let r = build_in(&env, "k", &[&src], &["--key", "k", "--on-bad-row", "skip"])
        .expect("keyed skip build");
    assert_eq!((r.rows, r.bad_rows), (2999, 1));
    assert!(
        r.bad_row_samples[0]
            .contains("null_key.parquet:1501: row group 0, column \"k\": null in the key column"),
        "{:?}",
        r.bad_row_samples
    );
    let e = build_bad(
        &Env::new(),
        &[
            src.to_str().unwrap(),
            "--key",
            "k",
            "--on-bad-row",
            "skip",
            "--max-bad-rows",
            "0",
        ],
    );
    assert!(e.contains("more than --max-bad-rows 0"), "{e}");
}
