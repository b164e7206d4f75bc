//! Frozen fixtures: files written by earlier versions stay readable, value for value.
//! Never edit a fixture; add a new one (`cargo run -p quarry-format --example make_fixtures`).

use quarry_format::*;

use crate::common::{open, small_file, small_rows};

const SMALL_V1: &[u8] = include_bytes!("../../testdata/v1/small.qry");

#[test]
fn v1_small_fixture_reads_value_for_value() {
    let file = open(SMALL_V1).unwrap();
    file.verify().unwrap();
    assert_eq!(file.created_by(), "quarry-test");
    let rows = small_rows();
    assert_eq!(file.num_rows(), rows.len() as u64);
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let got = file.value(r as u64, c);
            assert!(
                cell.same_as(&got),
                "row {r} col {c}: expected {cell:?}, read {got:?}"
            );
        }
    }
    assert_eq!(file.find_key(KeyRef::Int64(-100)), Some(0));
}

#[test]
fn v1_writer_output_is_unchanged() {
    // Same rows and options as the fixture: a byte-identical file, so the version hash (the
    // server's ETag) of an unchanged dataset survives a rebuild with a newer quarry-etl.
    assert!(
        small_file() == SMALL_V1,
        "the writer's v1 output changed: add a fixture and a minor version"
    );
}
