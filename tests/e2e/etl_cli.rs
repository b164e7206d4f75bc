//! The quarry-etl command line end to end: error messages that name file, line, column and
//! value, exit codes, inspect/verify, determinism across thread counts, stdin and gzip input.

use std::io::Write;
use std::path::{Path, PathBuf};

use quarry_tests::data::Table;
use quarry_tests::{etl, etl_build, etl_build_any, temp_dir, Rng};

use crate::fixtures::people;

fn write(p: &Path, s: &str) {
    std::fs::write(p, s).expect("write");
}

/// A generated `people` table (seed `seed`, `n` rows) written as `p.csv` and `p.schema.json`.
fn people_csv(dir: &Path, seed: u64, n: usize) -> (Table, PathBuf, PathBuf) {
    let (mut rng, _) = Rng::from_env(seed);
    let t = people(&mut rng, n);
    let (csv, schema) = (dir.join("p.csv"), dir.join("p.schema.json"));
    t.write_csv(&csv);
    t.write_schema(&schema);
    (t, csv, schema)
}

fn schema_file(dir: &Path) -> String {
    let p = dir.join("s.json");
    write(
        &p,
        r#"{"fields":[{"name":"id","type":"int64","nullable":false},{"name":"name","type":"utf8"},{"name":"age","type":"int64"}],"key":"id"}"#,
    );
    p.to_string_lossy().into_owned()
}

