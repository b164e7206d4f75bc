//! Test helpers: a raw HTTP/1.1 client, a server started in-process, dataset files.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use quarry_format::{ColumnBuilder, DataType, Field, FileWriter, Schema, Value, WriteOptions};
use quarry_server::{Config, ServerHandle};

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `{"error":{"code"...}}` code.
    pub fn error_code(&self) -> String {
        let j = self.json();
        j["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {j}"))
            .to_string()
    }
}

/// Sends raw bytes, reads until the server closes, parses one response.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    parse(&buf, request.starts_with(b"HEAD"))
}

pub fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(addr, "GET", path, headers)
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[])
}

pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes())
}

pub fn parse(buf: &[u8], head_only: bool) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(buf)));
    let head = std::str::from_utf8(&buf[..end]).expect("head utf8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if head_only {
        rest.to_vec()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).expect("hex").trim(), 16)
                .expect("chunk size");
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Config for an in-process server on an ephemeral port; `extra` are more flags.
pub fn config(dir: &Path, extra: &[&str]) -> Config {
    let mut args = vec![
        "quarry-server".to_string(),
        "--data-dir".to_string(),
        dir.display().to_string(),
        "--listen".to_string(),
        "127.0.0.1:0".to_string(),
    ];
    for (flag, default) in [
        ("--drain-delay", "0s"),
        ("--reload-interval", "0s"),
        ("--admin-listen", "127.0.0.1:0"),
        // Load shedding answers 503 whenever the loop runs late, which a loaded test machine
        // causes with no load from the test; the tests of shedding set it themselves.
        ("--shed-lag", "0s"),
    ] {
        if !extra.contains(&flag) {
            args.push(flag.to_string());
            args.push(default.to_string());
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut c = Config::parse_from(args);
    c.handle_signals = false;
    c
}

pub fn start(dir: &Path, extra: &[&str]) -> ServerHandle {
    quarry_server::start(config(dir, extra)).expect("server starts")
}

/// Polls until `f` holds (bounded: 20 s), for state changes the server makes asynchronously.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn wait_ready(addr: SocketAddr) {
    wait_until("/healthz is 200", || get(addr, "/healthz").status == 200);
}

/// One source row of the test dataset `people`; the reference the answers are checked against.
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    pub id: i64,
    pub name: Option<String>,
    pub score: Option<f64>,
    pub born: i32,
    pub active: bool,
    pub seen: Option<i64>,
}

pub const CITIES: [&str; 5] = ["Oslo", "Lima", "Kyoto", "Quito, EC", "São \"Paulo\""];

/// `n` deterministic rows with ids 0, 3, 6, ... (gaps, so absent keys exist).
pub fn people(n: usize) -> Vec<Person> {
    (0..n)
        .map(|i| {
            let i64_ = i as i64;
            Person {
                id: i64_ * 3,
                name: if i % 7 == 3 {
                    None
                } else {
                    Some(CITIES[i % CITIES.len()].to_string())
                },
                score: if i % 11 == 5 {
                    None
                } else {
                    Some((i as f64) * 0.5 - 100.0)
                },
                born: 10_000 + (i as i32 % 400),
                active: i % 2 == 0,
                seen: if i % 13 == 0 {
                    None
                } else {
                    Some(1_600_000_000_000_000 + i64_ * 1_000_001)
                },
            }
        })
        .collect()
}

pub fn people_schema() -> Schema {
    let f = |name: &str, data_type, nullable| Field {
        name: name.into(),
        data_type,
        nullable,
    };
    Schema::new(
        vec![
            f("id", DataType::Int64, false),
            f("name", DataType::Utf8, true),
            f("score", DataType::Float64, true),
            f("born", DataType::Date, false),
            f("active", DataType::Bool, false),
            f("seen", DataType::Timestamp, true),
        ],
        Some(0),
    )
    .expect("schema")
}

/// Writes `rows` as `<dir>/<name>.qry` (temp file + rename, like the ETL), row groups of `group`.
pub fn write_people(dir: &Path, name: &str, rows: &[Person], group: usize) {
    let options = WriteOptions {
        row_group_rows: group,
        ..WriteOptions::default()
    };
    write_people_with(dir, name, rows, options)
}

pub fn write_people_with(dir: &Path, name: &str, rows: &[Person], options: WriteOptions) {
    let group = options.row_group_rows;
    let tmp = dir.join(format!(".{name}.qry.tmp"));
    let out = std::fs::File::create(&tmp).expect("create");
    let mut w =
        FileWriter::new(std::io::BufWriter::new(out), people_schema(), options).expect("writer");
    for chunk in rows.chunks(group) {
        let mut cols: Vec<ColumnBuilder> = [
            DataType::Int64,
            DataType::Utf8,
            DataType::Float64,
            DataType::Date,
            DataType::Bool,
            DataType::Timestamp,
        ]
        .into_iter()
        .map(ColumnBuilder::new)
        .collect();
        for p in chunk {
            cols[0].push(Value::Int64(p.id)).expect("push");
            match &p.name {
                Some(s) => cols[1].push(Value::Utf8(s)).expect("push"),
                None => cols[1].push_null(),
            }
            match p.score {
                Some(v) => cols[2].push(Value::Float64(v)).expect("push"),
                None => cols[2].push_null(),
            }
            cols[3].push(Value::Date(p.born)).expect("push");
            cols[4].push(Value::Bool(p.active)).expect("push");
            match p.seen {
                Some(v) => cols[5].push(Value::Timestamp(v)).expect("push"),
                None => cols[5].push_null(),
            }
        }
        w.write_row_group(cols.into_iter().map(ColumnBuilder::finish).collect())
            .expect("row group");
    }
    let (buf, _) = w.finish().expect("finish");
    buf.into_inner().expect("flush").sync_all().expect("sync");
    std::fs::rename(&tmp, dir.join(format!("{name}.qry"))).expect("rename");
}
