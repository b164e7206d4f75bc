//! The binary: exit codes, inspect, verify, env options, name validation.

use crate::common::*;

#[test]
fn exit_codes_and_messages() {
    let env = Env::new();
    let data = env.data().display().to_string();
    let ok = env.write("a.csv", "id,v\n1,x\n");
    let a = ok.display().to_string();

    let o = bin(&[
        "build",
        &a,
        "--out",
        &data,
        "--name",
        "a",
        "--progress",
        "none",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 rows"), "summary: {}", stderr(&o));

    let o = bin(&["build", &a, "--out", &data, "--name", ".hidden"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = bin(&["build", &a, "--out", &data, "--name", "x/y"]);
    assert_eq!(o.status.code(), Some(2));
    let o = bin(&["build", &a, "--out", &data]);
    assert_eq!(o.status.code(), Some(2), "missing --name");
    let o = bin(&[
        "build",
        &env.s("missing.csv"),
        "--out",
        &data,
        "--name",
        "m",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing.csv"));

    let bad = env
        .write("bad.csv", "id,v\n1,x\n1,y\n")
        .display()
        .to_string();
    let o = bin(&["build", &bad, "--out", &data, "--name", "b", "--key", "id"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    let help = bin(&["build", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("Exit codes") && text.contains("QUARRY_THREADS"),
        "{text}"
    );
}

#[test]
fn options_come_from_environment() {
    let env = Env::new();
    let a = env.write("a.csv", "id,v\n2,x\n1,y\n").display().to_string();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_quarry-etl"))
        .args(["build", &a])
        .env("QUARRY_OUT", env.data())
        .env("QUARRY_NAME", "e")
        .env("QUARRY_KEY", "id")
        .env("QUARRY_PROGRESS", "none")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read_rows(&env.qry("e"))[0][0],
        V::Int(1),
        "sorted by the env key"
    );
}

#[test]
fn inspect_and_verify_detect_corruption() {
    let env = Env::new();
    let a = env.write("a.csv", simple_csv(5000));
    build_in(&env, "a", &[&a], &["--key", "id"]).unwrap();
    let path = env.qry("a").display().to_string();

    let o = bin(&["inspect", &path, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["rows"], 5000);
    assert_eq!(j["key"], "id");
    assert_eq!(j["columns"].as_array().unwrap().len(), 3);
    let o = bin(&["inspect", &path]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("row groups"));

    let o = bin(&["verify", &path]);
    assert_eq!(o.status.code(), Some(0));

    // Flip a byte in the middle (a column body): verify must fail with exit 4.
    let mut bytes = std::fs::read(env.qry("a")).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x55;
    let broken = env.write("broken.qry", &bytes).display().to_string();
    let o = bin(&["verify", &broken]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken.qry"), "{}", stderr(&o));
    let o = bin(&["verify", &env.s("nope.qry")]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn infer_prints_the_schema_file_format() {
    let env = Env::new();
    let a = env
        .write(
            "a.csv",
            "id,when,ok\n1,2024-01-01T00:00:00Z,true\n2,,false\n",
        )
        .display()
        .to_string();
    let o = bin(&["infer", &a, "--key", "id"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        j,
        serde_json::json!({"fields":[{"name":"id","type":"int64","nullable":false},
                                     {"name":"when","type":"timestamp","nullable":true},
                                     {"name":"ok","type":"bool","nullable":true}],"key":"id"})
    );
}
