//! `--memory-limit` holds on hostile inputs (issue 21): one huge field in a small gzip,
//! /dev/zero, an unterminated quote on a large stdin, and wide rows. Inputs are generated on
//! the fly (streamed through stdin where possible). Peak RSS is the process's VmHWM.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const LIMIT_MIB: u64 = 256;
/// Fixed slack on top of the limit: the (debug) binary, thread stacks, allocator slack.
const SLACK_MIB: u64 = 64;

struct Run {
    code: Option<i32>,
    stderr: String,
    /// The largest VmHWM seen while the process ran, in MiB.
    peak_mib: u64,
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs quarry-etl with `args`, feeding stdin from `feed` on a thread, sampling VmHWM every
/// few milliseconds; kills it past 4x the limit (an unbounded build would grow without limit).
fn run(args: &[&str], feed: Option<Box<dyn FnOnce(ChildStdin) + Send>>) -> Run {
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_quarry-etl"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(if feed.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quarry-etl");
    let pid = child.id();
    let feeder = feed.map(|f| {
        let stdin = child.stdin.take().expect("stdin");
        std::thread::spawn(move || f(stdin))
    });
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let start = Instant::now();
    let mut peak_kib = 0;
    let status = loop {
        if let Some(hwm) = status_kib(pid, "VmHWM:") {
            peak_kib = peak_kib.max(hwm);
        }
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if peak_kib > 4 * LIMIT_MIB * 1024 || start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    Run {
        code: status.code(),
        stderr: reader.join().expect("stderr reader"),
        peak_mib: peak_kib / 1024,
    }
}

/// Writes `head`, then `n` bytes of `byte`, then `tail`, ignoring a closed pipe (the build
/// may stop reading early, which is the point).
fn stream(
    head: &'static [u8],
    byte: u8,
    n: usize,
    tail: &'static [u8],
) -> Box<dyn FnOnce(ChildStdin) + Send> {
    Box::new(move |mut w: ChildStdin| {
        let block = vec![byte; 1 << 20];
        let _ = (|| -> std::io::Result<()> {
            w.write_all(head)?;
            let mut left = n;
            while left > 0 {
                let k = left.min(block.len());
                w.write_all(&block[..k])?;
                left -= k;
            }
            w.write_all(tail)
        })();
    })
}

fn build_args<'a>(data: &'a str, input: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "build",
        input,
        "--out",
        data,
        "--name",
        "t",
        "--progress",
        "none",
        "--memory-limit",
        "256M",
    ];
    v.extend_from_slice(extra);
    v
}

fn assert_held(r: &Run, what: &str) {
    assert!(
        r.peak_mib < LIMIT_MIB + SLACK_MIB,
        "{what}: peak RSS {} MiB with --memory-limit {LIMIT_MIB}M\n{}",
        r.peak_mib,
        r.stderr
    );
}

#[test]
fn a_one_gigabyte_field_in_a_small_gzip() {
    let env = Env::new();
    // 1 GiB of `x` as 1,024 gzip members of 1 MiB each (a multi-member gzip is one stream).
    let mut member = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    member.write_all(&vec![b'x'; 1 << 20]).unwrap();
    let member = member.finish().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"id,payload\n1,").unwrap();
    let mut bytes = gz.finish().unwrap();
    for _ in 0..1024 {
        bytes.extend_from_slice(&member);
    }
    assert!(bytes.len() < 8 << 20, "{} bytes", bytes.len());
    let input = env.write("big.csv.gz", &bytes);
    let data = env.data().display().to_string();
    let r = run(&build_args(&data, input.to_str().unwrap(), &[]), None);
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("big.csv.gz:2: a field longer than --max-field-bytes"),
        "{}",
        r.stderr
    );
    assert_held(&r, "1 GiB field");
}

#[test]
fn dev_zero_as_csv() {
    let env = Env::new();
    let data = env.data().display().to_string();
    let r = run(
        &build_args(&data, "/dev/zero", &["--input-format", "csv"]),
        None,
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(r.stderr.contains("--max-field-bytes"), "{}", r.stderr);
    assert_held(&r, "/dev/zero");
}

#[test]
fn an_unterminated_quote_on_a_large_stdin() {
    let env = Env::new();
    let data = env.data().display().to_string();
    for extra in [&[][..], &["--on-bad-row", "skip"][..]] {
        let mut args = build_args(&data, "-", &["--input-format", "csv"]);
        args.extend_from_slice(extra);
        let r = run(&args, Some(stream(b"id,name\n1,\"", b'x', 1 << 30, b"\n")));
        assert_eq!(r.code, Some(3), "{}", r.stderr);
        assert!(
            r.stderr.contains("<stdin>:2:") && r.stderr.contains("--max-field-bytes"),
            "{}",
            r.stderr
        );
        assert_held(&r, "unterminated quote");
    }
}

#[test]
fn wide_rows_count_their_row_groups() {
    let env = Env::new();
    let data = env.data().display().to_string();
    let rows = 100_000;
    let feed: Box<dyn FnOnce(ChildStdin) + Send> = Box::new(move |w: ChildStdin| {
        let mut w = std::io::BufWriter::new(w);
        let _ = (|| -> std::io::Result<()> {
            w.write_all(b"id,a,b,c\n")?;
            let (a, b, c) = ("x".repeat(500), "y".repeat(500), "z".repeat(490));
            for i in 0..rows {
                writeln!(w, "{i},{a}{i},{b}{i},{c}{i}")?;
            }
            w.flush()
        })();
    });
    let r = run(
        &build_args(&data, "-", &["--input-format", "csv"]),
        Some(feed),
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // The file is mapped to verify it once written: its pages are page cache that VmHWM
    // counts too. The build reports VmHWM just before that.
    let before = r
        .stderr
        .split(" MiB before verifying")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no peak in the summary: {}", r.stderr));
    assert!(
        (before as u64) < LIMIT_MIB + SLACK_MIB,
        "peak RSS before verifying {before} MiB with --memory-limit {LIMIT_MIB}M\n{}",
        r.stderr
    );
    let f = quarry_format::read_file(&env.qry("t")).unwrap();
    assert_eq!(f.num_rows(), rows as u64);
    assert!(f.row_groups().len() > 1, "row groups are cut by bytes too");
}
