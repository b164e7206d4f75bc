//! Schema inference from a sample.

use crate::common::*;

fn infer(env: &Env, name: &str, text: &str, extra: &[&str]) -> Vec<(String, String, bool)> {
    let input = env.write(name, text);
    build_in(env, "t", &[&input], extra).unwrap();
    schema_of(&env.qry("t"))
}

fn ty(s: &[(String, String, bool)]) -> Vec<&str> {
    s.iter().map(|(_, t, _)| t.as_str()).collect()
}

#[test]
fn csv_types_widen() {
    let env = Env::new();
    let s = infer(
        &env,
        "a.csv",
        "i,f,mixed,b,d,t,dt,e,s\n1,1,1,true,2024-01-01,2024-01-01T10:00:00Z,2024-01-01,,x\n2,2.5,x,false,2024-02-29,2024-01-01 10:00:00.5,2024-01-01 00:00:01,,1\n",
        &[],
    );
    assert_eq!(
        ty(&s),
        [
            "int64",
            "float64",
            "utf8",
            "bool",
            "date",
            "timestamp",
            "timestamp",
            "utf8",
            "utf8"
        ]
    );
    assert!(
        s.iter().all(|(_, _, nullable)| *nullable),
        "inferred columns are nullable"
    );
}

#[test]
fn key_column_is_non_null_and_utf8_unless_int() {
    let env = Env::new();
    let s = infer(
        &env,
        "a.csv",
        "d,v\n2024-01-01,1\n2024-01-02,2\n",
        &["--key", "d"],
    );
    assert_eq!(s[0], ("d".to_string(), "utf8".to_string(), false));
}

#[test]
fn jsonl_types_and_key_order() {
    let env = Env::new();
    let s = infer(
        &env,
        "a.jsonl",
        "{\"a\":1,\"b\":\"x\",\"c\":true}\n{\"b\":\"2024-01-01\",\"a\":2.5,\"d\":\"2024-01-01\"}\n",
        &[],
    );
    let names: Vec<&str> = s.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
    assert_eq!(ty(&s), ["float64", "utf8", "bool", "date"]);
}

#[test]
fn schema_out_writes_the_schema_file_format_and_round_trips() {
    let env = Env::new();
    let input = env.write("a.csv", "id,v\n1,2.5\n2,3\n");
    let out = env.s("schema.json");
    build_in(&env, "t", &[&input], &["--key", "id", "--schema-out", &out]).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"fields":[{"name":"id","type":"int64","nullable":false},
                                     {"name":"v","type":"float64","nullable":true}],"key":"id"})
    );
    // The file is accepted by --schema and gives the same file.
    let first = std::fs::read(env.qry("t")).unwrap();
    build_in(&env, "t", &[&input], &["--schema", &out]).unwrap();
    assert_eq!(std::fs::read(env.qry("t")).unwrap(), first);
}

#[test]
fn value_after_the_sample_that_does_not_fit_is_a_bad_row_naming_everything() {
    let env = Env::new();
    let mut text = String::from("id,n\n");
    for i in 0..quarry_etl::infer::SAMPLE_RECORDS {
        text.push_str(&format!("{i},{i}\n"));
    }
    text.push_str("99999,oops\n");
    let input = env.write("late.csv", &text);
    let err = build_in(&env, "t", &[&input], &[]).unwrap_err();
    let msg = format!("{err:#}");
    let line = quarry_etl::infer::SAMPLE_RECORDS + 2;
    assert!(msg.contains(&format!("late.csv:{line}:")), "{msg}");
    assert!(
        msg.contains("\"n\"") && msg.contains("\"oops\"") && msg.contains("int64"),
        "{msg}"
    );
    assert!(msg.contains("--schema-out"), "{msg}");
    assert_eq!(quarry_etl::error::exit_code(&err), 3);
}

/// Issue #23: invalid UTF-8 is not a typing problem: the message says to convert the input,
/// gives the skip option once, and does not send the user to --schema.
#[test]
fn invalid_utf8_says_convert_once_and_not_schema() {
    let env = Env::new();
    let input = env.write("latin1.csv", b"id,name\n1,caf\xe9\n2,ok\n".as_slice());
    let err = build_in(&env, "t", &[&input], &[]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("latin1.csv:2:"), "{msg}");
    assert!(msg.contains("not valid UTF-8"), "{msg}");
    assert!(
        msg.contains("iconv"),
        "the message says how to convert: {msg}"
    );
    assert!(
        !msg.contains("--schema"),
        "a schema cannot fix an encoding: {msg}"
    );
    assert_eq!(msg.matches("--on-bad-row skip").count(), 1, "{msg}");
    assert_eq!(quarry_etl::error::exit_code(&err), 3);
}
