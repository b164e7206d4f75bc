//! Key lookups against a reference: every present key found at its row, absent keys missed,
//! lower/upper bounds equal to a plain search over the keys, for int64 and utf8 keys.

use proptest::prelude::*;
use quarry_format::*;

use crate::common::{open, write, Cell};

fn key_file(keys: &[Cell], group_rows: usize) -> QuarryFile<AlignedBuf> {
    let t = match keys.first() {
        Some(Cell::Str(_)) => DataType::Utf8,
        _ => DataType::Int64,
    };
    let schema = Schema::new(
        vec![
            Field {
                name: "k".into(),
                data_type: t,
                nullable: false,
            },
            Field {
                name: "row".into(),
                data_type: DataType::Int64,
                nullable: false,
            },
        ],
        Some(0),
    )
    .unwrap();
    let rows: Vec<Vec<Cell>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| vec![k.clone(), Cell::Int(i as i64)])
        .collect();
    let options = WriteOptions {
        row_group_rows: group_rows,
        ..WriteOptions::default()
    };
    let file = open(&write(&schema, &rows, options).unwrap()).unwrap();
    file.verify().unwrap();
    file
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn int64_lookups_match_a_plain_search(
        keys in prop::collection::btree_set(-1000i64..1000, 0..700),
        group_rows in 1usize..300,
        probes in prop::collection::vec(-1100i64..1100, 50),
    ) {
        let keys: Vec<i64> = keys.into_iter().collect();
        let cells: Vec<Cell> = keys.iter().map(|k| Cell::Int(*k)).collect();
        let file = key_file(&cells, group_rows);
        for (row, k) in keys.iter().enumerate() {
            prop_assert_eq!(file.find_key(KeyRef::Int64(*k)), Some(row as u64));
            prop_assert_eq!(file.find_key_unindexed(KeyRef::Int64(*k)), Some(row as u64));
        }
        for p in probes.iter().chain([i64::MIN, i64::MAX].iter()) {
            let expected = keys.binary_search(p).ok().map(|i| i as u64);
            prop_assert_eq!(file.find_key(KeyRef::Int64(*p)), expected);
            prop_assert_eq!(file.find_key_unindexed(KeyRef::Int64(*p)), expected);
            prop_assert_eq!(file.key_lower_bound(KeyRef::Int64(*p)), keys.partition_point(|k| k < p) as u64);
            prop_assert_eq!(file.key_upper_bound(KeyRef::Int64(*p)), keys.partition_point(|k| k <= p) as u64);
        }
        // A key of the wrong type finds nothing.
        prop_assert_eq!(file.find_key(KeyRef::Utf8("1")), None);
    }

    /// Integer searches start from a guess interpolated between index entries: keys bunched in
    /// clusters, far apart, or at the ends of the i64 range must not lead them astray.
    #[test]
    fn int64_lookups_with_skewed_keys_match_a_plain_search(
        keys in prop::collection::btree_set(
            prop_oneof![
                -50i64..50,
                (0i64..40).prop_map(|x| x * 1_000_000_007),
                any::<i64>(),
                Just(i64::MIN),
                Just(i64::MAX),
            ],
            0..700,
        ),
        group_rows in 1usize..300,
        probes in prop::collection::vec(any::<i64>(), 30),
    ) {
        let keys: Vec<i64> = keys.into_iter().collect();
        let cells: Vec<Cell> = keys.iter().map(|k| Cell::Int(*k)).collect();
        let file = key_file(&cells, group_rows);
        for (row, k) in keys.iter().enumerate() {
            prop_assert_eq!(file.find_key(KeyRef::Int64(*k)), Some(row as u64));
        }
        let near = keys.iter().flat_map(|k| [k.saturating_sub(1), k.saturating_add(1)]);
        for p in probes.iter().copied().chain(near).chain([i64::MIN, i64::MAX, 0]) {
            let expected = keys.binary_search(&p).ok().map(|i| i as u64);
            prop_assert_eq!(file.find_key(KeyRef::Int64(p)), expected);
            prop_assert_eq!(file.key_lower_bound(KeyRef::Int64(p)), keys.partition_point(|k| *k < p) as u64);
            prop_assert_eq!(file.key_upper_bound(KeyRef::Int64(p)), keys.partition_point(|k| *k <= p) as u64);
        }
    }

    #[test]
    fn utf8_lookups_match_a_plain_search(
        keys in prop::collection::btree_set("[a-e]{0,4}", 0..400),
        group_rows in 1usize..200,
        probes in prop::collection::vec("[a-f]{0,5}", 50),
    ) {
        let keys: Vec<String> = keys.into_iter().collect();
        let cells: Vec<Cell> = keys.iter().map(|k| Cell::Str(k.clone())).collect();
        let file = key_file(&cells, group_rows);
        for (row, k) in keys.iter().enumerate() {
            prop_assert_eq!(file.find_key(KeyRef::Utf8(k)), Some(row as u64));
            prop_assert_eq!(file.find_key_unindexed(KeyRef::Utf8(k)), Some(row as u64));
        }
        for p in &probes {
            let expected = keys.binary_search(p).ok().map(|i| i as u64);
            prop_assert_eq!(file.find_key(KeyRef::Utf8(p)), expected);
            prop_assert_eq!(file.key_lower_bound(KeyRef::Utf8(p)), keys.partition_point(|k| k < p) as u64);
            prop_assert_eq!(file.key_upper_bound(KeyRef::Utf8(p)), keys.partition_point(|k| k <= p) as u64);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// String searches compare 8-byte words taken after the prefix all index entries share:
    /// keys that share more than 8 bytes past it (ties), NUL bytes (where zero padding could
    /// confuse "ab" with "ab\0"), and probes shorter than, before or after the shared prefix.
    #[test]
    fn utf8_lookups_with_long_shared_prefixes_match_a_plain_search(
        keys in prop::collection::btree_set(
            prop_oneof!["id-[ab]{8}[\\x00a-c]{0,3}", "id-[ab\\x00]{0,3}"],
            0..500,
        ),
        group_rows in 1usize..200,
        probes in prop::collection::vec(
            prop_oneof![
                "id-[ab]{8}[\\x00a-c]{0,3}",
                "id-[ab\\x00]{0,3}",
                "[a-z\\-]{0,4}",
            ],
            40,
        ),
    ) {
        let keys: Vec<String> = keys.into_iter().collect();
        let cells: Vec<Cell> = keys.iter().map(|k| Cell::Str(k.clone())).collect();
        let file = key_file(&cells, group_rows);
        for (row, k) in keys.iter().enumerate() {
            prop_assert_eq!(file.find_key(KeyRef::Utf8(k)), Some(row as u64));
        }
        let fixed = ["", "i", "id", "id-", "id-a", "ia", "ie", "zz", "id-\0"].map(String::from);
        for p in probes.iter().chain(fixed.iter()) {
            let expected = keys.binary_search(p).ok().map(|i| i as u64);
            prop_assert_eq!(file.find_key(KeyRef::Utf8(p)), expected);
            prop_assert_eq!(file.key_lower_bound(KeyRef::Utf8(p)), keys.partition_point(|k| k < p) as u64);
            prop_assert_eq!(file.key_upper_bound(KeyRef::Utf8(p)), keys.partition_point(|k| k <= p) as u64);
        }
    }
}

#[test]
fn unsorted_or_duplicate_keys_are_refused_naming_both_rows() {
    let schema = Schema::new(
        vec![Field {
            name: "k".into(),
            data_type: DataType::Int64,
            nullable: false,
        }],
        Some(0),
    )
    .unwrap();
    let options = WriteOptions {
        row_group_rows: 2,
        ..WriteOptions::default()
    };
    let rows = vec![vec![Cell::Int(1)], vec![Cell::Int(5)], vec![Cell::Int(5)]];
    let msg = write(&schema, &rows, options.clone())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("row 2") && msg.contains("row 1"), "{msg}");
    let rows = vec![vec![Cell::Int(3)], vec![Cell::Int(2)]];
    let msg = write(&schema, &rows, options).unwrap_err().to_string();
    assert!(msg.contains("row 1") && msg.contains("row 0"), "{msg}");
}
