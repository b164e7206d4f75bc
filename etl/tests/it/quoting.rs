//! No silent loss (issue 21): a stray or unclosed quote is one bad row (the line it is on),
//! never a record that swallows the lines after it; `--quote`; bad-row accounting.

use proptest::prelude::*;

use crate::common::*;

const SCHEMA: &str = r#"{"fields":[{"name":"id","type":"int64"},{"name":"name","type":"utf8"},{"name":"amount","type":"int64"}]}"#;

fn ids(path: &std::path::Path) -> Vec<i64> {
    read_rows(path)
        .iter()
        .map(|r| if let V::Int(i) = r[0] { i } else { -1 })
        .collect()
}

/// `id,name,amount` rows 0..n; row 250 quotes its name (so a stray quote before it has a
/// closing partner far below).
fn rows_text(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            if i == 250 {
                format!("{i},\"quoted, name {i}\",{}", i % 100)
            } else {
                format!("{i},name{i},{}", i % 100)
            }
        })
        .collect()
}

fn join(header: &str, rows: &[String]) -> String {
    let mut s = String::from(header);
    s.push('\n');
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

#[test]
fn a_stray_quote_is_one_bad_row_not_the_rest_of_the_file() {
    let env = Env::new();
    let mut rows = rows_text(200_000);
    rows[9] = "9,\"name2925,5".into(); // line 11
    let input = env.write("in.csv", join("id,name,amount", &rows));
    let schema = env.write("s.json", SCHEMA).display().to_string();
    let r = build_in(
        &env,
        "t",
        &[&input],
        &["--schema", &schema, "--on-bad-row", "skip"],
    )
    .unwrap();
    assert_eq!((r.rows, r.bad_rows, r.rows_kept), (199_999, 1, 199_999));
    assert_eq!(r.input_lines, 200_000);
    assert!(
        r.bad_row_samples[0].contains("in.csv:11: the quote at column 3"),
        "{:?}",
        r.bad_row_samples
    );
    let summary = r.summary();
    assert!(
        summary.contains("200000 input lines, 199999 rows kept, 1 rows skipped"),
        "{summary}"
    );
    let want: Vec<i64> = (0..200_000).filter(|&i| i != 9).collect();
    assert_eq!(ids(&env.qry("t")), want);

    // Fail mode names the line and the column of the quote.
    let err = build_in(&env, "t2", &[&input], &["--schema", &schema]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("in.csv:11: the quote at column 3"), "{msg}");
    assert_eq!(quarry_etl::error::exit_code(&err), 3);
}

#[test]
fn an_unclosed_quote_fails_naming_line_and_column() {
    let env = Env::new();
    let mut rows = rows_text(1_000);
    rows[600] = "600,name600,\"7".into(); // line 602, column 13; no quote after it
    let input = env.write("in.csv", join("id,name,amount", &rows));
    let err = build_in(&env, "t", &[&input], &[]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("in.csv:602: the quote at column 13") && msg.contains("never closed"),
        "{msg}"
    );
    // Skip mode: one row skipped (1 of 1000 is past the default 1%: allow 1%).
    let r = build_in(
        &env,
        "t",
        &[&input],
        &["--on-bad-row", "skip", "--max-bad-fraction", "0.01"],
    )
    .unwrap();
    assert_eq!((r.rows, r.bad_rows), (999, 1));
}

#[test]
fn a_quoted_field_past_max_field_bytes_is_a_bad_row() {
    let env = Env::new();
    let mut rows = rows_text(3_000);
    // Closed, but 2,000 bytes between the quotes (more than --max-field-bytes 1k).
    rows[100] = format!("100,\"{}\",1", "x".repeat(2_000));
    // Opened on line 2,002 and closed 100 lines further down (by a quote that is an ordinary
    // byte of an unquoted field there), more than 1 KiB later.
    rows[2000] = "2000,\"never closed in time,1".into();
    rows[2100] = "2100,x\",0".into();
    let input = env.write("in.csv", join("id,name,amount", &rows));
    let r = build_in(
        &env,
        "t",
        &[&input],
        &[
            "--on-bad-row",
            "skip",
            "--max-field-bytes",
            "1k",
            "--max-bad-fraction",
            "0.01",
        ],
    )
    .unwrap();
    assert_eq!(r.bad_rows, 2, "{:?}", r.bad_row_samples);
    assert!(
        r.bad_row_samples[0].contains("in.csv:102:"),
        "{:?}",
        r.bad_row_samples
    );
    assert!(
        r.bad_row_samples[0].contains("--max-field-bytes"),
        "{:?}",
        r.bad_row_samples
    );
    assert!(
        r.bad_row_samples[1].contains("in.csv:2002:"),
        "{:?}",
        r.bad_row_samples
    );
    let rows = read_rows(&env.qry("t"));
    assert_eq!(rows.len(), 2_998);
    assert!(rows.contains(&vec![V::Int(2100), V::Str("x\"".into()), V::Int(0)]));
}

#[test]
fn tsv_has_no_quoting_by_default() {
    let env = Env::new();
    let mut text = String::from("id\tname\n");
    for i in 0..100_000 {
        match i {
            5 => text.push_str("5\t\"Weird Al live\n"),
            6 => text.push_str("6\t\"Weird\" Al live\n"),
            _ => text.push_str(&format!("{i}\tname {i}\n")),
        }
    }
    let input = env.write("in.tsv", text);
    let r = build_in(&env, "t", &[&input], &[]).unwrap();
    assert_eq!((r.rows, r.bad_rows), (100_000, 0));
    let rows = read_rows(&env.qry("t"));
    assert_eq!(rows[5][1], V::Str("\"Weird Al live".into()));
    assert_eq!(rows[6][1], V::Str("\"Weird\" Al live".into()));
    // --quote '"' gives TSV CSV's quoting: line 7 is then a bad row, line 8 is `Weird Al live`.
    let err = build_in(&env, "q", &[&input], &["--quote", "\""]).unwrap_err();
    assert!(
        format!("{err:#}").contains("in.tsv:7: the quote at column 3"),
        "{err:#}"
    );
}

#[test]
fn quote_none_and_another_quote_character() {
    let env = Env::new();
    let input = env.write("in.csv", "id,name\n1,\"a\n2,'b,c'\n3,'it''s'\n");
    let r = build_in(
        &env,
        "n",
        &[&input],
        &[
            "--quote",
            "none",
            "--on-bad-row",
            "skip",
            "--max-bad-fraction",
            "1",
        ],
    )
    .unwrap();
    // No quoting: line 3 has three fields.
    assert_eq!((r.rows, r.bad_rows), (2, 1));
    let rows = read_rows(&env.qry("n"));
    assert_eq!(rows[0][1], V::Str("\"a".into()));
    assert_eq!(rows[1][1], V::Str("'it''s'".into()));
    let r = build_in(&env, "s", &[&input], &["--quote", "'"]).unwrap();
    assert_eq!(r.rows, 3);
    let rows = read_rows(&env.qry("s"));
    assert_eq!(rows[0][1], V::Str("\"a".into()));
    assert_eq!(rows[1][1], V::Str("b,c".into()));
    assert_eq!(rows[2][1], V::Str("it's".into()));
    let err = build_in(&env, "x", &[&input], &["--quote", "ab"]).unwrap_err();
    assert!(format!("{err:#}").contains("--quote"), "{err:#}");
    let err = build_in(&env, "x", &[&input], &["--quote", ","]).unwrap_err();
    assert_eq!(quarry_etl::error::exit_code(&err), 2, "{err:#}");
}

#[test]
fn skipped_rows_past_max_bad_fraction_fail_the_build() {
    let env = Env::new();
    let mut rows = rows_text(1_000);
    for i in (0..1_000).step_by(50) {
        rows[i] = format!("x{i},name,1"); // 20 bad rows: 2%
    }
    let input = env.write("in.csv", join("id,name,amount", &rows));
    let schema = env.write("s.json", SCHEMA).display().to_string();
    let err = build_in(
        &env,
        "t",
        &[&input],
        &["--schema", &schema, "--on-bad-row", "skip"],
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("20 of 1000 rows were bad") && msg.contains("--max-bad-fraction 0.01"),
        "{msg}"
    );
    assert_eq!(quarry_etl::error::exit_code(&err), 3);
    assert!(!env.qry("t").exists());
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
            "0.02",
        ],
    )
    .unwrap();
    assert_eq!((r.rows, r.bad_rows), (980, 20));
}

