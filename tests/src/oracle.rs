//! The DuckDB oracle: one long-lived `python3 tests/oracle/duckdb_oracle.py` process answering
//! SQL over stdin/stdout (one JSON object a line), so hundreds of queries cost one import.
//!
//! A missing Python or duckdb is a test FAILURE with the fix in the message, never a skip:
//! scripts/test.sh installs duckdb.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value as Json;

/// A result set: column names and rows of JSON values (see duckdb_oracle.py for the encoding).
#[derive(Debug, Clone)]
pub struct OracleResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Json>>,
}

#[derive(Debug)]
pub struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub duckdb_version: String,
}

pub fn script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("oracle")
        .join("duckdb_oracle.py")
}

impl Oracle {
    /// Starts the oracle; panics with instructions when Python or duckdb is missing.
    pub fn start() -> Oracle {
        let python = std::env::var("QUARRY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(&python)
            .arg(script_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the differential tests need Python 3 with the duckdb package, but {python:?} \
                     cannot be started ({e}); scripts/test.sh makes a venv from tests/requirements.txt \
                     and sets QUARRY_TEST_PYTHON to its python"
                )
            });
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let hello: Json = serde_json::from_str(&line).unwrap_or(Json::Null);
        if hello["ready"] != Json::Bool(true) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the DuckDB oracle did not start: {} -- the differential tests need duckdb in \
                 QUARRY_TEST_PYTHON's environment (scripts/test.sh makes a venv from \
                 tests/requirements.txt); this is a failure, not a skip",
                if line.is_empty() {
                    "no output".to_string()
                } else {
                    line.trim().to_string()
                }
            );
        }
        let duckdb_version = hello["duckdb"].as_str().unwrap_or("?").to_string();
        Oracle {
            child,
            stdin,
            stdout,
            duckdb_version,
        }
    }

    /// Runs one statement.
    pub fn query(&mut self, sql: &str) -> Result<OracleResult, String> {
        let mut req = serde_json::to_string(&serde_json::json!({ "sql": sql })).expect("json");
        req.push('\n');
        self.stdin
            .write_all(req.as_bytes())
            .map_err(|e| format!("writing to the oracle: {e}"))?;
        self.stdin
            .flush()
            .map_err(|e| format!("writing to the oracle: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("reading from the oracle: {e}"))?;
        if line.is_empty() {
            return Err("the oracle exited".into());
        }
        let v: Json = serde_json::from_str(&line)
            .map_err(|e| format!("oracle output is not JSON ({e}): {line}"))?;
        if let Some(e) = v.get("error") {
            return Err(format!("DuckDB error for {sql}: {e}"));
        }
        let columns = v["columns"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        let rows = v["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        Ok(OracleResult { columns, rows })
    }

    /// Runs a statement that must succeed.
    pub fn exec(&mut self, sql: &str) -> OracleResult {
        self.query(sql).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
