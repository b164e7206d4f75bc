//! Format benchmarks (issue: "Workspace, CI and the Quarry file format v1", Measure):
//! - `open` cost across file sizes (should be flat: footer cost only);
//! - `verify` throughput (GB/s, one core);
//! - summing an int64 column through the reader vs. a plain `&[i64]` (ratio >= 0.9 targeted);
//! - key lookups on 10M int64 and 10M string keys, with and without the sparse index.
//!
//! Run: `cargo bench -p quarry-format --bench format` (files are cached in target/bench-data).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quarry_format::*;

const ROWS_10M: usize = 10_000_000;

fn data_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An int64-keyed file of `rows` rows: key, an int64 value and a float64 column (24 B/row).
fn int_file(rows: usize) -> PathBuf {
    let path = data_dir().join(format!("int-{rows}.qry"));
    if path.exists() {
        return path;
    }
    let schema = Schema::new(
        vec![
            Field {
                name: "k".into(),
                data_type: DataType::Int64,
                nullable: false,
            },
            Field {
                name: "v".into(),
                data_type: DataType::Int64,
                nullable: false,
            },
            Field {
                name: "f".into(),
                data_type: DataType::Float64,
                nullable: false,
            },
        ],
        Some(0),
    )
    .unwrap();
    let tmp = path.with_extension("tmp");
    let out = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
    let mut w = FileWriter::new(out, schema, WriteOptions::default()).unwrap();
    let group = WriteOptions::default().row_group_rows;
    for start in (0..rows).step_by(group) {
        let n = group.min(rows - start);
        let keys: Vec<i64> = (start..start + n).map(|i| i as i64 * 2).collect();
        let vals: Vec<i64> = (start..start + n)
            .map(|i| (i as i64 * 7919) % 1000)
            .collect();
        let fs: Vec<f64> = vals.iter().map(|v| *v as f64 * 0.5).collect();
        w.write_row_group(vec![
            ColumnData::Int64 {
                values: keys,
                validity: None,
            },
            ColumnData::Int64 {
                values: vals,
                validity: None,
            },
            ColumnData::Float64 {
                values: fs,
                validity: None,
            },
        ])
        .unwrap();
    }
    w.finish().unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

fn string_key(i: usize) -> String {
    format!("user-{:012}", i * 2)
}

fn string_file(rows: usize) -> PathBuf {
    let path = data_dir().join(format!("str-{rows}.qry"));
    if path.exists() {
        return path;
    }
    let schema = Schema::new(
        vec![Field {
            name: "k".into(),
            data_type: DataType::Utf8,
            nullable: false,
        }],
        Some(0),
    )
    .unwrap();
    let tmp = path.with_extension("tmp");
    let out = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
    let mut w = FileWriter::new(out, schema, WriteOptions::default()).unwrap();
    let group = WriteOptions::default().row_group_rows;
    for start in (0..rows).step_by(group) {
        let mut b = ColumnBuilder::new(DataType::Utf8);
        for i in start..(start + group).min(rows) {
            b.push(Value::Utf8(&string_key(i))).unwrap();
        }
        w.write_row_group(vec![b.finish()]).unwrap();
    }
    w.finish().unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

fn bench_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("open");
    // 24 B/row: 1M rows = 24 MB, 44M rows ~ 1.06 GB.
    for rows in [1_000_000usize, 10_000_000, 44_000_000] {
        let path = int_file(rows);
        let len = std::fs::metadata(&path).unwrap().len();
        g.bench_with_input(
            BenchmarkId::new("mapped", format!("{}MB", len >> 20)),
            &path,
            |b, p| b.iter(|| read_file(black_box(p)).unwrap().num_rows()),
        );
    }
    g.finish();
}

fn bench_verify(c: &mut Criterion) {
    let path = int_file(44_000_000);
    let file = read_file(&path).unwrap();
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Bytes(file.file_len()));
    g.sample_size(10);
    g.bench_function("1GB_int64", |b| b.iter(|| file.verify().unwrap()));
    let s = read_file(&string_file(ROWS_10M)).unwrap();
    g.throughput(Throughput::Bytes(s.file_len()));
    g.bench_function("10M_string_keys", |b| b.iter(|| s.verify().unwrap()));
    g.finish();
}

fn bench_sum(c: &mut Criterion) {
    let file = read_file(&int_file(ROWS_10M)).unwrap();
    file.verify().unwrap();
    let plain: Vec<i64> = (0..file.row_groups().len())
        .flat_map(|g| match file.chunk(g, 1) {
            ColumnChunk::Int64(c) => c.values().to_vec(),
            _ => unreachable!(),
        })
        .collect();
    let mut g = c.benchmark_group("sum_int64_10M");
    g.throughput(Throughput::Elements(ROWS_10M as u64));
    g.bench_function("plain_slice", |b| {
        b.iter(|| {
            black_box(&plain)
                .iter()
                .fold(0i64, |a, v| a.wrapping_add(*v))
        })
    });
    g.bench_function("reader_chunks", |b| {
        b.iter(|| {
            let f = black_box(&file);
            let mut sum = 0i64;
            for rg in 0..f.row_groups().len() {
                if let ColumnChunk::Int64(c) = f.chunk(rg, 1) {
                    sum = c.values().iter().fold(sum, |a, v| a.wrapping_add(*v));
                }
            }
            sum
        })
    });
    g.finish();
}

/// A fixed pseudo-random probe sequence (half hits, half misses).
fn probes(n: usize) -> Vec<usize> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (2 * ROWS_10M as u64)) as usize
        })
        .collect()
}

fn bench_lookup(c: &mut Criterion) {
    let ints = read_file(&int_file(ROWS_10M)).unwrap();
    let strs = read_file(&string_file(ROWS_10M)).unwrap();
    let p = probes(4096);
    let skeys: Vec<String> = p.iter().map(|i| format!("user-{:012}", i)).collect();
    let mut g = c.benchmark_group("lookup_10M");
    g.throughput(Throughput::Elements(p.len() as u64));
    g.bench_function("int64_sparse_index", |b| {
        b.iter(|| {
            p.iter()
                .filter(|&&k| ints.find_key(KeyRef::Int64(k as i64)).is_some())
                .count()
        })
    });
    g.bench_function("int64_unindexed", |b| {
        b.iter(|| {
            p.iter()
                .filter(|&&k| ints.find_key_unindexed(KeyRef::Int64(k as i64)).is_some())
                .count()
        })
    });
    g.bench_function("utf8_sparse_index", |b| {
        b.iter(|| {
            skeys
                .iter()
                .filter(|k| strs.find_key(KeyRef::Utf8(k)).is_some())
                .count()
        })
    });
    // What the first string lookup on a freshly opened file (or the server's loader) pays.
    let path = string_file(ROWS_10M);
    g.bench_function("utf8_open_and_prepare_key_search", |b| {
        b.iter(|| {
            let f = read_file(&path).unwrap();
            f.prepare_key_search();
            f
        })
    });
    g.bench_function("utf8_unindexed", |b| {
        b.iter(|| {
            skeys
                .iter()
                .filter(|k| strs.find_key_unindexed(KeyRef::Utf8(k)).is_some())
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_open, bench_verify, bench_sum, bench_lookup);
criterion_main!(benches);
