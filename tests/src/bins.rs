//! Locating (and building once) the real binaries.
//!
//! The test executable lives in `<target>/<profile>/deps/`, so `<target>/<profile>/` is where
//! `cargo build -p quarry-etl -p quarry-server` with the same profile puts the binaries; this
//! honours `CARGO_TARGET_DIR` without reading it. `QUARRY_TEST_BIN_DIR` points at prebuilt
//! binaries instead (no build).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Paths of the two binaries under test.
#[derive(Debug, Clone)]
pub struct Bins {
    pub etl: PathBuf,
    pub server: PathBuf,
}

static BINS: OnceLock<Bins> = OnceLock::new();

impl Bins {
    /// Builds the binaries once per test process, then returns their paths.
    pub fn get() -> &'static Bins {
        BINS.get_or_init(|| {
            if let Some(dir) = std::env::var_os("QUARRY_TEST_BIN_DIR") {
                let dir = PathBuf::from(dir);
                return Bins {
                    etl: dir.join("quarry-etl"),
                    server: dir.join("quarry-server"),
                };
            }
            let exe = std::env::current_exe().expect("current_exe");
            // <target>/<profile>/deps/e2e-hash
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test executable is not in <target>/<profile>/deps")
                .to_path_buf();
            let profile = profile_dir
                .file_name()
                .and_then(OsStr::to_str)
                .unwrap_or("debug");
            let target_dir = profile_dir.parent().expect("no target dir").to_path_buf();
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("workspace root");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.current_dir(workspace)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "quarry-etl",
                    "-p",
                    "quarry-server",
                ])
                .env("CARGO_TARGET_DIR", &target_dir);
            match profile {
                "debug" => {}
                "release" => {
                    cmd.arg("--release");
                }
                other => {
                    cmd.args(["--profile", other]);
                }
            }
            let status = cmd
                .status()
                .expect("running cargo build for quarry-etl and quarry-server");
            assert!(
                status.success(),
                "cargo build -p quarry-etl -p quarry-server failed: {status}"
            );
            let bins = Bins {
                etl: profile_dir.join("quarry-etl"),
                server: profile_dir.join("quarry-server"),
            };
            assert!(bins.etl.exists(), "missing {}", bins.etl.display());
            assert!(bins.server.exists(), "missing {}", bins.server.display());
            bins
        })
    }
}

/// Exit code and captured output of one `quarry-etl` run.
#[derive(Debug, Clone)]
pub struct EtlOutput {
    /// None when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl EtlOutput {
    /// Panics with the output unless the run exited 0.
    pub fn ok(self) -> EtlOutput {
        assert_eq!(
            self.code,
            Some(0),
            "quarry-etl failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `quarry-etl ARGS...` to completion.
pub fn etl<I, S>(args: I) -> EtlOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(&Bins::get().etl)
        .args(args)
        .env("QUARRY_PROGRESS", "none")
        .output()
        .expect("spawning quarry-etl");
    EtlOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `quarry-etl build INPUT --out DIR --name NAME EXTRA...`, asserting success.
/// `quarry-etl build INPUT --out OUT --name NAME EXTRA...`, whatever its exit code.
pub fn etl_build_any(input: &Path, out: &Path, name: &str, extra: &[&str]) -> EtlOutput {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("build"),
        input.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--name"),
        OsStr::new(name),
    ];
    args.extend(extra.iter().map(OsStr::new));
    etl(args)
}

/// As [`etl_build_any`], asserting that the build succeeded.
pub fn etl_build(input: &Path, out: &Path, name: &str, extra: &[&str]) -> EtlOutput {
    etl_build_any(input, out, name, extra).ok()
}
