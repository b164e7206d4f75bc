//! CSV details: quoting, CRLF, BOM, UTF-8, empty and header-only inputs, TSV, stdin.

use crate::common::*;

#[test]
fn quoting_crlf_bom_and_utf8() {
    let env = Env::new();
    let text = "\u{FEFF}id,s\r\n1,\"a,b\"\r\n2,\"he said \"\"hi\"\"\"\r\n3,\"two\r\nlines\"\r\n4,żółw 🐢\r\n";
    let input = env.write("a.csv", text);
    build_in(&env, "t", &[&input], &[]).unwrap();
    assert_eq!(
        schema_of(&env.qry("t"))[0].0,
        "id",
        "BOM stripped from the first name"
    );
    let want = vec![
        vec![V::Int(1), V::Str("a,b".into())],
        vec![V::Int(2), V::Str("he said \"hi\"".into())],
        vec![V::Int(3), V::Str("two\r\nlines".into())],
        vec![V::Int(4), V::Str("żółw 🐢".into())],
    ];
    assert_eq!(read_rows(&env.qry("t")), want);
}

#[test]
fn empty_file_is_an_error_and_header_only_is_an_empty_dataset() {
    let env = Env::new();
    let empty = env.write("empty.csv", "");
    let err = build_in(&env, "t", &[&empty], &[]).unwrap_err();
    assert_eq!(quarry_etl::error::exit_code(&err), 3);
    assert!(format!("{err:#}").contains("empty"), "{err:#}");
    assert!(!env.qry("t").exists());

    let header = env.write("header.csv", "a,b\n");
    let r = build_in(&env, "t", &[&header], &[]).unwrap();
    assert_eq!(r.rows, 0);
    assert!(read_rows(&env.qry("t")).is_empty());
    assert_eq!(schema_of(&env.qry("t")).len(), 2);
}

#[test]
fn tsv_and_no_header() {
    let env = Env::new();
    let input = env.write("a.tsv", "1\tx y\n2\tz\n");
    build_in(&env, "t", &[&input], &["--no-header"]).unwrap();
    let names: Vec<String> = schema_of(&env.qry("t"))
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    assert_eq!(names, ["c1", "c2"]);
    assert_eq!(
        read_rows(&env.qry("t"))[0],
        vec![V::Int(1), V::Str("x y".into())]
    );
}

#[test]
fn invalid_utf8_is_a_bad_row() {
    let env = Env::new();
    let input = env.write("a.csv", b"id,s\n1,ok\n2,\xff\xfe\n".as_slice());
    let err = build_in(&env, "t", &[&input], &[]).unwrap_err();
    assert!(format!("{err:#}").contains("a.csv:3"), "{err:#}");
    assert!(format!("{err:#}").contains("UTF-8"), "{err:#}");
}

#[test]
fn headers_must_match_across_inputs() {
    let env = Env::new();
    let a = env.write("a.csv", "id,x\n1,2\n");
    let b = env.write("b.csv", "x,id\n3,4\n");
    // Same columns in another order: mapped by name.
    build_in(&env, "t", &[&a, &b], &[]).unwrap();
    assert_eq!(read_rows(&env.qry("t"))[1], vec![V::Int(4), V::Int(3)]);
    let c = env.write("c.csv", "id,y\n1,2\n");
    let err = build_in(&env, "t", &[&a, &c], &["--schema-out", &env.s("s.json")]).unwrap_err();
    assert_eq!(quarry_etl::error::exit_code(&err), 3, "{err:#}");
}

#[test]
fn stdin_input_via_binary() {
    use std::io::Write;
    let env = Env::new();
    let data = env.data().display().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quarry-etl"))
        .args([
            "build",
            "-",
            "--input-format",
            "csv",
            "--out",
            &data,
            "--name",
            "s",
            "--progress",
            "none",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(simple_csv(20_000).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = read_rows(&env.qry("s"));
    assert_eq!(rows.len(), 20_000);
    assert_eq!(
        rows[19_999],
        vec![V::Int(19_999), V::Str("name 19999".into()), V::Float(999.5)]
    );
}
