//! A synthetic lineitem-like table and the bench queries, shared by `benches/scan.rs` and
//! `examples/cpu_per_query.rs`.

use quarry_format::{
    AlignedBuf, ColumnData, DataType, Field, FileWriter, QuarryFile, Schema, WriteOptions,
};
use quarry_query::{parse_rows_query, Encoder, Limits, OutputFormat, Scan};

pub const QUERIES: [(&str, &str); 3] = [
    (
        "filtered_scan_limit_100",
        "l_returnflag=eq.R&l_discount=gte.0.05&limit=100",
    ),
    (
        "q6_like",
        "l_shipdate=gte.1994-01-01&l_shipdate=lt.1995-01-01&l_discount=gte.0.05\
         &l_discount=lte.0.07&l_quantity=lt.24&select=l_extendedprice.sum()",
    ),
    (
        "q1_like",
        "l_shipdate=lte.1998-09-02&select=l_returnflag,l_linestatus,l_quantity.sum(),\
         l_extendedprice.sum(),l_quantity.avg(),l_extendedprice.avg(),l_discount.avg(),count()",
    ),
];

pub fn build(rows: usize) -> QuarryFile<AlignedBuf> {
    let f = |n: &str, t| Field {
        name: n.into(),
        data_type: t,
        nullable: false,
    };
    let schema = Schema::new(
        vec![
            f("l_orderkey", DataType::Int64),
            f("l_quantity", DataType::Float64),
            f("l_extendedprice", DataType::Float64),
            f("l_discount", DataType::Float64),
            f("l_tax", DataType::Float64),
            f("l_returnflag", DataType::Utf8),
            f("l_linestatus", DataType::Utf8),
            f("l_shipdate", DataType::Date),
        ],
        Some(0),
    )
    .unwrap();
    let group = 65_536;
    let mut w = FileWriter::new(Vec::new(), schema, WriteOptions::default()).unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let strs = |vals: Vec<&str>| {
        let mut offsets = vec![0u64];
        let mut bytes = Vec::new();
        for v in vals {
            bytes.extend_from_slice(v.as_bytes());
            offsets.push(bytes.len() as u64);
        }
        ColumnData::Utf8 {
            offsets,
            bytes,
            validity: None,
        }
    };
    let mut start = 0usize;
    while start < rows {
        let n = group.min(rows - start);
        let mut cols: [Vec<f64>; 4] = Default::default();
        let (mut rf, mut ls, mut sd) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let r = rnd();
            cols[0].push((r % 50 + 1) as f64);
            cols[1].push((r >> 8) as f64 % 100_000.0 + 900.0);
            cols[2].push(((r >> 20) % 11) as f64 / 100.0);
            cols[3].push(((r >> 28) % 9) as f64 / 100.0);
            let day = 8036 + ((r >> 36) % 2526) as i32;
            sd.push(day);
            rf.push(["A", "N", "R"][((r >> 50) % 3) as usize]);
            ls.push(if day > 9298 { "O" } else { "F" });
        }
        let [q, p, d, t] = cols;
        w.write_row_group(vec![
            ColumnData::Int64 {
                values: (start as i64..(start + n) as i64).collect(),
                validity: None,
            },
            ColumnData::Float64 {
                values: q,
                validity: None,
            },
            ColumnData::Float64 {
                values: p,
                validity: None,
            },
            ColumnData::Float64 {
                values: d,
                validity: None,
            },
            ColumnData::Float64 {
                values: t,
                validity: None,
            },
            strs(rf),
            strs(ls),
            ColumnData::Date {
                values: sd,
                validity: None,
            },
        ])
        .unwrap();
        start += n;
    }
    let (bytes, _) = w.finish().unwrap();
    QuarryFile::open(AlignedBuf::from_slice(&bytes)).unwrap()
}

pub fn run(file: &QuarryFile<AlignedBuf>, query: &str) -> usize {
    let limits = Limits {
        max_scan_rows: u64::MAX,
        ..Limits::default()
    };
    let q = parse_rows_query(query, file.schema(), file.version(), &limits).unwrap();
    let mut scan = Scan::new(&q, file);
    while !scan.step(&q, file, 1 << 20).unwrap() {}
    let mut e = Encoder::new(&q, scan.finish(), OutputFormat::Json);
    let mut n = 0;
    while let Some(b) = e.step(&q, file, 64 << 10) {
        n += b.len();
    }
    n
}
