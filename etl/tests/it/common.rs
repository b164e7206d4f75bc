//! Helpers: temp dirs, running builds in-process and as a binary, reading files back.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::Parser;
use quarry_etl::build::BuildReport;
use quarry_etl::cli::{Cli, Command as Cmd};
use quarry_format::Value;

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write input");
        p
    }
    pub fn data(&self) -> PathBuf {
        self.path("data")
    }
    pub fn qry(&self, name: &str) -> PathBuf {
        self.data().join(format!("{name}.qry"))
    }
    pub fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// `quarry-etl build --progress none ARGS` in-process.
pub fn build(args: &[&str]) -> anyhow::Result<BuildReport> {
    let mut v = vec!["quarry-etl", "build", "--progress", "none"];
    v.extend_from_slice(args);
    let cli = Cli::try_parse_from(v)?;
    match cli.command {
        Cmd::Build(a) => quarry_etl::build::build(&a),
        _ => unreachable!("build"),
    }
}

/// Builds `inputs` into `<env>/data/<name>.qry`.
pub fn build_in(
    env: &Env,
    name: &str,
    inputs: &[&Path],
    extra: &[&str],
) -> anyhow::Result<BuildReport> {
    let data = env.data().display().to_string();
    let mut args: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    args.extend(["--out".into(), data, "--name".into(), name.into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    build(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

pub fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quarry-etl"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run quarry-etl")
}

/// An owned cell for comparisons.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Date(i32),
    Ts(i64),
}

impl From<Value<'_>> for V {
    fn from(v: Value<'_>) -> V {
        match v {
            Value::Null => V::Null,
            Value::Bool(b) => V::Bool(b),
            Value::Int64(i) => V::Int(i),
            Value::Float64(f) => V::Float(f),
            Value::Utf8(s) => V::Str(s.to_string()),
            Value::Date(d) => V::Date(d),
            Value::Timestamp(t) => V::Ts(t),
        }
    }
}

/// Every row of a file, verified first.
pub fn read_rows(path: &Path) -> Vec<Vec<V>> {
    let f = quarry_format::read_file(path).expect("open");
    f.verify().expect("verify");
    let cols = f.schema().fields().len();
    (0..f.num_rows())
        .map(|r| (0..cols).map(|c| V::from(f.value(r, c))).collect())
        .collect()
}

pub fn schema_of(path: &Path) -> Vec<(String, String, bool)> {
    let f = quarry_format::read_file(path).expect("open");
    f.schema()
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.data_type.name().to_string(), f.nullable))
        .collect()
}

/// Deterministic pseudo-random numbers (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A simple numeric CSV of `rows` rows: `id,name,amount` with id = row number.
pub fn simple_csv(rows: usize) -> String {
    let mut s = String::from("id,name,amount\n");
    for i in 0..rows {
        s.push_str(&format!("{i},name {i},{}.5\n", i % 1000));
    }
    s
}
