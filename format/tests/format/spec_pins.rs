//! Pins what must never change within format v1, and keeps SPEC.md's hexdump of the smallest
//! valid file equal to the writer's output.

use quarry_format::spec::*;
use quarry_format::*;

#[test]
fn never_change_these_constants() {
    assert_eq!(MAGIC, [0x89, b'Q', b'R', b'Y', b'\r', b'\n', 0x1a, b'\n']);
    assert_eq!(VERSION_MAJOR, 1);
    assert_eq!(ALIGN, 64);
    assert_eq!((HEADER_LEN, TRAILER_LEN, FOOTER_HEADER_LEN), (64, 64, 64));
    assert_eq!(
        (COLUMN_META_LEN, ROW_GROUP_META_LEN, CHUNK_META_LEN),
        (16, 16, 128)
    );
    assert_eq!(KEY_INDEX_STRIDE, 64);
    assert_eq!(NO_KEY, u32::MAX);
    assert_eq!(
        [
            type_tag::BOOL,
            type_tag::INT64,
            type_tag::FLOAT64,
            type_tag::UTF8,
            type_tag::DATE,
            type_tag::TIMESTAMP
        ],
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        [
            encoding_tag::PLAIN,
            encoding_tag::BIT_PACKED,
            encoding_tag::DICTIONARY
        ],
        [1, 2, 3]
    );
}

/// The smallest valid file: no columns, no rows, empty created_by.
fn smallest_file() -> Vec<u8> {
    let schema = Schema::new(vec![], None).unwrap();
    let options = WriteOptions {
        created_by: String::new(),
        ..WriteOptions::default()
    };
    FileWriter::new(Vec::new(), schema, options)
        .unwrap()
        .finish()
        .unwrap()
        .0
}

/// `xxd`-style: offset, 16 bytes in hex pairs grouped by two.
fn hexdump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        out.push_str(&format!("{:08x}:", i * 16));
        for pair in line.chunks(2) {
            out.push(' ');
            for b in pair {
                out.push_str(&format!("{b:02x}"));
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn spec_hexdump_of_the_smallest_file_matches_the_writer() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SPEC.md")).unwrap();
    let start = spec
        .find("<!-- smallest-file:begin -->")
        .expect("begin marker in SPEC.md");
    let end = spec
        .find("<!-- smallest-file:end -->")
        .expect("end marker in SPEC.md");
    let block = &spec[start..end];
    let dump: String = block
        .lines()
        .filter(|l| l.len() > 9 && l.as_bytes()[8] == b':')
        .map(|l| format!("{l}\n"))
        .collect();
    let bytes = smallest_file();
    assert_eq!(bytes.len(), MIN_FILE_LEN);
    assert_eq!(
        dump,
        hexdump(&bytes),
        "SPEC.md's hexdump differs from the writer:\n{}",
        hexdump(&bytes)
    );
    let file = QuarryFile::open(AlignedBuf::from_slice(&bytes)).unwrap();
    file.verify().unwrap();
    assert_eq!((file.num_rows(), file.schema().len()), (0, 0));
}
