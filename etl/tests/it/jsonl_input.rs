//! JSON Lines: missing keys, extra keys, nested values, blank lines.

use crate::common::*;

const SCHEMA: &str =
    r#"{"fields":[{"name":"id","type":"int64","nullable":false},{"name":"s","type":"utf8"}]}"#;

#[test]
fn missing_keys_are_null_and_blank_lines_skipped() {
    let env = Env::new();
    let input = env.write(
        "a.jsonl",
        "{\"id\":1,\"s\":\"x\"}\n\n{\"id\":2}\r\n{\"s\":null,\"id\":3}\n",
    );
    let schema = env.write("s.json", SCHEMA).display().to_string();
    build_in(&env, "t", &[&input], &["--schema", &schema]).unwrap();
    assert_eq!(
        read_rows(&env.qry("t")),
        vec![
            vec![V::Int(1), V::Str("x".into())],
            vec![V::Int(2), V::Null],
            vec![V::Int(3), V::Null]
        ]
    );
}

#[test]
fn extra_keys_are_bad_rows_unless_ignored() {
    let env = Env::new();
    let input = env.write(
        "a.jsonl",
        "{\"id\":1,\"s\":\"x\"}\n{\"id\":2,\"extra\":5}\n",
    );
    let schema = env.write("s.json", SCHEMA).display().to_string();
    let err = build_in(&env, "t", &[&input], &["--schema", &schema]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("a.jsonl:2") && msg.contains("\"extra\""),
        "{msg}"
    );
    assert_eq!(quarry_etl::error::exit_code(&err), 3);
    build_in(
        &env,
        "t",
        &[&input],
        &["--schema", &schema, "--ignore-extra-keys"],
    )
    .unwrap();
    assert_eq!(read_rows(&env.qry("t")).len(), 2);
}

#[test]
fn nested_values_are_an_error_naming_the_column() {
    let env = Env::new();
    let input = env.write("a.jsonl", "{\"id\":1,\"s\":{\"deep\":1}}\n");
    let err = build_in(&env, "t", &[&input], &[]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("a.jsonl:1") && msg.contains("\"s\"") && msg.contains("nested"),
        "{msg}"
    );
    let schema = env.write("s.json", SCHEMA).display().to_string();
    let err = build_in(&env, "t", &[&input], &["--schema", &schema]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("a.jsonl:1") && msg.contains("\"s\"") && msg.contains("nested"),
        "{msg}"
    );
}

#[test]
fn not_an_object_is_a_bad_row() {
    let env = Env::new();
    let input = env.write("a.jsonl", "{\"id\":1}\n[1,2]\n{\"id\":3}\n");
    let schema = env.write("s.json", SCHEMA).display().to_string();
    let r = build_in(
        &env,
        "t",
        &[&input],
        &[
            "--schema",
            &schema,
            "--on-bad-row",
            "skip",
            "--max-bad-fraction",
            "0.5",
        ],
    )
    .unwrap();
    assert_eq!((r.rows, r.bad_rows), (2, 1));
    assert!(
        r.bad_row_samples[0].starts_with(&format!("{}:2:", input.display())),
        "{:?}",
        r.bad_row_samples
    );
}
