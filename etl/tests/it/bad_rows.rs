//! Bad rows: fail and skip modes, limits, line numbers across chunks.

use crate::common::*;

/// A CSV with multi-line quoted records; `bad` rows hold a non-integer id. Returns the text
/// and the 1-based line numbers of the bad records (computed while writing).
fn csv_with_bad_rows(rows: usize, bad: &[usize]) -> (String, Vec<usize>) {
    let mut text = String::from("id,note\n");
    let mut line = 2;
    let mut bad_lines = vec![];
    for i in 0..rows {
        let note = if i % 3 == 0 {
            format!("\"two\nlines {i}\"")
        } else {
            format!("note {i}")
        };
        if bad.contains(&i) {
            bad_lines.push(line);
            text.push_str(&format!("x{i},{note}\n"));
        } else {
            text.push_str(&format!("{i},{note}\n"));
        }
        line += 1 + usize::from(i % 3 == 0);
    }
    (text, bad_lines)
}

#[test]
fn fail_mode_names_file_line_column_value() {
    let env = Env::new();
    let (text, lines) = csv_with_bad_rows(30_000, &[25_000]);
    let input = env.write("in.csv", text);
    let schema = env.write(
        "s.json",
        r#"{"fields":[{"name":"id","type":"int64"},{"name":"note","type":"utf8"}]}"#,
    );
    let schema = schema.display().to_string();
    // 64 KiB chunks: the bad row is many chunks in, after many quoted newlines.
    let err = build_in(
        &env,
        "t",
        &[&input],
        &["--schema", &schema, "--memory-limit", "1M"],
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&format!("in.csv:{}:", lines[0])),
        "want line {}: {msg}",
        lines[0]
    );
    assert!(
        msg.contains("\"id\"") && msg.contains("\"x25000\"") && msg.contains("int64"),
        "{msg}"
    );
    assert_eq!(quarry_etl::error::exit_code(&err), 3);
    assert!(!env.qry("t").exists());
}

#[test]
fn skip_mode_counts_and_reports_first_ten() {
    let env = Env::new();
    let bad: Vec<usize> = (0..15).map(|i| 1000 + i * 1900).collect();
    let (text, lines) = csv_with_bad_rows(30_000, &bad);
    let input = env.write("in.csv", text);
    let schema = env.write(
        "s.json",
        r#"{"fields":[{"name":"id","type":"int64"},{"name":"note","type":"utf8"}]}"#,
    );
    let schema = schema.display().to_string();
    let r = build_in(
        &env,
        "t",
        &[&input],
        &[
            "--schema",
            &schema,
            "--on-bad-row",
            "skip",
            "--memory-limit",
            "1M",
        ],
    )
    .unwrap();
    assert_eq!(r.bad_rows, 15);
    assert_eq!(r.rows, 30_000 - 15);
    assert_eq!(r.bad_row_samples.len(), 10);
    for (sample, line) in r.bad_row_samples.iter().zip(&lines) {
        assert!(
            sample.contains(&format!("in.csv:{line}:")),
            "{sample} vs {line}"
        );
    }
    let rows = read_rows(&env.qry("t"));
    let want: Vec<i64> = (0..30_000)
        .filter(|i| !bad.contains(&(*i as usize)))
        .collect();
    let got: Vec<i64> = rows
        .iter()
        .map(|r| if let V::Int(i) = r[0] { i } else { -1 })
        .collect();
    assert_eq!(got, want);

    let err = build_in(
        &env,
        "t",
        &[&input],
        &[
            "--schema",
            &schema,
            "--on-bad-row",
            "skip",
            "--max-bad-rows",
            "14",
        ],
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("--max-bad-rows 14"), "{err:#}");
    assert_eq!(quarry_etl::error::exit_code(&err), 3);
}

#[test]
fn wrong_field_count_and_null_key_are_bad_rows() {
    let env = Env::new();
    let input = env.write("in.csv", "id,v\n1,a\n2\n,c\n3,d,e\n4,f\n");
    let r = build_in(
        &env,
        "t",
        &[&input],
        &[
            "--key",
            "id",
            "--on-bad-row",
            "skip",
            "--max-bad-fraction",
            "1",
        ],
    )
    .unwrap();
    assert_eq!((r.rows, r.bad_rows), (2, 3));
    assert!(
        r.bad_row_samples[0].contains(":3: expected 2 fields, found 1"),
        "{:?}",
        r.bad_row_samples
    );
    assert!(
        r.bad_row_samples[1].contains(":4: column \"id\": empty value in the key column"),
        "{:?}",
        r.bad_row_samples
    );
}

#[test]
fn line_numbers_count_crlf_blank_lines_and_quoted_newlines() {
    let env = Env::new();
    for (name, nl) in [("lf.csv", "\n"), ("crlf.csv", "\r\n")] {
        let lines = [
            "id,v",
            "1,a",
            &format!("2,\"x{nl}y\""),
            "",
            "3,b",
            "zz,c",
            "4,d",
        ];
        let input = env.write(name, lines.join(nl) + nl);
        let schema = env.write(
            "s.json",
            r#"{"fields":[{"name":"id","type":"int64"},{"name":"v","type":"utf8"}]}"#,
        );
        let schema = schema.display().to_string();
        let err = build_in(&env, "t", &[&input], &["--schema", &schema]).unwrap_err();
        // "zz,c" is on line 7: header 1, records 2, 3-4 (quoted newline), blank 5, 6, 7.
        let msg = format!("{err:#}");
        assert!(msg.contains(&format!("{name}:7: column \"id\"")), "{msg}");
    }
}
