//! Property round-trips: whatever rows and options go in, the reader returns them, `verify`
//! passes, and the output is deterministic.

use proptest::prelude::*;
use quarry_format::*;

use crate::common::{open, write, Cell};

fn cell_strategy(t: DataType, nullable: bool) -> BoxedStrategy<Cell> {
    let value: BoxedStrategy<Cell> = match t {
        DataType::Bool => any::<bool>().prop_map(Cell::Bool).boxed(),
        DataType::Int64 => prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), -3i64..3]
            .prop_map(Cell::Int)
            .boxed(),
        DataType::Float64 => prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(0.0)
        ]
        .prop_map(Cell::Float)
        .boxed(),
        // Few distinct values sometimes, so dictionary encoding is exercised.
        DataType::Utf8 => prop_oneof![
            "[a-c]{0,2}",
            "\\PC{0,12}",
            Just(String::new()),
            Just("日本語🦀".to_string())
        ]
        .prop_map(Cell::Str)
        .boxed(),
        DataType::Date => any::<i32>().prop_map(Cell::Date).boxed(),
        DataType::Timestamp => any::<i64>().prop_map(Cell::Ts).boxed(),
    };
    if nullable {
        prop_oneof![1 => Just(Cell::Null), 3 => value].boxed()
    } else {
        value
    }
}

#[derive(Debug, Clone)]
struct Case {
    schema: Schema,
    rows: Vec<Vec<Cell>>,
    row_group_rows: usize,
    dictionary: DictionaryPolicy,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let column = (0usize..6, any::<bool>());
    (
        prop::collection::vec(column, 1..5),
        0usize..300,
        1usize..80,
        any::<bool>(),
        prop_oneof![
            Just(None),
            Just(Some(DataType::Int64)),
            Just(Some(DataType::Utf8))
        ],
    )
        .prop_flat_map(|(cols, n, rg, dict, key)| {
            let mut fields: Vec<Field> = cols
                .iter()
                .enumerate()
                .map(|(i, (t, nullable))| Field {
                    name: format!("c{i}"),
                    data_type: DataType::ALL[*t],
                    nullable: *nullable,
                })
                .collect();
            if let Some(t) = key {
                fields.insert(
                    0,
                    Field {
                        name: "k".into(),
                        data_type: t,
                        nullable: false,
                    },
                );
            }
            let schema = Schema::new(fields.clone(), key.map(|_| 0)).unwrap();
            let row = fields
                .iter()
                .skip(usize::from(key.is_some()))
                .map(|f| cell_strategy(f.data_type, f.nullable))
                .collect::<Vec<_>>();
            let keys = prop::collection::btree_set(any::<i64>(), n..=n);
            (
                Just(schema),
                prop::collection::vec(row, n..=n),
                keys,
                Just(rg),
                Just(dict),
                Just(key),
            )
        })
        .prop_map(|(schema, mut rows, keys, rg, dict, key)| {
            if let Some(t) = key {
                // Unique sorted keys: zero-padded strings sort like the numbers.
                for (row, k) in rows.iter_mut().zip(keys) {
                    let cell = match t {
                        DataType::Int64 => Cell::Int(k),
                        _ => Cell::Str(format!("{:020}", k as i128 - i64::MIN as i128)),
                    };
                    row.insert(0, cell);
                }
            }
            Case {
                schema,
                rows,
                row_group_rows: rg,
                dictionary: if dict {
                    DictionaryPolicy::Auto
                } else {
                    DictionaryPolicy::Never
                },
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_value_round_trips(case in case_strategy()) {
        let options = WriteOptions {
            row_group_rows: case.row_group_rows,
            dictionary: case.dictionary,
            ..WriteOptions::default()
        };
        let bytes = write(&case.schema, &case.rows, options.clone()).unwrap();
        let file = open(&bytes).unwrap();
        // Values are compared twice: with UTF-8 checked on every read, then trusted after the
        // full verification.
        for (r, row) in case.rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                prop_assert!(cell.same_as(&file.value(r as u64, c)));
            }
        }
        file.verify().unwrap();
        prop_assert!(file.fully_verified());
        prop_assert_eq!(file.num_rows(), case.rows.len() as u64);
        prop_assert_eq!(file.schema(), &case.schema);
        let expected_groups = case.rows.len().div_ceil(case.row_group_rows);
        prop_assert_eq!(file.row_groups().len(), expected_groups);
        for (r, row) in case.rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let got = file.value(r as u64, c);
                prop_assert!(cell.same_as(&got), "row {} col {}: wrote {:?}, read {:?}", r, c, cell, got);
            }
        }
        // Zone maps bound every value and count nulls.
        for g in 0..file.row_groups().len() {
            let rg = file.row_groups()[g];
            for c in 0..case.schema.len() {
                let meta = file.chunk_meta(g, c);
                let cells = &case.rows[rg.first_row as usize..(rg.first_row + rg.num_rows) as usize];
                let nulls = cells.iter().filter(|r| r[c] == Cell::Null).count() as u64;
                prop_assert_eq!(meta.null_count, nulls);
                for r in cells {
                    prop_assert!(within(&r[c], meta.min.as_ref(), meta.max.as_ref()), "{:?} outside {:?}..{:?}", r[c], meta.min, meta.max);
                }
            }
        }
        // Deterministic: the same input gives the same bytes.
        prop_assert_eq!(&write(&case.schema, &case.rows, options).unwrap(), &bytes);
    }
}

/// Whether a cell lies within a zone map (nulls and NaN are outside min/max by definition).
fn within(cell: &Cell, min: Option<&Stat>, max: Option<&Stat>) -> bool {
    match (cell, min, max) {
        (Cell::Null, _, _) => true,
        (Cell::Float(f), _, _) if f.is_nan() => true,
        // Omitted when a string of the chunk is longer than MAX_STRING_STAT_LEN.
        (Cell::Str(_), None, None) => true,
        (_, Some(lo), Some(hi)) => match (cell, lo, hi) {
            (Cell::Bool(b), Stat::Bool(l), Stat::Bool(h)) => l <= b && b <= h,
            (Cell::Int(v), Stat::Int(l), Stat::Int(h)) => l <= v && v <= h,
            (Cell::Ts(v), Stat::Int(l), Stat::Int(h)) => l <= v && v <= h,
            (Cell::Date(v), Stat::Int(l), Stat::Int(h)) => {
                *l <= i64::from(*v) && i64::from(*v) <= *h
            }
            (Cell::Float(v), Stat::Float(l), Stat::Float(h)) => l <= v && v <= h,
            (Cell::Str(v), Stat::Utf8(l), Stat::Utf8(h)) => l <= v && v <= h,
            _ => false,
        },
        _ => false,
    }
}
