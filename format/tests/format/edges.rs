//! Edge cases named by the issue: 0 and 1 rows, float specials, integer extremes, empty and
//! multi-byte strings, 1 MiB strings, all-null columns, dictionary choice.

use quarry_format::*;

use crate::common::{open, write, Cell};

fn one_column(t: DataType, nullable: bool) -> Schema {
    Schema::new(
        vec![Field {
            name: "v".into(),
            data_type: t,
            nullable,
        }],
        None,
    )
    .unwrap()
}

fn round_trip(schema: &Schema, cells: Vec<Cell>) -> QuarryFile<AlignedBuf> {
    let rows: Vec<Vec<Cell>> = cells.iter().cloned().map(|c| vec![c]).collect();
    let bytes = write(schema, &rows, WriteOptions::default()).unwrap();
    let file = open(&bytes).unwrap();
    file.verify().unwrap();
    assert_eq!(file.num_rows(), cells.len() as u64);
    for (r, cell) in cells.iter().enumerate() {
        let got = file.value(r as u64, 0);
        assert!(cell.same_as(&got), "row {r}: wrote {cell:?}, read {got:?}");
    }
    file
}

#[test]
fn zero_rows_round_trip_for_every_type() {
    for t in DataType::ALL {
        let file = round_trip(&one_column(t, true), vec![]);
        assert_eq!(file.row_groups().len(), 0);
    }
}

#[test]
fn one_row_round_trips_for_every_type() {
    let cells = [
        Cell::Bool(true),
        Cell::Int(-1),
        Cell::Float(1.5),
        Cell::Str("x".into()),
        Cell::Date(-719_162),
        Cell::Ts(-1),
    ];
    for (t, cell) in DataType::ALL.into_iter().zip(cells) {
        round_trip(&one_column(t, false), vec![cell]);
    }
}

#[test]
fn float_specials_keep_their_bits_and_stay_out_of_zone_maps() {
    let cells = vec![
        Cell::Float(f64::NAN),
        Cell::Float(f64::INFINITY),
        Cell::Float(f64::NEG_INFINITY),
        Cell::Float(-0.0),
        Cell::Float(0.0),
        Cell::Float(f64::MIN_POSITIVE),
        Cell::Null,
    ];
    let file = round_trip(&one_column(DataType::Float64, true), cells);
    let meta = file.chunk_meta(0, 0);
    assert_eq!(meta.min, Some(Stat::Float(f64::NEG_INFINITY)));
    assert_eq!(meta.max, Some(Stat::Float(f64::INFINITY)));
    assert_eq!(meta.null_count, 1);
}

#[test]
fn integer_extremes_round_trip() {
    let cells = vec![Cell::Int(i64::MIN), Cell::Int(i64::MAX), Cell::Int(0)];
    let file = round_trip(&one_column(DataType::Int64, false), cells);
    let meta = file.chunk_meta(0, 0);
    assert_eq!(
        (meta.min.clone(), meta.max.clone()),
        (Some(Stat::Int(i64::MIN)), Some(Stat::Int(i64::MAX)))
    );
    let ts = vec![Cell::Ts(i64::MIN), Cell::Ts(i64::MAX)];
    round_trip(&one_column(DataType::Timestamp, false), ts);
    let dates = vec![Cell::Date(i32::MIN), Cell::Date(i32::MAX)];
    round_trip(&one_column(DataType::Date, false), dates);
}

#[test]
fn empty_multibyte_and_huge_strings_round_trip() {
    let huge: String = "ü".repeat(512 * 1024); // 1 MiB of two-byte characters
    let cells = vec![
        Cell::Str(String::new()),
        Cell::Str("日本語🦀".into()),
        Cell::Str(huge.clone()),
        Cell::Null,
        Cell::Str(huge),
    ];
    let file = round_trip(&one_column(DataType::Utf8, true), cells);
    let meta = file.chunk_meta(0, 0);
    assert_eq!(meta.min, Some(Stat::Utf8(String::new())));
    assert_eq!(meta.max, Some(Stat::Utf8("日本語🦀".into())));
    // A bound longer than 64 bytes is not stored: no string zone map for the chunk.
    let file = round_trip(
        &one_column(DataType::Utf8, false),
        vec![Cell::Str("a".into()), Cell::Str("z".repeat(1 << 20))],
    );
    assert_eq!(
        (
            file.chunk_meta(0, 0).min.clone(),
            file.chunk_meta(0, 0).max.clone()
        ),
        (None, None)
    );
}

