//! Atomic publish: a killed build leaves the old file intact and no partial file under the
//! dataset's name; stale temp files are removed by the next run.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::*;

fn hidden_temps(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.data())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".big.tmp-"))
        .collect()
}

#[test]
fn killed_build_leaves_old_version_intact() {
    let env = Env::new();
    let small = env.write("small.csv", simple_csv(100));
    build_in(&env, "big", &[&small], &[]).unwrap();
    let old = std::fs::read(env.qry("big")).unwrap();

    // Big enough that the debug binary is still busy when killed.
    let big = env.path("big.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        w.write_all(b"id,name,amount\n").unwrap();
        for i in 0..1_500_000u64 {
            writeln!(w, "{i},name {i},{}.5", i % 1000).unwrap();
        }
    }
    let data = env.data().display().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quarry-etl"))
        .args([
            "build",
            big.to_str().unwrap(),
            "--out",
            &data,
            "--name",
            "big",
            "--threads",
            "1",
            "--progress",
            "none",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while hidden_temps(&env).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no temp file appeared"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("build ended before it could be killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(
        std::fs::read(env.qry("big")).unwrap(),
        old,
        "published file changed"
    );
    assert_eq!(read_rows(&env.qry("big")).len(), 100);
    let temps = hidden_temps(&env);
    assert_eq!(
        temps.len(),
        1,
        "the killed build leaves its hidden temp file: {temps:?}"
    );

    // The next run removes the dead process's temp file.
    build_in(&env, "other", &[&small], &[]).unwrap();
    assert!(hidden_temps(&env).is_empty(), "stale temp file not removed");
    assert_eq!(std::fs::read(env.qry("big")).unwrap(), old);
}

#[test]
fn failed_build_removes_its_temp_file_and_keeps_old_version() {
    let env = Env::new();
    let good = env.write("g.csv", "id\n1\n2\n");
    build_in(&env, "big", &[&good], &["--key", "id"]).unwrap();
    let old = std::fs::read(env.qry("big")).unwrap();
    let dup = env.write("d.csv", "id\n1\n1\n");
    build_in(&env, "big", &[&dup], &["--key", "id"]).unwrap_err();
    assert_eq!(std::fs::read(env.qry("big")).unwrap(), old);
    assert!(hidden_temps(&env).is_empty());
    assert_eq!(std::fs::read_dir(env.data()).unwrap().count(), 1);
}