/// One corrupted line of a random valid CSV.
#[derive(Debug, Clone)]
enum Corruption {
    /// A quote opens the name field and is never closed on the line.
    StrayQuote,
    /// A quote after a closed quoted field: `"name"x`.
    JunkAfterQuote,
    /// A non-integer id.
    BadInt,
    /// A field is missing.
    MissingField,
    /// An extra field.
    ExtraField,
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        Just(Corruption::StrayQuote),
        Just(Corruption::JunkAfterQuote),
        Just(Corruption::BadInt),
        Just(Corruption::MissingField),
        Just(Corruption::ExtraField),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Valid rows may quote their name (with commas, doubled quotes and line ends inside);
    /// one line is corrupted. Every valid row is kept, and exactly one row is skipped. The
    /// smallest chunks (64 KiB, from --memory-limit 1M) put chunk boundaries inside the input.
    #[test]
    fn one_corrupted_line_loses_only_that_row(
        names in proptest::collection::vec(
            (any::<bool>(), "[a-z][a-z ,\"\n]{0,12}"), 1..4000),
        bad_at in any::<prop::sample::Index>(),
        kind in corruption(),
    ) {
        let env = Env::new();
        let bad = bad_at.index(names.len());
        let mut text = String::from("id,name,amount\n");
        for (i, (quoted, name)) in names.iter().enumerate() {
            let needs_quotes = *quoted || name.contains([',', '"', '\n']);
            let field = if needs_quotes {
                format!("\"{}\"", name.replace('"', "\"\""))
            } else {
                name.clone()
            };
            let line = if i == bad {
                match kind {
                    Corruption::StrayQuote => format!("{i},\"{},{i}", name.replace(['"', '\n'], "")),
                    Corruption::JunkAfterQuote => format!("{i},\"{}\"x,{i}", name.replace(['"', '\n'], "")),
                    Corruption::BadInt => format!("x{i},{field},{i}"),
                    Corruption::MissingField => format!("{i},{i}"),
                    Corruption::ExtraField => format!("{i},{field},{i},{i}"),
                }
            } else {
                format!("{i},{field},{i}")
            };
            text.push_str(&line);
            text.push('\n');
        }
        let input = env.write("in.csv", &text);
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
                "1",
                "--memory-limit",
                "1M",
            ],
        );
        let r = r.map_err(|e| TestCaseError::fail(format!("{e:#}\n{text}")))?;
        prop_assert_eq!(r.bad_rows, 1, "{:?}\n{}", r.bad_row_samples, text);
        let want: Vec<i64> = (0..names.len() as i64).filter(|&i| i != bad as i64).collect();
        prop_assert_eq!(ids(&env.qry("t")), want);
    }
}