#[test]
fn all_null_columns_round_trip_with_a_bitmap_and_no_stats() {
    for t in DataType::ALL {
        let file = round_trip(&one_column(t, true), vec![Cell::Null; 100]);
        let meta = file.chunk_meta(0, 0);
        assert_eq!(meta.null_count, 100);
        assert!(meta.buffers.validity.is_some());
        assert_eq!(meta.min, None);
    }
}

#[test]
fn no_validity_bitmap_without_nulls() {
    let file = round_trip(
        &one_column(DataType::Int64, true),
        vec![Cell::Int(1), Cell::Int(2)],
    );
    let meta = file.chunk_meta(0, 0);
    assert_eq!(meta.buffers.validity, None);
    match file.chunk(0, 0) {
        ColumnChunk::Int64(c) => {
            assert!(c.validity().is_none());
            assert_eq!(c.values(), &[1, 2]);
        }
        other => panic!("expected an int64 chunk, got {other:?}"),
    }
}

#[test]
fn low_cardinality_strings_are_dictionary_encoded_with_sorted_codes() {
    let words = ["pear", "apple", "fig"];
    let cells: Vec<Cell> = (0..300).map(|i| Cell::Str(words[i % 3].into())).collect();
    let file = round_trip(&one_column(DataType::Utf8, false), cells);
    assert_eq!(file.chunk_meta(0, 0).encoding, Encoding::Dictionary);
    let ColumnChunk::Utf8(s) = file.chunk(0, 0) else {
        panic!("not utf8")
    };
    let dict: Vec<&str> = (0..s.dictionary_len() as u32)
        .map(|c| s.dictionary_value(c))
        .collect();
    assert_eq!(dict, vec!["apple", "fig", "pear"]);
    let codes = s.codes().unwrap();
    for (i, code) in codes.iter().enumerate() {
        assert_eq!(s.dictionary_value(*code), words[i % 3]);
    }
}

#[test]
fn high_cardinality_strings_stay_plain() {
    let cells: Vec<Cell> = (0..300).map(|i| Cell::Str(format!("v{i}"))).collect();
    let file = round_trip(&one_column(DataType::Utf8, false), cells);
    assert_eq!(file.chunk_meta(0, 0).encoding, Encoding::Plain);
}

#[test]
fn bools_are_bit_packed() {
    let cells: Vec<Cell> = (0..1000).map(|i| Cell::Bool(i % 3 == 0)).collect();
    let file = round_trip(&one_column(DataType::Bool, false), cells);
    let meta = file.chunk_meta(0, 0);
    assert_eq!(meta.encoding, Encoding::BitPacked);
    assert_eq!(meta.buffers.values.len, 125);
}

#[test]
fn writer_rejects_bad_input_with_a_clear_error() {
    let schema = one_column(DataType::Int64, false);
    let mut w = FileWriter::new(Vec::new(), schema, WriteOptions::default()).unwrap();
    let err = w
        .write_row_group(vec![ColumnData::Int64 {
            values: vec![1, 2],
            validity: Some(vec![true, false]),
        }])
        .unwrap_err();
    assert!(err.to_string().contains("not nullable"), "{err}");
    let err = w
        .write_row_group(vec![ColumnData::Float64 {
            values: vec![1.0],
            validity: None,
        }])
        .unwrap_err();
    assert!(err.to_string().contains("int64"), "{err}");
    let err = w
        .write_row_group(vec![ColumnData::Int64 {
            values: vec![],
            validity: None,
        }])
        .unwrap_err();
    assert!(err.to_string().contains("1..="), "{err}");
    let schema = one_column(DataType::Utf8, false);
    let mut w = FileWriter::new(Vec::new(), schema, WriteOptions::default()).unwrap();
    let err = w
        .write_row_group(vec![ColumnData::Utf8 {
            offsets: vec![0, 1],
            bytes: vec![0xff],
            validity: None,
        }])
        .unwrap_err();
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn unaligned_bytes_are_refused_not_misread() {
    let rows = vec![vec![Cell::Int(7)]];
    let bytes = write(
        &one_column(DataType::Int64, false),
        &rows,
        WriteOptions::default(),
    )
    .unwrap();
    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(&bytes);
    let buf = AlignedBuf::from_slice(&shifted);
    #[derive(Debug)]
    struct Offset(AlignedBuf);
    impl AsRef<[u8]> for Offset {
        fn as_ref(&self) -> &[u8] {
            &self.0.as_ref()[1..]
        }
    }
    let err = QuarryFile::open(Offset(buf)).unwrap_err();
    assert!(matches!(err, FormatError::Misaligned), "{err}");
}