#[test]
fn bad_values_are_named_by_file_line_column_and_value() {
    let dir = temp_dir();
    let csv = dir.path().join("in.csv");
    write(&csv, "id,name,age\n1,a,3\n2,b,notanumber\n3,c,5\n");
    let schema = schema_file(dir.path());
    let out = etl_build_any(&csv, dir.path(), "t", &["--schema", &schema]);
    assert_eq!(out.code, Some(3), "bad input data exits 3: {out:?}");
    let e = &out.stderr;
    assert!(e.contains("in.csv"), "names the file: {e}");
    assert!(e.contains("age"), "names the column: {e}");
    assert!(e.contains("notanumber"), "names the value: {e}");
    assert!(e.contains('3'), "names the line (3): {e}");
    assert!(
        !dir.path().join("t.qry").exists(),
        "nothing published after a failed build"
    );
    // --on-bad-row skip publishes the good rows and counts the bad one (1 of 3 rows: past
    // the default --max-bad-fraction of 1%).
    let out = etl_build_any(
        &csv,
        dir.path(),
        "t",
        &[
            "--schema",
            &schema,
            "--on-bad-row",
            "skip",
            "--max-bad-fraction",
            "0.5",
        ],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let f = quarry_format::read_file(&dir.path().join("t.qry")).expect("open");
    assert_eq!(f.num_rows(), 2);
    // ... and fails past --max-bad-rows.
    let out = etl_build_any(
        &csv,
        dir.path(),
        "t2",
        &[
            "--schema",
            &schema,
            "--on-bad-row",
            "skip",
            "--max-bad-rows",
            "0",
        ],
    );
    assert_eq!(out.code, Some(3), "{out:?}");
}

#[test]
fn duplicate_keys_name_both_records() {
    let dir = temp_dir();
    let csv = dir.path().join("dup.csv");
    write(&csv, "id,name,age\n1,a,3\n2,b,4\n1,c,5\n");
    let schema = schema_file(dir.path());
    let out = etl_build_any(&csv, dir.path(), "t", &["--schema", &schema]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr.contains("dup.csv:2") && out.stderr.contains("dup.csv:4"),
        "both records (lines 2 and 4): {}",
        out.stderr
    );
    for (policy, want_name) in [("first", "a"), ("last", "c")] {
        let out = etl_build_any(
            &csv,
            dir.path(),
            policy,
            &["--schema", &schema, "--on-duplicate-key", policy],
        );
        assert_eq!(out.code, Some(0), "{out:?}");
        let f = quarry_format::read_file(&dir.path().join(format!("{policy}.qry"))).expect("open");
        assert_eq!(f.num_rows(), 2);
        let row = f.find_key(quarry_format::KeyRef::Int64(1)).expect("key 1");
        assert_eq!(
            f.value(row, 1),
            quarry_format::Value::Utf8(want_name),
            "--on-duplicate-key {policy}"
        );
    }
}

#[test]
fn inspect_verify_and_determinism() {
    let dir = temp_dir();
    let (t, csv, schema) = people_csv(dir.path(), 31, 5000);
    let mut files = Vec::new();
    for threads in ["1", "2", "3"] {
        let out_dir = dir.path().join(format!("t{threads}"));
        std::fs::create_dir_all(&out_dir).expect("mkdir");
        etl_build(
            &csv,
            &out_dir,
            "p",
            &[
                "--schema",
                schema.to_str().expect("utf8"),
                "--threads",
                threads,
                "--row-group-rows",
                "1000",
            ],
        );
        files.push(std::fs::read(out_dir.join("p.qry")).expect("read"));
    }
    assert!(
        files.windows(2).all(|w| w[0] == w[1]),
        "--threads 1/2/3 gave different bytes"
    );
    let path = dir.path().join("t1").join("p.qry");
    let out = etl(["inspect", "--json", path.to_str().expect("utf8")]).ok();
    let j: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect --json is JSON");
    let f = quarry_format::read_file(&path).expect("open");
    assert_eq!(j["rows"], 5000);
    assert_eq!(j["row_groups"], 5);
    assert_eq!(j["key"], "id");
    assert_eq!(j["version"], f.version().to_hex());
    let names: Vec<&str> = j["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let want: Vec<&str> = t.cols.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, want);
    assert_eq!(etl(["verify", path.to_str().expect("utf8")]).code, Some(0));
    // A flipped byte in the middle: verify exits 4 and says what is wrong.
    let mut bytes = files[0].clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let bad = dir.path().join("bad.qry");
    std::fs::write(&bad, bytes).expect("write");
    let out = etl(["verify", bad.to_str().expect("utf8")]);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(
        !out.stderr.is_empty() || !out.stdout.is_empty(),
        "verify says nothing about a corrupt file"
    );
}

#[test]
fn stdin_and_gzip_inputs_give_the_same_file() {
    let dir = temp_dir();
    let (_, csv, schema) = people_csv(dir.path(), 32, 800);
    let s = schema.to_str().expect("utf8");
    let d = dir.path().to_str().expect("utf8");
    etl_build(&csv, dir.path(), "plain", &["--schema", s]);
    // gzip via the system tool: an independent encoder.
    let st = std::process::Command::new("gzip")
        .arg("-k")
        .arg(&csv)
        .status()
        .expect("gzip");
    assert!(st.success());
    etl_build(
        &dir.path().join("p.csv.gz"),
        dir.path(),
        "gz",
        &["--schema", s],
    );
    let mut child = std::process::Command::new(&quarry_tests::Bins::get().etl)
        .args([
            "build",
            "-",
            "--input-format",
            "csv",
            "--out",
            d,
            "--name",
            "stdin",
            "--schema",
            s,
        ])
        .env("QUARRY_PROGRESS", "none")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&std::fs::read(&csv).expect("read"))
        .expect("write stdin");
    assert!(child.wait().expect("wait").success());
    let plain = std::fs::read(dir.path().join("plain.qry")).expect("read");
    assert_eq!(
        std::fs::read(dir.path().join("gz.qry")).expect("read"),
        plain,
        ".csv.gz differs from .csv"
    );
    assert_eq!(
        std::fs::read(dir.path().join("stdin.qry")).expect("read"),
        plain,
        "stdin differs from the file"
    );
}

/// A memory limit far below the input forces sorted runs to spill to disk; the merged file is
/// byte-identical to the in-memory build, and no spill files are left behind.
/// (Row groups of wide rows do depend on the limit: etl/README.md, "Memory limit".)
#[test]
fn spilled_build_equals_in_memory_build() {
    let dir = temp_dir();
    let (_, csv, schema) = people_csv(dir.path(), 33, 60_000);
    let s = schema.to_str().expect("utf8");
    let mem = dir.path().join("mem");
    let spill = dir.path().join("spill");
    std::fs::create_dir_all(&mem).expect("mkdir");
    std::fs::create_dir_all(&spill).expect("mkdir");
    // Row groups also end at a byte cap derived from --memory-limit (1 MiB here): groups of
    // 2,048 rows stay under it, so both builds cut the same groups.
    etl_build(
        &csv,
        &mem,
        "p",
        &["--schema", s, "--row-group-rows", "2048"],
    );
    let out = etl_build(
        &csv,
        &spill,
        "p",
        &[
            "--schema",
            s,
            "--memory-limit",
            "1M",
            "--row-group-rows",
            "2048",
        ],
    );
    let a = std::fs::read(mem.join("p.qry")).expect("read");
    let b = std::fs::read(spill.join("p.qry")).expect("read");
    assert!(
        a == b,
        "the spilled build differs from the in-memory one\n{}",
        out.stderr
    );
    let left: Vec<_> = std::fs::read_dir(&spill)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n != "p.qry")
        .collect();
    assert!(left.is_empty(), "spill files left behind: {left:?}");
    // The summary reports the spill (otherwise this test does not test spilling).
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("spilled runs") && !said.contains(" 0 spilled runs"),
        "--memory-limit 1M did not spill: {said}"
    );
}

/// Quarry's strings of column `name` of a built file, in row order (`id` = row number).
fn built_names(qry: &Path) -> Vec<String> {
    let f = quarry_format::read_file(qry).expect("open");
    let col = f.schema().index_of("name").expect("name column");
    (0..f.num_rows())
        .map(|r| match f.value(r, col) {
            quarry_format::Value::Utf8(s) => s.to_string(),
            other => panic!("row {r}: {other:?}"),
        })
        .collect()
}

