use quarry_format::{AlignedBuf, ColumnData, DataType, Field, FileWriter, Schema};

use super::*;
use crate::{parse_rows_query, Limits};

fn file(rows: i64) -> QuarryFile<AlignedBuf> {
    let schema = Schema::new(
        vec![Field {
            name: "id".into(),
            data_type: DataType::Int64,
            nullable: false,
        }],
        Some(0),
    )
    .unwrap();
    let mut w = FileWriter::new(Vec::new(), schema, Default::default()).unwrap();
    w.write_row_group(vec![ColumnData::Int64 {
        values: (0..rows).collect(),
        validity: None,
    }])
    .unwrap();
    let (bytes, _) = w.finish().unwrap();
    QuarryFile::open(AlignedBuf::from_slice(&bytes)).unwrap()
}

fn scan(f: &QuarryFile<AlignedBuf>, q: &str) -> Result<Page, QueryError> {
    let q = parse_rows_query(q, f.schema(), f.version(), &Limits::default()).unwrap();
    let mut s = Scan::new(&q, f);
    while !s.step(&q, f, 10)? {}
    Ok(s.finish())
}

#[test]
fn too_many_groups_is_a_422() {
    let f = file(crate::aggregate::MAX_GROUPS as i64 + 1);
    let e = scan(&f, "select=id,count()").unwrap_err();
    assert_eq!((e.status(), e.code), (422, "too_many_groups"));
    let f = file(crate::aggregate::MAX_GROUPS as i64);
    let page = scan(&f, "select=id,count()&limit=1000").unwrap();
    assert_eq!(page.groups.unwrap().len(), crate::aggregate::MAX_GROUPS);
}

/// 2,000 rows of distinct 4,000-byte strings (plain, not dictionary-encoded).
fn long_strings() -> QuarryFile<AlignedBuf> {
    let f = |name: &str, data_type| Field {
        name: name.into(),
        data_type,
        nullable: false,
    };
    let schema = Schema::new(
        vec![f("id", DataType::Int64), f("s", DataType::Utf8)],
        Some(0),
    )
    .unwrap();
    let (mut offsets, mut bytes) = (vec![0u64], Vec::new());
    for i in 0..2000 {
        bytes.extend_from_slice(format!("{i:06}").as_bytes());
        bytes.resize(bytes.len() + 3994, b'a');
        offsets.push(bytes.len() as u64);
    }
    let mut w = FileWriter::new(Vec::new(), schema, Default::default()).unwrap();
    w.write_row_group(vec![
        ColumnData::Int64 {
            values: (0..2000).collect(),
            validity: None,
        },
        ColumnData::Utf8 {
            offsets,
            bytes,
            validity: None,
        },
    ])
    .unwrap();
    let (bytes, _) = w.finish().unwrap();
    QuarryFile::open(AlignedBuf::from_slice(&bytes)).unwrap()
}

#[test]
fn slices_over_long_strings_are_bounded_by_work_not_rows() {
    let f = long_strings();
    let wide = format!("*{}_b", "a".repeat(500));
    for (q, max_rows) in [
        // A plain comparison: 4,000 bytes a row at cost 1.
        ("s=gt.x".to_string(), MAX_SLICE_WORK / 4000 + 1),
        // A 9-word NFA: 10 word operations a byte.
        (format!("s=like.{wide}"), MAX_SLICE_WORK / 40_000 + 1),
        // Top-k on the strings reads every selected row's bytes.
        (
            "order=s.desc&limit=5".to_string(),
            MAX_SLICE_WORK / 4000 + 1,
        ),
    ] {
        let q = parse_rows_query(&q, f.schema(), f.version(), &Limits::default()).unwrap();
        let mut s = Scan::new(&q, &f);
        let mut steps = 0;
        loop {
            let before = s.rows_examined();
            let done = s.step(&q, &f, 4096).unwrap();
            let examined = s.rows_examined() - before;
            assert!(
                examined <= max_rows,
                "{q:?}: one step examined {examined} rows (work bound {max_rows})"
            );
            steps += 1;
            if done {
                break;
            }
        }
        assert_eq!(s.rows_examined(), 2000);
        assert!(steps > 2, "{steps} steps");
        // Still exact.
        let page = s.finish();
        if !q.order.is_empty() {
            assert_eq!(page.rows, vec![1999, 1998, 1997, 1996, 1995]);
        } else {
            assert!(page.rows.is_empty());
        }
    }
}

#[test]
fn arrow_batches_of_long_strings_stay_near_the_frame_size() {
    let f = long_strings();
    let q = parse_rows_query("limit=2000", f.schema(), f.version(), &Limits::default()).unwrap();
    let mut s = Scan::new(&q, &f);
    while !s.step(&q, &f, 4096).unwrap() {}
    let mut enc = crate::Encoder::new(&q, s.finish(), crate::OutputFormat::ArrowStream);
    let (mut frames, mut total) = (0, 0);
    while let Some(frame) = enc.step(&q, &f, 64 << 10) {
        // One batch of about 64 KiB (a row is 4 KB): never the whole page at once.
        assert!(frame.len() < 200 << 10, "a {} byte frame", frame.len());
        frames += 1;
        total += frame.len();
    }
    assert!(
        total > 2000 * 4000 && frames > 50,
        "{frames} frames, {total} bytes"
    );
}

#[test]
fn memory_past_the_limit_is_a_422() {
    let f = file(60);
    let q = parse_rows_query(
        "select=id,count()",
        f.schema(),
        f.version(),
        &Limits::default(),
    )
    .unwrap();
    let run = |limit: usize| -> Result<usize, QueryError> {
        let mut s = Scan::new(&q, &f);
        s.set_memory_limit(limit);
        let mut peak = 0;
        while !s.step(&q, &f, 10)? {
            peak = peak.max(s.memory_bytes());
        }
        Ok(peak)
    };
    let used = run(usize::MAX).unwrap();
    assert!(
        used > 60 * 8,
        "60 groups hold their keys and counts: {used}"
    );
    let e = run(used / 2).unwrap_err();
    assert_eq!((e.status(), e.code), (422, "too_much_memory"));
    assert!(e.message.contains("--max-request-memory"), "{}", e.message);
}

#[test]
fn step_makes_progress_with_a_zero_budget() {
    let f = file(10);
    let q = parse_rows_query("", f.schema(), f.version(), &Limits::default()).unwrap();
    let mut s = Scan::new(&q, &f);
    let mut steps = 0;
    while !s.step(&q, &f, 0).unwrap() {
        steps += 1;
        assert!(steps <= 20);
    }
    assert_eq!(s.finish().rows, (0..10).collect::<Vec<u64>>());
}

#[test]
fn huge_budgets_do_not_overflow() {
    let f = file(10);
    let limits = Limits {
        max_scan_rows: u64::MAX,
        ..Limits::default()
    };
    let q = parse_rows_query("id=gte.3", f.schema(), f.version(), &limits).unwrap();
    let mut s = Scan::new(&q, &f);
    assert!(s.step(&q, &f, u64::MAX).unwrap());
    assert_eq!(s.finish().rows, (3..10).collect::<Vec<u64>>());
}
