//! Test helpers: a reference row model independent of the reader, and writing/scanning.

use quarry_format::*;

/// A cell as the tests model it, independent of the format crate's encodings.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Date(i32),
    Ts(i64),
}

impl Cell {
    /// Equality that treats floats by bit pattern (NaN == NaN, -0.0 != 0.0).
    pub fn same_as(&self, v: &Value<'_>) -> bool {
        match (self, v) {
            (Cell::Null, Value::Null) => true,
            (Cell::Bool(a), Value::Bool(b)) => a == b,
            (Cell::Int(a), Value::Int64(b)) => a == b,
            (Cell::Float(a), Value::Float64(b)) => a.to_bits() == b.to_bits(),
            (Cell::Str(a), Value::Utf8(b)) => a == b,
            (Cell::Date(a), Value::Date(b)) => a == b,
            (Cell::Ts(a), Value::Timestamp(b)) => a == b,
            _ => false,
        }
    }

    pub fn as_value(&self) -> Value<'_> {
        match self {
            Cell::Null => Value::Null,
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Int(v) => Value::Int64(*v),
            Cell::Float(v) => Value::Float64(*v),
            Cell::Str(s) => Value::Utf8(s),
            Cell::Date(d) => Value::Date(*d),
            Cell::Ts(t) => Value::Timestamp(*t),
        }
    }
}

/// Writes `rows` (row-major) in row groups of `group_rows` and returns the file's bytes.
pub fn write(schema: &Schema, rows: &[Vec<Cell>], options: WriteOptions) -> Result<Vec<u8>> {
    let group_rows = options.row_group_rows;
    let mut w = FileWriter::new(Vec::new(), schema.clone(), options)?;
    for group in rows.chunks(group_rows) {
        let mut builders: Vec<ColumnBuilder> = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type))
            .collect();
        for row in group {
            for (b, cell) in builders.iter_mut().zip(row) {
                b.push(cell.as_value())?;
            }
        }
        w.write_row_group(builders.into_iter().map(ColumnBuilder::finish).collect())?;
    }
    Ok(w.finish()?.0)
}

pub fn open(bytes: &[u8]) -> Result<QuarryFile<AlignedBuf>> {
    QuarryFile::open(AlignedBuf::from_slice(bytes))
}

/// Reads every value through every access path; must never panic, whatever the bytes.
/// Equal values, with floats compared bit for bit (so NaN equals itself).
pub fn same_value(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Float64(x), Value::Float64(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

pub fn scan_everything<B: AsRef<[u8]>>(file: &QuarryFile<B>) -> usize {
    let mut seen = 0usize;
    for g in 0..file.row_groups().len() {
        for c in 0..file.schema().len() {
            let chunk = file.chunk(g, c);
            for i in 0..chunk.len() + 2 {
                // Neither may panic, even on a corrupt file, and the direct read agrees
                // with the chunk view.
                file.prefetch_row(g, i);
                let (direct, viewed) = (file.value_at(g, c, i), chunk.get(i));
                assert!(
                    same_value(&direct, &viewed),
                    "value_at({g}, {c}, {i}) = {direct:?}, chunk view says {viewed:?}"
                );
                if chunk.get(i) != Value::Null {
                    seen += 1;
                }
            }
            if let ColumnChunk::Utf8(s) = chunk {
                for code in 0..s.dictionary_len() as u32 + 2 {
                    seen += s.dictionary_value(code).len();
                }
            }
        }
    }
    file.prefetch_row(file.row_groups().len(), 0);
    file.prefetch_row(usize::MAX / 2, usize::MAX / 2);
    for row in 0..file.num_rows() {
        if let Some(k) = file.schema().key() {
            match file.value(row, k) {
                Value::Int64(v) => {
                    seen += file.find_key(KeyRef::Int64(v)).is_some() as usize;
                    seen += file.find_key_unindexed(KeyRef::Int64(v)).is_some() as usize;
                }
                Value::Utf8(s) => {
                    let s = s.to_owned();
                    seen += file.find_key(KeyRef::Utf8(&s)).is_some() as usize;
                }
                _ => {}
            }
        }
    }
    seen += file.key_lower_bound(KeyRef::Int64(0)) as usize;
    seen += file.key_upper_bound(KeyRef::Utf8("m")) as usize;
    seen
}

/// A small table exercising every type, nulls, a dictionary, plain strings and an int64 key.
/// Frozen: `format/testdata/v1/small.qry` was written from it.
pub fn small_schema() -> Schema {
    Schema::new(
        vec![
            Field {
                name: "id".into(),
                data_type: DataType::Int64,
                nullable: false,
            },
            Field {
                name: "flag".into(),
                data_type: DataType::Bool,
                nullable: true,
            },
            Field {
                name: "price".into(),
                data_type: DataType::Float64,
                nullable: true,
            },
            Field {
                name: "city".into(),
                data_type: DataType::Utf8,
                nullable: true,
            },
            Field {
                name: "note".into(),
                data_type: DataType::Utf8,
                nullable: true,
            },
            Field {
                name: "day".into(),
                data_type: DataType::Date,
                nullable: false,
            },
            Field {
                name: "at".into(),
                data_type: DataType::Timestamp,
                nullable: true,
            },
        ],
        Some(0),
    )
    .unwrap()
}

pub fn small_rows() -> Vec<Vec<Cell>> {
    let cities = ["Oslo", "Lyon", "Kyoto"];
    (0..150i64)
        .map(|i| {
            vec![
                Cell::Int(i * 3 - 100),
                if i % 7 == 0 {
                    Cell::Null
                } else {
                    Cell::Bool(i % 2 == 0)
                },
                if i % 5 == 0 {
                    Cell::Null
                } else {
                    Cell::Float(i as f64 * 0.25)
                },
                if i % 11 == 0 {
                    Cell::Null
                } else {
                    Cell::Str(cities[i as usize % 3].into())
                },
                Cell::Str(format!("note-{i}-é")),
                Cell::Date(18_000 + i as i32),
                if i % 13 == 0 {
                    Cell::Null
                } else {
                    Cell::Ts(1_700_000_000_000_000 + i)
                },
            ]
        })
        .collect()
}

/// `small_rows` in row groups of 64 (two full groups and a tail), created_by "quarry-test".
pub fn small_file() -> Vec<u8> {
    let options = WriteOptions {
        row_group_rows: 64,
        created_by: "quarry-test".into(),
        ..WriteOptions::default()
    };
    write(&small_schema(), &small_rows(), options).unwrap()
}