/// The TSV default (no quoting) and CSV quoting read the same fields as the csv crate and
/// DuckDB configured alike, on the same files.
#[test]
fn tsv_and_csv_quoting_agree_with_the_csv_crate_and_duckdb() {
    let dir = temp_dir();
    let names_tsv = [
        "\"Weird Al live",
        "\"Weird\" Al live",
        "a\"b",
        "\"\"",
        "'x'",
        "plain text",
        "trailing quote\"",
    ];
    let names_csv = [
        "with, comma",
        "with \"quotes\"",
        "two\nlines",
        "plain",
        "a\"b in an unquoted field",
        "crlf\r\nin quotes",
    ];
    let tsv = dir.path().join("t.tsv");
    let mut text = String::from("id\tname\n");
    for (i, n) in names_tsv.iter().enumerate() {
        text.push_str(&format!("{i}\t{n}\n"));
    }
    write(&tsv, &text);
    let csv = dir.path().join("c.csv");
    let mut text = String::from("id,name\r\n");
    for (i, n) in names_csv.iter().enumerate() {
        let field = if n.contains([',', '\n', '\r']) || n.starts_with("with \"") {
            format!("\"{}\"", n.replace('"', "\"\""))
        } else {
            n.to_string()
        };
        text.push_str(&format!("{i},{field}\r\n"));
    }
    write(&csv, &text);

    let mut oracle = quarry_tests::oracle::Oracle::start();
    for (input, quote, want) in [
        (&tsv, None, &names_tsv[..]),
        (&csv, Some(b'"'), &names_csv[..]),
    ] {
        let out = dir.path().join("out");
        etl_build(input, &out, "t", &[]);
        let quarry = built_names(&out.join("t.qry"));
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(quarry, want, "{}", input.display());

        let delimiter = if quote.is_none() { b'\t' } else { b',' };
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .quoting(quote.is_some())
            .from_path(input)
            .expect("csv crate");
        let crate_names: Vec<String> = rdr
            .records()
            .map(|r| r.expect("csv crate record")[1].to_string())
            .collect();
        assert_eq!(crate_names, want, "csv crate on {}", input.display());

        // An actual tab character inside the SQL string literal.
        let (delim, q) = if quote.is_none() {
            ("\t", "")
        } else {
            (",", "\"")
        };
        let sql = format!(
            "SELECT name FROM read_csv('{}', delim='{delim}', quote='{q}', escape='{q}', \
             header=true, auto_detect=false, columns={{'id': 'BIGINT', 'name': 'VARCHAR'}}) \
             ORDER BY id",
            input.display()
        );
        let duck: Vec<String> = oracle
            .exec(&sql)
            .rows
            .iter()
            .map(|r| r[0].as_str().expect("a string").to_string())
            .collect();
        assert_eq!(duck, want, "DuckDB on {}", input.display());
    }
}

/// Column names the query API cannot reach are refused with a suggested `--rename`; renamed,
/// every column can be selected and filtered through the server.
#[test]
fn unreachable_column_names_are_refused_and_renames_reach_the_api() {
    let dir = temp_dir();
    let csv = dir.path().join("n.csv");
    write(
        &csv,
        "id,limit,order,select,cursor,\"a,b\",count(),x.sum(), pad ,offset,not\n\
         1,2,3,4,5,6,7,8,9,10,11\n2,12,13,14,15,16,17,18,19,20,21\n",
    );
    let data = dir.path().join("data");
    let out = etl_build_any(&csv, &data, "n", &["--key", "id"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr
            .contains("column name \"limit\" is a reserved word")
            && out.stderr.contains("--rename 'limit=limit_'"),
        "{}",
        out.stderr
    );
    let renames = [
        ("limit", "lim"),
        ("order", "ord"),
        ("select", "sel"),
        ("cursor", "cur"),
        ("a,b", "a_b"),
        ("count()", "cnt"),
        ("x.sum()", "x_sum"),
        (" pad ", "pad"),
        ("offset", "off"),
        ("not", "neg"),
    ];
    // Each bad name is refused on its own, naming it.
    for (i, (bad, _)) in renames.iter().enumerate() {
        let mut args = vec!["--key".to_string(), "id".to_string()];
        for (j, (old, new)) in renames.iter().enumerate() {
            if i != j {
                args.push("--rename".into());
                args.push(format!("{old}={new}"));
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = etl_build_any(&csv, &data, "n", &args);
        assert_eq!(out.code, Some(3), "{bad:?}: {out:?}");
        assert!(
            out.stderr.contains(&format!("column name {bad:?}")),
            "{bad:?}: {}",
            out.stderr
        );
    }
    let mut args = vec!["--key".to_string(), "id".to_string()];
    for (old, new) in renames {
        args.push("--rename".into());
        args.push(format!("{old}={new}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    etl_build(&csv, &data, "n", &args);
    let mut server = quarry_tests::server::Server::start(&data);
    server.wait_ready();
    for (_, new) in renames {
        let r = server.get(&format!("/v1/datasets/n/rows?select={new}&{new}=gte.12"));
        assert_eq!(r.status, 200, "{new}: {}", r.text());
        let body = r.json();
        let rows = body["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 1, "{new}: {body}");
        assert!(rows[0].get(new).is_some(), "{new}: {body}");
    }
    // An unknown old name is a usage error.
    let out = etl_build_any(&csv, &data, "n", &["--rename", "nope=x"]);
    assert_eq!(out.code, Some(2), "{out:?}");
}
